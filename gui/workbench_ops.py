"""The shape every workbench operation shares: settings -> Preview (a job) -> review -> Apply.

An :class:`OperationPanel` shows a form generated from the operation's config dataclass, runs
the engine's preview on the light lane over the head version's rows (fetched on the GUI thread,
handed to the job as plain dicts), lists what would change in a review table whose check boxes
let the user overrule single proposals, and on Apply builds a ``VersionChange`` that the page
stores as a new version. Subclasses say only what differs: the job, the review rows and the
change.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QHeaderView, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from engine.progress import Progress
from gui.config_form import ConfigForm
from gui.errors import show_error
from gui.example_model import first_content
from gui.jobs import Job
from gui.widgets import label

MAX_REVIEW_ROWS = 5000  # rows listed for review; proposals past it are applied as proposed


@dataclass(frozen=True)
class ReviewRow:
    """One line of a review table: ``key`` comes back when the box is checked."""

    key: Any
    cells: tuple[str, ...]
    checked: bool | None = False  # None: no check box (an informative row)


def first_text(example: dict[str, Any] | None, role: str = "user") -> str:
    """The first ``role`` message of ``example`` on one line, cut for a table cell."""
    return first_content(example or {}, role)


class TupleConfigForm(ConfigForm):
    """A config form whose tuple fields accept one value without a comma (``en``)."""

    def raw_values(self) -> dict[str, Any]:
        values = super().raw_values()
        for name, value in values.items():
            if "tuple" in str(self.fields[name].type) and isinstance(value, str):
                values[name] = (value.strip(),) if value.strip() else ()
        return values


class ModelPicker(QComboBox):
    """A combo box of the registered base models, with an optional "none" entry."""

    def __init__(self, store: Any, none_text: str | None = None) -> None:
        super().__init__()
        self.store, self.none_text = store, none_text
        self.refresh()

    def refresh(self) -> None:
        """Reload the registered models, keeping the current one."""
        current = self.currentData()
        self.clear()
        if self.none_text:
            self.addItem(self.none_text, None)
        for model in self.store.base_models():
            self.addItem(model["name"], model["path"])
        index = self.findData(current)
        self.setCurrentIndex(max(index, 0))

    def model_path(self) -> str | None:
        """The chosen model folder, or ``None``."""
        return self.currentData()


class TokenizerCache:
    """Text tools (tokenizer, chat template, special tokens; ``engine.data.workbench.TextTools``)
    by model folder, loaded on a job thread the first time they are needed."""

    def __init__(self, load: Callable[[Any], Any]) -> None:
        self._load, self._cache, self._lock = load, {}, threading.Lock()

    def get(self, model_path: str | None) -> Any | None:
        """The tokenizer of ``model_path`` (``None`` for none); call from a job only."""
        if not model_path:
            return None
        with self._lock:
            if model_path not in self._cache:
                self._cache[model_path] = self._load(model_path)
            return self._cache[model_path]


class OperationPanel(QWidget):
    """Settings, Preview/Cancel/Apply buttons and a review table (subclass hooks below)."""

    applied = Signal(object)  # the new version record
    operation = ""            # key of gui.services.DATA_CONFIGS
    title = ""
    check_header = "Keep anyway"
    columns: tuple[str, ...] = ()
    lane = "light"

    def __init__(self, page: Any) -> None:
        super().__init__()
        self.page, self.ctx = page, page.ctx
        self.job: Job | None = None
        self.result: Any = None
        self.rows: list[dict[str, Any]] = []
        self.head: int | None = None
        self.config: Any = None
        self.form = self.make_form()
        self._build()

    # hooks ----------------------------------------------------------------------------------
    def make_form(self) -> ConfigForm:
        return TupleConfigForm(self.ctx.engine.data_config_class(self.operation))

    def extra_widgets(self) -> list[QWidget]:
        """Widgets shown under the form (model pickers, file choosers)."""
        return []

    def job_fn(self, config: Any, rows: list[dict]) -> Callable[..., Any]:
        """The preview job ``fn(report, cancel)``; runs off the GUI thread."""
        raise NotImplementedError

    def review_rows(self, result: Any) -> list[ReviewRow]:
        raise NotImplementedError

    def summary(self, result: Any) -> str:
        raise NotImplementedError

    def make_change(self, result: Any, checked: list[Any]) -> Any:
        """The ``VersionChange`` for ``result`` with the keys of the checked rows."""
        raise NotImplementedError

    # layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.preview_button = QPushButton("Preview", objectName=f"{self.operation}Preview")
        self.preview_button.setProperty("primary", True)
        self.preview_button.clicked.connect(self.preview)
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.cancel_button.clicked.connect(self.cancel)
        self.apply_button = QPushButton("Apply", objectName=f"{self.operation}Apply",
                                        enabled=False)
        self.apply_button.clicked.connect(self.apply)
        buttons = QHBoxLayout()
        for button in (self.preview_button, self.cancel_button, self.apply_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.status = label("Set the options and press Preview; nothing changes until Apply.",
                            "hint", wrap=True)
        self.table = QTableWidget(0, len(self.columns) + 1)
        self.table.setHorizontalHeaderLabels([self.check_header, *self.columns])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(len(self.columns),
                                                           QHeaderView.ResizeMode.Stretch)
        self.table.setColumnHidden(0, not self.check_header)
        left = QVBoxLayout()
        left.addWidget(self.form)
        for widget in self.extra_widgets():
            left.addWidget(widget)
        left.addLayout(buttons)
        left.addStretch(1)
        settings = QWidget()
        settings.setLayout(left)
        settings.setMaximumWidth(420)
        right = QVBoxLayout()
        right.addWidget(self.status)
        right.addWidget(self.table, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(settings)
        layout.addLayout(right, 1)

    # preview --------------------------------------------------------------------------------
    def preview(self) -> Job | None:
        """Start the preview job over the head version; ``None`` when nothing could start."""
        dataset_id = self.page.dataset_id()
        config = self.form.build()
        if dataset_id is None or config is None:
            return None
        try:
            self.head, read = self.ctx.store.version_reader(dataset_id)
            self.rows = rows = []
            inner = self.job_fn(config, rows)

            def run(report: Any, cancel: Any) -> Any:
                rows.extend(read())  # on the job thread, through its own connection
                return inner(report, cancel)
            job = self.ctx.runner.submit(f"Preview {self.title.lower()}", run, lane=self.lane)
        except Exception as exc:  # noqa: BLE001 - shown to the user (e.g. JobBusy)
            show_error(self, exc, f"preview {self.title.lower()}")
            return None
        self.config, self.job, self.result = config, job, None
        self._set_running(True)
        count = self.ctx.store.dataset(dataset_id)["example_count"]
        self.status.setText(f"Previewing {count:,} examples…")
        job.progress.connect(self._on_progress)
        job.succeeded.connect(self._on_preview)
        job.failed.connect(lambda exc: show_error(self, exc, f"preview {self.title.lower()}"))
        job.cancelled.connect(lambda: self.status.setText("Preview cancelled; nothing changed."))
        job.done.connect(lambda: self._set_running(False))
        return job

    def cancel(self) -> None:
        """Ask the running preview to stop."""
        if self.job is not None:
            self.job.cancel()

    def _set_running(self, running: bool) -> None:
        self.preview_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.apply_button.setEnabled(not running and self.result is not None)
        if not running:
            self.job = None

    def _on_progress(self, event: Progress) -> None:
        total = f"/{event.total:,}" if event.total else ""
        self.status.setText(f"{event.stage}: {event.step:,}{total} {event.message}".strip())

    def _on_preview(self, result: Any) -> None:
        self._by_id_rows = None  # the rows list was filled on the job thread
        self.result = result
        self.fill_table(self.review_rows(result))
        self.status.setText(self.summary(result))
        self.apply_button.setEnabled(True)

    def fill_table(self, rows: list[ReviewRow]) -> None:
        """Show ``rows`` (at most :data:`MAX_REVIEW_ROWS`) in the review table."""
        self.table.setRowCount(0)
        self.table.setRowCount(min(len(rows), MAX_REVIEW_ROWS))
        for r, row in enumerate(rows[:MAX_REVIEW_ROWS]):
            check = QTableWidgetItem()
            if row.checked is not None:
                check.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                check.setCheckState(Qt.CheckState.Checked if row.checked
                                    else Qt.CheckState.Unchecked)
            else:
                check.setFlags(Qt.ItemFlag.ItemIsEnabled)
            check.setData(Qt.ItemDataRole.UserRole, row.key)
            self.table.setItem(r, 0, check)
            for c, text in enumerate(row.cells, start=1):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def checked_keys(self, state: Qt.CheckState = Qt.CheckState.Checked) -> list[Any]:
        """Keys of the listed rows whose box is in ``state`` (rows past the cap: none)."""
        keys = []
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item.flags() & Qt.ItemFlag.ItemIsUserCheckable and item.checkState() == state:
                keys.append(item.data(Qt.ItemDataRole.UserRole))
        return keys

    def set_checked(self, key: Any, checked: bool) -> None:
        """Check or uncheck the row with ``key`` (as a user click would)."""
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item.data(Qt.ItemDataRole.UserRole) == key:
                item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    # apply ----------------------------------------------------------------------------------
    def apply(self) -> dict[str, Any] | None:
        """Store the reviewed change as a new version; returns it (``None`` when not stored)."""
        if self.result is None:
            return None
        try:
            change = self.make_change(self.result, self.checked_keys())
            version = self.page.apply_change(change, self.head)
        except Exception as exc:  # noqa: BLE001 - shown to the user; nothing was written
            show_error(self, exc, f"apply {self.title.lower()}")
            return None
        if version is not None:
            self.result = None
            self.table.setRowCount(0)
            self.apply_button.setEnabled(False)
            self.status.setText(f"Version {version['number']}: {version['description']}")
            self.applied.emit(version)
        return version

    def params(self) -> dict[str, Any]:
        """The previewed settings as JSON-able data, for the version record."""
        return dataclasses.asdict(self.config) if self.config is not None else {}

    def example_label(self, example_id: int) -> str:
        """``#position`` of an example of the previewed rows (1-based), or its id."""
        example = self.by_id().get(example_id)
        return f"#{example['position'] + 1}" if example else f"id {example_id}"

    def by_id(self) -> dict[int, dict[str, Any]]:
        """The previewed rows by id (built once per preview)."""
        if getattr(self, "_by_id_rows", None) is not self.rows:
            self._by_id = {e["id"]: e for e in self.rows}
            self._by_id_rows = self.rows
        return self._by_id
