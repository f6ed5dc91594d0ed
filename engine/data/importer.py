"""Import a dataset file into example dicts: detect the format, read, validate every row.

Policy ``refuse`` (the default) raises one :class:`DataError` listing the bad rows, so nothing
trains on a partly valid set unless the user chose ``skip``, which leaves bad rows out and
counts them (CASES.md K1).
"""

from __future__ import annotations

import hashlib

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator, Iterator

from engine.data.cleaning import exact_key
from engine.data.csv_columns import PART_TO_FIELD, iter_csv
from engine.data.formats import FORMATS, Format
from engine.data.readers import (RawRow, iter_json_array, iter_jsonl, iter_yaml_conversations,
                                 sniff_container)
from engine.data.validate import RowIssue, convert_row
from engine.errors import ConfigError, DataError
from engine.progress import CancelToken, Progress, Reporter, ignore_progress

POLICIES = ("refuse", "skip")
DETECT_SAMPLE_ROWS = 50  # records looked at to detect a JSON format
MAX_LISTED_ISSUES = 20   # issues spelled out in a refusal; the total is always given
PROGRESS_EVERY = 500     # rows between progress events
CANCEL_EVERY = 100       # rows between cancellation checks

_RECORD_READERS: dict[str, Callable[[Path], Generator[RawRow, None, None]]] = {
    "json": iter_json_array, "jsonl": iter_jsonl, "yaml": iter_yaml_conversations,
}


@dataclass
class ImportResult:
    """What an import produced.

    Attributes:
        format: the format used (a key of ``FORMATS``), detected or given.
        examples: the valid examples, in file order (exact duplicates kept).
        issues: one entry per problem of every rejected row (several may share a row).
        imported: number of examples.
        skipped: number of rows left out (``skip`` policy; 0 after a ``refuse`` success).
        duplicates: examples whose messages exactly equal an earlier example's.
        column_map: CSV only: the column map used (given or guessed from the header).
    """

    format: str
    examples: list[dict] = field(default_factory=list)
    issues: list[RowIssue] = field(default_factory=list)
    imported: int = 0
    skipped: int = 0
    duplicates: int = 0
    column_map: dict[str, str] | None = None


def detect_format(path: str | Path) -> str:
    """Detect the import format of a file.

    CSV/TSV and YAML are told by extension; JSON arrays and JSON Lines by their first
    character, then by which format's signature keys (``FORMATS[name].signature``) the first
    rows carry.

    Returns:
        A key of :data:`FORMATS`.

    Raises:
        DataError: no format matches, or several do (the message lists the formats tried).
    """
    path = _existing(path)
    container = sniff_container(path)
    if container in ("csv", "yaml"):
        return {"csv": "csv", "yaml": "chatterbot"}[container]
    if container is None:
        raise _undetected(path, "it is neither a JSON array, JSON Lines, CSV nor YAML")
    rows = _RECORD_READERS[container](path)
    sample = [r.record for r in itertools.islice(rows, DETECT_SAMPLE_ROWS) if isinstance(r.record, dict)]
    rows.close()  # the readers are generators: close the file now, not at garbage collection
    found = sorted({f.name for f in FORMATS.values() for rec in sample
                    if f.container == "records" and f.signature <= rec.keys()})
    if len(found) == 1:
        return found[0]
    if found:
        raise _undetected(path, f"its rows match several formats ({', '.join(found)})")
    keys = sorted({k for rec in sample for k in rec})
    raise _undetected(path, f"no row has the keys of a known format (keys seen: {', '.join(keys) or 'none'})")


def import_file(path: str | Path, *, format: str | None = None, policy: str = "refuse",
                column_map: dict[str, str] | None = None, report: Reporter = ignore_progress,
                cancel: CancelToken | None = None) -> ImportResult:
    """Read a dataset file into validated example dicts.

    Args:
        path: a JSON/JSONL (Alpaca, ShareGPT, OpenAI chat, prompt/completion or
            prompt/response), CSV/TSV or ChatterBot YAML file, UTF-8 with or without BOM.
        format: a key of :data:`FORMATS` to skip detection; ``None`` detects it.
        policy: ``"refuse"`` raises on any bad row; ``"skip"`` leaves bad rows out.
        column_map: CSV only: part -> column, parts ``user``, ``assistant``, ``input``,
            ``system``; ``None`` guesses from the header (reported in the result).
        report: receives ``Progress("import", rows_read, ...)`` every PROGRESS_EVERY rows.
        cancel: polled every CANCEL_EVERY rows.

    Returns:
        An :class:`ImportResult`; examples carry ``source_file`` and ``source_line``.

    Raises:
        DataError: unreadable file (not UTF-8, JSON/YAML syntax), undetectable format, bad
            column map, no records, or bad rows under ``refuse`` (up to 20 listed, with the total).
        ConfigError: unknown ``format``, ``policy`` or column-map key.
        Cancelled: ``cancel`` was set.
    """
    result = ImportResult(format="")
    result.examples = list(stream_import(path, result, format=format, policy=policy,
                                         column_map=column_map, report=report, cancel=cancel))
    return result


def stream_import(path: str | Path, result: ImportResult, *, format: str | None = None,
                  policy: str = "refuse", column_map: dict[str, str] | None = None,
                  report: Reporter = ignore_progress,
                  cancel: CancelToken | None = None) -> Iterator[dict]:
    """Like :func:`import_file`, but yield each valid example as it is read (for imports
    that must not hold the whole file in memory, e.g. straight into a database transaction).

    ``result`` is filled in as rows are read (format, column map, counts, issues; its
    ``examples`` stays empty). Under ``refuse``, the :class:`DataError` listing the bad rows
    comes after the last example has been yielded, so a consumer that writes inside one
    transaction rolls it all back.

    Raises:
        As :func:`import_file`.
    """
    path = _existing(path)
    if policy not in POLICIES:
        raise ConfigError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    fmt = _format(format) if format is not None else FORMATS[detect_format(path)]
    result.format = fmt.name
    rows, field_names = _rows(fmt, path, column_map, result)
    seen: set[bytes] = set()  # 16-byte digests, not the texts: memory stays small
    count = 0
    for count, raw in enumerate(rows, 1):
        _tick(count, result, report, cancel)
        example, problems = convert_row(fmt, raw, str(path))
        if example is None:
            result.skipped += 1
            result.issues += [RowIssue(raw.line, reason, field_names.get(name, name), raw.row)
                              for reason, name in problems]
            continue
        key = hashlib.blake2b(repr(exact_key(example)).encode("utf-8"), digest_size=16).digest()
        result.duplicates += key in seen
        seen.add(key)
        result.imported += 1
        yield example
    if count == 0:
        raise DataError(f"{path}: no records found; the file is empty")
    report(Progress("import", count, count, _metrics(result), f"imported {result.imported} examples"))
    if result.issues and policy == "refuse":
        raise DataError(_refusal(path, result))


def _rows(fmt: Format, path: Path, column_map: dict[str, str] | None,
          result: ImportResult) -> tuple[Iterator[RawRow], dict[str, str]]:
    """The row iterator for ``fmt`` and a map from internal field names to the user's names."""
    if fmt.container == "csv":
        result.column_map, rows = iter_csv(path, column_map)
        return rows, {PART_TO_FIELD[part]: col for part, col in result.column_map.items()}
    if column_map is not None:
        raise ConfigError(f"column_map applies to CSV files only; format {fmt.name} has named fields")
    if fmt.container == "yaml":
        return iter_yaml_conversations(path), {}
    container = sniff_container(path)
    if container not in ("json", "jsonl"):
        raise DataError(f"{path}: format {fmt.name} needs a JSON array or JSON Lines file, "
                        f"but the file starts with neither '[' nor '{{'")
    return _RECORD_READERS[container](path), {}


def _tick(count: int, result: ImportResult, report: Reporter, cancel: CancelToken | None) -> None:
    if cancel is not None and count % CANCEL_EVERY == 0:
        cancel.check()
    if count % PROGRESS_EVERY == 0:
        report(Progress("import", count, None, _metrics(result), f"read {count} rows"))


def _metrics(result: ImportResult) -> dict[str, float]:
    return {"imported": float(result.imported), "skipped": float(result.skipped),
            "duplicates": float(result.duplicates)}


def _refusal(path: Path, result: ImportResult) -> str:
    listed = "\n".join(f"  {issue}" for issue in result.issues[:MAX_LISTED_ISSUES])
    more = len(result.issues) - MAX_LISTED_ISSUES
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return (f"{path}: {result.skipped} invalid row(s), {len(result.issues)} issue(s) in all:\n"
            f"{listed}{tail}\nFix these rows, or import with policy 'skip' to leave them out.")


def _format(name: str) -> Format:
    if name not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}; got {name!r}")
    return FORMATS[name]


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    return path


def _tried() -> str:
    return "; ".join(f"{f.name} ({f.description})" for f in FORMATS.values())


def _undetected(path: Path, why: str) -> DataError:
    return DataError(f"{path}: cannot detect the dataset format: {why}. Formats tried: {_tried()}. "
                     f"Pass the format explicitly.")

