"""Reading, searching and editing the examples of one dataset.

Positions within a dataset are kept contiguous (0..n-1): inserting shifts later examples
down, deleting shifts them up. Every edit refreshes the dataset's hash and count in the
same transaction.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from sqlite_utils import Database

from storage.datasets import get_dataset, insert_example_rows, refresh_dataset_stats
from storage.db import decode, fetch_one
from storage.errors import InvalidRecord
from storage.validation import normalize_example

_JSON_COLUMNS = ("messages", "tags")

# Trigram FTS5 only matches terms of at least 3 characters; shorter ones (common in
# Chinese and Japanese, e.g. two-character words) fall back to LIKE on the indexed text.
_MIN_MATCH_CHARS = 3


def _example(row: Mapping[str, Any]) -> dict[str, Any]:
    return decode(row, _JSON_COLUMNS)


def get_example(db: Database, example_id: int) -> dict[str, Any]:
    """One example: ``{"id", "dataset_id", "position", "messages", "tags", "source_file",
    "source_line"}`` with ``messages`` and ``tags`` parsed.

    Raises:
        NotFound: no example has this id.
    """
    return _example(fetch_one(db, "SELECT * FROM examples WHERE id = ?", [example_id],
                              f"no example with id {example_id}"))


def iter_examples(db: Database, dataset_id: int, *, offset: int = 0,
                  limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Examples of a dataset in position order, one page at a time.

    Args:
        db: the open database.
        dataset_id: the dataset.
        offset: number of examples to skip (0-based row of the first one returned).
        limit: at most this many; ``None`` for all the rest.

    Yields:
        Example dicts as returned by :func:`get_example`.
    """
    rows = db.query(
        "SELECT * FROM examples WHERE dataset_id = ? ORDER BY position, id LIMIT ? OFFSET ?",
        [dataset_id, -1 if limit is None else limit, offset])
    for row in rows:
        yield _example(row)


def count_examples(db: Database, dataset_id: int) -> int:
    """Number of examples stored for a dataset (0 for an unknown id)."""
    return db.execute("SELECT count(*) FROM examples WHERE dataset_id = ?",
                      [dataset_id]).fetchone()[0]


def _search_sql(terms: list[str]) -> tuple[str, list[str]]:
    long_terms = [t for t in terms if len(t) >= _MIN_MATCH_CHARS]
    short_terms = [t for t in terms if len(t) < _MIN_MATCH_CHARS]
    conditions, params = [], []
    if long_terms:
        # Each term quoted as an FTS5 string (quotes doubled) so user text is never syntax;
        # space-separated strings are ANDed.
        conditions.append("examples_fts MATCH ?")
        params.append(" ".join('"' + t.replace('"', '""') + '"' for t in long_terms))
    for term in short_terms:
        conditions.append("examples_fts.text LIKE ? ESCAPE '\\'")
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params.append(f"%{escaped}%")
    return " AND ".join(conditions), params


def search_examples(db: Database, dataset_id: int, query: str,
                    limit: int = 100) -> list[dict[str, Any]]:
    """Full-text search over the message contents of one dataset's examples.

    Every whitespace-separated term must occur (case-insensitive substring match, so it
    works for Chinese/Japanese text without spaces). Uses the trigram FTS5 index; terms
    shorter than 3 characters use ``LIKE`` on the same indexed text.

    Args:
        db: the open database.
        dataset_id: the dataset searched.
        query: the user's search text; FTS5 operators in it are treated as plain text.
        limit: at most this many results.

    Returns:
        Matching examples (as :func:`get_example`) in position order; empty for a blank query.
    """
    terms = query.split()
    if not terms:
        return []
    where, params = _search_sql(terms)
    rows = db.query(
        # CROSS JOIN fixes the FTS table as the outer loop; with a plain JOIN the planner
        # walks the dataset's index and runs the MATCH once per example (seconds at 100k).
        "SELECT examples.* FROM examples_fts CROSS JOIN examples"
        " ON examples.id = examples_fts.rowid"
        f" WHERE examples.dataset_id = ? AND {where} ORDER BY examples.position LIMIT ?",
        [dataset_id, *params, limit])
    return [_example(row) for row in rows]


def add_example(db: Database, dataset_id: int, example: Mapping[str, Any], *,
                position: int | None = None) -> dict[str, Any]:
    """Insert one example and refresh the dataset's hash and count.

    Args:
        db: the open database.
        dataset_id: the dataset.
        example: an example dict (see :mod:`storage.validation`).
        position: 0-based place to insert at (later examples move down); ``None`` appends.

    Returns:
        The stored example (as :func:`get_example`).

    Raises:
        NotFound: no such dataset.
        InvalidRecord: the example is malformed, or ``position`` is outside 0..count.
    """
    row = normalize_example(example)
    with db.atomic():
        count = get_dataset(db, dataset_id)["example_count"]
        position = count if position is None else position
        if not 0 <= position <= count:
            raise InvalidRecord(f"position {position} is outside 0..{count}")
        db.execute("UPDATE examples SET position = position + 1"
                   " WHERE dataset_id = ? AND position >= ?", [dataset_id, position])
        insert_example_rows(db, dataset_id, position, [row])
        example_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        refresh_dataset_stats(db, dataset_id)
    return get_example(db, example_id)


def update_example(db: Database, example_id: int, *, messages: list[dict[str, str]] | None = None,
                   tags: list[str] | None = None) -> dict[str, Any]:
    """Replace an example's messages and/or tags (``None`` keeps the current value).

    Returns:
        The updated example (as :func:`get_example`).

    Raises:
        NotFound: no such example.
        InvalidRecord: the new messages or tags are malformed.
    """
    with db.atomic():
        current = get_example(db, example_id)
        merged = {**current, "messages": current["messages"] if messages is None else messages,
                  "tags": current["tags"] if tags is None else tags}
        row = normalize_example(merged, current["position"])
        db.execute("UPDATE examples SET messages = ?, tags = ? WHERE id = ?",
                   [row.messages_json, row.tags_json, example_id])
        refresh_dataset_stats(db, current["dataset_id"])
    return get_example(db, example_id)


def delete_example(db: Database, example_id: int) -> None:
    """Delete one example; later examples move up one position.

    Raises:
        NotFound: no such example.
    """
    with db.atomic():
        current = get_example(db, example_id)
        db.execute("DELETE FROM examples WHERE id = ?", [example_id])
        db.execute("UPDATE examples SET position = position - 1"
                   " WHERE dataset_id = ? AND position > ?",
                   [current["dataset_id"], current["position"]])
        refresh_dataset_stats(db, current["dataset_id"])
