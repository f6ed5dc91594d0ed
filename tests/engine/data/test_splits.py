"""Train/validation/test split: sizes by hand, determinism, stratification, synthetic leakage."""

from __future__ import annotations

import random

import pytest

from engine.data.splits import SplitConfig, group_key, partition, split_dataset
from engine.errors import Cancelled, ConfigError, DataError
from engine.progress import CancelToken


def _example(example_id: int, tags: list[str] | None = None, origin: int | None = None) -> dict:
    example = {"id": example_id, "tags": tags or [],
               "messages": [{"role": "user", "content": f"q{example_id}"},
                            {"role": "assistant", "content": "a"}]}
    if origin is not None:
        example.update(synthetic=True, origin_id=origin)
    return example


def _ids(assignment: dict[int, str], split: str) -> set[int]:
    return {i for i, name in assignment.items() if name == split}


def test_sizes_are_rounded_shares_and_every_example_lands_once() -> None:
    examples = [_example(i) for i in range(1, 21)]
    result = split_dataset(examples, SplitConfig(validation_fraction=0.2, test_fraction=0.1, seed=3))
    # 20 * 0.2 = 4 validation, 20 * 0.1 = 2 test, the other 14 train.
    assert result.counts == {"train": 14, "validation": 4, "test": 2}
    assert sorted(result.assignment) == list(range(1, 21))
    assert result.excluded_synthetic == () and result.orphan_synthetic == ()


def test_same_seed_same_split_whatever_the_input_order_other_seeds_differ() -> None:
    examples = [_example(i) for i in range(1, 41)]
    config = SplitConfig(validation_fraction=0.25, test_fraction=0.25, seed=11)
    first = split_dataset(examples, config).assignment
    shuffled = examples[:]
    random.Random(0).shuffle(shuffled)
    assert split_dataset(iter(shuffled), config).assignment == first  # any iterable, any order
    others = [split_dataset(examples, SplitConfig(validation_fraction=0.25, test_fraction=0.25,
                                                  seed=s)).assignment for s in range(12, 16)]
    assert any(other != first for other in others)


@pytest.mark.parametrize(("n", "validation", "test", "expected"), [
    (3, 0.1, 0.0, (2, 1, 0)),   # 0.3 rounds to 0, but a nonzero share gets one example
    (2, 0.1, 0.1, (1, 1, 0)),   # one each would leave nothing to train: test gives way
    (1, 0.5, 0.0, (1, 0, 0)),   # a single example always trains
    (5, 0.0, 0.0, (5, 0, 0)),
    (5, 0.1, 0.0, (4, 1, 0)),   # 0.5 rounds half up to 1
])
def test_small_datasets_keep_one_training_example(n: int, validation: float, test: float,
                                                  expected: tuple[int, int, int]) -> None:
    result = split_dataset([_example(i) for i in range(n)],
                           SplitConfig(validation_fraction=validation, test_fraction=test))
    assert tuple(result.counts.values()) == expected


def test_stratified_split_keeps_each_tag_share() -> None:
    examples = ([_example(i, ["intent:greet"]) for i in range(10)]
                + [_example(i, ["intent:order", "topic:food"]) for i in range(10, 30)]
                + [_example(i, ["topic:weather"]) for i in range(30, 35)]
                + [_example(i) for i in range(35, 40)])
    config = SplitConfig(validation_fraction=0.2, test_fraction=0.2, seed=5, stratify=True,
                         tag_prefix="intent:")
    result = split_dataset(examples, config)
    # Hand count: greet 10 -> 2/2/6; order 20 -> 4/4/12; the 10 without an intent tag -> 2/2/6.
    assert result.group_counts == {
        "intent:greet": {"train": 6, "validation": 2, "test": 2},
        "intent:order": {"train": 12, "validation": 4, "test": 4},
        None: {"train": 6, "validation": 2, "test": 2},
    }
    greet_val = _ids(result.assignment, "validation") & set(range(10))
    assert len(greet_val) == 2
    assert result.counts == {"train": 24, "validation": 8, "test": 8}


def test_stratified_groups_round_half_up_and_small_groups_stay_in_train() -> None:
    examples = ([_example(i, ["b"]) for i in range(5)] + [_example(5, ["c"])]
                + [_example(i, ["a", "b"]) for i in range(6, 9)])
    result = split_dataset(examples, SplitConfig(validation_fraction=0.1, stratify=True))
    # Without a prefix, multi-tag examples go by their first tag in sorted order: "a".
    # b: 5 * 0.1 = 0.5 -> 1; a: 3 * 0.1 = 0.3 -> 0; c: a lone example trains.
    assert result.group_counts == {"b": {"train": 4, "validation": 1, "test": 0},
                                   "c": {"train": 1, "validation": 0, "test": 0},
                                   "a": {"train": 3, "validation": 0, "test": 0}}


def test_group_key_takes_the_first_sorted_tag_with_the_prefix() -> None:
    assert group_key(["zeta", "intent:buy", "alpha", "intent:ask"]) == "alpha"
    assert group_key(["zeta", "intent:buy", "alpha", "intent:ask"], "intent:") == "intent:ask"
    assert group_key(["zeta"], "intent:") is None
    assert group_key([]) is None


def test_synthetic_examples_follow_their_origin_and_never_reach_evaluation() -> None:
    originals = [_example(i) for i in range(1, 11)]
    synthetic = [_example(100 + i, origin=i) for i in range(1, 11)]
    chained = [_example(200 + i, origin=100 + i) for i in range(1, 11)]  # paraphrase of a paraphrase
    orphan = [_example(999, origin=12345)]
    config = SplitConfig(validation_fraction=0.2, test_fraction=0.1, seed=2)
    plain = split_dataset(originals, config).assignment
    result = split_dataset(synthetic + originals + chained + orphan, config)
    assert {i: result.assignment[i] for i in plain} == plain  # synthetic rows do not move originals
    held_out = {i for i, name in plain.items() if name != "train"}
    assert len(held_out) == 3  # 2 validation + 1 test
    expected_excluded = sorted([100 + i for i in held_out] + [200 + i for i in held_out])
    assert list(result.excluded_synthetic) == expected_excluded
    assert result.orphan_synthetic == (999,)
    for i in set(range(1, 11)) - held_out:
        assert result.assignment[100 + i] == result.assignment[200 + i] == "train"
    assert result.assignment[999] == "train"
    assert result.counts == {"train": 7 + 7 + 7 + 1, "validation": 2, "test": 1}
    assert not set(result.excluded_synthetic) & set(result.assignment)


def test_partition_applies_the_split_in_input_order() -> None:
    examples = [_example(i) for i in range(1, 6)] + [_example(50 + i, origin=i) for i in range(1, 6)]
    result = split_dataset(examples, SplitConfig(validation_fraction=0.4, seed=1))
    parts = partition(examples, result)
    assert [len(parts[name]) for name in ("train", "validation", "test")] == [6, 2, 0]
    assert [e["id"] for e in parts["validation"]] == sorted(_ids(result.assignment, "validation"))
    train_ids = [e["id"] for e in parts["train"]]
    assert train_ids == [e["id"] for e in examples if e["id"] in train_ids]
    assert len(train_ids) + 2 + len(result.excluded_synthetic) == 10


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"validation_fraction": -0.1}, "validation_fraction"),
    ({"test_fraction": 1.5}, "test_fraction"),
    ({"test_fraction": float("nan")}, "test_fraction"),
    ({"validation_fraction": 0.6, "test_fraction": 0.4}, "validation_fraction \\+ test_fraction"),
    ({"seed": "7"}, "seed"),
    ({"stratify": True, "tag_prefix": 3}, "tag_prefix"),
])
def test_bad_config_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SplitConfig(**kwargs)


@pytest.mark.parametrize(("examples", "message"), [
    ([{"messages": []}], "no integer \"id\""),
    ([_example(1), _example(1)], "id 1 appears twice"),
    ([_example(1), {"id": 2, "synthetic": True}], "no integer origin_id"),
    ([_example(1, origin=2), _example(2, origin=1)], "loops"),
])
def test_bad_examples_are_data_errors(examples: list[dict], message: str) -> None:
    with pytest.raises(DataError, match=message):
        split_dataset(examples, SplitConfig())


def test_cancel_stops_the_split() -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        split_dataset((_example(i) for i in range(20_000)), SplitConfig(), cancel=token)
