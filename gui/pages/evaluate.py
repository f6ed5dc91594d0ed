"""Evaluate panel (a tab of the Runs page): base model vs fine-tuned, as a table and bar charts.

Both models are scored on the run's validation split (the same seeded split the run held
out): perplexity over every row, BLEU and ROUGE-L of greedy replies to the first rows
(:mod:`gui.scoring`, the CLI's ``eval`` in the GUI). The job runs on the heavy lane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtWidgets import (QHBoxLayout, QProgressBar, QPushButton, QSpinBox, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from engine.progress import Progress
from gui.context import AppContext
from gui.errors import show_error
from gui.jobs import Job
from gui.pages.train import plain_example
from gui.scoring import METRICS, run_settings, score_before_after
from gui.widgets import CURVE_COLOURS, label

MAX_NEW_TOKENS = 48  # reply length for BLEU/ROUGE-L, as the CLI's eval


def _bar_chart(title: str) -> pg.PlotWidget:
    chart = pg.PlotWidget()
    chart.setObjectName("evalChart")
    chart.setMinimumHeight(160)
    chart.setTitle(title, size="9pt")
    chart.getAxis("bottom").setTicks([[(0, "base"), (1, "fine-tuned")]])
    chart.setMouseEnabled(x=False, y=False)
    chart.hideButtons()
    return chart


def _number(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


class EvaluatePanel(QWidget):
    """Before/after table and one bar chart per metric for one training run."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.run: dict[str, Any] | None = None
        self.job: Job | None = None
        self.results: dict[str, dict[str, Any]] | None = None
        self.button = QPushButton("Evaluate on the validation split", objectName="evaluateButton")
        self.button.clicked.connect(self.start)
        self.generate = QSpinBox(objectName="evalGenerate", minimum=0, maximum=500, value=16)
        self.generate.setFixedWidth(80)
        self.generate.setToolTip("Validation conversations that get a generated reply for BLEU "
                                 "and ROUGE-L (greedy, up to 48 tokens). 0 scores perplexity only.")
        self.bar = QProgressBar(objectName="evalProgress", visible=False)
        self.table = QTableWidget(0, 4, objectName="evalTable")
        self.table.setHorizontalHeaderLabels(["Metric", "Base model", "Fine-tuned", "Better"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.charts = {key: _bar_chart(f"{name} {'↑' if up else '↓'}")
                       for key, name, up in METRICS}
        self.note = label("", "hint", wrap=True)
        self._layout()
        self.set_run(None)

    def _layout(self) -> None:
        controls = QHBoxLayout()
        controls.addWidget(self.button)
        controls.addWidget(label("Replies for BLEU / ROUGE-L"))
        controls.addWidget(self.generate)
        controls.addWidget(self.bar, 2)
        controls.addStretch(1)  # takes the room while the bar is hidden
        charts = QHBoxLayout()
        for chart in self.charts.values():
            charts.addWidget(chart)
        row = QHBoxLayout()
        row.addWidget(self.table, 2)
        row.addLayout(charts, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.note)
        layout.addLayout(row, 1)

    def set_run(self, run: dict[str, Any] | None) -> None:
        """Evaluate this run next (``None`` disables the panel); clears another run's results."""
        changed = (run or {}).get("id") != (self.run or {}).get("id")
        self.run = run
        ok = self._can_evaluate()
        self.button.setEnabled(ok and self.job is None)
        if self.job is None and (changed or not ok):
            self._clear()
            self.note.setText("" if ok else "Select a finished training run to compare it with "
                                             "its base model.")

    def _can_evaluate(self) -> bool:
        return bool(self.run and self.run["kind"] == "train" and self._adapter(self.run))

    def _clear(self) -> None:
        self.results = None
        self.table.setRowCount(0)
        for chart in self.charts.values():
            chart.clear()

    def _adapter(self, run: dict[str, Any]) -> dict[str, Any] | None:
        found = self.ctx.store.artifacts(run["id"], "adapter")
        return found[-1] if found else None

    def start(self) -> Job | None:
        """Start the before/after evaluation on the heavy lane."""
        run = self.run
        if not run or self.job is not None:
            return None
        try:
            job, n_rows = self._submit(run)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, exc, "start the evaluation")
            return None
        self.job = job
        self.note.setText(f"Scoring the base and the fine-tuned model on {n_rows} validation "
                          "conversations…")
        self.bar.setRange(0, 0)
        self.bar.show()
        self.button.setEnabled(False)
        job.progress.connect(self._on_progress)
        job.succeeded.connect(self.show_results)
        job.failed.connect(lambda exc: show_error(self, exc, "evaluate the run"))
        job.done.connect(self._on_done)
        return job

    def _submit(self, run: dict[str, Any]) -> tuple[Job, int]:
        model = next((m for m in self.ctx.store.base_models() if m["id"] == run["base_model_id"]),
                     None)
        if model is None:
            raise LookupError(f"the base model of {run['name']} is no longer registered; add it "
                              "again on the Models page")
        settings = run_settings(run)
        rows = [plain_example(r) for r in self.ctx.store.all_examples(
            run["dataset_id"], version_id=run.get("dataset_version_id"))]
        _, val = self.ctx.engine.train_validation_rows(
            rows, validation_fraction=settings["validation_fraction"], seed=settings["seed"])
        adapter = self._adapter(run)
        options = {"template": (adapter.get("meta") or {}).get("template_source"),
                   "max_length": settings["max_length"], "generate": self.generate.value(),
                   "max_new_tokens": MAX_NEW_TOKENS}
        score, path = self.ctx.engine.score_model, Path(model["path"])
        job = self.ctx.runner.submit(f"Evaluate {run['name']}", lambda report, cancel:
                                     score_before_after(score, path, Path(adapter["path"]), val,
                                                        report, cancel, **options))
        return job, len(val)

    def _on_progress(self, event: Progress) -> None:
        self.bar.setRange(0, event.total or 0)
        self.bar.setValue(event.step)
        self.bar.setFormat(f"{event.stage} %v / %m")

    def _on_done(self) -> None:
        self.job = None
        self.bar.hide()
        self.button.setEnabled(self._can_evaluate())

    def show_results(self, results: dict[str, dict[str, Any]]) -> None:
        """Fill the table and the bar charts from ``{"before": {...}, "after": {...}}``."""
        self.results = results
        before, after = results["before"], results["after"]
        self.table.setRowCount(len(METRICS))
        for r, (key, name, up) in enumerate(METRICS):
            b, a = before.get(key), after.get(key)
            better = "—" if a is None or b is None else (
                "fine-tuned" if (a > b) == up and a != b else "base" if a != b else "same")
            for c, text in enumerate((name, _number(b), _number(a), better)):
                self.table.setItem(r, c, QTableWidgetItem(text))
            self._draw(key, b, a)
        self.table.resizeColumnsToContents()
        self.note.setText(self._summary(before, after))

    def _draw(self, key: str, before: float | None, after: float | None) -> None:
        chart = self.charts[key]
        chart.clear()
        if before is None or after is None:
            return
        chart.addItem(pg.BarGraphItem(x=[0, 1], height=[before, after], width=0.6,
                                      brushes=[CURVE_COLOURS[1], CURVE_COLOURS[0]]))
        chart.setYRange(0, max(before, after) * 1.1 or 1.0, padding=0)

    @staticmethod
    def _summary(before: dict[str, Any], after: dict[str, Any]) -> str:
        text = f"Perplexity {before['perplexity']:.2f} → {after['perplexity']:.2f}"
        if after.get("bleu") is not None:
            text += (f" · BLEU {before['bleu']:.1f} → {after['bleu']:.1f} "
                     f"(sacrebleu, tokenize={after.get('bleu_tokenize')}) · ROUGE-L "
                     f"{before['rouge_l']:.3f} → {after['rouge_l']:.3f} over "
                     f"{len(after.get('replies') or [])} greedy replies")
        if before.get("perplexity_flagged") or after.get("perplexity_flagged"):
            text += " · ⚠ perplexity is implausibly high: check the chat template and BOS token"
        return text
