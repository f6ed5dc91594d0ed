"""Dataset statistics: counts by hand, percentiles vs numpy, token lengths vs the tokenizer."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from engine.data.stats import LengthSummary, StatsConfig, dataset_stats, histogram, summarize
from engine.errors import Cancelled, ConfigError
from engine.progress import CancelToken, Progress


def _msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


EXAMPLES = [
    {"id": 1, "tags": ["greet", "en"], "messages": [_msg("user", "Hi"), _msg("assistant", "Hello!")]},
    {"id": 2, "tags": ["greet"], "messages": [_msg("system", "Be brief."), _msg("user", "Hey"),
                                              _msg("assistant", "Hi."), _msg("user", "Bye"),
                                              _msg("assistant", "Bye!")]},
    {"id": 3, "tags": [], "synthetic": True, "origin_id": 1,
     "messages": [_msg("user", "Hello"), _msg("assistant", "Hello to you")]},
    {"id": 4, "tags": ["en", "en"], "messages": [_msg("user", "What is your name?"),
                                                 _msg("assistant", "Tunesmith.")]},
]


def test_counts_roles_tags_and_synthetic_share_by_hand() -> None:
    stats = dataset_stats(iter(EXAMPLES))
    assert (stats.examples, stats.turns) == (4, 11)
    assert stats.turns_by_role == {"user": 5, "assistant": 5, "system": 1}
    assert stats.tags == {"greet": 2, "en": 2}  # "en" twice in example 4 counts once
    assert stats.untagged == 1
    assert (stats.synthetic, stats.synthetic_share) == (1, 0.25)
    assert stats.tokens is None


def test_characters_per_turn_by_hand() -> None:
    stats = dataset_stats(EXAMPLES)
    # user: Hi 2, Hey 3, Bye 3, Hello 5, "What is your name?" 18
    assert stats.chars_per_turn_by_role["user"] == LengthSummary(5, 2, 3.0, 18, 18, 31 / 5)
    # assistant: Hello! 6, Hi. 3, Bye! 4, "Hello to you" 12, Tunesmith. 10 -> sorted 3 4 6 10 12
    assert stats.chars_per_turn_by_role["assistant"] == LengthSummary(5, 3, 6.0, 12, 12, 35 / 5)
    assert stats.chars_per_turn.count == 11 and stats.chars_per_turn.max == 18
    assert stats.chars_per_turn.min == 2 and stats.chars_per_turn.mean == pytest.approx(75 / 11)


@pytest.mark.parametrize("values", [[7], [1, 2], [5, 1, 9, 9, 3, 100, 2, 2],
                                    list(range(1, 41)) + [500] * 3])
def test_median_and_p95_agree_with_statistics_and_numpy(values: list[int]) -> None:
    summary = summarize(Counter(values))
    assert summary.median == statistics.median(values)
    assert summary.p95 == np.percentile(values, 95, method="inverted_cdf")  # nearest rank
    assert (summary.min, summary.max, summary.count) == (min(values), max(values), len(values))


def test_histogram_bins_by_hand() -> None:
    lengths = Counter([0, 1, 3, 3, 9, 40])
    assert histogram(lengths) == ((0, 1, 1), (1, 2, 1), (2, 4, 2), (4, 8, 0), (8, 16, 1),
                                  (16, 32, 0), (32, 64, 1))
    assert histogram(lengths, "fixed", 16) == ((0, 16, 5), (16, 32, 0), (32, 48, 1))
    assert histogram(Counter()) == ()


def _tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def test_rendered_token_lengths_match_the_tokenizer(tiny_model_dir: Path) -> None:
    tokenizer = _tokenizer(tiny_model_dir)
    lengths = [len(tokenizer.apply_chat_template(e["messages"], tokenize=True)["input_ids"])
               for e in EXAMPLES]
    limit = sorted(lengths)[1]  # the two longer examples exceed it
    stats = dataset_stats(EXAMPLES, tokenizer=tokenizer, config=StatsConfig(max_length=limit))
    tokens = stats.tokens
    assert (tokens.lengths.min, tokens.lengths.max) == (min(lengths), max(lengths))
    assert tokens.lengths.median == statistics.median(lengths)
    assert tokens.too_long == sum(length > limit for length in lengths) == 2
    assert sum(count for _, _, count in tokens.histogram) == 4
    for length in lengths:
        low = 2 ** (length.bit_length() - 1)
        assert any(lo == low and hi == 2 * low and count > 0 for lo, hi, count in tokens.histogram)
    assert tokens.invalid == 0


def test_text_token_lengths_and_invalid_rows(tiny_model_dir: Path) -> None:
    tokenizer = _tokenizer(tiny_model_dir)
    rows = EXAMPLES + [{"id": 9, "messages": [_msg("user", "no answer")]}]
    expected = sorted(sum(len(tokenizer.encode(m["content"], add_special_tokens=False))
                          for m in e["messages"]) for e in rows)
    texts = dataset_stats(rows, tokenizer=tokenizer, config=StatsConfig(rendered=False)).tokens
    assert (texts.lengths.count, texts.lengths.max, texts.invalid) == (5, expected[-1], 0)
    rendered = dataset_stats(rows, tokenizer=tokenizer).tokens
    assert (rendered.lengths.count, rendered.invalid) == (4, 1)
    assert rendered.problems[0][0] == 9 and "no assistant turn" in rendered.problems[0][1]


def test_progress_and_cancel() -> None:
    events: list[Progress] = []
    dataset_stats((EXAMPLES[0] for _ in range(2500)), report=events.append)
    assert [e.step for e in events] == [1000, 2000, 2500]
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        dataset_stats(EXAMPLES, cancel=token)


@pytest.mark.parametrize(("kwargs", "field"), [({"bins": "log"}, "bins"), ({"max_length": 0}, "max_length"),
                                               ({"bin_width": 2.5}, "bin_width")])
def test_bad_config_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        StatsConfig(**kwargs)
