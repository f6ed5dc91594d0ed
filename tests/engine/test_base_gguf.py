"""find_base_gguf: the source GGUF of an imported base model, found only when unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engine.base_gguf import find_base_gguf


def imported(models: Path, name: str, data: bytes, **extra: str) -> Path:
    """A base folder as engine.gguf_import leaves it, the SHA-256 taken with hashlib."""
    folder = models / "base"
    folder.mkdir(parents=True)
    record = {"source": f"gguf-import:{name}", "gguf_sha256": hashlib.sha256(data).hexdigest(),
              "dtype": "bfloat16", **extra}
    (folder / "tunesmith_source.json").write_text(json.dumps(record))
    return folder


def test_the_builtin_cache_file_is_found(tmp_path):
    folder = imported(tmp_path, "gemma.gguf", b"GGUF base")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "gemma.gguf").write_bytes(b"GGUF base")
    assert find_base_gguf(folder) == tmp_path / "cache" / "gemma.gguf"


def test_a_recorded_path_wins_and_a_changed_file_is_refused(tmp_path):
    elsewhere = tmp_path / "downloads" / "mine.gguf"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"GGUF mine")
    folder = imported(tmp_path, "mine.gguf", b"GGUF mine", gguf_path=str(elsewhere))
    (tmp_path / "mine.gguf").write_bytes(b"GGUF mine")
    assert find_base_gguf(folder) == elsewhere
    elsewhere.write_bytes(b"GGUF edited")
    assert find_base_gguf(folder) == tmp_path / "mine.gguf"
    (tmp_path / "mine.gguf").write_bytes(b"GGUF edited too")
    assert find_base_gguf(folder) is None


def test_a_hugging_face_folder_has_no_base_gguf(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    assert find_base_gguf(tmp_path / "hf") is None
    (tmp_path / "hf" / "tunesmith_source.json").write_text("{not json")
    assert find_base_gguf(tmp_path / "hf") is None
