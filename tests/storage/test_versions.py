"""Dataset versions: immutability, lineage, shared rows, undo, diff, splits, tags, migration."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from sqlite_utils import Database

import storage
from storage.migrations import MIGRATIONS
from tests.storage.conftest import make_example


def _hand_hash(items: list[tuple[str, str, str | None]]) -> str:
    """The content hash written out by hand: json.dumps of the documented objects."""
    objects = []
    for user, reply, split in items:
        obj: dict[str, Any] = {"messages": [{"role": "user", "content": user},
                                            {"role": "assistant", "content": reply}], "tags": []}
        if split is not None:
            obj["split"] = split
        objects.append(obj)
    text = json.dumps(objects, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _texts(db: Database, dataset_id: int, **kwargs: Any) -> list[str]:
    return [e["messages"][0]["content"] for e in storage.iter_examples(db, dataset_id, **kwargs)]


def test_import_is_version_1(db: Database, three: dict[str, Any]) -> None:
    (version,) = storage.list_versions(db, three["id"])
    assert (version["number"], version["operation"], version["parent_id"]) == (1, "import", None)
    assert version["example_count"] == 3 and version["content_hash"] == three["content_hash"]
    assert three["head_version_id"] == version["id"]


def test_each_edit_is_a_new_version_and_old_versions_stay(db: Database,
                                                          three: dict[str, Any]) -> None:
    first = list(storage.iter_examples(db, three["id"]))
    storage.update_example(db, first[1]["id"], messages=[
        {"role": "user", "content": "q1 edited"}, {"role": "assistant", "content": "a1"}])
    storage.delete_example(db, first[0]["id"])
    storage.add_example(db, three["id"], make_example("q3", "a3"))
    history = storage.list_versions(db, three["id"])
    assert [(v["number"], v["operation"], v["example_count"]) for v in history] == [
        (1, "import", 3), (2, "edit", 3), (3, "edit", 2), (4, "edit", 3)]
    assert [v["parent_id"] for v in history] == [None] + [v["id"] for v in history[:-1]]
    assert _texts(db, three["id"]) == ["q1 edited", "q2", "q3"]
    assert _texts(db, three["id"], version_id=history[0]["id"]) == ["q0", "q1", "q2"]
    assert _texts(db, three["id"], version_id=history[1]["id"]) == ["q0", "q1 edited", "q2"]
    # Shared rows: 3 imported + 1 edited + 1 added example rows, not 3 + 3 + 2 + 3 copies.
    assert db.execute("SELECT count(*) FROM examples").fetchone()[0] == 5
    assert storage.get_dataset(db, three["id"])["content_hash"] == _hand_hash(
        [("q1 edited", "a1", None), ("q2", "a2", None), ("q3", "a3", None)])


def test_undo_goes_back_to_the_parent_and_checkout_forward(db: Database,
                                                           three: dict[str, Any]) -> None:
    first = next(storage.iter_examples(db, three["id"]))
    storage.delete_example(db, first["id"])
    assert storage.undo(db, three["id"])["number"] == 1
    assert _texts(db, three["id"]) == ["q0", "q1", "q2"]
    assert storage.get_dataset(db, three["id"])["content_hash"] == three["content_hash"]
    with pytest.raises(storage.InvalidRecord, match="nothing to undo"):
        storage.undo(db, three["id"])
    assert storage.checkout(db, three["id"], 2)["example_count"] == 2
    assert _texts(db, three["id"]) == ["q1", "q2"]
    with pytest.raises(storage.NotFound, match="has no version 7"):
        storage.checkout(db, three["id"], 7)


def test_failed_operation_changes_nothing(db: Database, three: dict[str, Any]) -> None:
    ids = [e["id"] for e in storage.iter_examples(db, three["id"])]
    with pytest.raises(storage.InvalidRecord, match="example 2: 'messages'"):
        storage.create_version(db, three["id"], operation="augment", remove=[ids[0]],
                               append=[make_example("x", "y"), {"messages": []}])
    with pytest.raises(storage.InvalidRecord, match="split 'dev' is not allowed"):
        storage.create_version(db, three["id"], operation="split", splits={ids[0]: "dev"})
    with pytest.raises(storage.InvalidRecord, match="operation 'magic'"):
        storage.create_version(db, three["id"], operation="magic")
    assert len(storage.list_versions(db, three["id"])) == 1
    assert db.execute("SELECT count(*) FROM examples").fetchone()[0] == 3
    assert storage.get_dataset(db, three["id"])["content_hash"] == three["content_hash"]


def test_cancel_during_append_leaves_nothing(db: Database, three: dict[str, Any]) -> None:
    class Stop(Exception):
        pass

    def cancel(done: int, total: int | None) -> None:
        raise Stop

    with pytest.raises(Stop):
        storage.create_version(db, three["id"], operation="augment",
                               append=[make_example("x", "y")], on_progress=cancel)
    assert len(storage.list_versions(db, three["id"])) == 1
    assert _texts(db, three["id"]) == ["q0", "q1", "q2"]


def test_splits_are_part_of_the_version_and_its_hash(db: Database,
                                                     three: dict[str, Any]) -> None:
    ids = [e["id"] for e in storage.iter_examples(db, three["id"])]
    version = storage.create_version(db, three["id"], operation="split",
                                     splits={ids[0]: "train", ids[1]: "validation",
                                             ids[2]: "test"})
    assert version["content_hash"] == _hand_hash(
        [("q0", "a0", "train"), ("q1", "a1", "validation"), ("q2", "a2", "test")])
    assert _texts(db, three["id"], split="validation") == ["q1"]
    # An edit keeps the edited example's split.
    edited = storage.update_example(db, ids[1], messages=[
        {"role": "user", "content": "q1b"}, {"role": "assistant", "content": "a1"}])
    assert edited["split"] == "validation"


def test_diff_counts_added_removed_changed_and_resplit(db: Database,
                                                       three: dict[str, Any]) -> None:
    v1 = three["head_version_id"]
    ids = [e["id"] for e in storage.iter_examples(db, three["id"])]
    storage.update_example(db, ids[0], messages=[
        {"role": "user", "content": "q0 once"}, {"role": "assistant", "content": "a0"}])
    twice = storage.search_examples(db, three["id"], "once")[0]
    storage.update_example(db, twice["id"], messages=[
        {"role": "user", "content": "q0 twice"}, {"role": "assistant", "content": "a0"}])
    storage.delete_example(db, ids[1])
    storage.add_example(db, three["id"], make_example("new", "n"))
    last = storage.create_version(db, three["id"], operation="split", splits={ids[2]: "test"})
    diff = storage.diff_versions(db, v1, last["id"])
    # Hand count: q0 edited twice -> 1 changed (followed through both edits); q1 deleted ->
    # 1 removed; "new" -> 1 added; q2 moved from no split to test -> 1 resplit.
    assert diff["counts"] == {"added": 1, "removed": 1, "changed": 1, "resplit": 1}
    assert diff["removed"] == [ids[1]] and diff["changed"][0][0] == ids[0]
    assert diff["resplit"] == [(ids[2], None, "test")]
    back = storage.diff_versions(db, last["id"], v1)
    assert back["counts"] == {"added": 1, "removed": 1, "changed": 1, "resplit": 1}
    assert back["added"] == [ids[1]]


def test_bulk_tagging_from_a_search_and_label_counts(db: Database) -> None:
    dataset = storage.create_dataset(db, "tags", [
        make_example("my invoice is wrong", "sorry"), make_example("hello", "hi"),
        make_example("refund my invoice", "ok", tags=["billing"]), make_example("hey", "hi")])
    hits = storage.search_ids(db, dataset["id"], "invoice")
    version = storage.tag_examples(db, dataset["id"], hits, add=["billing", "complaint"])
    # Hand count: 2 hits; the second already had billing; both get complaint.
    assert version["operation"] == "tag" and version["example_count"] == 4
    assert storage.tag_counts(db, dataset["id"]) == {"billing": 2, "complaint": 2}
    storage.tag_examples(db, dataset["id"], storage.search_ids(db, dataset["id"], "hello"),
                         add=["greeting"])
    assert storage.tag_counts(db, dataset["id"])["greeting"] == 1
    with pytest.raises(storage.InvalidRecord, match="at least one tag"):
        storage.tag_examples(db, dataset["id"], hits)


def test_runs_record_the_version_they_used(db: Database, three: dict[str, Any]) -> None:
    run = storage.start_run(db, "train", {}, dataset_id=three["id"])
    assert run["dataset_version_id"] == three["head_version_id"]
    assert run["dataset_hash"] == three["content_hash"]


def test_migration_makes_existing_datasets_version_1(tmp_path: Any) -> None:
    db = Database(tmp_path / "old.db")
    MIGRATIONS.apply(db, stop_before="0002_dataset_versions")
    db.execute("INSERT INTO datasets (id, name, created, content_hash, example_count)"
               " VALUES (1, 'old', 'now', 'h', 2)")
    for position, text in [(1, "second"), (0, "first")]:
        db.execute("INSERT INTO examples (dataset_id, position, messages) VALUES (1, ?, ?)",
                   [position, json.dumps([{"role": "user", "content": text}])])
    db.execute("INSERT INTO runs (kind, dataset_id, dataset_hash, status) VALUES"
               " ('train', 1, 'h', 'succeeded')")
    storage.migrations.migrate(db)
    (version,) = storage.list_versions(db, 1)
    assert (version["number"], version["example_count"]) == (1, 2)
    assert _texts(db, 1) == ["first", "second"]
    assert storage.get_run(db, 1)["dataset_version_id"] == version["id"]


def test_a_reader_on_another_thread_sees_the_version(file_db: Database) -> None:
    import threading

    dataset = storage.create_dataset(file_db, "t", [make_example("q", "a")])
    path = storage.database_path(file_db)
    seen: list[str] = []

    def read() -> None:
        reader = storage.open_reader(path)
        try:
            seen.extend(e["messages"][0]["content"] for e in storage.iter_examples(
                reader, dataset["id"], version_id=dataset["head_version_id"]))
            with pytest.raises(Exception, match="readonly"):
                reader.execute("DELETE FROM examples")
        finally:
            reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    assert seen == ["q"]
    assert storage.database_path(storage.open_memory_database()) is None
