"""Saved chats and their messages."""

from __future__ import annotations

import pytest
from sqlite_utils import Database

import storage


def test_chat_round_trip(db: Database) -> None:
    chat = storage.create_chat(db, "First", model_path="/m/model.gguf", system_prompt="Be kind.")
    storage.add_chat_message(db, chat["id"], "user", "你好")
    reply = storage.add_chat_message(db, chat["id"], "assistant", "Hello!")
    assert reply["position"] == 1
    messages = storage.get_chat_messages(db, chat["id"])
    assert [(m["position"], m["role"], m["content"]) for m in messages] == [
        (0, "user", "你好"), (1, "assistant", "Hello!")]
    updated = storage.update_chat(db, chat["id"], title="Renamed")
    assert (updated["title"], updated["model_path"], updated["system_prompt"]) == (
        "Renamed", "/m/model.gguf", "Be kind.")


def test_list_newest_first_and_delete_cascades(db: Database) -> None:
    old = storage.create_chat(db, "old")
    new = storage.create_chat(db, "new")
    storage.add_chat_message(db, old["id"], "user", "hi")
    assert [c["id"] for c in storage.list_chats(db)] == [new["id"], old["id"]]
    storage.delete_chat(db, old["id"])
    assert db.execute("SELECT count(*) FROM chat_messages").fetchone()[0] == 0
    with pytest.raises(storage.NotFound, match=f"no chat with id {old['id']}"):
        storage.delete_chat(db, old["id"])
    with pytest.raises(storage.NotFound):
        storage.get_chat_messages(db, old["id"])


def test_bad_messages_refused(db: Database) -> None:
    chat = storage.create_chat(db)
    with pytest.raises(storage.InvalidRecord, match="allowed: system, user, assistant"):
        storage.add_chat_message(db, chat["id"], "model", "x")
    with pytest.raises(storage.NotFound):
        storage.add_chat_message(db, 999, "user", "x")
    assert storage.get_chat_messages(db, chat["id"]) == []
