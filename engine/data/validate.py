"""Row validation: field checks from the format table, then one set of rules for all turns.

Every row must give a conversation the trainer can use: known roles, non-blank content, a
system prompt only first, a user turn first after it, user and assistant alternating, and at
least one assistant reply. Chat templates such as Gemma's raise on non-alternating roles, so
those rows are refused here instead of crashing training later (CASES.md K1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.data.formats import COMMON_IGNORED, COMMON_OPTIONAL, Format, Problem, Turn
from engine.data.readers import RawRow

_TYPE_NAMES = {str: "text", list: "a list", dict: "an object", int: "a number", float: "a number",
               bool: "true/false", type(None): "null"}


@dataclass(frozen=True)
class RowIssue:
    """Why one row cannot be imported.

    Attributes:
        line: 1-based line of the file on which the row starts.
        reason: what is wrong, in words.
        field: the source field or column involved, when one is.
        row: 1-based record number for JSON arrays, CSV and YAML; ``None`` for JSON Lines.
    """

    line: int
    reason: str
    field: str | None = None
    row: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.row is None else f"row {self.row}"
        details = [] if not self.field or self.field in self.reason else [f"field {self.field}"]
        if self.row is not None:
            details.append(f"line {self.line}")
        return f"{where}: {self.reason}" + (f" ({', '.join(details)})" if details else "")


def check_fields(fmt: Format, record: Any) -> list[Problem]:
    """Problems with the record's keys and value types, per the format's table row."""
    if not isinstance(record, dict):
        return [(f"expected an object with {', '.join(fmt.required)}, "
                 f"found {_TYPE_NAMES.get(type(record), type(record).__name__)}", None)]
    problems: list[Problem] = []
    for name, kind in fmt.required.items():
        if record.get(name) is None:
            problems.append((f"missing required field {name}", name))
    for name, kind in {**fmt.required, **fmt.optional, **COMMON_OPTIONAL}.items():
        value = record.get(name)
        if value is not None and not isinstance(value, kind):
            problems.append((f"field {name} must be {_TYPE_NAMES[kind]}, "
                             f"found {_TYPE_NAMES.get(type(value), type(value).__name__)}", name))
    known = {*fmt.required, *fmt.optional, *COMMON_OPTIONAL, *COMMON_IGNORED, *fmt.ignored}
    for name in sorted(set(record) - known):
        problems.append((f"unexpected field {name!r}; {fmt.name} rows have "
                         f"{', '.join([*fmt.required, *fmt.optional])}", name))
    tags = record.get("tags")
    if isinstance(tags, list) and not all(isinstance(t, str) for t in tags):
        problems.append(("tags must be a list of text", "tags"))
    return problems


def check_turns(turns: list[Turn]) -> list[Problem]:
    """Problems with the conversation shape and content (same rules for every format)."""
    problems: list[Problem] = []
    for i, (role, content, source) in enumerate(turns):
        if not content.strip():
            kind = {"assistant": "reply", "system": "prompt"}.get(role, "turn")
            problems.append((f"empty {role} {kind}", source))
        if role == "system" and i > 0:
            problems.append(("a system prompt is only allowed as the first turn", source))
    dialogue = [(role, source) for role, _, source in turns if role != "system"]
    if not any(role == "assistant" for role, _ in dialogue):
        problems.append(("no assistant reply: nothing to train on", None))
    elif dialogue[0][0] != "user":
        problems.append(("the conversation must start with a user turn before the first "
                         "assistant reply", dialogue[0][1]))
    for (prev, _), (role, source) in zip(dialogue, dialogue[1:]):
        if role == prev and role in ("user", "assistant"):
            problems.append((f"two {role} turns in a row; user and assistant must alternate", source))
    return problems


def convert_row(fmt: Format, raw: RawRow, source_file: str) -> tuple[dict | None, list[Problem]]:
    """Turn one raw row into an example dict, or return the problems that prevent it.

    Returns:
        ``(example, [])`` for a good row, ``(None, problems)`` for a bad one. The example is
        ``{"messages": [{"role", "content"}], "tags", "source_file", "source_line"}`` with
        every line end in the content normalised to ``\\n``.
    """
    if raw.problem:
        return None, [(raw.problem, None)]
    problems = check_fields(fmt, raw.record)
    if problems:
        return None, problems
    turns = fmt.to_turns(raw.record, problems)
    problems = problems or check_turns(turns)
    if problems:
        return None, problems
    messages = [{"role": role, "content": _unix_newlines(text)} for role, text, _ in turns]
    return {"messages": messages, "tags": list(raw.record.get("tags") or []),
            "source_file": source_file, "source_line": raw.line}, []


def _unix_newlines(text: str) -> str:
    # Content from JSON escapes or CSV cells may still hold "\r"; stored text never does.
    return text.replace("\r\n", "\n").replace("\r", "\n")
