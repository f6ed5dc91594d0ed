"""Batch order: seeded, one pass per epoch, resumable by position, less padding when grouped."""

from __future__ import annotations

import random

from engine.train_data import BatchOrder, total_steps


def _lengths(n: int = 50) -> list[int]:
    rng = random.Random(0)
    return [rng.randint(5, 200) for _ in range(n)]


def test_each_epoch_visits_every_example_once() -> None:
    order = BatchOrder(_lengths(), batch_size=4, seed=1, group_by_length=True)
    assert order.batches_per_epoch == 13  # ceil(50 / 4)
    for epoch in range(2):
        seen = [i for p in range(13) for i in order.batch(epoch * 13 + p)]
        assert sorted(seen) == list(range(50))


def test_order_depends_only_on_seed_and_position() -> None:
    a = BatchOrder(_lengths(), 4, seed=1, group_by_length=True)
    b = BatchOrder(_lengths(), 4, seed=1, group_by_length=True)
    positions = [20, 3, 14, 0, 27]  # jump around, as a resumed run does
    jumbled = {p: a.batch(p) for p in positions}
    in_order = {p: b.batch(p) for p in sorted(positions)}
    assert jumbled == in_order
    assert a.epoch_batches(0) != a.epoch_batches(1)
    assert BatchOrder(_lengths(), 4, seed=2, group_by_length=True).epoch_batches(0) != a.epoch_batches(0)


def test_grouping_by_length_cuts_padding() -> None:
    lengths = _lengths(200)

    def padding(order: BatchOrder) -> int:
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b)
                   for b in order.epoch_batches(0))

    grouped = padding(BatchOrder(lengths, 8, seed=3, group_by_length=True))
    plain = padding(BatchOrder(lengths, 8, seed=3, group_by_length=False))
    assert grouped < plain / 3


def test_total_steps() -> None:
    assert total_steps(10, 3, 2.0, None) == 7  # ceil(20 / 3)
    assert total_steps(10, 1, 0.25, None) == 3  # ceil(2.5)
    assert total_steps(10, 1, 3.0, 5) == 5
