"""Paging, full-text search and single-example edits (positions, hash, count, index)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from sqlite_utils import Database

import storage
from tests.storage.conftest import make_example


def _hand_hash(pairs: list[tuple[str, str]]) -> str:
    """Hash of user/assistant pairs with no tags, JSON assembled by string formatting."""
    items = ",".join('{"messages":[{"content":%s,"role":"user"},{"content":%s,"role":"assistant"}],'
                     '"tags":[]}' % (json.dumps(q), json.dumps(a)) for q, a in pairs)
    return hashlib.sha256(f"[{items}]".encode()).hexdigest()


def _users(db: Database, dataset_id: int) -> list[str]:
    return [ex["messages"][0]["content"] for ex in storage.iter_examples(db, dataset_id)]


def test_paging(db: Database) -> None:
    dataset = storage.create_dataset(db, "p", [make_example(f"q{i}", "a") for i in range(25)])
    page = list(storage.iter_examples(db, dataset["id"], offset=10, limit=5))
    assert [ex["position"] for ex in page] == [10, 11, 12, 13, 14]
    assert [ex["messages"][0]["content"] for ex in page] == ["q10", "q11", "q12", "q13", "q14"]
    assert len(list(storage.iter_examples(db, dataset["id"], offset=20))) == 5
    assert list(storage.iter_examples(db, dataset["id"], offset=25, limit=5)) == []
    assert storage.count_examples(db, dataset["id"]) == 25


def test_search_english_and_cjk(db: Database) -> None:
    dataset = storage.create_dataset(db, "s", [
        make_example("How do I bake bread?", "Knead the dough."),
        make_example("今天天气怎么样？", "今天是晴天。"),
        make_example("日本語のテキスト", "はい、東京です。"),
        make_example("Unrelated", "nothing here"),
    ])
    found = lambda q: [ex["position"] for ex in storage.search_examples(db, dataset["id"], q)]
    assert found("bread") == [0]
    assert found("KNEAD dough") == [0]          # case-insensitive, terms ANDed across messages
    assert found("bread nothing") == []
    assert found("天气") == [1]                   # two-character word (LIKE fallback)
    assert found("晴天") == [1]
    assert found("東京") == [2]
    assert found("日本語") == [2]                # three characters (trigram MATCH)
    assert found("是") == [1]
    assert found("   ") == []


def test_search_treats_operators_and_wildcards_as_text(db: Database) -> None:
    dataset = storage.create_dataset(db, "ops", [
        make_example('say "NEAR" OR (x)*', "100% sure"), make_example("plain", "1000 sure")])
    found = lambda q: [ex["position"] for ex in storage.search_examples(db, dataset["id"], q)]
    assert found('"NEAR"') == [0]
    assert found("OR") == [0]
    assert found("(x)*") == [0]
    assert found("0%") == [0]
    assert found("_") == []


def test_search_is_scoped_to_dataset_and_limited(db: Database) -> None:
    a = storage.create_dataset(db, "a", [make_example(f"apple {i}", "x") for i in range(5)])
    b = storage.create_dataset(db, "b", [make_example("apple pie", "x")])
    assert len(storage.search_examples(db, a["id"], "apple", limit=3)) == 3
    assert [ex["dataset_id"] for ex in storage.search_examples(db, b["id"], "apple")] == [b["id"]]


def test_add_example_at_position(db: Database, three: dict[str, Any]) -> None:
    added = storage.add_example(db, three["id"], make_example("new", "n"), position=1)
    assert added["position"] == 1
    assert _users(db, three["id"]) == ["q0", "new", "q1", "q2"]
    dataset = storage.get_dataset(db, three["id"])
    assert dataset["example_count"] == 4
    assert dataset["content_hash"] == _hand_hash([("q0", "a0"), ("new", "n"), ("q1", "a1"),
                                                  ("q2", "a2")])
    assert [ex["id"] for ex in storage.search_examples(db, three["id"], "new")] == [added["id"]]
    storage.add_example(db, three["id"], make_example("last", "l"))
    assert _users(db, three["id"])[-1] == "last"
    with pytest.raises(storage.InvalidRecord, match="outside 0..5"):
        storage.add_example(db, three["id"], make_example("x", "y"), position=9)


def test_update_example_refreshes_hash_and_index(db: Database, three: dict[str, Any]) -> None:
    middle = list(storage.iter_examples(db, three["id"]))[1]
    new_messages = [{"role": "user", "content": "changed"}, {"role": "assistant", "content": "c"}]
    updated = storage.update_example(db, middle["id"], messages=new_messages)
    assert updated["messages"] == new_messages and updated["tags"] == []
    assert storage.get_dataset(db, three["id"])["content_hash"] == _hand_hash(
        [("q0", "a0"), ("changed", "c"), ("q2", "a2")])
    # Example rows are immutable: the edit is a new row in a new version, pointing back.
    found = storage.search_examples(db, three["id"], "changed")[0]
    assert found["id"] == updated["id"] != middle["id"] and found["previous_id"] == middle["id"]
    assert storage.search_examples(db, three["id"], "q1") == []
    assert storage.update_example(db, updated["id"], tags=["t"])["tags"] == ["t"]
    with pytest.raises(storage.InvalidRecord):
        storage.update_example(db, updated["id"], messages=[{"role": "user", "content": 5}])


def test_delete_example_closes_gap(db: Database, three: dict[str, Any]) -> None:
    first = next(storage.iter_examples(db, three["id"]))
    storage.delete_example(db, first["id"])
    remaining = list(storage.iter_examples(db, three["id"]))
    assert [(ex["position"], ex["messages"][0]["content"]) for ex in remaining] == [
        (0, "q1"), (1, "q2")]
    dataset = storage.get_dataset(db, three["id"])
    assert dataset["example_count"] == 2
    assert dataset["content_hash"] == _hand_hash([("q1", "a1"), ("q2", "a2")])
    assert storage.search_examples(db, three["id"], "q0") == []
    with pytest.raises(storage.InvalidRecord, match="not in the current version"):
        storage.delete_example(db, first["id"])
    with pytest.raises(storage.NotFound, match="no example with id 999"):
        storage.delete_example(db, 999)


@pytest.mark.parametrize("bad, reason", [
    ({"messages": []}, "non-empty list"),
    ({"messages": [{"role": "user"}]}, "message 1 content must be text"),
    ({"messages": [{"role": "user", "content": "\ud800"}]}, "not valid UTF-8"),
    ({"messages": [{"role": "user", "content": "x"}], "tags": "a"}, "'tags' must be a list"),
    ({"messages": [{"role": "user", "content": "x"}], "source_line": "3"}, "whole number"),
    ("just text", "must be an object"),
])
def test_invalid_examples_are_refused(db: Database, three: dict[str, Any], bad: Any,
                                      reason: str) -> None:
    with pytest.raises(storage.InvalidRecord, match=reason):
        storage.add_example(db, three["id"], bad)
    assert storage.get_dataset(db, three["id"])["example_count"] == 3


def test_search_finds_composed_and_decomposed_accents(db: Database) -> None:
    import unicodedata

    composed, decomposed = "café", unicodedata.normalize("NFD", "café")
    assert composed != decomposed
    dataset = storage.create_dataset(db, "accents", [
        {"messages": [{"role": "user", "content": f"one {composed} please"}]},
        {"messages": [{"role": "user", "content": f"two {decomposed} please"}]}])
    for query in (composed, decomposed):
        found = storage.search_examples(db, dataset["id"], query)
        assert [e["messages"][0]["content"][:3] for e in found] == ["one", "two"]
    assert len(storage.search_ids(db, dataset["id"], "please")) == 2
