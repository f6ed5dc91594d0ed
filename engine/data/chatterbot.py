"""The ChatterBot corpus bundled with the ``chatterbot-corpus`` package, as examples."""

from __future__ import annotations

from pathlib import Path

from engine.data.cleaning import exact_key
from engine.data.importer import ImportResult, import_file
from engine.errors import DataError


def chatterbot_corpus_files(language: str = "english") -> list[Path]:
    """The YAML files of one language of the installed ChatterBot corpus, sorted by name.

    Raises:
        DataError: the package is not installed, or has no such language (lists those it has).
    """
    try:
        from chatterbot_corpus.corpus import DATA_DIRECTORY
    except ImportError as exc:
        raise DataError("the ChatterBot corpus is not installed (package chatterbot-corpus)") from exc
    root = Path(DATA_DIRECTORY)
    folder = root / language
    if not folder.is_dir():
        known = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir()))
        raise DataError(f"the ChatterBot corpus has no language {language!r}; it has: {known}")
    return sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])


def load_chatterbot_corpus(language: str = "english", *, policy: str = "skip") -> ImportResult:
    """Import every YAML file of one corpus language into one result.

    Each conversation becomes one example tagged with its file's categories; statements
    alternate user/assistant starting with the user, and a final unanswered statement is
    dropped. Counts (imported, skipped, duplicates) and issues are summed over the files;
    duplicates are counted across files, and kept.

    Raises:
        DataError: see :func:`chatterbot_corpus_files`; under ``refuse`` any bad conversation.
    """
    total = ImportResult(format="chatterbot")
    seen: set[tuple] = set()
    for path in chatterbot_corpus_files(language):
        part = import_file(path, format="chatterbot", policy=policy)
        for example in part.examples:
            key = exact_key(example)
            total.duplicates += key in seen
            seen.add(key)
        total.examples += part.examples
        total.issues += part.issues
        total.skipped += part.skipped
    total.imported = len(total.examples)
    return total
