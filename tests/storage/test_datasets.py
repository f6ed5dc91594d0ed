"""Dataset creation (all-or-nothing), lookup, content hash and cascade deletes."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlite_utils import Database

import storage
from engine.errors import Cancelled
from tests.storage.conftest import make_example


def _table_counts(db: Database) -> tuple[int, int, int]:
    return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                 for t in ("datasets", "examples", "examples_fts"))


def test_create_and_get(db: Database) -> None:
    examples = [make_example("hi", "hello", system="Be brief.", tags=["greet"], line=7)]
    created = storage.create_dataset(db, "  chat  ", examples, description="demo")
    assert created["name"] == "chat" and created["example_count"] == 1
    assert storage.get_dataset(db, "chat") == created
    assert storage.get_dataset(db, created["id"]) == created
    stored = next(storage.iter_examples(db, created["id"]))
    assert stored["messages"] == examples[0]["messages"]
    assert (stored["tags"], stored["source_file"], stored["source_line"]) == (
        ["greet"], "data.jsonl", 7)


def test_content_hash_matches_hand_computation(db: Database) -> None:
    examples = [
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "你好"}], "tags": ["b", "a"]},
        {"messages": [{"content": "x", "role": "user"}]},
    ]
    # Written out by hand: keys sorted, no spaces, non-ASCII kept, missing tags -> [].
    text = ('[{"messages":[{"content":"S","role":"system"},{"content":"hi","role":"user"},'
            '{"content":"你好","role":"assistant"}],"tags":["b","a"]},'
            '{"messages":[{"content":"x","role":"user"}],"tags":[]}]')
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert storage.content_hash(examples) == expected
    assert storage.create_dataset(db, "h", examples)["content_hash"] == expected


def test_empty_dataset_hashes_empty_list(db: Database) -> None:
    created = storage.create_dataset(db, "empty", [])
    assert created["content_hash"] == hashlib.sha256(b"[]").hexdigest()
    assert created["example_count"] == 0


def test_hash_ignores_source_and_extra_message_keys(db: Database) -> None:
    a = [{"messages": [{"role": "user", "content": "q", "weight": 0}], "source_line": 1}]
    b = [{"messages": [{"role": "user", "content": "q"}], "source_file": "other.csv"}]
    assert (storage.create_dataset(db, "a", a)["content_hash"]
            == storage.create_dataset(db, "b", b)["content_hash"])


def test_bad_example_rolls_back_everything(db: Database) -> None:
    examples: list[Any] = [make_example(f"q{i}", "a") for i in range(12000)]
    examples[11000] = {"messages": [{"role": "bot", "content": "x"}], "source_file": "f.jsonl",
                       "source_line": 11001}
    with pytest.raises(storage.InvalidRecord, match=r"example 11001 \(f.jsonl line 11001\).*'bot'"):
        storage.create_dataset(db, "broken", examples)
    assert _table_counts(db) == (0, 0, 0)


def test_cancel_from_progress_callback_rolls_back(db: Database) -> None:
    seen: list[tuple[int, int | None]] = []

    def on_progress(done: int, total: int | None) -> None:
        seen.append((done, total))
        if done >= 10000:
            raise Cancelled("cancelled by the user")

    examples = [make_example(f"q{i}", "a") for i in range(12000)]
    with pytest.raises(Cancelled):
        storage.create_dataset(db, "cancelled", examples, on_progress=on_progress)
    assert seen == [(5000, 12000), (10000, 12000)]
    assert _table_counts(db) == (0, 0, 0)
    # The connection is usable afterwards and the name is free.
    assert storage.create_dataset(db, "cancelled", examples[:2])["example_count"] == 2


def test_progress_total_unknown_for_generators(db: Database) -> None:
    seen: list[tuple[int, int | None]] = []
    gen = (make_example(f"q{i}", "a") for i in range(3))
    storage.create_dataset(db, "gen", gen, on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(3, None)]


def test_duplicate_name_is_conflict(db: Database, three: dict[str, Any]) -> None:
    with pytest.raises(storage.Conflict, match="'three' already exists"):
        storage.create_dataset(db, "three", [])
    assert _table_counts(db) == (1, 3, 3)


def test_not_found_names_what_was_missing(db: Database) -> None:
    with pytest.raises(storage.NotFound, match="no dataset with name 'nope'"):
        storage.get_dataset(db, "nope")
    with pytest.raises(LookupError, match="no dataset with id 42"):
        storage.get_dataset(db, 42)


def test_list_and_update(db: Database, three: dict[str, Any]) -> None:
    storage.create_dataset(db, "Alpha", [])
    assert [d["name"] for d in storage.list_datasets(db)] == ["Alpha", "three"]
    renamed = storage.update_dataset(db, three["id"], name="four", description="d")
    assert (renamed["name"], renamed["description"]) == ("four", "d")
    with pytest.raises(storage.Conflict):
        storage.update_dataset(db, three["id"], name="Alpha")


def test_delete_cascades_to_examples_and_index(db: Database, three: dict[str, Any]) -> None:
    other = storage.create_dataset(db, "other", [make_example("keep", "me")])
    run = storage.start_run(db, "train", {}, dataset_id=three["id"])
    storage.delete_dataset(db, "three")
    assert _table_counts(db) == (1, 1, 1)
    assert storage.search_examples(db, other["id"], "keep") != []
    after = storage.get_run(db, run["id"])
    assert after["dataset_id"] is None and after["dataset_hash"] == three["content_hash"]
