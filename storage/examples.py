"""Reading, searching and editing the examples of a dataset version.

Reads take the dataset's head version unless a version id is given. Every edit (add, update,
delete, tag) makes a new version (operation ``edit`` or ``tag``) and moves the head to it, in
one transaction; the previous version stays as it was, so an edit can be undone.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Iterable, Iterator, Mapping

from sqlite_utils import Database

from storage import versions
from storage.db import decode, fetch_one
from storage.errors import InvalidRecord

_JSON_COLUMNS = ("messages", "tags")

# Trigram FTS5 only matches terms of at least 3 characters; shorter ones (common in
# Chinese and Japanese, e.g. two-character words) fall back to LIKE on the indexed text.
_MIN_MATCH_CHARS = 3

# Columns of a version's example, as the reading functions return them; ``position`` and
# ``split`` come from the version, the rest from the (immutable) example row.
_SELECT = ("SELECT e.id, e.dataset_id, ve.position, ve.split, e.messages, e.tags,"
           " e.source_file, e.source_line, e.synthetic, e.origin_id, e.previous_id"
           " FROM version_examples ve JOIN examples e ON e.id = ve.example_id")


def _example(row: Mapping[str, Any]) -> dict[str, Any]:
    out = decode(row, _JSON_COLUMNS)
    if "synthetic" in out:
        out["synthetic"] = bool(out["synthetic"])
    return out


def get_example(db: Database, example_id: int, *, version_id: int | None = None) -> dict[str, Any]:
    """One example: ``{"id", "dataset_id", "position", "split", "messages", "tags",
    "source_file", "source_line", "synthetic", "origin_id", "previous_id"}`` with ``messages``
    and ``tags`` parsed; ``position`` and ``split`` as in ``version_id`` (default: the head of
    the example's dataset; both ``None`` when the example is not in that version).

    Raises:
        NotFound: no example has this id.
    """
    row = fetch_one(db, "SELECT e.*, d.head_version_id FROM examples e JOIN datasets d"
                    " ON d.id = e.dataset_id WHERE e.id = ?", [example_id],
                    f"no example with id {example_id}")
    version_id = row.pop("head_version_id") if version_id is None else version_id
    place = db.execute("SELECT position, split FROM version_examples"
                       " WHERE example_id = ? AND version_id = ?",
                       [example_id, version_id]).fetchone()
    row["position"], row["split"] = place if place else (None, None)
    return _example(row)


def iter_examples(db: Database, dataset_id: int, *, offset: int = 0, limit: int | None = None,
                  version_id: int | None = None,
                  split: str | None = None) -> Iterator[dict[str, Any]]:
    """Examples of a dataset version in position order, streamed from SQLite.

    Args:
        db: the open database.
        dataset_id: the dataset.
        offset: number of examples to skip (0-based row of the first one returned).
        limit: at most this many; ``None`` for all the rest.
        version_id: the version; ``None`` for the dataset's head.
        split: only examples with this split label (``"train"``, ``"validation"``, ``"test"``).

    Yields:
        Example dicts as returned by :func:`get_example`.
    """
    version_id = versions.head_version_id(db, dataset_id) if version_id is None else version_id
    where, params = "ve.version_id = ?", [version_id]
    if split is not None:
        where, params = where + " AND ve.split = ?", [*params, split]
    rows = db.query(f"{_SELECT} WHERE {where} ORDER BY ve.position LIMIT ? OFFSET ?",
                    [*params, -1 if limit is None else limit, offset])
    for row in rows:
        yield _example(row)


def count_examples(db: Database, dataset_id: int, *, version_id: int | None = None) -> int:
    """Number of examples in a dataset version (default: the head; 0 for an unknown id)."""
    if version_id is None:
        row = db.execute("SELECT head_version_id FROM datasets WHERE id = ?",
                         [dataset_id]).fetchone()
        if row is None:
            return 0
        version_id = row[0]
    return db.execute("SELECT count(*) FROM version_examples WHERE version_id = ?",
                      [version_id]).fetchone()[0]


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


def search_examples(db: Database, dataset_id: int, query: str, limit: int = 100, *,
                    version_id: int | None = None) -> list[dict[str, Any]]:
    """Full-text search over the message contents of a dataset version's examples.

    Every whitespace-separated term must occur (case-insensitive substring match, so it
    works for Chinese/Japanese text without spaces). Uses the trigram FTS5 index; terms
    shorter than 3 characters use ``LIKE`` on the same indexed text.

    Args:
        db: the open database.
        dataset_id: the dataset searched.
        query: the user's search text; FTS5 operators in it are treated as plain text.
        limit: at most this many results.
        version_id: the version searched; ``None`` for the dataset's head.

    Returns:
        Matching examples (as :func:`get_example`) in position order; empty for a blank query.
    """
    if not query.split():
        return []
    version_id = versions.head_version_id(db, dataset_id) if version_id is None else version_id
    # Stored text keeps the Unicode form it was imported in: "café" typed composed (NFC) must
    # also find it written decomposed (NFD), and the other way round.
    forms = dict.fromkeys(unicodedata.normalize(f, query) for f in ("NFC", "NFD"))
    found: dict[int, dict[str, Any]] = {}
    for form in forms:
        for row in _search(db, version_id, form.split(), limit):
            found.setdefault(row["id"], row)
    ordered = sorted(found.values(), key=lambda e: e["position"])
    return ordered if limit < 0 else ordered[:limit]


def _search(db: Database, version_id: int, terms: list[str], limit: int) -> list[dict[str, Any]]:
    where, params = _search_sql(terms)
    rows = db.query(
        # CROSS JOIN fixes the FTS table as the outer loop; with a plain JOIN the planner
        # walks the version's rows and runs the MATCH once per example (seconds at 100k).
        "SELECT e.id, e.dataset_id, ve.position, ve.split, e.messages, e.tags, e.source_file,"
        " e.source_line, e.synthetic, e.origin_id, e.previous_id"
        " FROM examples_fts CROSS JOIN examples e ON e.id = examples_fts.rowid"
        " CROSS JOIN version_examples ve ON ve.example_id = e.id AND ve.version_id = ?"
        f" WHERE {where} ORDER BY ve.position LIMIT ?",
        [version_id, *params, limit])
    return [_example(row) for row in rows]


def search_ids(db: Database, dataset_id: int, query: str, *,
               version_id: int | None = None) -> list[int]:
    """Ids of every example of a version whose text matches ``query`` (as
    :func:`search_examples`, without a limit), in position order."""
    return [e["id"] for e in search_examples(db, dataset_id, query, limit=-1,
                                             version_id=version_id)]


def _version_of(db: Database, example_id: int) -> tuple[dict[str, Any], int]:
    """The example (as in its dataset's head) and that dataset's id; refuses an example that
    is not in the head (editing an old version would silently drop later changes)."""
    current = get_example(db, example_id)
    if current["position"] is None:
        raise InvalidRecord(f"example {example_id} is not in the current version of its "
                            "dataset; go back to the version that has it first")
    return current, current["dataset_id"]


def add_example(db: Database, dataset_id: int, example: Mapping[str, Any], *,
                position: int | None = None) -> dict[str, Any]:
    """Add one example in a new version (operation ``edit``).

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
    with db.atomic():
        version = versions.create_version(db, dataset_id, operation="edit",
                                          description="added 1 example", append=[example],
                                          insert_at=position)
        place = version["example_count"] - 1 if position is None else position
        row = db.execute("SELECT example_id FROM version_examples"
                         " WHERE version_id = ? AND position = ?", [version["id"], place]).fetchone()
    return get_example(db, row[0])


def update_example(db: Database, example_id: int, *, messages: list[dict[str, str]] | None = None,
                   tags: list[str] | None = None) -> dict[str, Any]:
    """Replace an example's messages and/or tags in a new version (operation ``edit``).

    ``None`` keeps the current value. The edited example gets a new id (example rows are
    immutable; ``previous_id`` points at the old one) and keeps its place and split.

    Returns:
        The new example (as :func:`get_example`).

    Raises:
        NotFound: no such example.
        InvalidRecord: the new messages or tags are malformed, or the example is not in the
            current version of its dataset.
    """
    with db.atomic():
        current, dataset_id = _version_of(db, example_id)
        merged = {**current, "messages": current["messages"] if messages is None else messages,
                  "tags": current["tags"] if tags is None else tags}
        if (merged["messages"], merged["tags"]) == (current["messages"], current["tags"]):
            return current  # saved unchanged: no new version
        version = versions.create_version(
            db, dataset_id, operation="edit", description=f"edited example {current['position'] + 1}",
            replace={example_id: merged})
        row = db.execute("SELECT example_id FROM version_examples WHERE version_id = ?"
                         " AND position = ?", [version["id"], current["position"]]).fetchone()
    return get_example(db, row[0])


def delete_example(db: Database, example_id: int) -> None:
    """Leave one example out of a new version (operation ``edit``); later ones move up.

    Raises:
        NotFound: no such example.
        InvalidRecord: the example is not in the current version of its dataset.
    """
    with db.atomic():
        current, dataset_id = _version_of(db, example_id)
        versions.create_version(db, dataset_id, operation="edit",
                                description=f"deleted example {current['position'] + 1}",
                                remove=[example_id])


def tag_examples(db: Database, dataset_id: int, example_ids: Iterable[int], *,
                 add: Iterable[str] = (), remove: Iterable[str] = (),
                 description: str = "") -> dict[str, Any]:
    """Add and/or remove tags on many examples in one new version (operation ``tag``).

    Examples whose tags do not change are shared with the parent version unchanged.

    Args:
        db: the open database.
        dataset_id: the dataset (its head is changed).
        example_ids: examples of the head version, e.g. :func:`search_ids` of a query.
        add: tags to add (kept in first-seen order, no duplicates).
        remove: tags to remove.
        description: shown in the history; default names the tags and the count.

    Returns:
        The new version (as :func:`storage.versions.get_version`).

    Raises:
        InvalidRecord: no tag given, an empty tag, or an example not in the head version.
    """
    add, remove = [t.strip() for t in add], {t.strip() for t in remove}
    if not add and not remove:
        raise InvalidRecord("give at least one tag to add or remove")
    if "" in add or "" in remove:
        raise InvalidRecord("a tag cannot be empty")
    head = versions.head_version_id(db, dataset_id)
    replace = {}
    for example_id in example_ids:
        current = get_example(db, example_id, version_id=head)
        if current["position"] is None or current["dataset_id"] != dataset_id:
            raise InvalidRecord(f"example {example_id} is not in the current version of "
                                f"dataset {dataset_id}")
        tags = [t for t in current["tags"] if t not in remove]
        tags += [t for t in dict.fromkeys(add) if t not in tags]
        if tags != current["tags"]:
            replace[example_id] = {**current, "tags": tags}
    text = description or _tag_description(add, remove, len(replace))
    return versions.create_version(db, dataset_id, operation="tag", description=text,
                                   params={"add": add, "remove": sorted(remove)},
                                   replace=replace)


def _tag_description(add: list[str], remove: set[str], count: int) -> str:
    noun = "example" if count == 1 else "examples"
    parts = ([f"tagged {count} {noun} with {', '.join(add)}"] if add else []) + (
        [f"removed tag {', '.join(sorted(remove))}"] if remove else [])
    return "; ".join(parts)


def tag_counts(db: Database, dataset_id: int, *, version_id: int | None = None) -> dict[str, int]:
    """How many examples of a version carry each tag, most frequent first."""
    version_id = versions.head_version_id(db, dataset_id) if version_id is None else version_id
    rows = db.execute(
        "SELECT j.value, count(*) FROM version_examples ve JOIN examples e ON e.id = ve.example_id,"
        " json_each(e.tags) j WHERE ve.version_id = ? GROUP BY j.value"
        " ORDER BY count(*) DESC, j.value", [version_id]).fetchall()
    return {tag: count for tag, count in rows}
