"""The GUI's view of storage: one open database plus the data dir, used on the GUI thread only.

Jobs never receive this object (sqlite3 refuses cross-thread use); they get rows and paths and
their results come back through signals, and the GUI thread writes them here. The
:class:`Hub` signals tell the other pages that something they list has changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from PySide6.QtCore import QObject, Signal

import storage
from storage.models import BASE_MODEL_FIELDS

SEARCH_LIMIT = 2000  # search results shown at most (storage's search has no offset)


class Hub(QObject):
    """Change notifications between pages (no page holds a reference to another)."""

    datasets_changed = Signal()
    models_changed = Signal()
    runs_changed = Signal()
    chats_changed = Signal()
    artifacts_changed = Signal()
    status_message = Signal(str)


class Store:
    """Thin facade over :mod:`storage` bound to one database (GUI thread only)."""

    def __init__(self, db: Any, root: Path) -> None:
        self.db = db
        self.root = Path(root)

    @classmethod
    def open(cls, data_dir: Path | None = None) -> "Store":
        """Open (creating and migrating) the database in ``data_dir``."""
        root = storage.data_dir(data_dir)
        return cls(storage.open_database(root), root)

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def folder(self, name: str) -> Path:
        """A subfolder of the data dir (``models``, ``runs``, ``exports``, ``cache``)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # datasets -------------------------------------------------------------------------------
    def datasets(self) -> list[dict[str, Any]]:
        return list(storage.list_datasets(self.db))

    def dataset(self, dataset_id: int) -> dict[str, Any]:
        return storage.get_dataset(self.db, dataset_id)

    def create_dataset(self, name: str, examples: Iterable[dict[str, Any]]) -> int:
        return _id(storage.create_dataset(self.db, name, list(examples)))

    def delete_dataset(self, dataset_id: int) -> None:
        storage.delete_dataset(self.db, dataset_id)

    def count_examples(self, dataset_id: int) -> int:
        return storage.count_examples(self.db, dataset_id)

    def examples(self, dataset_id: int, offset: int, limit: int) -> list[dict[str, Any]]:
        return list(storage.iter_examples(self.db, dataset_id, offset=offset, limit=limit))

    def search(self, dataset_id: int, query: str, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
        """Examples matching ``query`` (FTS5 trigram), at most ``limit``, in position order."""
        return list(storage.search_examples(self.db, dataset_id, query, limit=limit))

    def all_examples(self, dataset_id: int, version_id: int | None = None) -> list[dict[str, Any]]:
        """Every example of a dataset version (default: the head), in order."""
        return list(storage.iter_examples(self.db, dataset_id, version_id=version_id))

    def add_example(self, dataset_id: int, example: dict[str, Any]) -> int:
        return _id(storage.add_example(self.db, dataset_id, example))

    def update_example(self, example_id: int, example: dict[str, Any]) -> None:
        storage.update_example(self.db, example_id, messages=example["messages"],
                               tags=example.get("tags", []))

    def delete_example(self, example_id: int) -> None:
        storage.delete_example(self.db, example_id)

    # versions and tags (dataset workbench) -------------------------------------------------
    def versions(self, dataset_id: int) -> list[dict[str, Any]]:
        """Every version of a dataset, oldest first."""
        return storage.list_versions(self.db, dataset_id)

    def head_version_id(self, dataset_id: int) -> int:
        return storage.head_version_id(self.db, dataset_id)

    def undo(self, dataset_id: int) -> dict[str, Any]:
        """Make the head's parent the head; returns that version."""
        return storage.undo(self.db, dataset_id)

    def checkout(self, dataset_id: int, number: int) -> dict[str, Any]:
        """Make version ``number`` the head; returns it."""
        return storage.checkout(self.db, dataset_id, number)

    def diff_versions(self, old_id: int, new_id: int, limit: int = 1000) -> dict[str, Any]:
        return storage.diff_versions(self.db, old_id, new_id, limit=limit)

    def example(self, example_id: int, version_id: int | None = None) -> dict[str, Any]:
        return storage.get_example(self.db, example_id, version_id=version_id)

    def version_reader(self, dataset_id: int) -> tuple[int, Callable[[], list[dict[str, Any]]]]:
        """The head version's id, and a function that reads its examples on a job thread.

        The function opens its own read-only connection there (WAL: a consistent snapshot while
        the GUI thread writes), so 100,000 examples never stall the window; an in-memory
        database (tests) is read here instead.
        """
        version_id = storage.head_version_id(self.db, dataset_id)
        path = storage.database_path(self.db)
        if path is None:
            rows = list(storage.iter_examples(self.db, dataset_id, version_id=version_id))
            return version_id, lambda: rows

        def read() -> list[dict[str, Any]]:
            reader = storage.open_reader(path)
            try:
                return list(storage.iter_examples(reader, dataset_id, version_id=version_id))
            finally:
                reader.close()
        return version_id, read

    def create_version(self, dataset_id: int, change: dict[str, Any]) -> dict[str, Any]:
        """Write a new head version from ``VersionChange.as_kwargs()``; returns it."""
        return storage.create_version(self.db, dataset_id, **change)

    def search_ids(self, dataset_id: int, query: str) -> list[int]:
        """Ids of every head example matching ``query`` (no limit)."""
        return storage.search_ids(self.db, dataset_id, query)

    def tag_examples(self, dataset_id: int, ids: Iterable[int], add: Iterable[str] = (),
                     remove: Iterable[str] = ()) -> dict[str, Any]:
        """Add/remove tags on ``ids`` in one new version; returns it."""
        return storage.tag_examples(self.db, dataset_id, ids, add=add, remove=remove)

    def tag_counts(self, dataset_id: int) -> dict[str, int]:
        return storage.tag_counts(self.db, dataset_id)

    # models ---------------------------------------------------------------------------------
    def base_models(self) -> list[dict[str, Any]]:
        return list(storage.list_base_models(self.db))

    def register_model(self, info: dict[str, Any], replace: bool = False) -> int:
        known = {k: v for k, v in info.items() if k in BASE_MODEL_FIELDS}
        return _id(storage.register_base_model(self.db, known, replace=replace))

    # runs -----------------------------------------------------------------------------------
    def runs(self) -> list[dict[str, Any]]:
        return list(storage.list_runs(self.db))

    def run(self, run_id: int) -> dict[str, Any]:
        return storage.get_run(self.db, run_id)

    def start_run(self, kind: str, config: dict[str, Any], **record: Any) -> int:
        return _id(storage.start_run(self.db, kind, config, **record))

    def finish_run(self, run_id: int, status: str, error: str | None = None) -> None:
        storage.finish_run(self.db, run_id, status, error=error)

    def add_metrics(self, run_id: int, step: int, metrics: dict[str, float]) -> None:
        storage.add_metrics(self.db, run_id, [(step, k, v) for k, v in metrics.items()])

    def add_metric_rows(self, run_id: int, rows: list[tuple[int, str, float]]) -> None:
        """Write ``(step, name, value)`` rows in one transaction."""
        storage.add_metrics(self.db, run_id, rows)

    def metrics(self, run_id: int) -> dict[str, list[tuple[int, float]]]:
        """``{name: [(step, value), ...]}`` for one run, steps ascending."""
        return _series(storage.get_metrics(self.db, run_id))

    def delete_run(self, run_id: int) -> None:
        """Delete a run's record (metrics and artifact rows cascade); files are the caller's."""
        storage.delete_run(self.db, run_id)

    def artifacts(self, run_id: int | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        return list(storage.list_artifacts(self.db, run_id=run_id, kind=kind))

    def add_artifact(self, run_id: int | None, kind: str, path: Path, **extra: Any) -> int:
        return _id(storage.add_artifact(self.db, run_id, kind, str(path), **extra))

    # chats ----------------------------------------------------------------------------------
    def chats(self) -> list[dict[str, Any]]:
        return list(storage.list_chats(self.db))

    def create_chat(self, title: str, model_path: str | None, system_prompt: str) -> int:
        return _id(storage.create_chat(self.db, title=title, model_path=model_path,
                                       system_prompt=system_prompt))

    def add_chat_message(self, chat_id: int, role: str, content: str) -> int:
        return _id(storage.add_chat_message(self.db, chat_id, role, content))

    def chat_messages(self, chat_id: int) -> list[dict[str, Any]]:
        return list(storage.get_chat_messages(self.db, chat_id))

    def update_chat(self, chat_id: int, **changes: Any) -> None:
        storage.update_chat(self.db, chat_id, **changes)

    def delete_chat(self, chat_id: int) -> None:
        storage.delete_chat(self.db, chat_id)


def _id(value: Any) -> int:
    """Storage functions return an id or a record; take the id either way."""
    if isinstance(value, dict):
        return int(value["id"])
    return int(getattr(value, "id", value))


def _series(rows: Any) -> dict[str, list[tuple[int, float]]]:
    if isinstance(rows, dict):
        return {k: sorted((int(s), float(v)) for s, v in pts) for k, pts in rows.items()}
    out: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        if row.get("value") is not None:
            out.setdefault(row["name"], []).append((int(row["step"]), float(row["value"])))
    return {k: sorted(v) for k, v in out.items()}
