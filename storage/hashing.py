"""Content hashes: the dataset hash a run records, and SHA-256 of artifact files.

Dataset content hash (the definition runs record as ``dataset_hash``)::

    sha256(json.dumps(
        [{"messages": ex["messages"], "tags": ex["tags"]} for ex in examples_in_order],
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    ).encode("utf-8")).hexdigest()

``messages`` is the list of ``{"role", "content"}`` dicts (system message included) and
``tags`` the list of strings, both exactly as stored. An example that a dataset version assigns
to a split also has ``"split": "train" | "validation" | "test"`` in its object (examples without
a split have no such key, so data that was never split hashes as before). Example order matters; ids, source file
and line, dataset name and description do not. An empty dataset hashes ``"[]"``.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterable, Mapping

# Bytes read per call when hashing files; large enough to keep Python overhead negligible.
FILE_CHUNK_BYTES = 1 << 20


# One shared encoder: json.dumps with options builds a new encoder per call, which dominated
# the validation cost of large imports.
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical_json(value: Any) -> str:
    """JSON text in the canonical form used by the content hash.

    Same text as ``json.dumps(value, sort_keys=True, ensure_ascii=False,
    separators=(",", ":"))``.
    """
    return _CANONICAL.encode(value)


class ContentHasher:
    """Streams the dataset content hash from canonical per-example JSON pieces.

    Feeding ``canonical_json(messages)`` and ``canonical_json(tags)`` for every example in
    order yields exactly :func:`content_hash` of the whole list, without building it: the
    list's JSON is ``[`` + ``{"messages":M,"tags":T}`` pieces joined by ``,`` + ``]``
    (``"messages"`` sorts before ``"tags"``).
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256(b"[")
        self._first = True

    def update(self, messages_json: str, tags_json: str, split: str | None = None) -> None:
        """Add one example, given its canonical messages and tags JSON text and its split."""
        middle = "" if split is None else f',"split":{canonical_json(split)}'
        piece = f'{{"messages":{messages_json}{middle},"tags":{tags_json}}}'
        self._sha.update(piece.encode("utf-8") if self._first else f",{piece}".encode("utf-8"))
        self._first = False

    def hexdigest(self) -> str:
        """The hash of everything added so far, as 64 lowercase hex digits."""
        final = self._sha.copy()
        final.update(b"]")
        return final.hexdigest()


def content_hash(examples: Iterable[Mapping[str, Any]]) -> str:
    """Dataset content hash of example dicts (see the module docstring for the definition).

    Args:
        examples: dicts with ``messages`` and optional ``tags`` (default ``[]``) and
            ``split`` (default none), in order.

    Returns:
        64 lowercase hex digits.
    """
    hasher = ContentHasher()
    for example in examples:
        hasher.update(canonical_json(example["messages"]), canonical_json(example.get("tags", [])),
                      example.get("split"))
    return hasher.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks, as 64 lowercase hex digits."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(FILE_CHUNK_BYTES):
            sha.update(chunk)
    return sha.hexdigest()
