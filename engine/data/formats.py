"""Import formats as data: one :class:`Format` row per format plus a small mapper.

Adding a format means adding a row to :data:`FORMATS` (its name, container, the keys that
identify it, its required and optional fields) and, when no existing mapper fits, one short
function that turns a record into turns. Field presence and types are checked generically from
the row (``engine.data.validate``); mappers only reshape.

Format references: Alpaca (tatsu-lab/stanford_alpaca ``alpaca_data.json``), ShareGPT
(``conversations`` of ``{"from", "value"}``, as read by FastChat and LLaMA-Factory), OpenAI chat
fine-tuning JSONL (``{"messages": [{"role", "content"}]}``), prompt/completion pairs, CSV with a
column mapping, and the ChatterBot corpus YAML (``categories`` + ``conversations``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

#: One turn as a mapper produces it: (role, content, source field for messages).
Turn = tuple[str, str, str]
#: One row problem: (reason, source field or None).
Problem = tuple[str, "str | None"]
Mapper = Callable[[dict[str, Any], list[Problem]], list[Turn]]

ROLES = ("system", "user", "assistant")

#: Role spellings seen in the wild, mapped onto the three roles this product trains on.
ROLE_ALIASES = {
    "system": "system", "developer": "system",
    "user": "user", "human": "user",
    "assistant": "assistant", "gpt": "assistant", "chatgpt": "assistant",
    "bot": "assistant", "model": "assistant",
}

#: Keys inside a turn object that carry no content and are ignored (OpenAI ``name``/``weight``).
TURN_IGNORED_KEYS = frozenset({"name", "weight"})

#: Keys any record may carry besides its format's fields: ``tags`` become the example's tags.
COMMON_OPTIONAL: dict[str, type] = {"tags": list}
COMMON_IGNORED = frozenset({"id"})


@dataclass(frozen=True)
class Format:
    """One import format.

    Attributes:
        name: the name users pass as ``format=`` and see in ``ImportResult.format``.
        container: ``"records"`` (a JSON array or JSON Lines), ``"csv"`` or ``"yaml"``.
        signature: keys whose presence in a record identifies this format (records only).
        required: field name -> Python type every record must have.
        optional: field name -> Python type a record may have (``None`` counts as absent).
        ignored: extra keys that are accepted and dropped (known metadata, not content).
        to_turns: mapper from a field-checked record to turns; appends problems it finds.
        description: one line for error messages and ``--help``.
    """

    name: str
    container: str
    signature: frozenset[str]
    required: dict[str, type]
    optional: dict[str, type]
    to_turns: Mapper
    description: str
    ignored: frozenset[str] = field(default_factory=frozenset)


def _with_system(record: dict[str, Any], turns: list[Turn]) -> list[Turn]:
    system = record.get("system")
    if isinstance(system, str) and system.strip():  # an empty optional system means "none"
        return [("system", system, "system"), *turns]
    return turns


def _alpaca(record: dict[str, Any], problems: list[Problem]) -> list[Turn]:
    user, extra = record["instruction"], record.get("input") or ""
    if extra.strip():
        if not user.strip():
            problems.append(("empty instruction next to a non-empty input", "instruction"))
        # The Alpaca prompt puts the input after the instruction, separated by a blank line.
        user = f"{user}\n\n{extra}"
    return _with_system(record, [("user", user, "instruction"), ("assistant", record["output"], "output")])


def _prompt_pair(answer_key: str) -> Mapper:
    def to_turns(record: dict[str, Any], problems: list[Problem]) -> list[Turn]:
        turns = [("user", record["prompt"], "prompt"), ("assistant", record[answer_key], answer_key)]
        return _with_system(record, turns)

    return to_turns


def _text(value: Any) -> str | None:
    """A turn's content as text; OpenAI content-part lists of text parts are joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                       and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)
    return None


def _turn_list(list_key: str, role_key: str, content_key: str) -> Mapper:
    def to_turns(record: dict[str, Any], problems: list[Problem]) -> list[Turn]:
        turns = []
        for i, turn in enumerate(record[list_key]):
            parsed = _one_turn(turn, f"{list_key}[{i}]", role_key, content_key, problems)
            if parsed is not None:
                turns.append(parsed)
        return _with_system(record, turns)

    return to_turns


def _one_turn(turn: Any, where: str, role_key: str, content_key: str,
              problems: list[Problem]) -> Turn | None:
    if not isinstance(turn, dict):
        problems.append((f"{where} must be an object with {role_key!r} and {content_key!r}", where))
        return None
    odd = sorted(set(turn) - {role_key, content_key} - TURN_IGNORED_KEYS)
    if odd:
        problems.append((f"unexpected field(s) {', '.join(map(repr, odd))} in {where}", where))
    role = ROLE_ALIASES.get(str(turn.get(role_key, "")).strip().lower())
    if role is None:
        problems.append((f"unknown role {turn.get(role_key)!r} in {where}; allowed: "
                         f"{', '.join(sorted(ROLE_ALIASES))}", f"{where}.{role_key}"))
        return None
    content = _text(turn.get(content_key))
    if content is None:
        problems.append((f"{where}.{content_key} must be text", f"{where}.{content_key}"))
        return None
    return role, content, f"{where}.{content_key}"


def _chatterbot(record: dict[str, Any], problems: list[Problem]) -> list[Turn]:
    statements = record["conversation"]
    odd = [s for s in statements if not isinstance(s, str)]
    if odd:
        problems.append((f"conversation entries must all be text; found {odd[0]!r}", "conversation"))
        return []
    # Each statement answers the previous one; a final statement nobody answers teaches nothing.
    usable = statements[: len(statements) - len(statements) % 2]
    return [(("user", "assistant")[i % 2], s, f"conversation[{i}]") for i, s in enumerate(usable)]


_ROWS = [
    Format("alpaca", "records", frozenset({"instruction"}),
           {"instruction": str, "output": str}, {"input": str, "system": str}, _alpaca,
           "Alpaca: instruction, optional input, output, optional system",
           ignored=frozenset({"text"})),  # tatsu-lab/alpaca ships the rendered prompt as "text"
    Format("sharegpt", "records", frozenset({"conversations"}),
           {"conversations": list}, {"system": str}, _turn_list("conversations", "from", "value"),
           "ShareGPT: conversations of {from, value}"),
    Format("openai", "records", frozenset({"messages"}),
           {"messages": list}, {}, _turn_list("messages", "role", "content"),
           "OpenAI chat: messages of {role, content}"),
    Format("prompt_completion", "records", frozenset({"prompt", "completion"}),
           {"prompt": str, "completion": str}, {"system": str}, _prompt_pair("completion"),
           "prompt/completion pairs"),
    Format("prompt_response", "records", frozenset({"prompt", "response"}),
           {"prompt": str, "response": str}, {"system": str}, _prompt_pair("response"),
           "prompt/response pairs"),
    # CSV rows are renamed onto Alpaca's fields through the column map (engine.data.csv_columns).
    Format("csv", "csv", frozenset(),
           {"instruction": str, "output": str}, {"input": str, "system": str}, _alpaca,
           "CSV with a header row and a column map (user, assistant, optional input/system)"),
    Format("chatterbot", "yaml", frozenset(),
           {"conversation": list}, {}, _chatterbot,
           "ChatterBot corpus YAML: categories + conversations of alternating statements"),
]

#: Every import format by name.
FORMATS: dict[str, Format] = {row.name: row for row in _ROWS}
