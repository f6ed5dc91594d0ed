"""Read the small files of a Hugging Face model folder without loading any weights.

Safetensors layout (https://github.com/huggingface/safetensors#format): an 8-byte little-endian
header length, then a JSON header mapping tensor name -> {dtype, shape, data_offsets}.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def read_json(path: Path, *, what: str = "file", missing_ok: bool = False) -> dict[str, Any]:
    """Read a JSON object from ``path``.

    Raises:
        ModelLoadError: the file is missing (unless ``missing_ok``; then ``{}``) or not JSON.
    """
    if not path.is_file():
        if missing_ok:
            return {}
        raise ModelLoadError(f"Missing {what}: {path} does not exist.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}); the model folder looks damaged.") from exc


def weight_files(folder: Path) -> list[Path]:
    """The ``*.safetensors`` files of a model folder, sorted.

    Raises:
        ModelLoadError: there are none (e.g. only PyTorch ``.bin`` files, which can run code).
    """
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    if list(folder.glob("*.bin")) or list(folder.glob("*.pt")):
        raise ModelLoadError(f"{folder} holds PyTorch pickle weights (.bin) but no .safetensors; "
                             "pickle files can run code when loaded. Convert the model to "
                             "safetensors first.")
    raise ModelLoadError(f"Missing weights: {folder} has no model.safetensors (or shards).")


def safetensors_headers(files: list[Path]) -> dict[str, dict]:
    """Merge the JSON headers of safetensors ``files``: tensor name -> {dtype, shape}.

    Raises:
        ModelLoadError: a file is truncated or its header is not valid.
    """
    headers: dict[str, dict] = {}
    for path in files:
        with open(path, "rb") as handle:
            raw = handle.read(8)
            if len(raw) != 8:
                raise ModelLoadError(f"{path} is truncated (no safetensors header).")
            (length,) = struct.unpack("<Q", raw)
            try:
                header = json.loads(handle.read(length))
            except ValueError as exc:
                raise ModelLoadError(f"{path} has a damaged safetensors header.") from exc
        header.pop("__metadata__", None)
        headers.update(header)
    return headers


def read_tokenizer_vocab(folder: Path) -> dict[str, int]:
    """Token string -> id for the folder's tokenizer, added/special tokens included.

    Reads ``tokenizer.json`` directly when present (fast); otherwise loads the tokenizer with
    transformers (e.g. a SentencePiece ``tokenizer.model``).

    Raises:
        ModelLoadError: the folder has no tokenizer files.
    """
    path = folder / "tokenizer.json"
    if path.is_file():
        data = read_json(path, what="tokenizer")
        vocab = dict(data.get("model", {}).get("vocab") or {})
        if isinstance(data.get("model", {}).get("vocab"), list):  # Unigram: [[piece, score], ...]
            vocab = {piece: i for i, (piece, _) in enumerate(data["model"]["vocab"])}
        vocab.update({t["content"]: t["id"] for t in data.get("added_tokens", [])})
        return vocab
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(f"Missing tokenizer: {folder} has none of {', '.join(TOKENIZER_FILES)}.")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, trust_remote_code=False).get_vocab()


def tokenizer_size(vocab: dict[str, int]) -> int:
    """Number of ids the tokenizer can produce (highest id + 1)."""
    return max(vocab.values()) + 1 if vocab else 0
