"""Shape checks for examples and chat messages before they are written.

Examples arrive as the project's plain dicts::

    {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...],
     "tags": [str, ...], "source_file": str | None, "source_line": int | None}

Only ``messages`` is required. Each message is stored as exactly ``{"role", "content"}``;
other keys are dropped so that the content hash depends on nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from storage.errors import InvalidRecord
from storage.hashing import canonical_json

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ExampleRow:
    """One example ready for the ``examples`` table (JSON columns in canonical text)."""

    messages_json: str
    tags_json: str
    source_file: str | None
    source_line: int | None


def _is_mapping(value: Any) -> bool:
    # The dict check first: the Mapping ABC check is slow and examples are nearly always dicts.
    return isinstance(value, dict) or isinstance(value, Mapping)


def _where(index: int | None, example: Mapping[str, Any]) -> str:
    label = "example" if index is None else f"example {index + 1}"
    source, line = example.get("source_file"), example.get("source_line")
    if source is not None:
        label += f" ({source}" + (f" line {line})" if line is not None else ")")
    return label


def check_text(value: Any, what: str) -> str:
    """Return ``value`` if it is a string SQLite can store as UTF-8.

    Raises:
        InvalidRecord: not a string, or it holds unpaired surrogates (a decoding mistake).
    """
    if not isinstance(value, str):
        raise InvalidRecord(f"{what} must be text, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidRecord(
            f"{what} holds a character that is not valid UTF-8 at offset {error.start}; "
            "re-import the file with the right encoding"
        ) from None
    return value


def check_role(role: Any, what: str) -> str:
    """Return ``role`` if it is one of :data:`ROLES`, else raise :class:`InvalidRecord`."""
    if role not in ROLES:
        raise InvalidRecord(f"{what} has role {role!r}; allowed: {', '.join(ROLES)}")
    return role


def normalize_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """Check a message list and reduce each message to ``{"role", "content"}``.

    Raises:
        InvalidRecord: not a non-empty list of dicts with a valid role and text content.
    """
    if not isinstance(messages, list) or not messages:
        raise InvalidRecord(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
    out = []
    for number, message in enumerate(messages, start=1):
        what = f"{where}: message {number}"
        if not _is_mapping(message):
            raise InvalidRecord(f"{what} must be an object with 'role' and 'content'")
        out.append({"role": check_role(message.get("role"), what),
                    "content": check_text(message.get("content"), f"{what} content")})
    return out


def normalize_tags(tags: Any, where: str) -> list[str]:
    """Check that ``tags`` is a list of strings (``None`` means no tags)."""
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise InvalidRecord(f"{where}: 'tags' must be a list of text labels")
    return [check_text(tag, f"{where}: tag") for tag in tags]


def normalize_example(example: Any, index: int | None = None) -> ExampleRow:
    """Validate one example dict and turn it into an :class:`ExampleRow`.

    Args:
        example: an example dict (see the module docstring).
        index: its 0-based position in the input, used in error messages.

    Raises:
        InvalidRecord: naming the example number, its source file and line, and the problem.
    """
    if not _is_mapping(example):
        raise InvalidRecord(f"{_where(index, {})} must be an object with 'messages'")
    where = _where(index, example)
    line = example.get("source_line")
    if line is not None and (not isinstance(line, int) or isinstance(line, bool)):
        raise InvalidRecord(f"{where}: 'source_line' must be a whole number")
    source = example.get("source_file")
    return ExampleRow(
        messages_json=canonical_json(normalize_messages(example.get("messages"), where)),
        tags_json=canonical_json(normalize_tags(example.get("tags"), where)),
        source_file=None if source is None else check_text(source, f"{where}: source_file"),
        source_line=line,
    )
