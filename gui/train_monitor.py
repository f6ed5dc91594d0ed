"""Live view of a training job: progress bar, step/loss/tokens-per-second/ETA, chart, log."""

from __future__ import annotations

import time

from PySide6.QtWidgets import QGridLayout, QPlainTextEdit, QProgressBar, QVBoxLayout, QWidget

from engine.progress import Progress
from gui.throttle import Coalescer
from gui.widgets import LossChart, card, human_duration, label

# The numbers and the bar follow the latest event at most this often (see gui.throttle).
STATS_MS = 250
# The chart redraws at most this often: pyqtgraph paints in Python, item by item, so a redraw
# costs the GUI thread many GIL hand-overs while a worker computes.
REDRAW_SECONDS = 1.0
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
        self._last_train: Progress | None = None  # the newest ``train`` event with a loss
        self._last_step: Progress | None = None  # the newest event with a step total
        self._stats = Coalescer(STATS_MS, self._show_stats, self)

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
        self._stats.discard()
        self._last_train = self._last_step = None
        if title:
            self.append_log(title)

    def append_log(self, text: str) -> None:
        """Add a time-stamped line to the log pane."""
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    def on_progress(self, event: Progress) -> None:
        """Take one engine event; the view catches up a few times per second."""
        if event.message:
            self.append_log(event.message)
        metrics = event.metrics
        if event.stage == "train" and "loss" in metrics:
            self._pending.setdefault("train loss", []).append((event.step, metrics["loss"]))
            self._last_train = event
        if event.total:
            self._last_step = event
        self._stats.push()
        if metrics.get("eval_loss") is not None:
            self.stats["eval"].setText(f"{metrics['eval_loss']:.4f}")
            self._pending.setdefault("eval loss", []).append((event.step, metrics["eval_loss"]))
            self.append_log(f"step {event.step}: eval loss {metrics['eval_loss']:.4f}")

    def _show_stats(self) -> None:
        step, train = self._last_step, self._last_train
        if step is not None:
            if step.total != self.bar.maximum():
                self.chart.set_step_range(step.total)
            self.bar.setRange(0, step.total)
            self.bar.setValue(min(step.step, step.total))
        if train is not None:
            event, metrics = train, train.metrics
            self.stats["step"].setText(f"{event.step:,} / {event.total or '?'}")
            self.stats["loss"].setText(f"{metrics['loss']:.4f}")
            self.stats["speed"].setText(f"{metrics.get('tokens_per_second', 0):,.0f}")
            self.stats["eta"].setText(human_duration(metrics.get("eta_seconds")))
        # A hidden chart is drawn when the run ends (flush) or on the next visible update.
        if self.chart.isVisible() and time.monotonic() - self._last_draw >= REDRAW_SECONDS:
            self._draw_chart()

    def flush(self) -> None:
        """Show the latest numbers and draw every pending point now."""
        self._stats.flush()
        self._draw_chart(live=False)

    def _draw_chart(self, live: bool = True) -> None:
        for name, points in self._pending.items():
            xs, ys = self.chart.points.get(name, ([], []))
            self.chart.set_series(name, list(zip(xs, ys)) + points)
        if self._pending or not live:
            self.chart.fit_y(live=live)
        self._pending.clear()
        self._last_draw = time.monotonic()
