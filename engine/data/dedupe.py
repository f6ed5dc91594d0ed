"""Exact and near-duplicate detection, and train/validation/test leakage checks.

Exact duplicates share :func:`engine.data.cleaning.content_key` (NFC, collapsed whitespace,
case-folded). Near duplicates are found with MinHash signatures and a banded LSH index
(datasketch's ``MinHash`` / ``MinHashLSH``; Broder 1997, "On the resemblance and containment
of documents"; Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3): LSH gives
candidate pairs, the estimated Jaccard similarity of their signatures must reach the
threshold, and the confirmed pairs are joined into groups with union-find.

Scanning streams: only ids, a 16-byte digest of each content key and one ``uint32``
signature row per example are kept, never the texts (100,000 examples at 128 permutations
hold about 51 MB of signatures).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from engine.configs import check_range, option
from engine.data.cleaning import content_key
from engine.errors import DataError
from engine.progress import CancelToken, Progress, Reporter, ignore_progress

SPLITS = ("train", "validation", "test")

# Scripts written without spaces between words; text mostly in them is shingled by characters.
_SPACELESS = re.compile("[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
                        "\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002ffff]")
_REPORT_EVERY = 1000
# (false positive, false negative) weights of datasketch's choice of LSH bands and rows.
# Every candidate is checked against the threshold with its signatures anyway, so a false
# positive only costs one comparison while a false negative is a missed duplicate.
_LSH_WEIGHTS = (0.1, 0.9)


@dataclass(frozen=True)
class DedupeConfig:
    """Settings of duplicate detection."""

    threshold: float = option(0.8, help="Estimated Jaccard similarity of shingle sets (0-1] at "
                                        "or above which two conversations are near duplicates.")
    num_perm: int = option(128, help="MinHash permutations per signature: more is more "
                                     "precise (error ~ 1/sqrt(num_perm)) but slower; 16-1024.")
    word_ngram: int = option(3, help="Words per shingle for text written with spaces.")
    char_ngram: int = option(5, help="Characters per shingle for text written without spaces "
                                     "(Chinese, Japanese, Thai, ...).")
    seed: int = option(1, help="Seed of the MinHash permutations; same seed, same result.")

    def __post_init__(self) -> None:
        check_range("threshold", self.threshold, low=0.0, high=1.0, low_open=True)
        check_range("num_perm", self.num_perm, low=16, high=1024)
        check_range("word_ngram", self.word_ngram, low=1, high=10)
        check_range("char_ngram", self.char_ngram, low=1, high=20)
        check_range("seed", self.seed, low=0)


@dataclass(frozen=True)
class DuplicateGroup:
    """Examples that are copies of each other; the first is kept, the rest proposed for removal.

    Attributes:
        kind: ``"exact"`` (same normalised content) or ``"near"`` (MinHash/LSH).
        ids: example ids in input order; ``ids[0]`` is the one kept.
        similarities: estimated Jaccard similarity of each member with ``ids[0]`` (1.0 for
            exact copies and for the kept one itself). A near group is a connected component,
            so a member may be linked through another one and score below the threshold here.
        splits: the split of each member (leakage checks only), else ``None``.
    """

    kind: str
    ids: tuple[int, ...]
    similarities: tuple[float, ...]
    splits: tuple[str, ...] | None = None

    @property
    def kept(self) -> int:
        """The id kept: the first occurrence."""
        return self.ids[0]

    @property
    def removals(self) -> tuple[int, ...]:
        """The ids proposed for removal."""
        return self.ids[1:]

    @property
    def similarity(self) -> float:
        """The lowest similarity of a member with the kept example."""
        return min(self.similarities[1:])


@dataclass(frozen=True)
class DedupePreview:
    """What de-duplication would remove.

    Attributes:
        groups: exact groups first, then near groups, each in order of first occurrence.
            An exact copy of an earlier example is never part of a near group.
        scanned: number of examples read.
    """

    groups: tuple[DuplicateGroup, ...]
    scanned: int

    @property
    def exact_groups(self) -> tuple[DuplicateGroup, ...]:
        """The groups of exact (normalised) copies."""
        return tuple(g for g in self.groups if g.kind == "exact")

    @property
    def near_groups(self) -> tuple[DuplicateGroup, ...]:
        """The groups of near duplicates."""
        return tuple(g for g in self.groups if g.kind == "near")


def shingles(example: dict, config: DedupeConfig) -> set[bytes]:
    """The shingle set of a conversation, over its normalised turns with role markers.

    Each turn is normalised like :func:`content_key`. A turn at least half of whose
    non-space characters belong to scripts written without spaces (Han, kana, Thai, Lao,
    Khmer, Myanmar) gives character ``char_ngram``-grams, since it has no words to count;
    any other turn gives word ``word_ngram``-grams. Every shingle starts with the role
    (``b"user\\x1f..."``), so the same words said by the user and by the assistant differ.
    A turn shorter than ``n`` units gives one shingle of all of it.

    Returns:
        UTF-8 encoded shingles (empty for a conversation without text).
    """
    out: set[bytes] = set()
    for role, text in content_key(example):
        bare = text.replace(" ", "")
        if len(_SPACELESS.findall(bare)) * 2 >= len(bare) > 0:
            units, n, sep = list(text), config.char_ngram, ""
        else:
            units, n, sep = text.split(), config.word_ngram, " "
        grams = range(max(1, len(units) - n + 1)) if units else range(0)
        out.update(f"{role}\x1f{sep.join(units[i:i + n])}".encode() for i in grams)
    return out


class _SignatureIndex:
    """Streams examples into exact-key buckets and an LSH index; keeps ids and signatures only."""

    def __init__(self, config: DedupeConfig) -> None:
        from datasketch import MinHash, MinHashLSH

        self.config = config
        self._template = MinHash(num_perm=config.num_perm, seed=config.seed)
        self._lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm,
                               weights=_LSH_WEIGHTS)
        self.ids: list[int] = []
        self.splits: list[str] = []
        self.exact_of: dict[int, int] = {}  # index of an exact copy -> index of its first
        self._first: dict[bytes, int] = {}
        self._rows: list[np.ndarray | None] = []
        self.pairs: list[tuple[int, int]] = []

    def add(self, example: dict, split: str | None) -> None:
        index = len(self.ids)
        self.ids.append(_example_id(example, index))
        if split is not None:
            self.splits.append(split)
        digest = hashlib.blake2b(repr(content_key(example)).encode(), digest_size=16).digest()
        first = self._first.setdefault(digest, index)
        signature = self._signature(example) if first == index else self._rows[first]
        self._rows.append(signature)
        if first != index:
            self.exact_of[index] = first
            return
        if signature is None:  # no text: nothing to compare
            return
        minhash = self._template.copy()
        minhash.hashvalues = signature
        for other in self._lsh.query(minhash):
            if self.similarity(index, other) >= self.config.threshold:
                self.pairs.append((other, index))
        self._lsh.insert(index, minhash, check_duplication=False)

    def _signature(self, example: dict) -> np.ndarray | None:
        grams = shingles(example, self.config)
        if not grams:
            return None
        minhash = self._template.copy()
        minhash.update_batch(grams)
        return minhash.hashvalues

    def similarity(self, a: int, b: int) -> float:
        """Estimated Jaccard similarity: the share of equal signature values."""
        return float(np.count_nonzero(self._rows[a] == self._rows[b])) / self.config.num_perm

    def groups(self) -> tuple[DuplicateGroup, ...]:
        exact: dict[int, list[int]] = {}
        for index, first in self.exact_of.items():
            exact.setdefault(first, [first]).append(index)
        near = _components(self.pairs)
        return (*(self._group("exact", members) for members in exact.values()),
                *(self._group("near", members) for members in near))

    def _group(self, kind: str, members: list[int]) -> DuplicateGroup:
        members = sorted(members)
        sims = [1.0 if kind == "exact" else self.similarity(members[0], m) for m in members]
        splits = tuple(self.splits[m] for m in members) if self.splits else None
        return DuplicateGroup(kind, tuple(self.ids[m] for m in members), tuple(sims), splits)


def _example_id(example: dict, index: int) -> int:
    if not isinstance(example, dict) or "messages" not in example:
        raise DataError(f"example {index + 1} is not a conversation: expected a dict with "
                        "'messages'")
    identifier = example.get("id")
    return index if identifier is None else int(identifier)


def _components(pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components (union-find with path halving) of the pairs, by first member."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for x in parent:
        members.setdefault(root(x), []).append(x)
    return sorted(members.values(), key=min)


def _scan(examples: Iterable[dict], config: DedupeConfig, total: int | None, with_split: bool,
          report: Reporter, cancel: CancelToken | None) -> _SignatureIndex:
    index = _SignatureIndex(config)
    for n, example in enumerate(examples):
        index.add(example, _split(example, n) if with_split else None)
        if (n + 1) % _REPORT_EVERY == 0:
            if cancel is not None:
                cancel.check()
            report(Progress("dedupe", n + 1, total, {"candidate_pairs": len(index.pairs)},
                            f"{n + 1} examples scanned"))
    report(Progress("dedupe", len(index.ids), total or len(index.ids),
                    {"candidate_pairs": len(index.pairs)}, f"{len(index.ids)} examples scanned"))
    return index


def _split(example: dict, index: int) -> str:
    split = example.get("split")
    if split not in SPLITS:
        raise DataError(f"example {example.get('id', index + 1)} has split {split!r}; a leakage "
                        f"check needs each example's 'split' to be one of {', '.join(SPLITS)}")
    return split


def find_duplicates(examples: Iterable[dict], config: DedupeConfig = DedupeConfig(), *,
                    total: int | None = None, report: Reporter = ignore_progress,
                    cancel: CancelToken | None = None) -> DedupePreview:
    """Find exact and near-duplicate conversations in one streaming pass.

    Args:
        examples: example dicts with ``"id"`` and ``"messages"``; any iterable (an example
            without ``"id"`` is known by its 0-based position).
        config: threshold, MinHash size and shingle lengths.
        total: number of examples, if known, for progress fractions.
        report: receives a ``"dedupe"`` progress event every 1,000 examples and at the end.
        cancel: polled every 1,000 examples.

    Returns:
        The preview; nothing is removed. Pass it to :func:`ids_to_remove`.

    Raises:
        DataError: an item is not a conversation dict.
        Cancelled: ``cancel`` was set.
    """
    index = _scan(examples, config, total, False, report, cancel)
    return DedupePreview(index.groups(), len(index.ids))


def find_leakage(examples: Iterable[dict], config: DedupeConfig = DedupeConfig(), *,
                 total: int | None = None, report: Reporter = ignore_progress,
                 cancel: CancelToken | None = None) -> tuple[DuplicateGroup, ...]:
    """Exact and near duplicates whose members lie in more than one split.

    Args:
        examples: example dicts with ``"id"``, ``"messages"`` and ``"split"`` (one of
            :data:`SPLITS`); any iterable.
        config, total, report, cancel: as for :func:`find_duplicates`.

    Returns:
        The crossing groups, each with ``splits`` set (one per member).

    Raises:
        DataError: an example has no valid ``"split"``.
        Cancelled: ``cancel`` was set.
    """
    index = _scan(examples, config, total, True, report, cancel)
    return tuple(g for g in index.groups() if len(set(g.splits or ())) > 1)


def ids_to_remove(preview: DedupePreview, keep_anyway: Iterable[int] = ()) -> set[int]:
    """The ids to drop: every group's removals, less those the user chose to keep.

    Args:
        preview: from :func:`find_duplicates`.
        keep_anyway: ids to keep although they were proposed for removal.
    """
    keep = set(keep_anyway)
    return {i for group in preview.groups for i in group.removals if i not in keep}


def describe(group: DuplicateGroup) -> str:
    """One line for a log or a tooltip: ``near: keep 3, remove 7, 9 (similarity 0.86)``."""
    removed = ", ".join(map(str, group.removals))
    return f"{group.kind}: keep {group.kept}, remove {removed} (similarity {group.similarity:.2f})"
