"""Workbench page: versions, cleaning, augmentation, splits, tags, statistics and template preview
of one dataset.

Every change goes through the same door, :meth:`WorkbenchPage.apply_change`: a reviewed
``VersionChange`` becomes a new immutable version on the GUI thread (the only SQLite user),
after checking that the head is still the version the preview was made from.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QTabWidget, QVBoxLayout, QWidget

from engine.errors import EngineError
from gui.context import AppContext
from gui.widgets import label
from gui.workbench_augment import AugmentPanel
from gui.workbench_clean import DedupePanel, FilterPanel, PiiPanel, SplitPanel
from gui.workbench_history import HistoryPanel
from gui.workbench_insight import StatsPanel, TagsPanel
from gui.workbench_ops import ModelPicker, OperationPanel, TokenizerCache
from gui.workbench_template import TemplatePanel


class StalePreview(EngineError):
    """The dataset's head moved after the preview was made."""


class WorkbenchPage(QWidget):
    """A dataset chooser, the head's summary and one tab per workbench tool."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.tokenizers = TokenizerCache(ctx.engine.load_text_tools)
        self.datasets = QComboBox(objectName="workbenchDataset")
        self.datasets.setMinimumWidth(260)
        self.datasets.currentIndexChanged.connect(lambda _: self._refresh_panels())
        self.head_label = label("", "hint")
        self.head_label.setObjectName("headLabel")
        top = QHBoxLayout()
        top.addWidget(label("Workbench", "title"))
        top.addSpacing(16)
        top.addWidget(self.datasets)
        top.addWidget(self.head_label, 1)
        self.history = HistoryPanel(self)
        self.history.changed.connect(ctx.hub.datasets_changed.emit)
        self.dedupe, self.filters = DedupePanel(self), FilterPanel(self)
        self.pii, self.augment, self.split = PiiPanel(self), AugmentPanel(self), SplitPanel(self)
        self.tags, self.stats, self.template = TagsPanel(self), StatsPanel(self), TemplatePanel(self)
        self.tabs = QTabWidget(objectName="workbenchTabs")
        for title, panel in (("History", self.history), ("Duplicates", self.dedupe),
                             ("Filters", self.filters), ("Personal data", self.pii),
                             ("Augment", self.augment), ("Split", self.split),
                             ("Tags", self.tags), ("Statistics", self.stats),
                             ("Template", self.template)):
            self.tabs.addTab(panel, title)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        ctx.hub.datasets_changed.connect(self.refresh)
        ctx.hub.models_changed.connect(self._refresh_models)
        self.refresh()

    # dataset choice -------------------------------------------------------------------------
    def dataset_id(self) -> int | None:
        """The chosen dataset's id, or ``None`` when there is none."""
        return self.datasets.currentData()

    def select_dataset(self, dataset_id: int) -> None:
        """Choose the dataset with ``dataset_id``."""
        index = self.datasets.findData(dataset_id)
        if index >= 0:
            self.datasets.setCurrentIndex(index)

    def refresh(self) -> None:
        """Reload the dataset list (keeping the choice) and every panel."""
        current = self.dataset_id()
        self.datasets.blockSignals(True)
        self.datasets.clear()
        for row in self.ctx.store.datasets():
            self.datasets.addItem(row["name"], row["id"])
        self.datasets.setCurrentIndex(max(self.datasets.findData(current), 0))
        self.datasets.blockSignals(False)
        self._refresh_panels()

    def _refresh_panels(self) -> None:
        self.history.refresh()
        self.tags.refresh()
        self.template.refresh()
        head = self.history.head_version()
        self.head_label.setText(
            "No dataset yet: import one on the Datasets page." if head is None else
            f"Head: version {head['number']} · {head['example_count']:,} "
            f"example{'' if head['example_count'] == 1 else 's'} · "
            f"{head['operation']} · {head['content_hash'][:10]}")

    def _refresh_models(self) -> None:
        for picker in self.findChildren(ModelPicker):
            picker.refresh()

    # changes --------------------------------------------------------------------------------
    def apply_change(self, change: Any, preview_head: int | None) -> dict[str, Any] | None:
        """Store a reviewed ``VersionChange`` as the new head; ``None`` when it changes nothing.

        Raises:
            StalePreview: the head is no longer ``preview_head`` (run the preview again).
        """
        dataset_id = self.dataset_id()
        if dataset_id is None:
            return None
        if preview_head is not None and self.ctx.store.head_version_id(dataset_id) != preview_head:
            raise StalePreview("the dataset changed after this preview was made; press Preview "
                               "again to review the current version")
        if change.is_empty:
            self.ctx.hub.status_message.emit("Nothing to change: no new version made.")
            return None
        version = self.ctx.store.create_version(dataset_id, change.as_kwargs())
        self.version_made(version)
        return version

    def version_made(self, version: dict[str, Any]) -> None:
        """Tell every page about a new version of the dataset."""
        self.ctx.hub.datasets_changed.emit()
        self.ctx.hub.status_message.emit(
            f"Version {version['number']}: {version['description']}")

    def operation_panels(self) -> list[OperationPanel]:
        """The preview-then-apply panels."""
        return [self.dedupe, self.filters, self.pii, self.augment, self.split]

    def shutdown(self) -> None:
        """Cancel running previews (the window is closing)."""
        for panel in self.operation_panels():
            panel.cancel()

