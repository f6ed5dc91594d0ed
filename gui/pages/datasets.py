"""Datasets page: import (dialog or drag-and-drop), a paged table, FTS search, edit, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView,
                               QLineEdit, QListWidget, QListWidgetItem, QMessageBox, QPushButton,
                               QTableView, QVBoxLayout, QWidget)

import storage
from gui.context import AppContext
from gui.dialogs.conversation import ConversationDialog
from gui.dialogs.import_report import ImportReportDialog
from gui.errors import show_error
from gui.example_model import ExampleTableModel
from gui.widgets import column, fill_with_splitter, label

IMPORT_FILTER = "Datasets (*.jsonl *.json *.csv *.tsv *.yml *.yaml);;All files (*)"


def unique_name(wanted: str, taken: set[str]) -> str:
    """``wanted``, or ``wanted (2)``, ``wanted (3)``... whichever is not in ``taken``."""
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted} ({n})"
    return name


def import_into_new_dataset(root: Path, path: Path, name: str, import_file: Any,
                            report: Any, cancel: Any) -> tuple[Any, str | None]:
    """Job body: read ``path`` and store it as dataset ``name`` over a worker-own connection.

    The worker opens (and closes) its own SQLite connection: a connection may only be used on
    the thread that opened it, and writing 100,000 rows on the GUI thread would freeze it.
    """
    result = import_file(path, policy="skip", report=report, cancel=cancel)
    if not result.examples:
        return result, None
    db = storage.open_database(root)
    try:
        storage.create_dataset(db, name, result.examples,
                               on_progress=lambda done, total: cancel.check())
    finally:
        db.close()
    return result, name


class DatasetsPage(QWidget):
    """List of datasets on the left; the selected one's examples on the right."""

    dataset_imported = Signal(str)  # name, after the import report is shown

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.setAcceptDrops(True)
        self.model = ExampleTableModel(ctx.store, self)
        self.report_dialog: ImportReportDialog | None = None
        self._build()
        self._search_timer = QTimer(self, singleShot=True, interval=250)
        self._search_timer.timeout.connect(self._on_search)
        self.search.textChanged.connect(lambda _: self._search_timer.start())
        ctx.hub.datasets_changed.connect(self.refresh)
        self.refresh()

    # layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.list = QListWidget(objectName="datasetList")
        self.list.currentItemChanged.connect(lambda *_: self._on_dataset_selected())
        self.import_button = QPushButton("Import…", objectName="importButton")
        self.import_button.setProperty("primary", True)
        self.import_button.clicked.connect(self.import_dialog)
        self.delete_dataset_button = QPushButton("Delete dataset")
        self.delete_dataset_button.clicked.connect(self._on_delete_dataset)
        drop_hint = label("Drop .jsonl, .json, .csv or .yml files here to import.", "hint", wrap=True)
        left = column("Datasets", self.list, drop_hint, self.import_button,
                      self.delete_dataset_button)
        fill_with_splitter(self, left, self._build_table_side(), sizes=(240, 900))

    def _build_table_side(self) -> QWidget:
        self.search = QLineEdit(objectName="searchBox", placeholderText="Search messages (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        QShortcut(QKeySequence.StandardKey.Find, self, activated=self.search.setFocus)
        self.table = QTableView(objectName="exampleTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        # Fixed row heights let the view compute scroll extents without asking every row.
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(26)
        header = self.table.horizontalHeader()
        for index, width in enumerate((60, 0, 0, 50, 110, 120)):
            if width:
                header.resizeSection(index, width)
            else:  # the two message columns share the spare width
                header.setSectionResizeMode(index, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(lambda _: self.edit_selected())
        self.status = label("", "hint")
        self.status.setObjectName("datasetStatus")
        buttons = QHBoxLayout()
        for text, slot in (("New example", self.add_example), ("Edit…", self.edit_selected),
                           ("Delete example", self.delete_selected),
                           ("Export JSONL…", self.export_dialog)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        buttons.addStretch(1)
        side = QVBoxLayout()
        side.addWidget(self.search)
        side.addWidget(self.table, 1)
        side.addWidget(self.status)
        side.addLayout(buttons)
        widget = QWidget()
        widget.setLayout(side)
        return widget

    # listing --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload the dataset list, keeping the selection when it still exists."""
        current = self.current_dataset_id()
        self.list.blockSignals(True)
        self.list.clear()
        for row in self.ctx.store.datasets():
            item = QListWidgetItem(f"{row['name']}  ·  {row['example_count']:,}")
            item.setData(Qt.ItemDataRole.UserRole, row["id"])
            self.list.addItem(item)
            if row["id"] == current:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        if self.list.currentItem() is None and self.list.count():
            self.list.setCurrentRow(0)
        self._on_dataset_selected()

    def current_dataset_id(self) -> int | None:
        """Id of the selected dataset, or ``None``."""
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def select_dataset(self, name: str) -> None:
        """Select the dataset called ``name`` in the list."""
        for row in range(self.list.count()):
            if self.list.item(row).text().split("  ·  ")[0] == name:
                self.list.setCurrentRow(row)

    def _on_dataset_selected(self) -> None:
        self.model.set_dataset(self.current_dataset_id(), self.search.text())
        self._update_status()

    def _on_search(self) -> None:
        try:
            self.model.set_dataset(self.current_dataset_id(), self.search.text())
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, exc, "search the dataset")
        self._update_status()

    def _update_status(self) -> None:
        rows = self.model.rowCount()
        if self.model.dataset_id is None:
            text = "No dataset yet — import a file to start."
        elif self.model.query:
            more = "+ (refine the search to see all)" if self.model.truncated else ""
            text = f"{rows:,}{more} matching examples"
        else:
            text = f"{rows:,} examples"
        self.status.setText(text)

    # import ---------------------------------------------------------------------------------
    def import_dialog(self) -> None:
        """Ask for files and import each into a new dataset."""
        paths, _ = QFileDialog.getOpenFileNames(self, "Import dataset", str(Path.home()),
                                                IMPORT_FILTER)
        for path in paths:
            self.import_path(Path(path))

    def import_path(self, path: Path) -> None:
        """Import ``path`` in the background into a new dataset named after the file."""
        taken = {row["name"] for row in self.ctx.store.datasets()}
        name = unique_name(path.stem, taken)
        root, import_file = self.ctx.store.root, self.ctx.engine.import_file
        job = self.ctx.runner.submit(
            f"Import {path.name}",
            lambda report, cancel: import_into_new_dataset(root, path, name, import_file,
                                                           report, cancel), lane="light")
        job.succeeded.connect(lambda outcome: self._on_imported(path, outcome))
        job.failed.connect(lambda exc: show_error(self, exc, f"import {path.name}"))

    def _on_imported(self, path: Path, outcome: tuple[Any, str | None]) -> None:
        result, name = outcome
        self.ctx.hub.datasets_changed.emit()
        if name:
            self.select_dataset(name)
        self.report_dialog = ImportReportDialog(path.name, result, name, self)
        self.report_dialog.open()
        self.dataset_imported.emit(name or "")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.import_path(Path(url.toLocalFile()))
        event.acceptProposedAction()

    # editing --------------------------------------------------------------------------------
    def selected_example(self) -> dict[str, Any] | None:
        """The example in the table's current row, or ``None``."""
        index = self.table.currentIndex()
        return self.model.example_at(index.row()) if index.isValid() else None

    def add_example(self) -> None:
        """Open the editor on a new conversation and append it to the dataset."""
        dataset_id = self.current_dataset_id()
        if dataset_id is None:
            return
        dialog = ConversationDialog(None, self, "New example")
        dialog.accepted.connect(lambda: self._save(lambda: self.ctx.store.add_example(
            dataset_id, dialog.example()), "add the example"))
        dialog.open()

    def edit_selected(self) -> ConversationDialog | None:
        """Open the editor on the selected example."""
        example = self.selected_example()
        if not example:
            return None
        dialog = ConversationDialog(example, self)
        dialog.accepted.connect(lambda: self._save(lambda: self.ctx.store.update_example(
            example["id"], dialog.example()), "save the example"))
        dialog.open()
        return dialog

    def delete_selected(self) -> None:
        """Delete the selected example."""
        example = self.selected_example()
        if example:
            self._save(lambda: self.ctx.store.delete_example(example["id"]), "delete the example")

    def _save(self, write: Any, action: str) -> None:
        try:
            write()
        except Exception as exc:  # noqa: BLE001 - shown to the user; the edit stays in the dialog
            show_error(self, exc, action)
            return
        scroll = self.table.verticalScrollBar().value()
        row = self.table.currentIndex().row()
        self.ctx.hub.datasets_changed.emit()  # refreshes the list counts and this table
        self.table.verticalScrollBar().setValue(scroll)
        if 0 <= row < self.model.rowCount():
            self.table.selectRow(row)

    def _on_delete_dataset(self) -> None:
        dataset_id = self.current_dataset_id()
        if dataset_id is None:
            return
        name = self.list.currentItem().text().split("  ·  ")[0]
        answer = QMessageBox.question(self, "Delete dataset",
                                      f"Delete dataset “{name}” and all its examples?")
        if answer == QMessageBox.StandardButton.Yes:
            self._save(lambda: self.ctx.store.delete_dataset(dataset_id), "delete the dataset")

    # export ---------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        """Ask for a path and write the selected dataset as JSON Lines."""
        dataset_id = self.current_dataset_id()
        if dataset_id is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export JSONL", str(Path.home() / "data.jsonl"),
                                              "JSON Lines (*.jsonl)")
        if path:
            self.export_to(dataset_id, Path(path))

    def export_to(self, dataset_id: int, path: Path) -> None:
        """Write dataset ``dataset_id`` to ``path`` on the light lane."""
        rows = self.ctx.store.all_examples(dataset_id)
        export = self.ctx.engine.export_jsonl
        job = self.ctx.runner.submit(f"Export {path.name}",
                                     lambda report, cancel: export(rows, path), lane="light")
        job.succeeded.connect(lambda n: self.ctx.hub.status_message.emit(
            f"Wrote {n:,} examples to {path}"))
        job.failed.connect(lambda exc: show_error(self, exc, f"export to {path.name}"))
