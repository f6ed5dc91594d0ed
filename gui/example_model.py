"""A Qt table model that pages over a dataset's examples in SQLite.

The view asks only for the rows it shows; the model loads them a page at a time and keeps a
small cache of recent pages, so a 100,000-example dataset scrolls smoothly without ever
materialising all rows (never one widget per row). In search mode the (bounded) list of FTS5
matches is held instead.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from gui.store import SEARCH_LIMIT, Store

PAGE_ROWS = 256
CACHED_PAGES = 32
COLUMNS = ("#", "User", "Assistant", "Turns", "Tags", "Source")
PREVIEW_CHARS = 160

Index = QModelIndex | QPersistentModelIndex


def first_content(example: dict[str, Any], role: str) -> str:
    """The first message of ``role`` in ``example``, on one line and cut to a preview."""
    for message in example.get("messages", []):
        if message.get("role") == role:
            text = " ".join(str(message.get("content", "")).split())
            return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"
    return ""


def cell_text(example: dict[str, Any], column: int) -> str:
    """Display text of ``example`` in ``column`` (see :data:`COLUMNS`)."""
    if column == 0:
        return str(example.get("position", 0) + 1)
    if column == 1:
        return first_content(example, "user")
    if column == 2:
        return first_content(example, "assistant")
    if column == 3:
        return str(sum(1 for m in example.get("messages", []) if m.get("role") == "user"))
    if column == 4:
        return ", ".join(example.get("tags") or [])
    source = example.get("source_file") or ""
    line = example.get("source_line")
    return f"{source.rsplit('/', 1)[-1]}:{line}" if source and line else source


class ExampleTableModel(QAbstractTableModel):
    """Rows of one dataset (or of a search in it), loaded page by page on demand."""

    def __init__(self, store: Store, parent: Any = None) -> None:
        super().__init__(parent)
        self.store = store
        self.dataset_id: int | None = None
        self.query = ""
        self._count = 0
        self._pages: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()
        self._matches: list[dict[str, Any]] | None = None
        self.page_loads = 0  # how many SQLite page queries ran (tests check laziness)

    def set_dataset(self, dataset_id: int | None, query: str = "") -> None:
        """Show ``dataset_id`` (``None`` for nothing), filtered by FTS ``query`` if given."""
        self.beginResetModel()
        self.dataset_id, self.query = dataset_id, query.strip()
        self._pages.clear()
        self._matches = None
        if dataset_id is None:
            self._count = 0
        elif self.query:
            self._matches = self.store.search(dataset_id, self.query, SEARCH_LIMIT)
            self._count = len(self._matches)
        else:
            self._count = self.store.count_examples(dataset_id)
        self.endResetModel()

    def refresh(self) -> None:
        """Reload after an edit (keeps the dataset and query)."""
        self.set_dataset(self.dataset_id, self.query)

    @property
    def truncated(self) -> bool:
        """Whether a search hit :data:`SEARCH_LIMIT` (more matches exist than shown)."""
        return self._matches is not None and len(self._matches) >= SEARCH_LIMIT

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt API
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < self._count:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return cell_text(self.example_at(index.row()), index.column())
        if role == Qt.ItemDataRole.ToolTipRole and index.column() in (1, 2):
            role_name = "user" if index.column() == 1 else "assistant"
            for message in self.example_at(index.row()).get("messages", []):
                if message.get("role") == role_name:
                    return str(message.get("content", ""))[:2000]
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() in (0, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def example_at(self, row: int) -> dict[str, Any]:
        """The example dict shown in ``row`` (loads its page if needed)."""
        if self._matches is not None:
            return self._matches[row]
        page = row // PAGE_ROWS
        rows = self._pages.get(page)
        if rows is None:
            rows = self._load_page(page)
        else:
            self._pages.move_to_end(page)
        offset = row - page * PAGE_ROWS
        # A page can come back short if rows were deleted since the count; show a blank row.
        return rows[offset] if offset < len(rows) else {}

    def _load_page(self, page: int) -> list[dict[str, Any]]:
        assert self.dataset_id is not None
        rows = self.store.examples(self.dataset_id, page * PAGE_ROWS, PAGE_ROWS)
        self.page_loads += 1
        self._pages[page] = rows
        while len(self._pages) > CACHED_PAGES:
            self._pages.popitem(last=False)
        return rows
