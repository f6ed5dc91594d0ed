"""Live view of a training job: progress bar, step/loss/tokens-per-second/ETA, chart, log."""

from __future__ import annotations

import time

from PySide6.QtWidgets import QGridLayout, QPlainTextEdit, QProgressBar, QVBoxLayout, QWidget

from engine.progress import Progress
from gui.widgets import LossChart, card, human_duration, label

# Chart redraws at most this often (pyqtgraph redraw of long curves costs milliseconds).
REDRAW_SECONDS = 0.5
LOG_LINES = 2000


class TrainMonitor(QWidget):
    """Turns ``Progress`` events of ``train``/``eval``/``checkpoint``/``prepare`` into a view."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar(objectName="trainProgress")
        self.bar.setFormat("%v / %m steps")
        self.stats = {key: label("—") for key in ("step", "loss", "eval", "speed", "eta")}
        grid = QGridLayout()
        for column, (key, title) in enumerate((("step", "Step"), ("loss", "Train loss"),
                                               ("eval", "Eval loss"), ("speed", "Tokens/s"),
                                               ("eta", "Time left"))):
            grid.addWidget(label(title, "hint"), 0, column)
            grid.addWidget(self.stats[key], 1, column)
            self.stats[key].setObjectName(f"stat_{key}")
        self.chart = LossChart("loss (nats/token)")
        self.log = QPlainTextEdit(objectName="trainLog", readOnly=True)
        self.log.setMaximumBlockCount(LOG_LINES)
        self.log.setMaximumHeight(140)
        stats = QWidget()
        stats.setLayout(grid)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(card(self.bar, stats))
        layout.addWidget(self.chart, 1)
        layout.addWidget(label("Log", "hint"))
        layout.addWidget(self.log)
        self._pending: dict[str, list[tuple[int, float]]] = {}
        self._last_draw = 0.0

    def reset(self, title: str = "") -> None:
        """Clear everything for a new run."""
        self.chart.clear_series()
        self.chart.set_step_range(None)
        self.chart.enableAutoRange(axis="y")
        self.log.clear()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        for value in self.stats.values():
            value.setText("—")
        self._pending.clear()
        if title:
            self.append_log(title)

    def append_log(self, text: str) -> None:
        """Add a time-stamped line to the log pane."""
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    def on_progress(self, event: Progress) -> None:
        """Update the view from one engine event."""
        if event.message:
            self.append_log(event.message)
        if event.total and event.total != self.bar.maximum():
            self.chart.set_step_range(event.total)
        if event.total:
            self.bar.setRange(0, event.total)
            self.bar.setValue(min(event.step, event.total))
        metrics = event.metrics
        if event.stage == "train" and "loss" in metrics:
            self.stats["step"].setText(f"{event.step:,} / {event.total or '?'}")
            self.stats["loss"].setText(f"{metrics['loss']:.4f}")
            self.stats["speed"].setText(f"{metrics.get('tokens_per_second', 0):,.0f}")
            self.stats["eta"].setText(human_duration(metrics.get("eta_seconds")))
            self._pending.setdefault("train loss", []).append((event.step, metrics["loss"]))
        if "eval_loss" in metrics and metrics["eval_loss"] is not None:
            self.stats["eval"].setText(f"{metrics['eval_loss']:.4f}")
            self._pending.setdefault("eval loss", []).append((event.step, metrics["eval_loss"]))
            self.append_log(f"step {event.step}: eval loss {metrics['eval_loss']:.4f}")
        self._maybe_redraw()

    def flush(self) -> None:
        """Draw every pending point now."""
        for name, points in self._pending.items():
            xs, ys = self.chart.points.get(name, ([], []))
            self.chart.set_series(name, list(zip(xs, ys)) + points)
        if self._pending:
            self.chart.fit_y()
        self._pending.clear()
        self._last_draw = time.monotonic()

    def _maybe_redraw(self) -> None:
        # A hidden chart is drawn when the run ends (flush) or on the next visible event.
        if self.chart.isVisible() and time.monotonic() - self._last_draw >= REDRAW_SECONDS:
            self.flush()
