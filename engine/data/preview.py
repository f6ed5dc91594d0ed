"""Template preview: one example rendered with a chat template, token by token, with the mask.

The ids and the trained/masked flags come from :func:`engine.encode.encode_conversation`, so
the preview shows exactly what training computes loss on (CASES K4). The text of each token is
cut from the rendered conversation with the fast tokenizer's offsets, with any gap between two
offsets (e.g. a space a tokenizer leaves out of its offsets) given to the next token, so the
texts concatenate to the rendering; a token that shares its characters with the previous one
(a multi-byte character split over byte-level tokens) gets ``""``. Slow tokenizers have no
offsets: each token is decoded alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.encode import IGNORE_INDEX, encode_conversation
from engine.templates import ChatTemplate, render_for, resolve_template
from engine.tokens import SpecialTokens, special_tokens_for

_NO_LIMIT = 2**31  # a max_length no conversation reaches: preview everything, cut nothing


@dataclass(frozen=True)
class TokenSegment:
    """One token of the preview.

    Attributes:
        token_id: the vocabulary id.
        text: the characters of the rendering this token stands for (may be ``""``).
        trained: the loss is computed on this token (its label is not -100).
    """

    token_id: int
    text: str
    trained: bool


@dataclass(frozen=True)
class TemplatePreview:
    """One example as training sees it.

    Attributes:
        template: the chat template used.
        text: the rendered conversation (special tokens as text; a BOS that encoding prepends
            is not part of it).
        tokens: every token in order, BOS included.
        n_trained: tokens with a loss.
        n_masked: tokens without one (prompt, system, user turns, template markup).
    """

    template: ChatTemplate
    text: str
    tokens: tuple[TokenSegment, ...]
    n_trained: int
    n_masked: int


def preview_example(tokenizer: Any, messages: list[dict], *, template: ChatTemplate | str | None = None,
                    special: SpecialTokens | None = None) -> TemplatePreview:
    """Render one example with a chat template and mark which tokens are trained.

    Args:
        tokenizer: a transformers tokenizer.
        messages: ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``.
        template: a :class:`ChatTemplate`, a name or Jinja text for
            :func:`engine.templates.resolve_template`, or ``None`` for the tokenizer's default.
        special: the special-token table (default: :func:`engine.tokens.special_tokens_for`
            with the tokenizer alone).

    Returns:
        The preview; nothing is truncated.

    Raises:
        ConfigError: an unknown template name.
        DataError: messages that cannot be encoded (see :func:`encode_conversation`).
    """
    if not isinstance(template, ChatTemplate):
        template = resolve_template(tokenizer, template)
    if special is None:
        special = special_tokens_for(None, tokenizer, template)
    encoded = encode_conversation(tokenizer, messages, template, special, max_length=_NO_LIMIT)
    text = render_for(tokenizer, template, messages)
    texts = _token_texts(tokenizer, text, encoded.input_ids)
    tokens = tuple(TokenSegment(token_id, piece, label != IGNORE_INDEX)
                   for token_id, piece, label in zip(encoded.input_ids, texts, encoded.labels))
    return TemplatePreview(template, text, tokens, encoded.n_trained,
                           len(tokens) - encoded.n_trained)


def merge_spans(tokens: tuple[TokenSegment, ...] | list[TokenSegment]) -> list[tuple[str, bool]]:
    """Join consecutive tokens with the same trained flag, for display.

    Returns:
        ``(text, trained)`` runs in order; neighbouring runs always differ in ``trained``.
    """
    spans: list[tuple[str, bool]] = []
    for token in tokens:
        if spans and spans[-1][1] == token.trained:
            spans[-1] = (spans[-1][0] + token.text, token.trained)
        else:
            spans.append((token.text, token.trained))
    return spans


def _token_texts(tokenizer: Any, text: str, ids: list[int]) -> list[str]:
    """The text of each id; ``ids`` may start with one BOS that is not in ``text``."""
    if getattr(tokenizer, "is_fast", False):
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = list(encoding["offset_mapping"])
        extra = len(ids) - len(offsets)
        if extra in (0, 1) and list(encoding["input_ids"]) == ids[extra:]:
            head = [tokenizer.decode(ids[:1])] if extra else []
            return head + _cut(text, offsets)
    return [tokenizer.decode([token_id]) for token_id in ids]


def _cut(text: str, offsets: list[tuple[int, int]]) -> list[str]:
    """Slice ``text`` at each token's end offset; a gap goes to the following token."""
    pieces, cursor = [], 0
    for _, end in offsets:
        end = max(end, cursor)
        pieces.append(text[cursor:end])
        cursor = end
    if pieces and cursor < len(text):
        pieces[-1] += text[cursor:]  # trailing characters no token claims (rare: stripped spaces)
    return pieces
