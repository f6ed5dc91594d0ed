"""Reading dataset files as text, record by record, with the line each record starts on.

Text is always decoded as UTF-8 (a leading BOM is dropped) with an explicit encoding, so the
result does not depend on the OS locale, and with universal newlines, so ``\\r\\n`` and
CR-only files give the same rows as ``\\n`` files. Bytes that are not UTF-8 raise
:class:`DataError` naming the file, line and byte offset.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generator, Iterator

from engine.errors import DataError

ENCODING = "utf-8-sig"  # UTF-8 that drops a leading BOM and accepts files without one
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_NON_SPACE = re.compile(r"\S")


@dataclass(frozen=True)
class RawRow:
    """One record as read from a file, before validation.

    Attributes:
        row: 1-based record number (``None`` for JSON Lines, where the line says it all).
        line: 1-based line on which the record starts.
        record: the parsed value (normally a dict).
        problem: a syntax problem that kept this record from being parsed, else ``None``.
    """

    row: int | None
    line: int
    record: Any
    problem: str | None = None


@contextlib.contextmanager
def open_text(path: Path, newline: str | None = None) -> Iterator[IO[str]]:
    """Open ``path`` as UTF-8 text; turn a decoding failure into a located :class:`DataError`.

    Args:
        path: the file.
        newline: ``None`` for universal newlines; ``""`` for the csv module, which needs the
            raw line ends to keep quoted multi-line cells together.
    """
    try:
        with open(path, encoding=ENCODING, newline=newline) as handle:
            yield handle
    except UnicodeDecodeError as exc:
        raise locate_bad_bytes(path) from exc


def locate_bad_bytes(path: Path) -> DataError:
    """A :class:`DataError` giving line and byte offset of the first non-UTF-8 byte in ``path``."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = len(_LINE_BREAK.findall(data, 0, exc.start)) + 1
        return DataError(f"{path}: not valid UTF-8 at line {line}, byte offset {exc.start} "
                         f"(byte 0x{data[exc.start]:02x}). Save the file as UTF-8 and import it again.")
    return DataError(f"{path}: not valid UTF-8. Save the file as UTF-8 and import it again.")


def sniff_container(path: Path) -> str | None:
    """``"json"`` (an array), ``"jsonl"``, ``"csv"``, ``"yaml"``, or ``None`` when unknown.

    The extension decides for CSV/TSV and YAML; otherwise the first non-blank character does
    (``[`` for a JSON array, ``{`` for JSON Lines), so a ``.json`` file holding JSON Lines works.
    """
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".yml", ".yaml"):
        return "yaml"
    with open_text(path) as handle:
        head = handle.read(4096)
    first = _NON_SPACE.search(head)
    # A blank file reads as JSON Lines with no records, so the caller reports "no records".
    return {"[": "json", "{": "jsonl", "": "jsonl"}.get(first.group() if first else "")


def iter_jsonl(path: Path) -> Generator[RawRow, None, None]:
    """Yield one :class:`RawRow` per non-blank line of a JSON Lines file, streaming.

    A line that is not valid JSON becomes a row with ``problem`` set (line and column), so the
    import policy decides whether it refuses the file or skips the line.
    """
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield RawRow(None, line_no, json.loads(line))
            except json.JSONDecodeError as exc:
                yield RawRow(None, line_no, None, f"invalid JSON at column {exc.colno}: {exc.msg}")


def iter_json_array(path: Path) -> Generator[RawRow, None, None]:
    """Yield the records of a JSON array file with the line each one starts on.

    The array is walked with ``JSONDecoder.raw_decode`` element by element (instead of one
    ``json.load``) so every record keeps its position.

    Raises:
        DataError: a JSON syntax error, with file, line and column.
    """
    with open_text(path) as handle:
        text = handle.read()
    decoder = json.JSONDecoder()
    pos = _expect(path, text, _skip_space(text, 0), "[", "a JSON array '['")
    line, counted, row = 1, 0, 0
    pos = _skip_space(text, pos)
    while text[pos:pos + 1] != "]":
        try:
            record, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                            f"{exc.msg}") from exc
        line, counted, row = line + text.count("\n", counted, pos), pos, row + 1
        yield RawRow(row, line, record)
        pos = _skip_space(text, end)
        if text[pos:pos + 1] != "]":
            pos = _skip_space(text, _expect(path, text, pos, ",", "',' or ']'"))
    if _skip_space(text, pos + 1) != len(text):
        _expect(path, text, _skip_space(text, pos + 1), "", "the end of the file after ']'")


def _skip_space(text: str, pos: int) -> int:
    match = _NON_SPACE.search(text, pos)
    return match.start() if match else len(text)


def _expect(path: Path, text: str, pos: int, char: str, wanted: str) -> int:
    if char and text[pos:pos + 1] == char:
        return pos + 1
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    found = repr(text[pos]) if pos < len(text) else "the end of the file"
    raise DataError(f"{path}: invalid JSON at line {line}, column {column}: "
                    f"expected {wanted}, found {found}")


def iter_yaml_conversations(path: Path) -> Generator[RawRow, None, None]:
    """Yield each conversation of a ChatterBot corpus YAML file, tagged with its categories.

    Records are ``{"conversation": [...], "tags": [category, ...]}``; the line comes from the
    YAML node, so a bad conversation is reported where it is.

    Raises:
        DataError: YAML syntax errors (line, column) or a file that is not a ChatterBot corpus.
    """
    data, node = _compose_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("conversations"), list):
        raise DataError(f"{path}: not a ChatterBot corpus file: expected a mapping with "
                        f"'categories' and a 'conversations' list")
    tags = [str(c) for c in data.get("categories") or []]
    items = next(v for k, v in node.value if k.value == "conversations").value
    for row, (conversation, item) in enumerate(zip(data["conversations"], items), 1):
        yield RawRow(row, item.start_mark.line + 1, {"conversation": conversation, "tags": tags})


def _compose_yaml(path: Path) -> tuple[Any, Any]:
    """The constructed document and its node tree (the nodes carry line numbers)."""
    import yaml

    with open_text(path) as handle:
        text = handle.read()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DataError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    finally:
        loader.dispose()
