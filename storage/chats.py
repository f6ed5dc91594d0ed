"""Saved chat sessions and their messages (the Chat page's history)."""

from __future__ import annotations

import os
from typing import Any

from sqlite_utils import Database

from storage.db import fetch_one, update_columns, utc_now
from storage.errors import NotFound
from storage.validation import check_role, check_text


def create_chat(db: Database, title: str = "", *, model_path: str | os.PathLike[str] | None = None,
                system_prompt: str = "") -> dict[str, Any]:
    """Start a saved chat.

    Args:
        db: the open database.
        title: display title (may be empty until the first message suggests one).
        model_path: the GGUF file or model folder chatted with.
        system_prompt: the system message used for every turn.

    Returns:
        The chat row ``{"id", "title", "model_path", "system_prompt", "created"}``.
    """
    cursor = db.execute(
        "INSERT INTO chats (title, model_path, system_prompt, created) VALUES (?, ?, ?, ?)",
        [check_text(title, "chat title"), None if model_path is None else os.fspath(model_path),
         check_text(system_prompt, "system prompt"), utc_now()])
    return get_chat(db, int(cursor.lastrowid))


def get_chat(db: Database, chat_id: int) -> dict[str, Any]:
    """One chat row.

    Raises:
        NotFound: no such chat.
    """
    return fetch_one(db, "SELECT * FROM chats WHERE id = ?", [chat_id],
                     f"no chat with id {chat_id}")


def list_chats(db: Database) -> list[dict[str, Any]]:
    """All chat rows, newest first."""
    return list(db.query("SELECT * FROM chats ORDER BY id DESC"))


def update_chat(db: Database, chat_id: int, *, title: str | None = None,
                model_path: str | os.PathLike[str] | None = None,
                system_prompt: str | None = None) -> dict[str, Any]:
    """Change a chat's title, model or system prompt (``None`` leaves a field as is).

    Raises:
        NotFound: no such chat.
    """
    changes = {"title": title, "system_prompt": system_prompt,
               "model_path": None if model_path is None else os.fspath(model_path)}
    update_columns(db, "chats", chat_id, changes, f"no chat with id {chat_id}")
    return get_chat(db, chat_id)


def add_chat_message(db: Database, chat_id: int, role: str, content: str) -> dict[str, Any]:
    """Append a message to a chat.

    Args:
        db: the open database.
        chat_id: the chat.
        role: ``"system"``, ``"user"`` or ``"assistant"``.
        content: the message text.

    Returns:
        The message row ``{"id", "chat_id", "position", "role", "content", "created"}``;
        positions count from 0.

    Raises:
        NotFound: no such chat.
        InvalidRecord: unknown role or non-text content.
    """
    check_role(role, "chat message")
    check_text(content, "chat message content")
    with db.atomic():
        get_chat(db, chat_id)
        position = db.execute("SELECT coalesce(max(position) + 1, 0) FROM chat_messages"
                              " WHERE chat_id = ?", [chat_id]).fetchone()[0]
        cursor = db.execute(
            "INSERT INTO chat_messages (chat_id, position, role, content, created)"
            " VALUES (?, ?, ?, ?, ?)", [chat_id, position, role, content, utc_now()])
    return fetch_one(db, "SELECT * FROM chat_messages WHERE id = ?", [cursor.lastrowid],
                     "the message just written is missing")


def get_chat_messages(db: Database, chat_id: int) -> list[dict[str, Any]]:
    """A chat's messages in order (empty list for a chat without messages).

    Raises:
        NotFound: no such chat.
    """
    get_chat(db, chat_id)
    return list(db.query("SELECT * FROM chat_messages WHERE chat_id = ? ORDER BY position",
                         [chat_id]))


def delete_chat(db: Database, chat_id: int) -> None:
    """Delete a chat and (by cascade) its messages.

    Raises:
        NotFound: no such chat.
    """
    if db.execute("DELETE FROM chats WHERE id = ?", [chat_id]).rowcount == 0:
        raise NotFound(f"no chat with id {chat_id}")
