"""Runs page: history with config, status and metrics; loss charts; compare; resume; delete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QMessageBox, QPlainTextEdit,
                               QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget,
                               QVBoxLayout, QWidget)

from gui.context import AppContext
from gui.errors import show_error
from gui.pages.evaluate import EvaluatePanel
from gui.widgets import LossChart, label

COLUMNS = ("Run", "Kind", "Status", "Dataset", "Started", "Train loss", "Eval loss")
RESUMABLE = ("cancelled", "interrupted", "failed")


def last_value(series: list[tuple[int, float]] | None) -> str:
    """The last value of a metric series, formatted, or an em dash."""
    return f"{series[-1][1]:.4f}" if series else "—"


class RunsPage(QWidget):
    """History of runs; select one for details, two to compare."""

    resume_requested = Signal(int)

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.rows: list[dict[str, Any]] = []
        self.table = QTableWidget(0, len(COLUMNS), objectName="runsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(
            3, self.table.horizontalHeader().ResizeMode.Stretch)  # the dataset name
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.chart = LossChart("loss (nats/token)")
        self.summary = label("Select a run; select two to compare them.", "hint", wrap=True)
        self.config_view = QPlainTextEdit(readOnly=True, objectName="runConfig")
        self.evaluate = EvaluatePanel(ctx)
        self.tabs = tabs = QTabWidget()
        tabs.addTab(self.chart, "Loss")
        tabs.addTab(self.config_view, "Config")
        tabs.addTab(self.evaluate, "Evaluate")
        self.resume_button = QPushButton("Resume", objectName="resumeRunButton")
        self.resume_button.clicked.connect(self._on_resume)
        self.delete_button = QPushButton("Delete run…", objectName="deleteRunButton")
        self.delete_button.clicked.connect(self._on_delete)
        buttons = QHBoxLayout()
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.addWidget(label("Runs", "title"))
        top_layout.addWidget(self.table, 1)
        top_layout.addLayout(buttons)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.addWidget(self.summary)
        bottom_layout.addWidget(tabs, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        splitter.setSizes([300, 500])
        QVBoxLayout(self).addWidget(splitter)
        ctx.hub.runs_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Reload the run history."""
        datasets = {d["id"]: d["name"] for d in self.ctx.store.datasets()}
        self.rows = self.ctx.store.runs()
        self.table.setRowCount(len(self.rows))
        for r, run in enumerate(self.rows):
            metrics = self.ctx.store.metrics(run["id"])
            cells = (run["name"], run["kind"], run["status"], datasets.get(run["dataset_id"], "—"),
                     (run.get("started") or "")[:16].replace("T", " "),
                     last_value(metrics.get("loss")), last_value(metrics.get("eval_loss")))
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(str(text)))
        self.table.resizeColumnsToContents()
        self._on_selection()

    def selected_runs(self) -> list[dict[str, Any]]:
        """The selected run rows, in table order."""
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.rows[r] for r in rows if r < len(self.rows)]

    def _on_selection(self) -> None:
        runs = self.selected_runs()
        self.chart.clear_series()
        self.resume_button.setEnabled(len(runs) == 1 and runs[0]["kind"] == "train"
                                      and runs[0]["status"] in RESUMABLE)
        self.delete_button.setEnabled(bool(runs) and all(r["status"] != "running" for r in runs))
        self.evaluate.set_run(runs[0] if len(runs) == 1 else None)
        if not runs:
            self.config_view.clear()
            return
        lines = []
        for run in runs[:2]:
            metrics = self.ctx.store.metrics(run["id"])
            prefix = f"{run['name']}: " if len(runs) > 1 else ""
            for name in ("loss", "eval_loss"):
                if metrics.get(name):
                    self.chart.set_series(prefix + name.replace("_", " "), metrics[name])
            lines.append(f"<b>{run['name']}</b> — {run['status']} · train loss "
                         f"{last_value(metrics.get('loss'))} · eval loss "
                         f"{last_value(metrics.get('eval_loss'))}"
                         + (f"<br><span style='color:#dc2626'>{run['error']}</span>"
                            if run.get("error") else ""))
        self.summary.setText("<br>".join(lines))
        self.config_view.setPlainText("\n\n".join(
            f"# {run['name']}\n{json.dumps(run['config'], indent=2)}" for run in runs[:2]))

    def _on_resume(self) -> None:
        runs = self.selected_runs()
        if runs:
            self.resume_requested.emit(runs[0]["id"])

    def _on_delete(self) -> None:
        runs = self.selected_runs()
        names = ", ".join(r["name"] for r in runs)
        answer = QMessageBox.question(self, "Delete runs", f"Delete {names} and their files "
                                      "(checkpoints, adapters, exports)?")
        if answer == QMessageBox.StandardButton.Yes:
            for run in runs:
                self.delete_run(run["id"])

    def delete_run(self, run_id: int) -> None:
        """Delete a run's files under the data dir, then its record."""
        try:
            for artifact in self.ctx.store.artifacts(run_id):
                _remove_inside(Path(artifact["path"]), self.ctx.store.root)
            self.ctx.store.delete_run(run_id)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, exc, f"delete run {run_id}")
        self.ctx.hub.runs_changed.emit()
        self.ctx.hub.artifacts_changed.emit()


def _remove_inside(path: Path, root: Path) -> None:
    """Remove ``path`` only when it lies inside the data dir (never the user's own files)."""
    path, root = path.resolve(), root.resolve()
    if root not in path.parents:
        return
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
