"""The bundled ChatterBot corpus, with counts taken directly from its YAML files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.data import chatterbot_corpus_files, import_file, load_chatterbot_corpus, remove_duplicates
from engine.errors import DataError


def _conversations(path: Path) -> list:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)["conversations"]


def test_tech_support_counts() -> None:
    path = next(p for p in chatterbot_corpus_files() if p.name == "tech_support.yml")
    conversations = _conversations(path)
    unique = {tuple(c) for c in conversations}
    folded = {tuple(" ".join(s.split()).casefold() for s in c) for c in conversations}
    assert (len(conversations), len(unique), len(folded)) == (1050, 10, 10)
    result = import_file(path)
    assert (result.format, result.imported, result.skipped) == ("chatterbot", 1050, 0)
    assert result.duplicates == 1050 - 10
    kept, removed = remove_duplicates(result.examples)
    assert (len(kept), removed) == (10, 1040)
    assert kept[0]["tags"] == ["tech support"]


def test_english_corpus_counts() -> None:
    files = chatterbot_corpus_files("english")
    conversations = [c for p in files for c in _conversations(p)]
    bad = [c for c in conversations if not isinstance(c, list) or not all(isinstance(s, str) for s in c)]
    assert len(files) == 21 and len(conversations) > 2000 and len(bad) == 1  # trivia.yml, line 35
    result = load_chatterbot_corpus("english")
    assert (result.imported, result.skipped) == (len(conversations) - 1, 1)
    assert result.issues[0].line == 35 and result.issues[0].row == 14
    # An odd-length conversation loses its unanswered last statement; all keep their first.
    good = [c for c in conversations if c not in bad]
    assert [len(e["messages"]) for e in result.examples] == [len(c) - len(c) % 2 for c in good]
    exact = {tuple(c[: len(c) - len(c) % 2]) for c in good}
    assert result.duplicates == len(good) - len(exact)


def test_unknown_language() -> None:
    with pytest.raises(DataError, match="no language 'klingon'.*english"):
        chatterbot_corpus_files("klingon")
