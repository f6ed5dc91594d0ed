"""Immutable dataset versions with lineage: every change to a dataset makes a new version.

A version is an ordered list of example ids plus an optional split label per example
(``version_examples``). Example rows are immutable and shared: a version that edits one example
out of 100,000 adds one example row and 100,000 small mapping rows (three integers and a label),
never a copy of the texts. Each version records its parent, the operation that made it, the
operation's parameters and a description, and caches its content hash and example count
(definition in :mod:`storage.hashing`; the split label is part of the hash once set).

The dataset's *head* is the version that reading, training and further operations use. Undo
moves the head back to the parent; no version is ever deleted except with its dataset.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Mapping

from sqlite_utils import Database

from storage.db import decode, fetch_one, json_text, utc_now
from storage.errors import InvalidRecord, NothingChanged
from storage.hashing import ContentHasher
from storage.migrations import FTS_INSERT_BATCH_SQL
from storage.validation import ExampleRow, normalize_example

#: Names of the operations that make versions (shown in the history; free text is refused so
#: the history stays readable and filterable).
VERSION_OPERATIONS = ("import", "edit", "clean", "dedupe", "filter", "scrub", "augment", "tag",
                      "split", "revert")
SPLITS = ("train", "validation", "test")

# Rows per executemany call: big enough to amortise Python overhead, small enough that
# progress reports (and a raised Cancelled) come several times a second.
BATCH_SIZE = 5000

ProgressCallback = Callable[[int, "int | None"], None]

_INSERT_EXAMPLE_SQL = (
    "INSERT INTO examples (dataset_id, position, messages, tags, source_file, source_line,"
    " synthetic, origin_id, previous_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_TEMP_TABLES = {
    "_ts_remove": "id INTEGER PRIMARY KEY",
    "_ts_replace": "old_id INTEGER PRIMARY KEY, new_id INTEGER NOT NULL",
    "_ts_split": "id INTEGER PRIMARY KEY, split TEXT",
}


def batches(items: Iterable[Any], size: int = BATCH_SIZE) -> Iterator[list[Any]]:
    """Lists of up to ``size`` consecutive items of any iterable (the last may be shorter)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def next_serial(db: Database, dataset_id: int) -> int:
    """The next free ``examples.position`` of a dataset (a per-dataset insertion serial)."""
    row = db.execute("SELECT max(position) FROM examples WHERE dataset_id = ?",
                     [dataset_id]).fetchone()
    return 0 if row[0] is None else row[0] + 1


def insert_examples(db: Database, dataset_id: int, rows: list[ExampleRow], *,
                    extra: list[tuple[int, int | None, int | None]] | None = None) -> list[int]:
    """Insert validated example rows (not yet in any version) and index them for search.

    Call inside a transaction.

    Args:
        db: the open database.
        dataset_id: the owning dataset.
        rows: validated rows in order.
        extra: per row ``(synthetic, origin_id, previous_id)``; default ``(0, None, None)``.

    Returns:
        The new example ids, in the order of ``rows``.
    """
    if not rows:
        return []
    first = next_serial(db, dataset_id)
    extra = extra or [(0, None, None)] * len(rows)
    db.conn.executemany(_INSERT_EXAMPLE_SQL, [
        (dataset_id, first + i, r.messages_json, r.tags_json, r.source_file, r.source_line, *x)
        for i, (r, x) in enumerate(zip(rows, extra))
    ])
    db.conn.execute(FTS_INSERT_BATCH_SQL, [dataset_id, first, first + len(rows) - 1])
    return [row[0] for row in db.conn.execute(
        "SELECT id FROM examples WHERE dataset_id = ? AND position BETWEEN ? AND ?"
        " ORDER BY position", [dataset_id, first, first + len(rows) - 1])]


def _extra(example: Mapping[str, Any]) -> tuple[int, int | None, int | None]:
    return (1 if example.get("synthetic") else 0, example.get("origin_id"),
            example.get("previous_id"))


def insert_example_dicts(db: Database, dataset_id: int, examples: list[Mapping[str, Any]],
                         first_index: int = 0) -> list[int]:
    """Validate example dicts (see :mod:`storage.validation`) and insert them; returns ids.

    ``synthetic``, ``origin_id`` and ``previous_id`` keys are kept when present.

    Raises:
        InvalidRecord: an example is malformed (message names its number and source).
    """
    rows = [normalize_example(e, first_index + i) for i, e in enumerate(examples)]
    return insert_examples(db, dataset_id, rows, extra=[_extra(e) for e in examples])


def get_version(db: Database, version_id: int) -> dict[str, Any]:
    """One version row: ``{"id", "dataset_id", "number", "parent_id", "operation", "params",
    "description", "content_hash", "example_count", "created"}`` with ``params`` parsed.

    Raises:
        NotFound: no such version.
    """
    return decode(fetch_one(db, "SELECT * FROM dataset_versions WHERE id = ?", [version_id],
                            f"no dataset version with id {version_id}"), ("params",))


def list_versions(db: Database, dataset_id: int) -> list[dict[str, Any]]:
    """All versions of a dataset, oldest first (as :func:`get_version`)."""
    rows = db.query("SELECT * FROM dataset_versions WHERE dataset_id = ? ORDER BY number",
                    [dataset_id])
    return [decode(row, ("params",)) for row in rows]


def head_version_id(db: Database, dataset_id: int) -> int:
    """The id of a dataset's head version.

    Raises:
        NotFound: no such dataset.
    """
    return fetch_one(db, "SELECT head_version_id FROM datasets WHERE id = ?", [dataset_id],
                     f"no dataset with id {dataset_id}")["head_version_id"]


def resolve_version(db: Database, dataset_id: int, version: int | None) -> int:
    """A version id from ``None`` (the head) or a version *number* of the dataset.

    Raises:
        NotFound: no such dataset or version number.
    """
    if version is None:
        return head_version_id(db, dataset_id)
    return fetch_one(db, "SELECT id FROM dataset_versions WHERE dataset_id = ? AND number = ?",
                     [dataset_id, version],
                     f"dataset {dataset_id} has no version {version}; list its versions")["id"]


def _check_operation(operation: str) -> str:
    if operation not in VERSION_OPERATIONS:
        raise InvalidRecord(f"version operation {operation!r} is not allowed; allowed: "
                            f"{', '.join(VERSION_OPERATIONS)}")
    return operation


def _check_split(split: Any, where: str) -> str | None:
    if split is not None and split not in SPLITS:
        raise InvalidRecord(f"{where}: split {split!r} is not allowed; allowed: "
                            f"{', '.join(SPLITS)} or none")
    return split


def _fill_temp(db: Database, table: str, rows: Iterable[tuple]) -> None:
    db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({_TEMP_TABLES[table]})")
    db.execute(f"DELETE FROM {table}")
    width = _TEMP_TABLES[table].count(",") + 1
    marks = ", ".join("?" * width)
    for batch in batches(rows):
        db.conn.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", batch)


def new_version_row(db: Database, dataset_id: int, parent_id: int | None, operation: str,
                    params: Mapping[str, Any] | None, description: str) -> int:
    """Insert an empty version row (numbered next); fill it, then :func:`finish_version`."""
    number = db.execute("SELECT coalesce(max(number), 0) + 1 FROM dataset_versions"
                        " WHERE dataset_id = ?", [dataset_id]).fetchone()[0]
    cursor = db.execute(
        "INSERT INTO dataset_versions (dataset_id, number, parent_id, operation, params,"
        " description, content_hash, example_count, created) VALUES (?, ?, ?, ?, ?, ?, '', 0, ?)",
        [dataset_id, number, parent_id, _check_operation(operation),
         json_text(params, "version params"), description, utc_now()])
    return int(cursor.lastrowid)


def finish_version(db: Database, version_id: int) -> dict[str, Any]:
    """Compute a version's content hash and count, and make it its dataset's head.

    One streamed pass over the version in position order (no JSON parsing).
    """
    hasher, count = ContentHasher(), 0
    cursor = db.conn.execute(
        "SELECT e.messages, e.tags, ve.split FROM version_examples ve"
        " JOIN examples e ON e.id = ve.example_id WHERE ve.version_id = ? ORDER BY ve.position",
        [version_id])
    for messages_json, tags_json, split in cursor:
        hasher.update(messages_json, tags_json, split)
        count += 1
    digest = hasher.hexdigest()
    db.execute("UPDATE dataset_versions SET content_hash = ?, example_count = ? WHERE id = ?",
               [digest, count, version_id])
    version = get_version(db, version_id)
    set_head(db, version["dataset_id"], version_id)
    return version


def set_head(db: Database, dataset_id: int, version_id: int) -> None:
    """Make ``version_id`` the dataset's head and copy its hash and count onto the dataset.

    Raises:
        InvalidRecord: the version belongs to another dataset.
        NotFound: no such version.
    """
    version = get_version(db, version_id)
    if version["dataset_id"] != dataset_id:
        raise InvalidRecord(f"version {version_id} belongs to dataset {version['dataset_id']},"
                            f" not {dataset_id}")
    db.execute("UPDATE datasets SET head_version_id = ?, content_hash = ?, example_count = ?"
               " WHERE id = ?",
               [version_id, version["content_hash"], version["example_count"], dataset_id])


def create_version(db: Database, dataset_id: int, *, operation: str, description: str = "",
                   params: Mapping[str, Any] | None = None, parent_id: int | None = None,
                   remove: Iterable[int] = (), replace: Mapping[int, Mapping[str, Any]] | None = None,
                   append: Iterable[Mapping[str, Any]] = (), insert_at: int | None = None,
                   splits: Mapping[int, str | None] | None = None,
                   on_progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Derive a new version from ``parent_id`` (default: the head) and make it the head.

    Everything happens in one transaction: on any error (or if ``on_progress`` raises, e.g. a
    cancel) nothing is written and the head is unchanged.

    Args:
        db: the open database.
        dataset_id: the dataset.
        operation: one of :data:`VERSION_OPERATIONS`.
        description: what was done, for people (e.g. "removed 1,040 exact duplicates").
        params: the operation's settings as JSON-able data, so it can be repeated.
        parent_id: the version to start from.
        remove: ids of parent examples to leave out.
        replace: parent example id -> new example dict (a new example row is written with
            ``previous_id`` = the old id; the new one takes the old one's place and split).
        append: new example dicts, added after the kept ones (or at ``insert_at``); keys
            ``synthetic``, ``origin_id`` and ``split`` are honoured.
        insert_at: 0-based place in the new version for the appended examples.
        splits: parent example id -> split label (``"train"``, ``"validation"``, ``"test"`` or
            ``None``) for examples whose split changes.
        on_progress: called as ``on_progress(done, None)`` after each batch of appended rows.

    Returns:
        The new version (as :func:`get_version`).

    Raises:
        NotFound: no such dataset or parent version.
        InvalidRecord: a malformed example, an unknown operation or split label, or
            ``insert_at`` outside the new version.
        NothingChanged: the new version's content hash equals the parent's (nothing written).
    """
    with db.atomic():
        parent_id = head_version_id(db, dataset_id) if parent_id is None else parent_id
        parent = get_version(db, parent_id)
        version_id = new_version_row(db, dataset_id, parent_id, operation, params, description)
        _fill_temp(db, "_ts_remove", ((i,) for i in remove))
        _fill_temp(db, "_ts_replace", _replacements(db, dataset_id, replace or {}))
        _fill_temp(db, "_ts_split", ((i, _check_split(s, f"example {i}"))
                                     for i, s in (splits or {}).items()))
        appended = _append_rows(db, dataset_id, append, on_progress)
        kept = _copy_parent(db, version_id, parent["id"], insert_at, len(appended))
        start = kept if insert_at is None else insert_at
        if not 0 <= start <= kept:
            raise InvalidRecord(f"insert position {insert_at} is outside 0..{kept}")
        db.conn.executemany(
            "INSERT INTO version_examples (version_id, position, example_id, split)"
            " VALUES (?, ?, ?, ?)",
            [(version_id, start + i, eid, split) for i, (eid, split) in enumerate(appended)])
        version = finish_version(db, version_id)
        if version["content_hash"] == parent["content_hash"]:
            # Raised inside the transaction: the empty version and its rows are rolled back.
            raise NothingChanged(f"{operation}: nothing to change; version {parent['number']} "
                                 "already has exactly this content")
        return version


def _replacements(db: Database, dataset_id: int,
                  replace: Mapping[int, Mapping[str, Any]]) -> Iterator[tuple[int, int]]:
    for batch in batches(replace.items()):
        new = [{**example, "previous_id": old} for old, example in batch]
        ids = insert_example_dicts(db, dataset_id, new)
        yield from ((old, new_id) for (old, _), new_id in zip(batch, ids))


def _append_rows(db: Database, dataset_id: int, append: Iterable[Mapping[str, Any]],
                 on_progress: ProgressCallback | None) -> list[tuple[int, str | None]]:
    out: list[tuple[int, str | None]] = []
    for batch in batches(append):
        ids = insert_example_dicts(db, dataset_id, batch, first_index=len(out))
        splits = [_check_split(e.get("split"), f"new example {len(out) + i + 1}")
                  for i, e in enumerate(batch)]
        out.extend(zip(ids, splits))
        if on_progress is not None:
            on_progress(len(out), None)
    return out


def _copy_parent(db: Database, version_id: int, parent_id: int, insert_at: int | None,
                 gap: int) -> int:
    """Copy the parent's mapping minus removals, with replacements and split changes applied;
    leave ``gap`` free positions at ``insert_at``. Returns how many rows were copied."""
    at = -1 if insert_at is None else insert_at
    db.execute(
        "INSERT INTO version_examples (version_id, position, example_id, split)"
        " SELECT ?, n + CASE WHEN ? >= 0 AND n >= ? THEN ? ELSE 0 END, example_id, split FROM ("
        "  SELECT row_number() OVER (ORDER BY ve.position) - 1 AS n,"
        "   coalesce(r.new_id, ve.example_id) AS example_id,"
        "   CASE WHEN s.id IS NULL THEN ve.split ELSE s.split END AS split"
        "  FROM version_examples ve"
        "  LEFT JOIN temp._ts_replace r ON r.old_id = ve.example_id"
        "  LEFT JOIN temp._ts_split s ON s.id = ve.example_id"
        "  WHERE ve.version_id = ? AND ve.example_id NOT IN (SELECT id FROM temp._ts_remove))",
        [version_id, at, at, gap, parent_id])
    return db.execute("SELECT count(*) FROM version_examples WHERE version_id = ?",
                      [version_id]).fetchone()[0]


def undo(db: Database, dataset_id: int) -> dict[str, Any]:
    """Go back to the head's parent version (the undone version stays in the history).

    Returns:
        The version that is now the head.

    Raises:
        InvalidRecord: the head is the first version (nothing to undo).
    """
    with db.atomic():
        head = get_version(db, head_version_id(db, dataset_id))
        if head["parent_id"] is None:
            raise InvalidRecord(f"version {head['number']} is the first version of this "
                                "dataset; there is nothing to undo")
        set_head(db, dataset_id, head["parent_id"])
        return get_version(db, head["parent_id"])


def checkout(db: Database, dataset_id: int, number: int) -> dict[str, Any]:
    """Make version ``number`` of the dataset its head (later versions stay available).

    Raises:
        NotFound: the dataset has no such version.
    """
    with db.atomic():
        version_id = resolve_version(db, dataset_id, number)
        set_head(db, dataset_id, version_id)
        return get_version(db, version_id)


def diff_versions(db: Database, old_id: int, new_id: int, *, limit: int = 1000) -> dict[str, Any]:
    """What changed from version ``old_id`` to version ``new_id`` (any two versions).

    An example present only in the new version counts as *changed* when one of the two was made
    by editing the other (``previous_id``, followed through any number of edits); otherwise as
    *added*. Old-only examples not accounted for are *removed*.
    Examples in both whose split label differs are *resplit*.

    Args:
        db: the open database.
        old_id: the version compared from.
        new_id: the version compared to.
        limit: at most this many ids listed per kind (counts are always complete).

    Returns:
        ``{"added": [id, ...], "removed": [id, ...], "changed": [(old id, new id), ...],
        "resplit": [(id, old split, new split), ...], "counts": {kind: n}}``.

    Raises:
        NotFound: either version does not exist.
    """
    get_version(db, old_id), get_version(db, new_id)
    only = ("SELECT example_id FROM version_examples WHERE version_id = ? EXCEPT"
            " SELECT example_id FROM version_examples WHERE version_id = ?")
    old_only = {r[0] for r in db.execute(only, [old_id, new_id])}
    new_only = [r[0] for r in db.execute(only, [new_id, old_id])]
    # Going forward an edit's new row descends from the old one; comparing backwards, the other
    # way round: either way the pair is one changed example.
    changed = sorted({*_edit_pairs(db, new_only, old_only),
                      *((old, new) for new, old in _edit_pairs(db, list(old_only), set(new_only)))})
    matched_old = {old for old, _ in changed}
    matched_new = {new for _, new in changed}
    added = sorted(set(new_only) - matched_new)
    removed = sorted(old_only - matched_old)
    resplit = db.execute(
        "SELECT a.example_id, a.split, b.split FROM version_examples a JOIN version_examples b"
        " ON b.example_id = a.example_id AND b.version_id = ? WHERE a.version_id = ?"
        " AND a.split IS NOT b.split ORDER BY a.example_id", [new_id, old_id]).fetchall()
    counts = {"added": len(added), "removed": len(removed), "changed": len(changed),
              "resplit": len(resplit)}
    return {"added": added[:limit], "removed": removed[:limit], "changed": changed[:limit],
            "resplit": [tuple(r) for r in resplit[:limit]], "counts": counts}


def _edit_pairs(db: Database, new_only: list[int], old_only: set[int]) -> list[tuple[int, int]]:
    """(old, new) pairs where ``new`` descends from ``old`` by edits (``previous_id`` chain)."""
    pairs = []
    for batch in batches(new_only, 500):
        marks = ", ".join("?" * len(batch))
        rows = db.execute(
            "WITH RECURSIVE chain(start, id) AS ("
            f" SELECT id, previous_id FROM examples WHERE id IN ({marks}) AND previous_id IS NOT NULL"
            " UNION SELECT chain.start, e.previous_id FROM chain JOIN examples e ON e.id = chain.id"
            " WHERE e.previous_id IS NOT NULL)"
            " SELECT start, id FROM chain", batch).fetchall()
        best: dict[int, int] = {}
        for start, ancestor in rows:
            if ancestor in old_only and start not in best:
                best[start] = ancestor
        pairs.extend((old, new) for new, old in best.items())
    return sorted(pairs)
