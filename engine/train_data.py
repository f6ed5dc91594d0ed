"""Training data for the loop: encoded examples and a seeded, resumable batch order.

The order of micro-batches is a pure function of (seed, epoch), so a resumed run only needs the
number of micro-batches already consumed to continue with exactly the same data.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from engine.errors import DataError

# Length grouping sorts windows of batch_size * _GROUP_WINDOW shuffled examples by length, like
# transformers' LengthGroupedSampler (mega-batches of 50): little padding, still random order.
_GROUP_WINDOW = 16


@dataclass(frozen=True)
class EncodedSplits:
    """Encoded train and validation examples and the rows that were left out.

    Attributes:
        train, val: lists of :class:`engine.encode.EncodedExample`.
        skipped: ``(split, row_index, reason)`` for every row that cannot be trained on.
    """

    train: list[Any]
    val: list[Any]
    skipped: list[tuple[str, int, str]]


def encode_splits(tokenizer: Any, train_rows: list[dict], val_rows: list[dict], template: Any,
                  special: Any, *, max_length: int, truncation: str) -> EncodedSplits:
    """Encode both splits with :func:`engine.encode.encode_rows`, collecting skipped rows.

    Raises:
        DataError: no training row is left to train on.
    """
    from engine.encode import encode_rows

    splits, skipped = {}, []
    for name, rows in (("train", train_rows), ("validation", val_rows)):
        examples, problems = encode_rows(tokenizer, rows, template, special,
                                         max_length=max_length, truncation=truncation)
        splits[name] = [e for e in examples if e.n_trained > 0]  # guard: never a 0-token row
        skipped.extend((name, index, reason) for index, reason in problems)
    if not splits["train"]:
        first = f" (first: row {skipped[0][1] + 1}: {skipped[0][2]})" if skipped else ""
        raise DataError(f"no training row can be trained on: {len(train_rows)} row(s) given, "
                        f"{sum(s[0] == 'train' for s in skipped)} unusable{first}")
    return EncodedSplits(splits["train"], splits["validation"], skipped)


class BatchOrder:
    """Deterministic micro-batches over all epochs, addressable by position.

    Micro-batch ``p`` belongs to epoch ``p // batches_per_epoch``; each epoch's order comes from
    ``random.Random(seed, epoch)`` only, so it can be rebuilt after a restart.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group_by_length: bool) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.batches_per_epoch = math.ceil(len(lengths) / batch_size)
        self._cache: tuple[int, list[list[int]]] | None = None

    def batch(self, position: int) -> list[int]:
        """Example indices of micro-batch number ``position`` (0-based, across epochs)."""
        epoch, index = divmod(position, self.batches_per_epoch)
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self.epoch_batches(epoch))
        return self._cache[1][index]

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All micro-batches of one epoch, in training order."""
        rng = random.Random(f"{self.seed}:{epoch}")
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if not self.group_by_length:
            return _chunks(order, self.batch_size)
        window = self.batch_size * _GROUP_WINDOW
        batches = []
        for start in range(0, len(order), window):
            group = sorted(order[start:start + window], key=lambda i: -self.lengths[i])
            batches.extend(_chunks(group, self.batch_size))
        rng.shuffle(batches)
        return batches


def total_steps(batches_per_epoch: int, accumulation: int, num_epochs: float,
                max_steps: int | None) -> int:
    """Optimizer steps of the run: ``max_steps`` if set, else ``ceil(epochs * batches / accum)``."""
    if max_steps is not None:
        return max_steps
    return max(1, math.ceil(num_epochs * batches_per_epoch / accumulation))


def eval_batches(examples: list[Any], batch_size: int) -> list[list[int]]:
    """Validation micro-batches: examples sorted by length (least padding; order is irrelevant)."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    return _chunks(order, batch_size)


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
