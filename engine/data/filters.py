"""Rule-based filters: preview which examples a rule would drop and why, then apply.

Rules (each off or configurable in :class:`FilterConfig`): empty turns, too few or too many
tokens, broken role order, unwanted language (py3langid, Lui & Baldwin 2012, "langid.py: An
Off-the-shelf Language Identification Tool") and a user-defined regular expression. The
preview also counts how many examples would be truncated at a training ``max_length``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from engine.configs import check_choices, check_range, option
from engine.data.validate import check_turns
from engine.errors import ConfigError, DataError
from engine.progress import CancelToken, Progress, Reporter, ignore_progress

ROLES = ("system", "user", "assistant")
_REPORT_EVERY = 500


@dataclass(frozen=True)
class FilterConfig:
    """Which filter rules run, and their settings."""

    drop_empty_turns: bool = option(True, help="Drop examples with an empty or whitespace-only "
                                               "turn.")
    check_role_order: bool = option(True, help="Drop examples whose roles do not go: optional "
                                               "system prompt, then user and assistant "
                                               "alternating, ending with the assistant.")
    min_tokens: int = option(0, help="Drop examples with fewer tokens than this (sum over the "
                                     "message contents; 0 = no minimum). Needs a tokenizer.")
    max_tokens: int | None = option(None, help="Drop examples with more tokens than this "
                                               "(None = no maximum). Needs a tokenizer.")
    max_length: int | None = option(None, help="Training sequence length in tokens: count the "
                                               "examples that would be truncated (not dropped).")
    languages: tuple[str, ...] = option((), help="Keep only these ISO 639-1 languages, e.g. "
                                                 "('en', 'de'); empty = keep every language.")
    language_min_confidence: float = option(0.5, help="Drop for language only when the "
                                                      "detector is at least this sure (0-1); "
                                                      "short texts are often unsure.")
    regex: str = option("", help="A Python regular expression searched in the contents "
                                 "(empty = no regex rule).")
    regex_roles: tuple[str, ...] = option(ROLES, help="Roles whose contents the regex "
                                                      "searches.")
    regex_action: str = option("drop", choices=("drop", "keep"),
                               help="drop: remove examples that match; keep: remove those "
                                    "that do not.")
    keep_tags: tuple[str, ...] = option((), help="Keep only examples carrying at least one of "
                                                 "these tags (empty = no tag rule).")
    drop_tags: tuple[str, ...] = option((), help="Drop examples carrying any of these tags, "
                                                 "e.g. ('synthetic:synonym',).")

    def __post_init__(self) -> None:
        check_choices(self)
        check_range("min_tokens", self.min_tokens, low=0)
        check_range("max_tokens", self.max_tokens, low=1, allow_none=True)
        check_range("max_length", self.max_length, low=1, allow_none=True)
        check_range("language_min_confidence", self.language_min_confidence, low=0, high=1)
        if self.max_tokens is not None and self.max_tokens < self.min_tokens:
            raise ConfigError(f"max_tokens ({self.max_tokens}) must be at least min_tokens "
                              f"({self.min_tokens})")
        bad = [code for code in self.languages if not re.fullmatch(r"[a-z]{2,3}", code)]
        if bad:
            raise ConfigError(f"languages: {', '.join(map(repr, bad))} is not an ISO 639-1 code "
                              "such as 'en', 'de' or 'zh' (lower case)")
        unknown = sorted(set(self.regex_roles) - set(ROLES))
        if unknown or not self.regex_roles:
            raise ConfigError(f"regex_roles must be a non-empty subset of {', '.join(ROLES)}; "
                              f"got {self.regex_roles!r}")
        try:
            re.compile(self.regex)
        except re.error as error:
            raise ConfigError(f"regex: {self.regex!r} is not a valid regular expression: "
                              f"{error}") from None

    @property
    def needs_tokenizer(self) -> bool:
        """Whether a rule counts tokens."""
        return self.min_tokens > 0 or self.max_tokens is not None or self.max_length is not None


@dataclass(frozen=True)
class FilterFlag:
    """One reason to drop one example.

    Attributes:
        example_id: the example's id.
        rule: ``"empty_turn"``, ``"too_short"``, ``"too_long"``, ``"role_order"``,
            ``"language"`` or ``"regex"``.
        reason: a sentence for the user.
    """

    example_id: int
    rule: str
    reason: str


@dataclass(frozen=True)
class FilterPreview:
    """What filtering would do; nothing is removed yet.

    Attributes:
        ids: every scanned example id, in input order.
        flags: reasons to drop, per example and rule (an example may have several).
        truncated: examples longer than ``max_length`` tokens (0 when it is not set).
        languages: detected language -> number of examples (only when languages are filtered).
    """

    ids: tuple[int, ...]
    flags: tuple[FilterFlag, ...]
    truncated: int = 0
    languages: dict[str, int] = field(default_factory=dict)

    @property
    def dropped(self) -> set[int]:
        """Ids with at least one flag."""
        return {flag.example_id for flag in self.flags}


def count_tokens(tokenizer: Any, messages: list[dict], *, template: Any = None,
                 special: Any = None) -> int:
    """Tokens of a conversation.

    With ``template`` and ``special`` (the base model's chat template and special-token
    table): the length training sees, rendered with the template, BOS included
    (:func:`engine.encode.rendered_length`). Without them: the message contents alone, without
    special tokens or markup, a lower bound of the rendered length (the template adds a few
    tokens per turn).
    """
    if template is not None and special is not None:
        from engine.encode import rendered_length

        try:
            return rendered_length(tokenizer, messages, template, special)
        except DataError:
            pass  # a conversation the template rejects: count its texts; role order flags it
    contents = [m.get("content") or "" for m in messages]
    if not contents:
        return 0
    return sum(len(ids) for ids in tokenizer(contents, add_special_tokens=False)["input_ids"])


def _empty_turns(example: dict) -> list[tuple[str, str]]:
    empty = [f"turn {i + 1} ({m['role']})" for i, m in enumerate(example["messages"])
             if not m["content"].strip()]
    return [("empty_turn", f"empty or whitespace-only: {', '.join(empty)}")] if empty else []


def _role_order(example: dict) -> list[tuple[str, str]]:
    # Placeholder contents: empty turns are the other rule's business.
    roles = [m["role"] for m in example["messages"]]
    problems = [text for text, _ in check_turns([(role, "x", "") for role in roles])]
    if roles and roles[-1] != "assistant" and not problems:
        problems.append(f"ends with a {roles[-1]} turn; the last turn must be the assistant's")
    return [("role_order", "; ".join(problems))] if problems else []


def _length(tokens: int | None, config: FilterConfig) -> list[tuple[str, str]]:
    if tokens is None:
        return []
    if tokens < config.min_tokens:
        return [("too_short", f"{tokens} tokens, fewer than min_tokens={config.min_tokens}")]
    if config.max_tokens is not None and tokens > config.max_tokens:
        return [("too_long", f"{tokens} tokens, more than max_tokens={config.max_tokens}")]
    return []


def _regex(example: dict, config: FilterConfig, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    hit = next((m["role"] for m in example["messages"]
                if m["role"] in config.regex_roles and pattern.search(m["content"])), None)
    if config.regex_action == "drop" and hit:
        return [("regex", f"{config.regex!r} matches in a {hit} turn")]
    if config.regex_action == "keep" and not hit:
        return [("regex", f"no {'/'.join(config.regex_roles)} turn matches {config.regex!r}")]
    return []


def _tags(example: dict, config: FilterConfig) -> list[tuple[str, str]]:
    tags = set(example.get("tags") or ())
    if config.keep_tags and not tags & set(config.keep_tags):
        return [("tag", f"has none of the tags {', '.join(config.keep_tags)}")]
    dropped = sorted(tags & set(config.drop_tags))
    return [("tag", f"tagged {', '.join(dropped)}")] if dropped else []


def _language_rule(config: FilterConfig, counts: Counter) -> Callable[[dict], list]:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def rule(example: dict) -> list[tuple[str, str]]:
        text = "\n".join(m["content"] for m in example["messages"] if m["role"] != "system")
        language, confidence = identifier.classify(text)
        counts[language] += 1
        if language in config.languages or confidence < config.language_min_confidence:
            return []
        return [("language", f"detected language {language} (confidence {confidence:.2f}); "
                             f"keeping only {', '.join(config.languages)}")]

    return rule


def _rules(config: FilterConfig, counts: Counter) -> list[Callable[[dict], list]]:
    rules: list[Callable[[dict], list]] = []
    if config.drop_empty_turns:
        rules.append(_empty_turns)
    if config.check_role_order:
        rules.append(_role_order)
    if config.regex:
        pattern = re.compile(config.regex)
        rules.append(lambda e: _regex(e, config, pattern))
    if config.keep_tags or config.drop_tags:
        rules.append(lambda e: _tags(e, config))
    if config.languages:
        rules.append(_language_rule(config, counts))
    return rules


def preview_filters(examples: Iterable[dict], config: FilterConfig = FilterConfig(), *,
                    tokenizer: Any = None, template: Any = None, special: Any = None,
                    total: int | None = None,
                    report: Reporter = ignore_progress,
                    cancel: CancelToken | None = None) -> FilterPreview:
    """Run the configured rules over examples and say which would be dropped, and why.

    Args:
        examples: example dicts with ``"id"`` and ``"messages"``; any iterable (an example
            without ``"id"`` is known by its 0-based position).
        config: the rules.
        tokenizer: a Hugging Face tokenizer, needed when ``config.needs_tokenizer``.
        template, special: the base model's chat template and special tokens; with them,
            lengths (and the truncation count) are those training sees (:func:`count_tokens`).
        total: number of examples, if known, for progress fractions.
        report: receives a ``"filter"`` event every 500 examples and at the end.
        cancel: polled every 500 examples.

    Returns:
        The preview; pass it to :func:`apply_filters`.

    Raises:
        ConfigError: a token rule is set but no tokenizer was given.
        Cancelled: ``cancel`` was set.
    """
    if config.needs_tokenizer and tokenizer is None:
        raise ConfigError("min_tokens, max_tokens and max_length count tokens: choose a base "
                          "model (tokenizer) or clear those fields")
    counts: Counter = Counter()
    rules, ids, flags, truncated = _rules(config, counts), [], [], 0
    for n, example in enumerate(examples):
        ids.append(n if example.get("id") is None else int(example["id"]))
        tokens = (count_tokens(tokenizer, example["messages"], template=template, special=special)
                  if tokenizer is not None else None)
        truncated += int(tokens is not None and config.max_length is not None
                         and tokens > config.max_length)
        found = [hit for rule in rules for hit in rule(example)] + _length(tokens, config)
        flags.extend(FilterFlag(ids[-1], rule, reason) for rule, reason in found)
        if (n + 1) % _REPORT_EVERY == 0:
            if cancel is not None:
                cancel.check()
            report(Progress("filter", n + 1, total, {"flagged": len(flags)}))
    report(Progress("filter", len(ids), total or len(ids), {"flagged": len(flags)}))
    return FilterPreview(tuple(ids), tuple(flags), truncated, dict(counts))


def apply_filters(preview: FilterPreview, keep_anyway: Iterable[int] = ()) -> list[int]:
    """The ids to keep, in input order: unflagged ones plus those the user keeps anyway."""
    keep, dropped = set(keep_anyway), preview.dropped
    return [i for i in preview.ids if i not in dropped or i in keep]
