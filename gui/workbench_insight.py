"""Workbench tags (bulk tagging from a search, label counts) and statistics (numbers + charts)."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (QFormLayout, QGridLayout, QHBoxLayout, QHeaderView, QLineEdit,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from gui.errors import show_error
from gui.jobs import Job
from gui.widgets import CURVE_COLOURS, label
from gui.workbench_ops import ModelPicker, TupleConfigForm


class TagsPanel(QWidget):
    """Tag every example matching a search in one new version; counts per tag."""

    def __init__(self, page: Any) -> None:
        super().__init__()
        self.page, self.ctx = page, page.ctx
        self.query = QLineEdit(objectName="tagQuery", placeholderText="Search messages")
        self.tag = QLineEdit(objectName="tagName", placeholderText="Tag, e.g. billing")
        self.matches = label("", "hint")
        self.add_button = QPushButton("Add tag to matching", objectName="tagAdd")
        self.add_button.clicked.connect(lambda: self.tag_matching(remove=False))
        self.remove_button = QPushButton("Remove tag from matching")
        self.remove_button.clicked.connect(lambda: self.tag_matching(remove=True))
        self._count_timer = QTimer(self, singleShot=True, interval=250)
        self._count_timer.timeout.connect(self._count_matches)
        self.query.textChanged.connect(lambda _: self._count_timer.start())
        form = QFormLayout()
        form.addRow("Examples matching", self.query)
        form.addRow("", self.matches)
        form.addRow("Tag", self.tag)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        left = QVBoxLayout()
        left.addLayout(form)
        left.addLayout(buttons)
        left.addStretch(1)
        self.counts = QTableWidget(0, 2, objectName="tagCounts")
        self.counts.setHorizontalHeaderLabels(["Tag", "Examples"])
        self.counts.verticalHeader().hide()
        self.counts.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.counts.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addWidget(self.counts, 1)

    def refresh(self) -> None:
        """Reload the label counts of the head version."""
        dataset_id = self.page.dataset_id()
        counts = self.ctx.store.tag_counts(dataset_id) if dataset_id is not None else {}
        self.counts.setRowCount(len(counts))
        for r, (tag, n) in enumerate(counts.items()):
            self.counts.setItem(r, 0, QTableWidgetItem(tag))
            self.counts.setItem(r, 1, QTableWidgetItem(f"{n:,}"))
        self._count_matches()

    def _matching_ids(self) -> list[int]:
        dataset_id = self.page.dataset_id()
        if dataset_id is None or not self.query.text().strip():
            return []
        return self.ctx.store.search_ids(dataset_id, self.query.text())

    def _count_matches(self) -> None:
        try:
            n = len(self._matching_ids())
        except Exception:  # noqa: BLE001 - a half-typed query; the count just stays empty
            n = 0
        self.matches.setText(f"{n:,} examples match" if self.query.text().strip() else "")

    def tag_matching(self, remove: bool = False) -> dict[str, Any] | None:
        """Add (or remove) the tag on every matching example; returns the new version."""
        tag, ids = self.tag.text().strip(), self._matching_ids()
        if not tag or not ids:
            self.matches.setText("Type a search that matches examples, and a tag.")
            return None
        try:
            version = self.ctx.store.tag_examples(self.page.dataset_id(), ids,
                                                  **({"remove": [tag]} if remove else {"add": [tag]}))
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, exc, f"tag the examples with {tag!r}")
            return None
        self.page.version_made(version)
        return version


class BarChart(pg.PlotWidget):
    """Labelled vertical bars (one colour), for counts per bin or per category."""

    def __init__(self, title: str, colour: str, *, horizontal: bool = False) -> None:
        super().__init__()
        self.setMinimumHeight(150)
        self.setTitle(title)
        self.colour, self.horizontal = colour, horizontal
        self.setMouseEnabled(x=False, y=False)
        self.labels: list[str] = []
        self.values: list[float] = []

    def set_bars(self, labels: list[str], values: list[float]) -> None:
        """Replace the bars; ``labels[i]`` is written under bar ``i``."""
        self.clear()
        self.labels, self.values = list(labels), list(values)
        places = list(range(len(values)))
        ticks = [list(enumerate(labels))]
        if values and self.horizontal:  # category names read left of the bars, never overlap
            places = places[::-1]       # the first label at the top
            self.addItem(pg.BarGraphItem(x0=0, y=places, width=values, height=0.7,
                                         brush=self.colour))
            ticks = [list(zip(places, labels))]
        elif values:
            self.addItem(pg.BarGraphItem(x=places, height=values, width=0.8, brush=self.colour))
        self.getAxis("left" if self.horizontal else "bottom").setTicks(ticks)
        self.autoRange()


class StatsPanel(QWidget):
    """Counts, role balance, tags, synthetic share and token lengths of the head version."""

    def __init__(self, page: Any) -> None:
        super().__init__()
        self.page, self.ctx = page, page.ctx
        self.job: Job | None = None
        self.stats: Any = None
        self.form = TupleConfigForm(self.ctx.engine.data_config_class("stats"))
        self.model = ModelPicker(self.ctx.store, "(none: no token counts)")
        self.compute_button = QPushButton("Compute", objectName="statsCompute")
        self.compute_button.setProperty("primary", True)
        self.compute_button.clicked.connect(self.compute)
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.cancel_button.clicked.connect(lambda: self.job and self.job.cancel())
        self.numbers = label("Press Compute.", wrap=True)
        self.numbers.setObjectName("statsNumbers")
        left = QVBoxLayout()
        picker = QFormLayout()
        picker.addRow("Tokenizer of", self.model)
        left.addWidget(self.form)
        left.addLayout(picker)
        row = QHBoxLayout()
        row.addWidget(self.compute_button)
        row.addWidget(self.cancel_button)
        left.addLayout(row)
        left.addWidget(self.numbers)
        left.addStretch(1)
        settings = QWidget()
        settings.setLayout(left)
        settings.setMaximumWidth(400)
        self.lengths = BarChart("Tokens per example", CURVE_COLOURS[0])
        self.tags = BarChart("Examples per tag (top 12)", CURVE_COLOURS[1], horizontal=True)
        self.roles = BarChart("Turns per role", CURVE_COLOURS[2])
        charts = QGridLayout()
        charts.addWidget(self.lengths, 0, 0, 1, 2)
        charts.addWidget(self.tags, 1, 0)
        charts.addWidget(self.roles, 1, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(settings)
        layout.addLayout(charts, 1)

    def compute(self) -> Job | None:
        """Compute the statistics on the light lane (loading the tokenizer there)."""
        dataset_id, config = self.page.dataset_id(), self.form.build()
        if dataset_id is None or config is None:
            return None
        (_, read), path = self.ctx.store.version_reader(dataset_id), self.model.model_path()
        stats, tokenizers = self.ctx.engine.dataset_stats, self.page.tokenizers
        def run(report: Any, cancel: Any) -> Any:
            tools = tokenizers.get(path)
            return stats(read(), tokenizer=tools and tools.tokenizer, template=tools and tools.template,
                         special=tools and tools.special, config=config, report=report,
                         cancel=cancel)
        self.job = self.ctx.runner.submit("Dataset statistics", run, lane="light")
        self.compute_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.numbers.setText("Computing…")
        self.job.progress.connect(lambda e: self.numbers.setText(f"{e.message or e.stage}"))
        self.job.succeeded.connect(self.show_stats)
        self.job.failed.connect(lambda exc: show_error(self, exc, "compute the statistics"))
        self.job.cancelled.connect(lambda: self.numbers.setText("Cancelled."))
        self.job.done.connect(self._on_done)
        return self.job

    def _on_done(self) -> None:
        self.job = None
        self.compute_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def show_stats(self, stats: Any) -> None:
        """Fill the numbers and the charts from a ``DatasetStats``."""
        self.stats = stats
        roles = ", ".join(f"{r} {n:,}" for r, n in stats.turns_by_role.items())
        lines = [f"Examples: {stats.examples:,}", f"Turns: {stats.turns:,} ({roles})",
                 f"Tagged: {stats.examples - stats.untagged:,}; untagged {stats.untagged:,}",
                 f"Synthetic: {stats.synthetic:,} ({stats.synthetic_share:.1%})",
                 f"Characters per turn: median {stats.chars_per_turn.median:g}, "
                 f"max {stats.chars_per_turn.max:,}"]
        if stats.tokens is not None:
            t = stats.tokens
            lines += [f"Tokens per example: median {t.lengths.median:g}, p95 {t.lengths.p95:,}, "
                      f"max {t.lengths.max:,}",
                      f"Longer than {t.max_length:,} tokens: {t.too_long:,}; "
                      f"cannot be encoded: {t.invalid:,}"]
            self.lengths.set_bars([f"{lo}-{hi - 1}" for lo, hi, _ in t.histogram],
                                  [n for _, _, n in t.histogram])
            self.lengths.setTitle("Tokens per example")
        else:
            self.lengths.set_bars([], [])
            self.lengths.setTitle("Tokens per example: choose a tokenizer and compute")
        self.numbers.setText("\n".join(lines))
        tags = sorted(stats.tags.items(), key=lambda kv: -kv[1])[:12]
        self.tags.set_bars([t for t, _ in tags], [n for _, n in tags])
        self.roles.set_bars(list(stats.turns_by_role), list(stats.turns_by_role.values()))

