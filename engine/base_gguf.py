"""Find the GGUF file a base model folder was imported from (issue 5: verify an adapter GGUF).

A LoRA adapter GGUF is checked by applying it to its base model's GGUF in llama.cpp
(:func:`engine.adapter_verify.verify_adapter_gguf`). A base model imported from a GGUF
(:func:`engine.gguf_import.import_gguf_model`, the built-in Gemma 3 270M included) is a Hugging
Face folder whose ``tunesmith_source.json`` names the source file and its SHA-256; this module
finds that file again when it is still on disk and unchanged. A model added as a Hugging Face
folder has no base GGUF, and :func:`find_base_gguf` returns ``None``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.fileio import sha256_file
from engine.gguf_import import SOURCE_FILE

SOURCE_PREFIX = "gguf-import:"
CACHE_DIR = "cache"  # engine.gguf_import.builtin_base_model unpacks into models_dir/cache


def find_base_gguf(model_dir: str | os.PathLike[str]) -> Path | None:
    """The GGUF ``model_dir`` was imported from, if it is still on disk with the recorded hash.

    Looked for, in order: the record's ``gguf_path`` (when the import recorded one), the
    built-in model's cache (``<models dir>/cache/<name>``), then ``<models dir>/<name>``. A
    candidate counts only if its SHA-256 equals the record's ``gguf_sha256`` (when recorded),
    so an edited or replaced file is never used as the base.

    Args:
        model_dir: the base model's Hugging Face folder (``base_models.path``).

    Returns:
        The ``.gguf`` path, or ``None`` (not a GGUF import, or the file is gone or changed).
        Hashing reads the whole file (about a second for 250 MB): call it on a job thread.
    """
    record_path = Path(model_dir) / SOURCE_FILE
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for candidate in _candidates(Path(model_dir), record):
        if candidate.is_file() and record.get("gguf_sha256") in (None, sha256_file(candidate)):
            return candidate
    return None


def _candidates(model_dir: Path, record: dict) -> list[Path]:
    """Where the source file may be, most specific first."""
    source = str(record.get("source", ""))
    if not source.startswith(SOURCE_PREFIX):
        return []
    name = Path(source.removeprefix(SOURCE_PREFIX)).name  # a file name, never a path
    found = [Path(record["gguf_path"])] if record.get("gguf_path") else []
    return found + [model_dir.parent / CACHE_DIR / name, model_dir.parent / name]
