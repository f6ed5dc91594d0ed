"""CSV rows mapped onto turns through a column map (given, or guessed from the header).

A column map names, per part of the example, the CSV column that holds it:
``{"user": "instruction", "assistant": "output", "input": "context", "system": "system"}``.
Rows are renamed onto Alpaca's fields so the Alpaca mapper and its checks apply unchanged.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from engine.data.readers import RawRow, open_text
from engine.errors import ConfigError, DataError

#: Column-map key -> the Alpaca field it becomes.
PART_TO_FIELD = {"user": "instruction", "input": "input", "assistant": "output", "system": "system"}

#: Header names tried, in order, when no column map is given (compared case-insensitively).
#: ``input`` comes last for ``user`` so ``instruction,input,output`` keeps ``input`` as input.
HEADER_GUESSES = {
    "user": ("instruction", "prompt", "question", "query", "user", "human", "input"),
    "assistant": ("output", "response", "answer", "completion", "assistant", "reply", "gpt"),
    "system": ("system", "system_prompt"),
    "input": ("input", "context"),
}


def delimiter_for(path: Path) -> str:
    """``\\t`` for ``.tsv`` files, else ``,``."""
    return "\t" if path.suffix.lower() == ".tsv" else ","


def guess_column_map(header: list[str]) -> dict[str, str]:
    """Pick columns for user/assistant/system/input from header names (see HEADER_GUESSES)."""
    by_name = {name.strip().lower(): name for name in header}
    chosen: dict[str, str] = {}
    for part, candidates in HEADER_GUESSES.items():
        unused = [by_name[c] for c in candidates if c in by_name and by_name[c] not in chosen.values()]
        if unused:
            chosen[part] = unused[0]
    return chosen


def check_column_map(path: Path, header: list[str], column_map: dict[str, str]) -> None:
    """Raise unless the map names known parts, existing columns, and both user and assistant.

    Raises:
        ConfigError: a key is not one of user, assistant, input, system.
        DataError: a named column is missing from the header, or user/assistant are unmapped.
    """
    unknown = sorted(set(column_map) - set(PART_TO_FIELD))
    if unknown:
        raise ConfigError(f"column_map: unknown key(s) {', '.join(unknown)}; "
                          f"allowed keys are {', '.join(PART_TO_FIELD)}")
    missing = [f"{part}={col!r}" for part, col in column_map.items() if col not in header]
    if missing:
        raise DataError(f"{path}: column_map names column(s) not in the header ({', '.join(missing)}); "
                        f"the header is {', '.join(map(repr, header))}")
    if not {"user", "assistant"} <= set(column_map):
        raise DataError(f"{path}: cannot tell which columns hold the user turn and the assistant "
                        f"reply (header: {', '.join(map(repr, header))}); pass a column map such as "
                        f"{{'user': 'question', 'assistant': 'answer'}}")


def iter_csv(path: Path, column_map: dict[str, str] | None) -> tuple[dict[str, str], Iterator[RawRow]]:
    """Read the header, settle the column map and return it with a streaming row iterator.

    Rows are ``{alpaca_field: cell}``; ``RawRow.line`` is the line the CSV record starts on
    (a quoted cell may span lines), ``RawRow.row`` counts records after the header.

    Raises:
        DataError: empty file, unusable column map, non-UTF-8 bytes.
    """
    records = _records(path)
    first = next(records, None)
    if first is None:
        raise DataError(f"{path}: the CSV file is empty; it needs a header row")
    header = first[1]
    chosen = dict(column_map) if column_map is not None else guess_column_map(header)
    check_column_map(path, header, chosen)
    return chosen, _rows(records, header, chosen)


def _rows(records: Iterator[tuple[int, list[str]]], header: list[str],
          chosen: dict[str, str]) -> Iterator[RawRow]:
    index = {PART_TO_FIELD[part]: header.index(col) for part, col in chosen.items()}
    for row, (line, cells) in enumerate(records, 1):
        if len(cells) != len(header):
            yield RawRow(row, line, None, f"expected {len(header)} fields, found {len(cells)}")
        else:
            yield RawRow(row, line, {name: cells[i] for name, i in index.items()})


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(starting line, cells) per non-empty CSV record; line ends inside cells become ``\\n``."""
    # newline="" is what the csv module requires: it keeps "\r\n" inside quoted cells intact
    # (we normalise them below) and still splits records on \n, \r\n and lone \r.
    with open_text(path, newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter_for(path))
        done = 0
        for cells in reader:
            start, done = done + 1, reader.line_num
            if cells:
                yield start, [c.replace("\r\n", "\n").replace("\r", "\n") for c in cells]
