"""Evaluate panel (a tab of the Runs page): perplexity before/after fine-tuning, as table and bars.

Perplexity is computed on the run's validation split (the same split the run held out), once
for the base model and once with the run's LoRA adapter, on the heavy lane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from gui.context import AppContext
from gui.errors import show_error
from gui.pages.train import plain_example
from gui.widgets import CURVE_COLOURS, label


def evaluate_before_after(perplexity: Any, model_dir: Path, adapter_dir: Path, rows: list[dict],
                          report: Any, cancel: Any) -> dict[str, tuple[float, float]]:
    """Job body: ``{"perplexity": (base, tuned), "mean NLL": (base, tuned)}``."""
    base = perplexity(model_dir, rows, report=report, cancel=cancel)
    tuned = perplexity(model_dir, rows, adapter_dir=adapter_dir, report=report, cancel=cancel)
    return {"perplexity": (base.perplexity, tuned.perplexity),
            "mean NLL (nats/token)": (base.mean_nll, tuned.mean_nll)}


class EvaluatePanel(QWidget):
    """Before/after table and bar chart for one training run."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.run: dict[str, Any] | None = None
        self.button = QPushButton("Evaluate on the validation split", objectName="evaluateButton")
        self.button.clicked.connect(self.start)
        self.table = QTableWidget(0, 3, objectName="evalTable")
        self.table.setHorizontalHeaderLabels(["Metric", "Base model", "Fine-tuned"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.chart = pg.PlotWidget()
        self.chart.setLabel("left", "perplexity (lower is better)")
        self.chart.getAxis("bottom").setTicks([[(0, "base"), (1, "fine-tuned")]])
        self.note = label("", "hint", wrap=True)
        row = QHBoxLayout()
        row.addWidget(self.table, 1)
        row.addWidget(self.chart, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.button)
        layout.addWidget(self.note)
        layout.addLayout(row, 1)
        self.set_run(None)

    def set_run(self, run: dict[str, Any] | None) -> None:
        """Evaluate this run next (``None`` disables the panel)."""
        self.run = run
        ok = bool(run and run["kind"] == "train" and self._adapter(run))
        self.button.setEnabled(ok)
        self.note.setText("" if ok else "Select a finished training run to compare it with its "
                                         "base model.")

    def _adapter(self, run: dict[str, Any]) -> Path | None:
        found = self.ctx.store.artifacts(run["id"], "adapter")
        return Path(found[0]["path"]) if found else None

    def start(self) -> None:
        """Start the before/after evaluation on the heavy lane."""
        run = self.run
        if not run:
            return
        try:
            model = next(m for m in self.ctx.store.base_models() if m["id"] == run["base_model_id"])
            rows = [plain_example(r) for r in self.ctx.store.all_examples(run["dataset_id"])]
            _, val = self.ctx.engine.split_examples(
                rows, validation_fraction=float(run["config"].get("validation_fraction", 0.1)),
                seed=int(run["config"].get("seed", 42)))
            perplexity, adapter = self.ctx.engine.evaluate, self._adapter(run)
            job = self.ctx.runner.submit(f"Evaluate {run['name']}", lambda report, cancel:
                                         evaluate_before_after(perplexity, Path(model["path"]),
                                                               adapter, val, report, cancel))
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, exc, "start the evaluation")
            return
        self.note.setText(f"Scoring {len(val)} validation conversations…")
        job.succeeded.connect(self.show_results)
        job.failed.connect(lambda exc: show_error(self, exc, "evaluate the run"))

    def show_results(self, results: dict[str, tuple[float, float]]) -> None:
        """Fill the table and the bar chart."""
        self.table.setRowCount(len(results))
        for r, (name, (before, after)) in enumerate(results.items()):
            for c, text in enumerate((name, f"{before:.3f}", f"{after:.3f}")):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        before, after = results["perplexity"]
        self.chart.clear()
        self.chart.addItem(pg.BarGraphItem(x=[0, 1], height=[before, after], width=0.6,
                                           brushes=[CURVE_COLOURS[1], CURVE_COLOURS[0]]))
        self.note.setText(f"Perplexity {before:.2f} → {after:.2f}")
