"""Artifact records: files a run produced (adapters, merged checkpoints, GGUF files, ...).

Large binaries stay on disk in the data dir; a row holds their path, size, SHA-256 and the
run that made them. Known kinds are listed in :data:`ARTIFACT_KINDS`; other kinds are
accepted so a new export format needs no migration.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from sqlite_utils import Database

from storage.db import decode, fetch_one, json_text, utc_now, where_equals
from storage.errors import InvalidRecord

ARTIFACT_KINDS = ("adapter", "merged", "gguf", "checkpoint", "report", "modelfile")
_JSON_COLUMNS = ("meta",)


def add_artifact(db: Database, run_id: int | None, kind: str, path: str | os.PathLike[str], *,
                 sha256: str | None = None, bytes: int | None = None,
                 meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Record a file (or folder) a run produced.

    Args:
        db: the open database.
        run_id: the run that made it (``None`` for files imported by hand).
        kind: what it is, e.g. one of :data:`ARTIFACT_KINDS`.
        path: where it lives (stored as given; prefer absolute paths).
        sha256: 64 hex digits (see :func:`storage.hashing.file_sha256`), if known.
        bytes: size in bytes; ``None`` takes the size of ``path`` when it is a file.
        meta: JSON-able details, e.g. ``{"quantization": "q4_k_m"}``.

    Returns:
        The stored row (as :func:`get_artifact`).

    Raises:
        InvalidRecord: empty kind or non-JSON-able meta.
        sqlite3.IntegrityError: ``run_id`` names no run.
    """
    if not kind:
        raise InvalidRecord(f"artifact kind is empty; e.g. {', '.join(ARTIFACT_KINDS)}")
    path = os.fspath(path)
    if bytes is None and os.path.isfile(path):
        bytes = os.path.getsize(path)
    meta_json = json_text(meta, "artifact meta")
    cursor = db.execute(
        "INSERT INTO artifacts (run_id, kind, path, bytes, sha256, created, meta)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)", [run_id, kind, path, bytes, sha256, utc_now(), meta_json])
    return get_artifact(db, int(cursor.lastrowid))


def get_artifact(db: Database, artifact_id: int) -> dict[str, Any]:
    """One artifact row with ``meta`` parsed.

    Raises:
        NotFound: no such artifact.
    """
    return decode(fetch_one(db, "SELECT * FROM artifacts WHERE id = ?", [artifact_id],
                            f"no artifact with id {artifact_id}"), _JSON_COLUMNS)


def list_artifacts(db: Database, run_id: int | None = None,
                   kind: str | None = None) -> list[dict[str, Any]]:
    """Artifact rows, newest first, optionally only those of one run and/or kind."""
    where, params = where_equals({"run_id": run_id, "kind": kind})
    rows = db.query(f"SELECT * FROM artifacts {where} ORDER BY id DESC", params)
    return [decode(row, _JSON_COLUMNS) for row in rows]


def update_artifact_meta(db: Database, artifact_id: int,
                         changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into an artifact's ``meta`` (e.g. ``{"verification": {...}}`` once a
    GGUF has been verified); returns the updated row.

    Raises:
        NotFound: no such artifact.
        InvalidRecord: non-JSON-able values.
    """
    meta = dict(get_artifact(db, artifact_id).get("meta") or {})
    meta.update(changes)
    db.execute("UPDATE artifacts SET meta = ? WHERE id = ?",
               [json_text(meta, "artifact meta"), artifact_id])
    return get_artifact(db, artifact_id)
