"""Fixtures for storage tests: an in-memory database and small example builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlite_utils import Database

import storage


def make_example(user: str, reply: str, *, system: str | None = None,
                 tags: list[str] | None = None, line: int | None = None) -> dict[str, Any]:
    """An example dict in the project's shape."""
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return {"messages": messages, "tags": tags or [], "source_file": "data.jsonl",
            "source_line": line}


@pytest.fixture()
def db() -> Iterator[Database]:
    """A fresh in-memory database with the full schema."""
    database = storage.open_memory_database()
    yield database
    database.close()


@pytest.fixture()
def file_db(tmp_path: Path) -> Iterator[Database]:
    """A database in a temporary data dir (WAL needs a real file)."""
    database = storage.open_database(tmp_path / "data")
    yield database
    database.close()


@pytest.fixture()
def three(db: Database) -> dict[str, Any]:
    """A dataset named ``three`` with examples q0/a0 .. q2/a2."""
    examples = [make_example(f"q{i}", f"a{i}", line=i + 1) for i in range(3)]
    return storage.create_dataset(db, "three", examples)
