"""Dataset import, validation, cleaning and export (Qt-free, torch-free).

Every format maps onto the example dict ``{"messages": [{"role", "content"}], "tags",
"source_file", "source_line"}``; format knowledge lives in :data:`FORMATS`.
"""

from __future__ import annotations

from engine.data.chatterbot import chatterbot_corpus_files, load_chatterbot_corpus
from engine.data.cleaning import content_key, remove_duplicates, split_examples
from engine.data.export import export_jsonl
from engine.data.formats import FORMATS, ROLES, Format
from engine.data.importer import ImportResult, detect_format, import_file
from engine.data.validate import RowIssue

__all__ = [
    "FORMATS", "ROLES", "Format", "ImportResult", "RowIssue", "chatterbot_corpus_files",
    "content_key", "detect_format", "export_jsonl", "import_file", "load_chatterbot_corpus",
    "remove_duplicates", "split_examples",
]
