"""Dataset statistics over a stream of examples: counts, role balance, tags, lengths.

Lengths are kept as ``Counter`` s of values (not lists), so memory grows with the number of
distinct lengths, not of examples, and the summaries are exact. Token lengths come from a
Hugging Face tokenizer: by default of the conversation rendered with the chat template and
encoded exactly as training encodes it (:func:`engine.encode.encode_conversation`, BOS policy
included); with ``rendered=False``, the sum of each message text's tokens without special tokens.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from engine.configs import check_choices, option
from engine.data.filters import count_tokens
from engine.errors import ConfigError, DataError
from engine.progress import CancelToken, Progress, Reporter, ignore_progress

BIN_KINDS = ("pow2", "fixed")
_MAX_PROBLEMS = 20  # examples listed by id when they cannot be encoded; the rest are counted
_REPORT_EVERY = 1000
_NO_LIMIT = 2**31  # a max_length no conversation reaches: measure, never truncate


@dataclass(frozen=True)
class StatsConfig:
    """What the token-length part of :func:`dataset_stats` measures.

    Raises:
        ConfigError: ``max_length`` or ``bin_width`` below 1, or an unknown ``bins``.
    """

    max_length: int = option(1024, "Token limit of training; longer examples are counted as too long.")
    bins: str = option("pow2", "Histogram bins: 'pow2' (1, 2-3, 4-7, ... tokens) or 'fixed' "
                               "(bin_width tokens each).", choices=BIN_KINDS)
    bin_width: int = option(128, "Width of each histogram bin in tokens, with bins='fixed'.")
    rendered: bool = option(True, "Count tokens of the conversation rendered with the chat template "
                                  "(what training sees) instead of the message texts alone.")

    def __post_init__(self) -> None:
        check_choices(self)
        for name in ("max_length", "bin_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1; got {value!r}")


@dataclass(frozen=True)
class LengthSummary:
    """Summary of a list of lengths (characters or tokens); all zero when ``count`` is 0.

    ``median`` is the middle value (mean of the two middle ones for an even count); ``p95`` is
    the nearest-rank 95th percentile: the smallest value with at least 95% of values <= it.
    """

    count: int
    min: int
    median: float
    p95: int
    max: int
    mean: float


@dataclass(frozen=True)
class TokenStats:
    """Token lengths per example.

    Attributes:
        lengths: summary over the examples that could be encoded.
        histogram: ``(low, high, count)`` per bin, ``low <= length < high`` (tokens), every bin
            from the shortest to the longest example, empty bins included.
        max_length: the limit compared against.
        too_long: examples longer than ``max_length`` tokens.
        invalid: examples that cannot be encoded (e.g. no assistant turn).
        problems: ``(id, reason)`` for the first 20 invalid examples.
    """

    lengths: LengthSummary
    histogram: tuple[tuple[int, int, int], ...]
    max_length: int
    too_long: int
    invalid: int
    problems: tuple[tuple[Any, str], ...]


@dataclass(frozen=True)
class DatasetStats:
    """Statistics of one dataset.

    Attributes:
        examples: number of examples.
        turns: number of messages in all examples.
        turns_by_role: messages per role (role balance).
        tags: examples carrying each tag (a tag repeated in one example counts once).
        untagged: examples without any tag.
        synthetic: examples with ``"synthetic": True``.
        chars_per_turn: characters per message, all roles.
        chars_per_turn_by_role: the same per role.
        tokens: token lengths, or ``None`` when no tokenizer was given.
    """

    examples: int
    turns: int
    turns_by_role: dict[str, int]
    tags: dict[str, int]
    untagged: int
    synthetic: int
    chars_per_turn: LengthSummary
    chars_per_turn_by_role: dict[str, LengthSummary]
    tokens: TokenStats | None

    @property
    def synthetic_share(self) -> float:
        """Share of synthetic examples in [0, 1] (0 for an empty dataset)."""
        return self.synthetic / self.examples if self.examples else 0.0


def dataset_stats(examples: Iterable[dict], *, tokenizer: Any | None = None,
                  template: Any | None = None, special: Any | None = None,
                  config: StatsConfig = StatsConfig(), report: Reporter = ignore_progress,
                  cancel: CancelToken | None = None) -> DatasetStats:
    """Count examples, turns, roles, tags, synthetic share and lengths in one pass.

    Args:
        examples: example dicts (any iterable; streamed).
        tokenizer: a transformers tokenizer for token lengths, or ``None`` to skip them.
        template: the :class:`engine.templates.ChatTemplate` (default: resolved from the
            tokenizer with :func:`engine.templates.resolve_template`).
        special: the :class:`engine.tokens.SpecialTokens` (default: from the tokenizer alone
            with :func:`engine.tokens.special_tokens_for`).
        config: token-length options.
        report: receives ``Progress("stats", n)`` every 1,000 examples and at the end.
        cancel: polled between examples.

    Returns:
        The statistics.

    Raises:
        Cancelled: ``cancel`` was set.
        ConfigError, ModelLoadError: the template or special tokens cannot be resolved.
    """
    counter = _Counter(_token_counter(tokenizer, template, special, config))
    for n, example in enumerate(examples, start=1):
        if cancel is not None:
            cancel.check()
        counter.add(example)
        if n % _REPORT_EVERY == 0:
            report(Progress("stats", n, None, {}, f"{n} examples read"))
    stats = counter.result()
    report(Progress("stats", stats.examples, stats.examples, {}, "statistics done"))
    return stats


def summarize(lengths: Counter) -> LengthSummary:
    """:class:`LengthSummary` of a ``Counter`` mapping length -> how many times it occurs."""
    count = sum(lengths.values())
    if count == 0:
        return LengthSummary(0, 0, 0.0, 0, 0, 0.0)
    values = sorted(lengths)
    middle = (_at_rank(lengths, values, (count + 1) // 2) + _at_rank(lengths, values, count // 2 + 1)) / 2
    return LengthSummary(count, values[0], middle, _at_rank(lengths, values, math.ceil(0.95 * count)),
                         values[-1], sum(v * c for v, c in lengths.items()) / count)


def histogram(lengths: Counter, bins: str = "pow2", bin_width: int = 128
              ) -> tuple[tuple[int, int, int], ...]:
    """Bin lengths: ``(low, high, count)`` with ``low <= length < high``, no gaps.

    ``"pow2"`` bins are ``[0, 1), [1, 2), [2, 4), [4, 8), ...``; ``"fixed"`` bins are
    ``[k * bin_width, (k + 1) * bin_width)``.
    """
    if not lengths:
        return ()
    edges = _pow2_edges if bins == "pow2" else (lambda x: _fixed_edges(x, bin_width))
    low, high = edges(min(lengths))[0], edges(max(lengths))[1]
    counts: dict[tuple[int, int], int] = {}
    while low < high:
        bin_ = edges(low)
        counts[bin_] = 0
        low = bin_[1]
    for value, count in lengths.items():
        counts[edges(value)] += count
    return tuple((lo, hi, c) for (lo, hi), c in counts.items())


def _pow2_edges(value: int) -> tuple[int, int]:
    if value == 0:
        return 0, 1
    low = 1 << (value.bit_length() - 1)
    return low, 2 * low


def _fixed_edges(value: int, width: int) -> tuple[int, int]:
    low = value // width * width
    return low, low + width


def _at_rank(lengths: Counter, values: list[int], rank: int) -> int:
    """The ``rank``-th smallest value (1-based) of a counted multiset."""
    seen = 0
    for value in values:
        seen += lengths[value]
        if seen >= rank:
            return value
    return values[-1]


class _Counter:
    """Accumulates everything :class:`DatasetStats` holds, one example at a time."""

    def __init__(self, tokens: _TokenCounter | None) -> None:
        self.examples = self.synthetic = self.untagged = 0
        self.roles: Counter = Counter()
        self.tags: Counter = Counter()
        self.chars: dict[str, Counter] = {}
        self.tokens = tokens

    def add(self, example: dict) -> None:
        self.examples += 1
        self.synthetic += bool(example.get("synthetic"))
        tags = set(example.get("tags") or ())
        self.tags.update(tags)
        self.untagged += not tags
        for message in example.get("messages") or ():
            role = message.get("role", "?")
            self.roles[role] += 1
            self.chars.setdefault(role, Counter())[len(message.get("content") or "")] += 1
        if self.tokens is not None:
            self.tokens.add(example)

    def result(self) -> DatasetStats:
        every = sum(self.chars.values(), Counter())
        return DatasetStats(self.examples, sum(self.roles.values()), dict(self.roles), dict(self.tags),
                            self.untagged, self.synthetic, summarize(every),
                            {role: summarize(c) for role, c in sorted(self.chars.items())},
                            self.tokens.result() if self.tokens is not None else None)


class _TokenCounter:
    """Token lengths per example, rendered with the chat template or from the texts alone."""

    def __init__(self, tokenizer: Any, template: Any, special: Any, config: StatsConfig) -> None:
        self.tokenizer, self.template, self.special, self.config = tokenizer, template, special, config
        self.lengths: Counter = Counter()
        self.invalid = 0
        self.problems: list[tuple[Any, str]] = []

    def add(self, example: dict) -> None:
        try:
            self.lengths[self._length(example.get("messages"))] += 1
        except DataError as exc:
            self.invalid += 1
            if len(self.problems) < _MAX_PROBLEMS:
                self.problems.append((example.get("id"), str(exc)))

    def _length(self, messages: Any) -> int:
        if self.config.rendered:
            from engine.encode import encode_conversation

            encoded = encode_conversation(self.tokenizer, messages, self.template, self.special,
                                          max_length=_NO_LIMIT)
            return len(encoded.input_ids)
        if not isinstance(messages, list):
            raise DataError("the example has no messages; expected a list of {role, content}")
        return count_tokens(self.tokenizer, messages)

    def result(self) -> TokenStats:
        too_long = sum(c for length, c in self.lengths.items() if length > self.config.max_length)
        return TokenStats(summarize(self.lengths),
                          histogram(self.lengths, self.config.bins, self.config.bin_width),
                          self.config.max_length, too_long, self.invalid, tuple(self.problems))


def _token_counter(tokenizer: Any | None, template: Any | None, special: Any | None,
                   config: StatsConfig) -> _TokenCounter | None:
    """A token counter with the template and special tokens resolved, or ``None``."""
    if tokenizer is None:
        return None
    if config.rendered and template is None:
        from engine.templates import resolve_template

        template = resolve_template(tokenizer)
    if config.rendered and special is None:
        from engine.tokens import special_tokens_for

        special = special_tokens_for(None, tokenizer, template)
    return _TokenCounter(tokenizer, template, special, config)
