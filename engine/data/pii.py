"""Find personal data in a dataset and replace it with consistent placeholders, after review.

Two steps, like every dataset workbench operation:

1. :func:`preview` scans the examples once and lists every finding (example id, message index,
   role, kind, matched text, span, placeholder). The same datum (normalised: e-mail lower-cased,
   phone in E.164, card digits only) gets the same placeholder everywhere, e.g. ``<EMAIL_1>``,
   numbered per kind in order of first appearance.
2. :func:`apply` streams the examples again and yields replaced copies of those that change,
   leaving out the findings the user rejected.

Person names are found ONLY from the user's list (:attr:`PiiConfig.names`); nothing guesses
names. A URL that carries a secret is replaced as a whole (see
:func:`engine.data.pii_detect.find_secret_urls`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

from engine.configs import option
from engine.data import pii_detect
from engine.data.pii_detect import KINDS, PRIORITY, Match
from engine.errors import ConfigError, DataError
from engine.progress import CancelToken, Progress, Reporter, ignore_progress

ROLES = ("system", "user", "assistant")
FindingKey = tuple[int, int, int]
"""``(example_id, message_index, start)``: names one finding, e.g. in :func:`apply`'s ``skip``."""

_REPORT_EVERY = 500  # examples between progress events
_EXISTING = re.compile(r"<(EMAIL|PHONE|IP|CARD|URL|NAME)_(\d+)>")


@dataclass(frozen=True)
class PiiConfig:
    """What to look for, and where."""

    kinds: tuple[str, ...] = option(KINDS, help="Kinds of personal data to find: email, phone, "
                                    "ip, card, url (URLs carrying a secret), name (from the names list).")
    phone_region: str = option("US", help="Region (ISO 3166 code such as US, GB, DE) for phone "
                               "numbers written without +; empty finds only +international numbers.")
    names: tuple[str, ...] = option((), help="Person names to find (whole words, any case). "
                                    "Names are found only from this list; none are guessed.")
    roles: tuple[str, ...] = option(ROLES, help="Message roles to scan: system, user, assistant.")
    secret_params: tuple[str, ...] = option(
        pii_detect.DEFAULT_SECRET_PARAMS,
        help="URL query parameter names (any case) whose value is a secret; names ending in "
             "_token, _key, _secret, _signature, _sig or _password count too.")

    def __post_init__(self) -> None:
        for name in ("kinds", "names", "roles", "secret_params"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{name} must be a list of strings; got {value!r}")
            object.__setattr__(self, name, tuple(value))  # JSON gives lists back
        _check_subset("kinds", self.kinds, KINDS)
        _check_subset("roles", self.roles, ROLES)
        if any(not n.strip() for n in self.names):
            raise ConfigError("names must not contain empty names; remove the blank entries")
        object.__setattr__(self, "secret_params",
                           tuple(p.lower().replace("-", "_") for p in self.secret_params))
        self._check_region()

    def _check_region(self) -> None:
        import phonenumbers

        if self.phone_region and self.phone_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"phone_region must be an ISO 3166 region code such as US, GB or DE "
                              f"(or empty for +international numbers only); got {self.phone_region!r}")


def _check_subset(name: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ConfigError(f"{name} must be among {', '.join(allowed)}; got {', '.join(unknown)}")


@dataclass(frozen=True)
class Finding:
    """One piece of personal data in one message.

    Attributes:
        example_id: the example's ``"id"``.
        message_index: index into the example's ``messages``.
        role: that message's role.
        kind: one of ``email``, ``phone``, ``ip``, ``card``, ``url``, ``name``.
        text: the matched text as written (``content[start:end]``).
        start, end: character span in the message content.
        placeholder: what replaces the text, e.g. ``<EMAIL_1>``.
    """

    example_id: int
    message_index: int
    role: str
    kind: str
    text: str
    start: int
    end: int
    placeholder: str

    @property
    def key(self) -> FindingKey:
        """``(example_id, message_index, start)``, unique per finding; pass it in ``skip``."""
        return (self.example_id, self.message_index, self.start)


@dataclass(frozen=True)
class PiiPreview:
    """What :func:`apply` would change.

    Attributes:
        findings: every finding, in dataset order (example, message, position).
        counts: findings per kind (kinds with none are absent).
        placeholders: placeholder -> the normalised value it stands for, for review.
        examples_scanned: examples read.
    """

    findings: tuple[Finding, ...]
    counts: Mapping[str, int]
    placeholders: Mapping[str, str]
    examples_scanned: int

    @property
    def example_ids(self) -> frozenset[int]:
        """Ids of the examples with at least one finding."""
        return frozenset(f.example_id for f in self.findings)


class _Numbering:
    """Placeholder numbers per kind, in order of first appearance of each normalised value."""

    def __init__(self) -> None:
        self.numbers: dict[tuple[str, str], int] = {}
        self.per_kind: Counter[str] = Counter()
        self.existing: Counter[str] = Counter()  # highest <KIND_n> already in the data

    def number(self, match: Match) -> int:
        key = (match.kind, match.value)
        if key not in self.numbers:
            self.per_kind[match.kind] += 1
            self.numbers[key] = self.per_kind[match.kind]
        return self.numbers[key]

    def see_existing(self, content: str) -> None:
        for kind, n in _EXISTING.findall(content):
            self.existing[kind.lower()] = max(self.existing[kind.lower()], int(n))

    def placeholder(self, kind: str, number: int) -> str:
        # Numbers continue after placeholders already in the data, so an earlier <EMAIL_1>
        # is never confused with a new one.
        return f"<{kind.upper()}_{self.existing[kind] + number}>"


def scan_text(text: str, config: PiiConfig, names: re.Pattern[str] | None = None) -> list[Match]:
    """All findings in one text after overlap resolution, in order of position.

    Overlaps go to the longest match, then the most specific kind (url, email, card, ip, phone,
    name), then the earliest; the losers are dropped, so an e-mail inside a secret URL is part
    of the URL's finding.

    Args:
        text: the text to scan.
        config: which kinds to look for.
        names: :func:`engine.data.pii_detect.name_pattern` of ``config.names`` (built once per
            dataset by :func:`preview`; built here when ``None``).
    """
    candidates = list(_candidates(text, config, names))
    kept: list[Match] = []
    for m in sorted(candidates, key=lambda m: (m.start - m.end, PRIORITY[m.kind], m.start)):
        if all(m.end <= k.start or k.end <= m.start for k in kept):
            kept.append(m)
    return sorted(kept, key=lambda m: m.start)


def _candidates(text: str, config: PiiConfig, names: re.Pattern[str] | None) -> Iterator[Match]:
    kinds = set(config.kinds)
    if "email" in kinds:
        yield from pii_detect.find_emails(text)
    if "phone" in kinds:
        yield from pii_detect.find_phones(text, config.phone_region or None)
    if "ip" in kinds:
        yield from pii_detect.find_ips(text)
    if "card" in kinds:
        yield from pii_detect.find_cards(text)
    if "url" in kinds:
        yield from pii_detect.find_secret_urls(text, config.secret_params)
    if "name" in kinds:
        yield from pii_detect.find_names(text, names or pii_detect.name_pattern(config.names))


def preview(examples: Iterable[dict], config: PiiConfig | None = None, *,
            report: Reporter = ignore_progress, cancel: CancelToken | None = None) -> PiiPreview:
    """List every piece of personal data with the placeholder it will get; changes nothing.

    One pass over ``examples`` (any iterable; only the findings are kept in memory).

    Args:
        examples: example dicts with ``"id"`` and ``"messages"``.
        config: what to look for and in which roles; ``None`` for the defaults.
        report: receives ``Progress("pii_preview", examples_done, total_or_None)``.
        cancel: polled between examples.

    Returns:
        The findings, counts per kind and the placeholder map.

    Raises:
        Cancelled: ``cancel`` was set.
    """
    config = config or PiiConfig()
    total = len(examples) if hasattr(examples, "__len__") else None
    names = pii_detect.name_pattern(config.names) if "name" in config.kinds else None
    numbering = _Numbering()
    raw: list[tuple[int, int, str, Match, int]] = []
    done = 0
    for done, example in enumerate(examples, 1):
        if cancel is not None:
            cancel.check()
        for index, message in _scanned_messages(example, config):
            numbering.see_existing(message["content"])
            for m in scan_text(message["content"], config, names):
                raw.append((example["id"], index, message["role"], m, numbering.number(m)))
        if done % _REPORT_EVERY == 0:
            report(Progress("pii_preview", done, total, message=f"{len(raw)} findings so far"))
    report(Progress("pii_preview", done, total, message=f"{len(raw)} findings"))
    return _build_preview(raw, numbering, done)


def _scanned_messages(example: dict, config: PiiConfig) -> Iterator[tuple[int, dict]]:
    for index, message in enumerate(example["messages"]):
        if message.get("role") in config.roles and isinstance(message.get("content"), str):
            yield index, message


def _build_preview(raw: list, numbering: _Numbering, scanned: int) -> PiiPreview:
    findings = tuple(Finding(eid, index, role, m.kind, m.text, m.start, m.end,
                             numbering.placeholder(m.kind, n)) for eid, index, role, m, n in raw)
    placeholders = {numbering.placeholder(kind, n): value
                    for (kind, value), n in numbering.numbers.items()}
    counts = dict(Counter(f.kind for f in findings))
    return PiiPreview(findings, counts, placeholders, scanned)


def apply(examples: Iterable[dict], preview: PiiPreview, *, skip: Iterable[FindingKey] = (),
          report: Reporter = ignore_progress, cancel: CancelToken | None = None) -> Iterator[dict]:
    """Yield replaced copies of the examples that change; the rest are not yielded.

    Lazy: a generator that reads ``examples`` (the same data the preview saw, any iterable) one
    at a time. Inputs are never modified; a changed example is a shallow copy with new message
    dicts where their content changed.

    Args:
        examples: example dicts with ``"id"`` and ``"messages"``.
        preview: the result of :func:`preview` on these examples.
        skip: :attr:`Finding.key` of each finding the user rejected; its text stays.
        report: receives ``Progress("pii_apply", examples_done, total_or_None)``.
        cancel: polled between examples.

    Raises:
        ConfigError: a key in ``skip`` is not a finding of ``preview``.
        DataError: a message no longer has the previewed text at a finding's span (the data
            changed after the preview: run the preview again).
        Cancelled: ``cancel`` was set.
    """
    by_example = _findings_by_example(preview, {tuple(k) for k in skip})  # JSON gives lists
    total = len(examples) if hasattr(examples, "__len__") else None
    done = 0
    for done, example in enumerate(examples, 1):
        if cancel is not None:
            cancel.check()
        if done % _REPORT_EVERY == 0:
            report(Progress("pii_apply", done, total))
        findings = by_example.get(example["id"])
        if findings:
            yield _replaced(example, findings)
    report(Progress("pii_apply", done, total))


def _findings_by_example(preview: PiiPreview, skip: set[FindingKey]) -> dict[int, list[Finding]]:
    unknown = skip - {f.key for f in preview.findings}
    if unknown:
        raise ConfigError(f"skip names {len(unknown)} finding(s) not in the preview, e.g. "
                          f"{sorted(unknown)[0]} (example id, message index, start); "
                          "use the [example id, message index, start] keys this preview lists")
    grouped: dict[int, list[Finding]] = {}
    for f in preview.findings:
        if f.key not in skip:
            grouped.setdefault(f.example_id, []).append(f)
    return grouped


def _replaced(example: dict, findings: list[Finding]) -> dict:
    messages = list(example["messages"])
    for f in sorted(findings, key=lambda f: (f.message_index, f.start), reverse=True):
        content = messages[f.message_index]["content"]
        if content[f.start:f.end] != f.text:
            raise DataError(f"example {f.example_id}, message {f.message_index}: expected "
                            f"{f.kind} text at characters {f.start}-{f.end} is not there; the "
                            "data changed after the preview, run the preview again")
        new_content = content[:f.start] + f.placeholder + content[f.end:]
        messages[f.message_index] = {**messages[f.message_index], "content": new_content}
    return {**example, "messages": messages}
