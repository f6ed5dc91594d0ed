"""Seeded train/validation/test split of a dataset, optionally stratified by tag.

Rules (dataset workbench, issue 4):

- Only original examples are drawn. A synthetic example (``"synthetic": True`` with an
  ``"origin_id"``) follows its origin, followed back through chains of synthetic examples to
  the first original: it goes to ``train`` when that origin is in ``train`` and is *excluded*
  when the origin is in ``validation`` or ``test`` (a paraphrase of an evaluation example in
  training would leak it). A synthetic example whose origin is not in the input cannot leak it
  and goes to ``train``; these are counted as orphans.
- The split depends only on the seed and the ids, never on input order: within each group the
  ids are ordered by ``blake2b(f"{seed}:{id}")`` and the first ones go to validation, then test.
- With ``stratify``, every tag group is split in proportion (sizes rounded half up per group,
  at least one example of each group left in train). An example with several tags belongs to
  the group of its first tag in sorted order that starts with ``tag_prefix`` (``""`` = any
  tag); examples with no such tag form one group of their own.
- Without ``stratify``, the whole dataset is one group and, as in
  :func:`engine.data.cleaning.split_examples`, a nonzero fraction gets at least one example
  while at least one example stays in train.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Iterable

from engine.configs import check_range, option
from engine.errors import ConfigError, DataError
from engine.progress import CancelToken, Progress, Reporter, ignore_progress

SPLITS = ("train", "validation", "test")
_CHECK_EVERY = 10_000  # examples between cancel checks and progress events


@dataclass(frozen=True)
class SplitConfig:
    """How to split a dataset.

    Raises:
        ConfigError: a fraction outside [0, 1), fractions summing to 1 or more, a seed that is
            not an integer, or a ``tag_prefix`` that is not text.
    """

    validation_fraction: float = option(0.1, "Share of original examples for validation, in [0, 1).")
    test_fraction: float = option(0.0, "Share of original examples held out for the final test, in [0, 1).")
    seed: int = option(0, "Seed of the split: the same seed and ids give the same split.")
    stratify: bool = option(False, "Split every tag group in proportion, so each tag keeps its share "
                                   "in every split.")
    tag_prefix: str = option("", "With stratify: group by the first tag (sorted) that starts with "
                                 "this prefix, e.g. 'intent:'; empty means the first tag.")

    def __post_init__(self) -> None:
        for name in ("validation_fraction", "test_fraction"):
            _check_fraction(name, getattr(self, name))
        if self.validation_fraction + self.test_fraction >= 1:
            raise ConfigError("validation_fraction + test_fraction must be below 1 so that some "
                              f"examples train; got {self.validation_fraction!r} + "
                              f"{self.test_fraction!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"seed must be an integer; got {self.seed!r}")
        if not isinstance(self.tag_prefix, str):
            raise ConfigError(f"tag_prefix must be text; got {self.tag_prefix!r}")


def _check_fraction(name: str, value: float) -> None:
    check_range(name, value, low=0, high=1)
    if value == 1:
        raise ConfigError(f"{name} must be in [0, 1): a split needs training examples; got {value!r}")


@dataclass(frozen=True)
class SplitResult:
    """The split of one dataset (the preview; :func:`partition` applies it).

    Attributes:
        assignment: example id -> ``"train"``, ``"validation"`` or ``"test"``, for every example
            kept; excluded synthetic examples are absent.
        counts: examples per split name (all of :data:`SPLITS`, zeros included).
        excluded_synthetic: ids of synthetic examples left out because their origin is in
            validation or test, sorted.
        orphan_synthetic: ids of synthetic examples whose origin is not in the input (put in
            train), sorted.
        group_counts: with stratify, group (tag, or ``None`` for untagged) -> split -> count
            of original examples; empty otherwise.
    """

    assignment: dict[int, str]
    counts: dict[str, int]
    excluded_synthetic: tuple[int, ...]
    orphan_synthetic: tuple[int, ...]
    group_counts: dict[str | None, dict[str, int]]


def split_dataset(examples: Iterable[dict], config: SplitConfig, *,
                  report: Reporter = ignore_progress,
                  cancel: CancelToken | None = None) -> SplitResult:
    """Assign every example to train, validation or test (see the module rules).

    Args:
        examples: example dicts with an integer ``"id"``; ``"tags"``, ``"synthetic"`` and
            ``"origin_id"`` are read. Streamed: only ids, group keys and origins are kept.
        config: fractions, seed and stratification.
        report: receives ``Progress("split", n)`` every 10,000 examples and at the end.
        cancel: polled every 10,000 examples.

    Returns:
        The assignment, counts per split and the synthetic examples excluded or orphaned.

    Raises:
        DataError: an example without an integer ``"id"``, a repeated id, or a synthetic
            example without ``"origin_id"``.
        Cancelled: ``cancel`` was set.
    """
    originals, origin_of = _read_ids(examples, config.tag_prefix, report, cancel)
    groups = _group(originals, config.stratify)
    assignment: dict[int, str] = {}
    group_counts: dict[str | None, dict[str, int]] = {}
    for key, ids in groups.items():
        ordered = sorted(ids, key=lambda i: _rank(config.seed, i))
        sizes = _sizes(len(ordered), config.validation_fraction, config.test_fraction,
                       at_least_one=not config.stratify)
        for example_id, name in zip(ordered, _labels(len(ordered), sizes)):
            assignment[example_id] = name
        if config.stratify:
            group_counts[key] = _count(assignment[i] for i in ordered)
    excluded, orphans = _place_synthetic(origin_of, assignment)
    result = SplitResult(assignment, _count(assignment.values()), excluded, orphans, group_counts)
    report(Progress("split", len(assignment) + len(excluded), None, dict(result.counts),
                    f"{len(excluded)} synthetic example(s) excluded"))
    return result


def partition(examples: Iterable[dict], result: SplitResult) -> dict[str, list[dict]]:
    """Apply a split: the examples of each split name, in input order.

    Examples absent from ``result.assignment`` (excluded synthetic ones, or ids the split never
    saw) are left out.
    """
    parts: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for example in examples:
        name = result.assignment.get(example.get("id"))
        if name is not None:
            parts[name].append(example)
    return parts


def group_key(tags: Iterable[str], prefix: str = "") -> str | None:
    """The stratification group of an example: its first tag in sorted order with ``prefix``."""
    matching = sorted(tag for tag in tags if tag.startswith(prefix))
    return matching[0] if matching else None


def _read_ids(examples: Iterable[dict], prefix: str, report: Reporter, cancel: CancelToken | None
              ) -> tuple[dict[int, str | None], dict[int, int]]:
    """Original id -> group key, and synthetic id -> origin id; checks ids are unique ints."""
    originals: dict[int, str | None] = {}
    origin_of: dict[int, int] = {}
    for n, example in enumerate(examples, start=1):
        example_id = _id_of(example, n)
        if example_id in originals or example_id in origin_of:
            raise DataError(f"example {n}: id {example_id} appears twice; ids must be unique")
        if example.get("synthetic"):
            origin = example.get("origin_id")
            if not isinstance(origin, int) or isinstance(origin, bool):
                raise DataError(f"example id {example_id}: synthetic but has no integer origin_id")
            origin_of[example_id] = origin
        else:
            originals[example_id] = group_key(example.get("tags") or (), prefix)
        if n % _CHECK_EVERY == 0:
            if cancel is not None:
                cancel.check()
            report(Progress("split", n, None, {}, "reading ids"))
    return originals, origin_of


def _id_of(example: dict, n: int) -> int:
    example_id = example.get("id")
    if not isinstance(example_id, int) or isinstance(example_id, bool):
        raise DataError(f"example {n}: no integer \"id\" (got {example_id!r}); split needs "
                        "stored examples")
    return example_id


def _group(originals: dict[int, str | None], stratify: bool) -> dict[str | None, list[int]]:
    if not stratify:
        return {None: list(originals)}
    groups: dict[str | None, list[int]] = {}
    for example_id, key in originals.items():
        groups.setdefault(key, []).append(example_id)
    return groups


def _rank(seed: int, example_id: int) -> bytes:
    """A seeded pseudo-random order of ids that ignores input order (blake2b, 8 bytes)."""
    return hashlib.blake2b(f"{seed}:{example_id}".encode(), digest_size=8).digest()


def _round_half_up(x: float) -> int:
    # Python's round() rounds halves to even; half-up is what a person computes by hand.
    return math.floor(x + 0.5)


def _sizes(n: int, validation: float, test: float, *, at_least_one: bool) -> tuple[int, int]:
    """Validation and test sizes of a group of ``n``, always leaving one example to train."""
    val, tst = _round_half_up(n * validation), _round_half_up(n * test)
    if at_least_one:
        val = max(val, 1) if validation > 0 else 0
        tst = max(tst, 1) if test > 0 else 0
    while n > 0 and val + tst > n - 1:
        if tst >= val and tst > 0:
            tst -= 1
        else:
            val -= 1
    return max(val, 0), max(tst, 0)


def _labels(n: int, sizes: tuple[int, int]) -> list[str]:
    val, tst = sizes
    return ["validation"] * val + ["test"] * tst + ["train"] * (n - val - tst)


def _place_synthetic(origin_of: dict[int, int], assignment: dict[int, str]
                     ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Put synthetic examples in train when their root origin trains; return excluded, orphans."""
    excluded, orphans = [], []
    for example_id in sorted(origin_of):
        root = _root(example_id, origin_of)
        split = assignment.get(root)
        if split is None:
            orphans.append(example_id)
        if split in (None, "train"):
            assignment[example_id] = "train"
        else:
            excluded.append(example_id)
    return tuple(excluded), tuple(orphans)


def _root(example_id: int, origin_of: dict[int, int]) -> int:
    """Follow origin ids through synthetic examples to the first non-synthetic id."""
    seen = {example_id}
    current = origin_of[example_id]
    while current in origin_of:
        if current in seen:
            raise DataError(f"example id {example_id}: its origin_id chain loops back to "
                            f"{current}; fix the synthetic examples' origin_id")
        seen.add(current)
        current = origin_of[current]
    return current


def _count(names: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(SPLITS, 0)
    for name in names:
        counts[name] += 1
    return counts
