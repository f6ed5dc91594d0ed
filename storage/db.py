"""Opening the database, connection settings and small row helpers shared by the modules.

Thread rule: a :class:`sqlite_utils.Database` (one ``sqlite3`` connection) is used only on
the thread that opened it — the GUI thread, or the CLI's single thread. Python's ``sqlite3``
enforces this (``check_same_thread``) and raises ``ProgrammingError`` otherwise. Background
jobs receive rows and paths, never a connection; their results come back to the opening
thread, which writes them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from sqlite_utils import Database

from storage import paths
from storage.errors import InvalidRecord, NotFound
from storage.hashing import canonical_json
from storage.migrations import migrate

# How long a write waits for another connection's lock (e.g. a second app window) before
# SQLite reports "database is locked". Milliseconds.
BUSY_TIMEOUT_MS = 5000


def open_database(data_dir: str | os.PathLike[str] | None = None) -> Database:
    """Open (creating if needed) the Tunesmith database and bring its schema up to date.

    Creates the data dir and its ``models/``, ``runs/``, ``exports/``, ``cache/`` folders,
    opens ``tunesmith.db`` in WAL mode with foreign keys on, and applies pending migrations.

    Args:
        data_dir: the data dir; ``None`` resolves it with :func:`storage.paths.data_dir`
            (``TUNESMITH_DATA_DIR``, then the per-user data dir).

    Returns:
        The open database. Use it only on the calling thread; close it with ``db.close()``.
    """
    root = paths.ensure_layout(paths.data_dir(data_dir))
    db = Database(paths.database_file(root))
    db.enable_wal()
    # NORMAL is durable against application crashes in WAL mode and much faster than FULL.
    _configure(db, synchronous="NORMAL")
    migrate(db)
    return db


def database_path(db: Database) -> str | None:
    """The file of an open database, or ``None`` for an in-memory one."""
    return db.execute("PRAGMA database_list").fetchone()[2] or None


def open_reader(path: str | os.PathLike[str]) -> Database:
    """A read-only connection to a database file (see :func:`database_path`) for a thread
    other than the one that opened the database.

    WAL mode lets it read a consistent snapshot while the first connection writes; open it on
    the thread that will use it, and close it there.
    """
    reader = Database(path)
    _configure(reader)
    reader.conn.execute("PRAGMA query_only = ON")
    return reader


def open_memory_database() -> Database:
    """Open a fresh in-memory database with the full schema (for tests and previews)."""
    db = Database(memory=True)
    _configure(db)
    migrate(db)
    return db


def _configure(db: Database, synchronous: str | None = None) -> None:
    # foreign_keys is per connection and off by default in SQLite; it must be set outside
    # a transaction, i.e. right after opening.
    db.conn.execute("PRAGMA foreign_keys = ON")
    db.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if synchronous:
        db.conn.execute(f"PRAGMA synchronous = {synchronous}")


def utc_now() -> str:
    """Current UTC time as ISO 8601 text in milliseconds: ``2025-01-31T12:00:00.123+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def decode(row: Mapping[str, Any], json_columns: Iterable[str]) -> dict[str, Any]:
    """Copy ``row`` into a dict with the named JSON text columns parsed."""
    out = dict(row)
    for column in json_columns:
        if out.get(column) is not None:
            out[column] = json.loads(out[column])
    return out


def fetch_one(db: Database, sql: str, params: Iterable[Any], missing: str) -> dict[str, Any]:
    """Run a query expected to return one row.

    Raises:
        NotFound: no row matched; the message is ``missing`` (name the record and its id).
    """
    for row in db.query(sql, list(params)):
        return row
    raise NotFound(missing)


def is_unique_violation(error: sqlite3.IntegrityError, column: str) -> bool:
    """Whether ``error`` is SQLite's UNIQUE failure on ``column`` (``table.column``)."""
    return f"UNIQUE constraint failed: {column}" in str(error)


def update_columns(db: Database, table: str, row_id: int, changes: Mapping[str, Any],
                   missing: str) -> None:
    """Set the given columns of one row; ``None`` values in ``changes`` are skipped.

    Raises:
        NotFound: no row has ``row_id``; the message is ``missing``.
    """
    changes = {column: value for column, value in changes.items() if value is not None}
    if not changes:
        fetch_one(db, f"SELECT id FROM {table} WHERE id = ?", [row_id], missing)
        return
    assignments = ", ".join(f"{column} = ?" for column in changes)
    cursor = db.execute(f"UPDATE {table} SET {assignments} WHERE id = ?",
                        [*changes.values(), row_id])
    if cursor.rowcount == 0:
        raise NotFound(missing)


def where_equals(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """``WHERE a = ? AND b = ?`` for the filters that are not ``None``, with its params.

    Column names come from code, never from users; values are bound parameters.
    """
    used = {column: value for column, value in filters.items() if value is not None}
    if not used:
        return "", []
    return "WHERE " + " AND ".join(f"{column} = ?" for column in used), list(used.values())


def json_text(value: Mapping[str, Any] | None, what: str) -> str:
    """Canonical JSON text of a dict for a JSON column (``None`` means ``{}``).

    Raises:
        InvalidRecord: ``value`` holds something JSON cannot represent.
    """
    try:
        return canonical_json(dict(value or {}))
    except (TypeError, ValueError) as error:
        raise InvalidRecord(f"{what} must be JSON-serialisable (plain values): {error}") from None
