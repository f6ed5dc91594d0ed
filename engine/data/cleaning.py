"""Dataset cleaning after import: near-exact de-duplication and a seeded train/validation split."""

from __future__ import annotations

import hashlib
import random
import unicodedata
from typing import Iterable, Iterator

from engine.errors import ConfigError


def exact_key(example: dict) -> tuple[tuple[str, str], ...]:
    """The roles and contents of an example, as they are: equal keys mean exact duplicates."""
    return tuple((m["role"], m["content"]) for m in example["messages"])


def content_key(example: dict) -> tuple[tuple[str, str], ...]:
    """The comparison key of an example: its roles and normalised contents.

    Contents are Unicode NFC-normalised, runs of whitespace collapsed to one space (and trimmed)
    and case-folded, so copies that differ only in spacing, case or composed/decomposed accents
    count as one.
    """
    return tuple((m["role"], " ".join(unicodedata.normalize("NFC", m["content"]).split()).casefold())
                 for m in example["messages"])


def remove_duplicates(examples: list[dict]) -> tuple[list[dict], int]:
    """Drop examples whose :func:`content_key` equals an earlier one's; keep first occurrences.

    Returns:
        ``(kept, removed)``: a new list in the original order, and how many were dropped.
        The input list is not changed.
    """
    kept = list(unique_examples(examples))
    return kept, len(examples) - len(kept)


def unique_examples(examples: Iterable[dict], removed: list[int] | None = None) -> Iterator[dict]:
    """Stream the examples whose :func:`content_key` is new, in order (first occurrences).

    Only a 16-byte digest per distinct example is kept, so this fits imports of any size.

    Args:
        examples: example dicts; any iterable.
        removed: if given, ``removed[0]`` is increased by one per dropped duplicate.
    """
    seen: set[bytes] = set()
    for example in examples:
        key = hashlib.blake2b(repr(content_key(example)).encode("utf-8"), digest_size=16).digest()
        if key in seen:
            if removed is not None:
                removed[0] += 1
            continue
        seen.add(key)
        yield example


def split_examples(examples: list[dict], *, validation_fraction: float,
                   seed: int) -> tuple[list[dict], list[dict]]:
    """Split examples into training and validation sets, reproducibly.

    Args:
        examples: the examples to split.
        validation_fraction: share for validation in [0, 1); rounded, but at least 1
            example when the fraction is above 0 and there are 2 or more examples, and never
            all of them.
        seed: seed of the shuffle; the same seed and input give the same split.

    Returns:
        ``(train, validation)``, each in the original order; every example lands in exactly one.

    Raises:
        ConfigError: ``validation_fraction`` outside [0, 1).
    """
    if not 0 <= validation_fraction < 1:
        raise ConfigError(f"validation_fraction must be in [0, 1); got {validation_fraction!r}")
    total = len(examples)
    size = round(total * validation_fraction)
    if validation_fraction > 0 and total >= 2:
        size = min(max(size, 1), total - 1)
    order = list(range(total))
    random.Random(seed).shuffle(order)
    chosen = set(order[:size])
    train = [e for i, e in enumerate(examples) if i not in chosen]
    return train, [e for i, e in enumerate(examples) if i in chosen]
