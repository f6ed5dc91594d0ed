"""Export examples as OpenAI-chat JSON Lines, the shape every import format maps onto."""

from __future__ import annotations

import json
import os

from engine.errors import DataError
from engine.fileio import atomic_write


def export_jsonl(examples: list[dict], path: str | os.PathLike[str]) -> int:
    """Write one ``{"messages": [...], "tags": [...]}`` object per line, atomically.

    ``tags`` is written only when non-empty, so untagged output is plain OpenAI chat JSONL;
    source file and line are not written (the exported file becomes the new source). The file
    is UTF-8 with ``\\n`` line ends and appears under ``path`` only once complete.

    Returns:
        The number of lines written.

    Raises:
        DataError: ``path`` is a folder.
    """
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder; give the name of the .jsonl file to write")
    with atomic_write(path) as handle:
        for example in examples:
            record: dict = {"messages": [{"role": m["role"], "content": m["content"]}
                                         for m in example["messages"]]}
            if example.get("tags"):
                record["tags"] = list(example["tags"])
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(examples)
