"""Workbench version history: the versions of a dataset, undo, go to a version, and a diff."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QPushButton,
                               QSplitter, QTableWidget, QTableWidgetItem, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from gui.errors import show_error
from gui.widgets import label
from gui.workbench_ops import first_text

COLUMNS = ("Version", "Operation", "Description", "Examples", "Hash", "Created")
DIFF_LISTED = 200  # examples listed per kind in the diff (the counts are complete)


class HistoryPanel(QWidget):
    """Version table (head marked) with Undo, Go to version and Diff of two selected rows."""

    changed = Signal()  # the head moved

    def __init__(self, page: Any) -> None:
        super().__init__()
        self.page, self.store = page, page.ctx.store
        self.versions: list[dict[str, Any]] = []
        self.head: int | None = None
        self.table = QTableWidget(0, len(COLUMNS), objectName="versionTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.undo_button = QPushButton("Undo (go to parent)", objectName="undoButton")
        self.undo_button.clicked.connect(self.undo)
        self.goto_button = QPushButton("Go to version", objectName="gotoButton")
        self.goto_button.clicked.connect(self.go_to_selected)
        self.diff_button = QPushButton("Diff selected", objectName="diffButton")
        self.diff_button.clicked.connect(self.diff_selected)
        buttons = QHBoxLayout()
        for button in (self.undo_button, self.goto_button, self.diff_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.diff_summary = label("Select two versions and press Diff (one: against its parent).",
                                  "hint", wrap=True)
        self.diff_tree = QTreeWidget(objectName="diffTree")
        self.diff_tree.setHeaderLabels(["Change", "User turn"])
        self.diff_tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.diff_tree.setColumnWidth(0, 160)
        lower = QWidget()
        below = QVBoxLayout(lower)
        below.setContentsMargins(0, 0, 0, 0)
        below.addWidget(self.diff_summary)
        below.addWidget(self.diff_tree, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(lower)
        splitter.setSizes([300, 260])
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(splitter, 1)

    def refresh(self) -> None:
        """Reload the versions of the page's dataset."""
        dataset_id = self.page.dataset_id()
        self.versions = self.store.versions(dataset_id) if dataset_id is not None else []
        self.head = self.store.head_version_id(dataset_id) if dataset_id is not None else None
        self.table.setRowCount(len(self.versions))
        bold = QFont()
        bold.setBold(True)
        for r, v in enumerate(self.versions):
            is_head = v["id"] == self.head
            cells = (f"{'● ' if is_head else ''}{v['number']}", v["operation"], v["description"],
                     f"{v['example_count']:,}", v["content_hash"][:10],
                     str(v["created"])[:19].replace("T", " "))
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, v["id"])
                if is_head:
                    item.setFont(bold)
                    item.setToolTip("The head: what training and the other pages use.")
                self.table.setItem(r, c, item)
        for column in (0, 1, 3, 4, 5):
            self.table.resizeColumnToContents(column)
        self._update_buttons()

    def head_version(self) -> dict[str, Any] | None:
        """The head version record, or ``None``."""
        return next((v for v in self.versions if v["id"] == self.head), None)

    def selected(self) -> list[dict[str, Any]]:
        """The selected versions, oldest first."""
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.versions[r] for r in rows]

    def select_numbers(self, *numbers: int) -> None:
        """Select the rows of these version numbers (for tests and scripts)."""
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for r, v in enumerate(self.versions):
            if v["number"] in numbers:
                self.table.selectRow(r)
        self.table.setSelectionMode(mode)

    def _update_buttons(self) -> None:
        head = self.head_version()
        selected = self.selected()
        self.undo_button.setEnabled(bool(head and head["parent_id"]))
        self.goto_button.setEnabled(len(selected) == 1 and selected[0]["id"] != self.head)
        self.diff_button.setEnabled(len(selected) == 2 or (
            len(selected) == 1 and selected[0]["parent_id"] is not None))

    def undo(self) -> None:
        """Move the head back to its parent version."""
        self._move(lambda ds: self.store.undo(ds), "undo")

    def go_to_selected(self) -> None:
        """Make the selected version the head."""
        selected = self.selected()
        if len(selected) == 1:
            number = selected[0]["number"]
            self._move(lambda ds: self.store.checkout(ds, number), f"go to version {number}")

    def _move(self, action: Any, what: str) -> None:
        try:
            version = action(self.page.dataset_id())
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, exc, what)
            return
        self.page.ctx.hub.status_message.emit(f"Now at version {version['number']}")
        self.changed.emit()

    def diff_selected(self) -> dict[str, Any] | None:
        """Show what changed between the two selected versions (or one and its parent)."""
        selected = self.selected()
        if len(selected) == 1 and selected[0]["parent_id"] is not None:
            old_id, new = selected[0]["parent_id"], selected[0]
        elif len(selected) == 2:
            old_id, new = selected[0]["id"], selected[1]
        else:
            return None
        diff = self.store.diff_versions(old_id, new["id"], limit=DIFF_LISTED)
        old = next(v for v in self.versions if v["id"] == old_id)
        counts = diff["counts"]
        self.diff_summary.setText(
            f"Version {old['number']} → {new['number']}: {counts['added']:,} added, "
            f"{counts['removed']:,} removed, {counts['changed']:,} changed, "
            f"{counts['resplit']:,} moved to another split.")
        self._fill_tree(diff, old_id, new["id"])
        return diff

    def _fill_tree(self, diff: dict[str, Any], old_id: int, new_id: int) -> None:
        self.diff_tree.clear()
        groups = (("Added", [(i, new_id) for i in diff["added"]]),
                  ("Removed", [(i, old_id) for i in diff["removed"]]),
                  ("Changed", [(n, new_id) for _, n in diff["changed"]]))
        for title, members in groups:
            parent = QTreeWidgetItem([f"{title} ({len(members):,}"
                                      f"{'+' if len(members) >= DIFF_LISTED else ''})", ""])
            self.diff_tree.addTopLevelItem(parent)
            for example_id, version_id in members:
                example = self.store.example(example_id, version_id)
                where = example["position"] + 1 if example["position"] is not None else "?"
                QTreeWidgetItem(parent, [f"#{where}", first_text(example)])
            parent.setExpanded(bool(members))
