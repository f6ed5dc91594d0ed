"""Run records (train, merge, export, eval jobs) and their metrics.

Life cycle: :func:`start_run` writes a ``running`` row; :func:`finish_run` sets a final
status once. A process killed mid-run leaves ``running`` behind; :func:`mark_interrupted_runs`
turns those into ``interrupted`` when the app starts again.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from sqlite_utils import Database

from storage.db import decode, fetch_one, json_text, utc_now, where_equals
from storage.errors import Conflict, InvalidRecord, NotFound

RUN_KINDS = ("train", "merge", "export", "eval")
RUN_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "interrupted")
FINAL_STATUSES = ("succeeded", "failed", "cancelled", "interrupted")
INTERRUPTED_MESSAGE = "the app stopped while this run was in progress; start it again or resume"
_JSON_COLUMNS = ("config",)


def _check_choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InvalidRecord(f"{what} {value!r} is not allowed; allowed: {', '.join(allowed)}")
    return value


def start_run(db: Database, kind: str, config: Mapping[str, Any], *,
              base_model_id: int | None = None, dataset_id: int | None = None,
              dataset_hash: str | None = None, name: str | None = None,
              parent_run_id: int | None = None,
              dataset_version_id: int | None = None) -> dict[str, Any]:
    """Record a job that starts now, with status ``running``.

    Args:
        db: the open database.
        kind: one of :data:`RUN_KINDS`.
        config: the job's config as a JSON-able dict (e.g. ``dataclasses.asdict``), stored
            so the run can be repeated exactly.
        base_model_id: the base model used, if any.
        dataset_id: the dataset used, if any.
        dataset_hash: the dataset content hash trained on; ``None`` takes the hash of
            ``dataset_version_id`` (default: the dataset's head) when ``dataset_id`` is given.
        dataset_version_id: the dataset version used; ``None`` takes the dataset's head
            when ``dataset_id`` is given.
        name: display name; default ``"<kind> <id>"``.
        parent_run_id: the run this one continues from (e.g. the train run an export uses).

    Returns:
        The new run row (as :func:`get_run`).

    Raises:
        InvalidRecord: unknown kind or a config that is not JSON-able.
        sqlite3.IntegrityError: a referenced model, dataset or parent run does not exist.
    """
    _check_choice(kind, RUN_KINDS, "run kind")
    if dataset_id is not None and dataset_version_id is None:
        dataset_version_id = fetch_one(db, "SELECT head_version_id FROM datasets WHERE id = ?",
                                       [dataset_id],
                                       f"no dataset with id {dataset_id}")["head_version_id"]
    if dataset_hash is None and dataset_version_id is not None:
        dataset_hash = fetch_one(db, "SELECT content_hash FROM dataset_versions WHERE id = ?",
                                 [dataset_version_id],
                                 f"no dataset version with id {dataset_version_id}")["content_hash"]
    with db.atomic():
        cursor = db.execute(
            "INSERT INTO runs (kind, name, base_model_id, dataset_id, dataset_hash, config,"
            " status, started, parent_run_id, dataset_version_id)"
            " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
            [kind, name or "", base_model_id, dataset_id, dataset_hash,
             json_text(config, "run config"), utc_now(), parent_run_id, dataset_version_id])
        run_id = int(cursor.lastrowid)
        if not name:
            db.execute("UPDATE runs SET name = ? WHERE id = ?", [f"{kind} {run_id}", run_id])
    return get_run(db, run_id)


def finish_run(db: Database, run_id: int, status: str, error: str | None = None) -> dict[str, Any]:
    """Set a run's final status and end time.

    Args:
        db: the open database.
        run_id: the run.
        status: one of :data:`FINAL_STATUSES`.
        error: the user-facing error message for ``failed`` runs.

    Returns:
        The updated run row.

    Raises:
        NotFound: no such run.
        Conflict: the run already has a final status.
        InvalidRecord: ``status`` is not a final status.
    """
    _check_choice(status, FINAL_STATUSES, "final run status")
    with db.atomic():
        current = get_run(db, run_id)
        if current["status"] in FINAL_STATUSES:
            raise Conflict(f"run {run_id} already finished as {current['status']!r}")
        db.execute("UPDATE runs SET status = ?, ended = ?, error = ? WHERE id = ?",
                   [status, utc_now(), error, run_id])
    return get_run(db, run_id)


def get_run(db: Database, run_id: int) -> dict[str, Any]:
    """One run row with ``config`` parsed.

    Raises:
        NotFound: no such run.
    """
    return decode(fetch_one(db, "SELECT * FROM runs WHERE id = ?", [run_id],
                            f"no run with id {run_id}"), _JSON_COLUMNS)


def list_runs(db: Database, *, kind: str | None = None, status: str | None = None,
              limit: int | None = None) -> list[dict[str, Any]]:
    """Runs, newest first, optionally filtered by kind and/or status."""
    where, params = where_equals({"kind": kind, "status": status})
    rows = db.query(f"SELECT * FROM runs {where} ORDER BY id DESC LIMIT ?",
                    [*params, -1 if limit is None else limit])
    return [decode(row, _JSON_COLUMNS) for row in rows]


def delete_run(db: Database, run_id: int) -> None:
    """Delete a run record; its metrics and artifact rows cascade, child runs lose the link.

    Files on disk are left alone (the caller removes them if wanted).

    Raises:
        NotFound: no such run.
    """
    if db.execute("DELETE FROM runs WHERE id = ?", [run_id]).rowcount == 0:
        raise NotFound(f"no run with id {run_id}")


def mark_interrupted_runs(db: Database) -> int:
    """Mark runs left ``running`` or ``pending`` by a killed process as ``interrupted``.

    Call once at startup, before any job starts (a live job's run would be marked too).

    Returns:
        The number of runs marked.
    """
    cursor = db.execute(
        "UPDATE runs SET status = 'interrupted', ended = ?, error = ?"
        " WHERE status IN ('running', 'pending')", [utc_now(), INTERRUPTED_MESSAGE])
    return cursor.rowcount


def add_metrics(db: Database, run_id: int, rows: Iterable[tuple[int, str, float]]) -> int:
    """Append metric values in one transaction.

    Args:
        db: the open database.
        run_id: the run they belong to.
        rows: ``(step, name, value)`` tuples, e.g. ``(10, "loss", 2.31)``. NaN is stored as
            ``NULL`` (SQLite has no NaN) and read back as ``None``.

    Returns:
        The number of rows written.

    Raises:
        NotFound: no such run.
    """
    get_run(db, run_id)
    values = [(run_id, int(step), str(name), float(value)) for step, name, value in rows]
    with db.atomic():
        db.conn.executemany("INSERT INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)",
                            values)
    return len(values)


def get_metrics(db: Database, run_id: int, name: str | None = None) -> list[dict[str, Any]]:
    """Metric rows ``{"step", "name", "value"}`` of a run, ordered by name then step.

    Args:
        db: the open database.
        run_id: the run.
        name: only this metric (e.g. ``"loss"``); ``None`` for all.
    """
    where, params = ("AND name = ?", [run_id, name]) if name is not None else ("", [run_id])
    return list(db.query(f"SELECT step, name, value FROM metrics WHERE run_id = ? {where}"
                         " ORDER BY name, step, rowid", params))
