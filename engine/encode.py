"""Training examples -> token ids + loss labels, batches, and a before-training length report.

The prompt/answer boundary comes from rendering, never from searching token ids (CASES K4):
for each assistant turn ``i`` the conversation up to ``i`` is rendered with the generation
prompt and through ``i`` without it; the characters in between (right-stripped of whitespace)
are the answer plus the template's end-of-turn text (``<|im_end|>``, ``<end_of_turn>``, or EOS
for formats that end a turn with EOS). The whole conversation is tokenized once, and a token is
trained when its character span (tokenizer offset mapping) overlaps an answer span. BOS appears
once, per :attr:`engine.tokens.SpecialTokens.add_bos` (K6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError, DataError
from engine.templates import ChatTemplate, render_for
from engine.tokens import SpecialTokens, end_of_turn_text

IGNORE_INDEX = -100  # the label torch.nn.CrossEntropyLoss ignores by default
TRUNCATIONS = ("left", "right", "drop")
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class EncodedExample:
    """One tokenized conversation.

    Attributes:
        input_ids: token ids, BOS included per the BOS policy.
        labels: same length; :data:`IGNORE_INDEX` (-100) on every position not trained.
        n_trained: number of labels that are not -100 (always > 0).
        truncated: tokens were cut to fit ``max_length``.
    """

    input_ids: list[int]
    labels: list[int]
    n_trained: int
    truncated: bool


def encode_conversation(tokenizer: Any, messages: list[dict], template: ChatTemplate,
                        special: SpecialTokens, *, max_length: int,
                        truncation: str = "left") -> EncodedExample:
    """Tokenize one conversation and mark every assistant turn (plus its end-of-turn) as trained.

    Args:
        tokenizer: a transformers tokenizer (fast tokenizers use offsets; slow ones are
            tokenized piece by piece at the answer boundaries).
        messages: ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``.
        template: the chat template.
        special: the special-token table (BOS policy).
        max_length: the most tokens kept.
        truncation: ``"left"`` drops the earliest tokens (BOS stays at position 0) so answers
            survive; ``"right"`` cuts the end; ``"drop"`` refuses rows that are too long.

    Returns:
        The example; ``n_trained > 0``.

    Raises:
        ConfigError: unknown ``truncation`` or ``max_length < 2``.
        DataError: malformed messages, a template that rejects them, an answer that cannot be
            located in the rendering, a row too long under ``"drop"``, or no trained token
            left (C10).
    """
    _check_options(max_length, truncation)
    ids, labels = _tokenize_with_labels(tokenizer, messages, template, special)
    truncated = len(ids) > max_length
    if truncated:
        if truncation == "drop":
            raise DataError(f"conversation is {len(ids)} tokens, longer than max_length "
                            f"{max_length}; raise max_length or use left truncation")
        ids, labels = _truncate(ids, labels, max_length, truncation, special.bos_id)
    n_trained = _count(labels)
    if n_trained == 0:
        raise DataError(f"no trained token: the answer was cut away by {truncation} truncation "
                        f"to max_length {max_length}; use left truncation, raise max_length or "
                        "shorten the prompt" if truncated else "no trained token in the conversation")
    return EncodedExample(ids, labels, n_trained, truncated)


def encode_rows(tokenizer: Any, rows: list[dict], template: ChatTemplate, special: SpecialTokens,
                *, max_length: int, truncation: str = "left",
                ) -> tuple[list[EncodedExample], list[tuple[int, str]]]:
    """Encode many examples (``{"messages": [...], ...}``), collecting rows that cannot train.

    Returns:
        ``(encoded, problems)``: the encoded examples in row order (without the problem rows)
        and ``(row_index, reason)`` for every row skipped; callers must report these.

    Raises:
        ConfigError: unknown ``truncation`` or ``max_length < 2``.
    """
    _check_options(max_length, truncation)
    encoded: list[EncodedExample] = []
    problems: list[tuple[int, str]] = []
    for index, row in enumerate(rows):
        try:
            encoded.append(encode_conversation(tokenizer, row.get("messages"), template, special,
                                               max_length=max_length, truncation=truncation))
        except DataError as exc:
            problems.append((index, str(exc)))
    return encoded, problems


def length_report(tokenizer: Any, rows: list[dict], template: ChatTemplate, special: SpecialTokens,
                  *, max_length: int) -> dict:
    """Before-training report on lengths and trained tokens (CASES C10).

    Returns:
        A dict with ``rows``, ``max_length``, ``longest`` (tokens), ``too_long`` (rows over
        ``max_length``), ``answer_cut_right`` (rows whose every answer token right truncation
        would cut), ``answer_cut_left`` (same for left truncation), ``invalid`` (rows that
        cannot be encoded at all), ``trained_tokens`` (before truncation), ``trained_tokens_left``
        and ``trained_tokens_right`` (after each truncation), and ``problems``
        (``(row_index, reason)``, reasons for ``invalid`` rows).
    """
    _check_options(max_length, "left")
    report = dict(rows=len(rows), max_length=max_length, longest=0, too_long=0, answer_cut_right=0,
                  answer_cut_left=0, invalid=0, trained_tokens=0, trained_tokens_left=0,
                  trained_tokens_right=0, problems=[])
    for index, row in enumerate(rows):
        try:
            ids, labels = _tokenize_with_labels(tokenizer, row.get("messages"), template, special)
        except DataError as exc:
            report["invalid"] += 1
            report["problems"].append((index, str(exc)))
            continue
        report["longest"] = max(report["longest"], len(ids))
        report["too_long"] += len(ids) > max_length
        report["trained_tokens"] += _count(labels)
        for side in ("left", "right"):
            kept = _count(_truncate(ids, labels, max_length, side, special.bos_id)[1])
            report[f"trained_tokens_{side}"] += kept
            report[f"answer_cut_{side}"] += kept == 0
    return report


def rendered_length(tokenizer: Any, messages: list[dict], template: ChatTemplate,
                    special: SpecialTokens) -> int:
    """Tokens of a conversation as training encodes it, before truncation (BOS included).

    Raises:
        DataError: malformed messages or a template that rejects them.
    """
    return len(_tokenize_with_labels(tokenizer, messages, template, special)[0])


def collate(batch: list[EncodedExample], pad_id: int) -> dict[str, Any]:
    """Right-pad examples to the longest into tensors.

    Padding is marked by position (``attention_mask`` 0, label -100), never by comparing ids
    with the pad or EOS id, so a final EOS keeps its label even when pad == EOS (CASES C06).

    Returns:
        ``input_ids``, ``attention_mask`` and ``labels``: ``torch.long`` tensors of shape (B, T).
    """
    import torch

    width = max(len(example.input_ids) for example in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids, dtype=torch.long)
        attention_mask[row, :n] = 1
        labels[row, :n] = torch.tensor(example.labels, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def prompt_ids(tokenizer: Any, messages: list[dict], template: ChatTemplate,
               special: SpecialTokens) -> list[int]:
    """Token ids of a chat history plus the generation prompt, with the training BOS policy.

    Raises:
        DataError: malformed messages or a template that rejects them.
    """
    _check_messages(messages, need_answer=False)
    text = render_for(tokenizer, template, messages, add_generation_prompt=True)
    return _with_bos(tokenizer(text, add_special_tokens=False)["input_ids"], special)


def _tokenize_with_labels(tokenizer: Any, messages: Any, template: ChatTemplate,
                          special: SpecialTokens) -> tuple[list[int], list[int]]:
    """Full-length ids and labels (no truncation)."""
    _check_messages(messages, need_answer=True)
    text, spans = answer_spans(tokenizer, messages, template)
    if getattr(tokenizer, "is_fast", False):
        ids, labels = _label_by_offsets(tokenizer, text, spans)
    else:
        ids, labels = _label_by_pieces(tokenizer, text, spans)
    with_bos = _with_bos(ids, special)
    return with_bos, [IGNORE_INDEX] * (len(with_bos) - len(ids)) + labels


def answer_spans(tokenizer: Any, messages: list[dict],
                 template: ChatTemplate) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans ``[start, end)`` to train.

    Each span runs from the end of the rendered prefix with generation prompt to the end of the
    rendering through that assistant turn, trailing whitespace excluded. Templates that do not
    render a conversation as a sequence of prefixes (e.g. a generation prompt that differs from
    the assistant header in history, as Qwen3's empty think block) fall back to locating each
    answer's text in the rendering, in order, followed by the end-of-turn text.

    Raises:
        DataError: an answer cannot be located in the rendering.
    """
    text = render_for(tokenizer, template, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render_for(tokenizer, template, messages[:i], add_generation_prompt=True)
        through = render_for(tokenizer, template, messages[: i + 1])
        if not (through.startswith(before) and text.startswith(through)):
            return text, _searched_spans(tokenizer, messages, template, text)
        spans.append((len(before), max(len(before), len(through.rstrip()))))
    return text, spans


def _searched_spans(tokenizer: Any, messages: list[dict], template: ChatTemplate,
                    text: str) -> list[tuple[int, int]]:
    """Locate each message's rendered text in order (characters, not token ids)."""
    end_text = end_of_turn_text(tokenizer, template)
    spans, cursor = [], 0
    for i, message in enumerate(messages, start=1):
        content = message["content"].strip()
        start = text.find(content, cursor)
        if start < 0 or (message["role"] == "assistant" and not content):
            raise DataError(f"message {i}: its text cannot be located in the rendering of chat "
                            f"template {template.name!r}; choose another chat template")
        cursor = start + len(content)
        rest = text[cursor:]
        if message["role"] == "assistant":
            if end_text and rest.lstrip().startswith(end_text):
                cursor += len(rest) - len(rest.lstrip()) + len(end_text)
            spans.append((start, cursor))
    return spans


def _label_by_offsets(tokenizer: Any, text: str, spans: list[tuple[int, int]]
                      ) -> tuple[list[int], list[int]]:
    """Tokenize once; a token is trained when its character span overlaps an answer span."""
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    labels = [token if any(start < end_ and end > start_ for start_, end_ in spans) else IGNORE_INDEX
              for token, (start, end) in zip(ids, encoding["offset_mapping"])]
    return ids, labels


def _label_by_pieces(tokenizer: Any, text: str, spans: list[tuple[int, int]]
                     ) -> tuple[list[int], list[int]]:
    """Slow tokenizers have no offsets: tokenize prompt and answer pieces separately."""
    cuts = sorted({0, len(text), *(edge for span in spans for edge in span)})
    ids: list[int] = []
    labels: list[int] = []
    for start, end in zip(cuts, cuts[1:]):
        piece = tokenizer(text[start:end], add_special_tokens=False)["input_ids"]
        trained = any(start_ <= start and end <= end_ for start_, end_ in spans)
        ids.extend(piece)
        labels.extend(piece if trained else [IGNORE_INDEX] * len(piece))
    return ids, labels


def _truncate(ids: list[int], labels: list[int], max_length: int, side: str,
              bos_id: int | None) -> tuple[list[int], list[int]]:
    """Cut to ``max_length``: the end (``right``) or the start after a leading BOS (``left``)."""
    if len(ids) <= max_length:
        return ids, labels
    if side == "right":
        return ids[:max_length], labels[:max_length]
    keep = 1 if bos_id is not None and ids[0] == bos_id else 0
    drop = len(ids) - max_length
    return ids[:keep] + ids[keep + drop:], labels[:keep] + labels[keep + drop:]


def _with_bos(ids: list[int], special: SpecialTokens) -> list[int]:
    if special.add_bos and special.bos_id is not None and ids[:1] != [special.bos_id]:
        return [special.bos_id, *ids]
    return ids



def _check_messages(messages: Any, *, need_answer: bool) -> None:
    """Raise :class:`DataError` unless messages are ``{"role", "content": str}`` dicts."""
    if not isinstance(messages, list) or not messages:
        raise DataError("the example has no messages; expected a list of {role, content}")
    for i, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise DataError(f"message {i}: role must be one of {', '.join(ROLES)}")
        if not isinstance(message.get("content"), str):
            raise DataError(f"message {i}: content must be text")
    if need_answer and not any(m["role"] == "assistant" for m in messages):
        raise DataError("no trained token: the conversation has no assistant turn")


def _check_options(max_length: int, truncation: str) -> None:
    if truncation not in TRUNCATIONS:
        raise ConfigError(f"truncation must be one of {', '.join(TRUNCATIONS)}; got {truncation!r}")
    if not isinstance(max_length, int) or max_length < 2:
        raise ConfigError(f"max_length must be an integer >= 2; got {max_length!r}")


def _count(labels: list[int]) -> int:
    return sum(label != IGNORE_INDEX for label in labels)
