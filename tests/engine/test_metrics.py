"""Sanity tests of BLEU and ROUGE-L (CASES K14): perfect scores in every script, no dependence
on batch order/size, the tokenization recorded, and an LCS counted by hand."""

from __future__ import annotations

import random

import pytest

from engine.errors import DataError
from engine.metrics import CjkTokenizer, choose_bleu_tokenizer, corpus_bleu, rouge_l

ENGLISH = "The quick brown fox jumps over the lazy dog."
CHINESE = "我们今天学习机器学习。"
JAPANESE = "今日はいい天気ですね。"
SHORT = "Hi!"


@pytest.mark.parametrize("text", [ENGLISH, CHINESE, JAPANESE, SHORT])
def test_identical_strings_score_perfectly(text: str) -> None:
    assert corpus_bleu([text], [text]).score == pytest.approx(100.0)
    assert rouge_l([text], [text]).f1 == pytest.approx(1.0)


@pytest.mark.parametrize(("refs", "expected"), [
    ([ENGLISH], "13a"), ([CHINESE], "zh"), ([JAPANESE], "char"), ([ENGLISH, CHINESE], "zh"),
    (["안녕하세요 세계"], "char"),
])
def test_tokenizer_chosen_per_script_and_recorded(refs: list[str], expected: str) -> None:
    assert choose_bleu_tokenizer(refs) == expected
    score = corpus_bleu(refs, refs)
    assert score.tokenize == expected
    assert f"tok:{expected}" in score.signature


def test_default_rouge_tokenizer_drops_cjk_ours_does_not() -> None:
    from rouge_score.rouge_scorer import RougeScorer

    wrong, right = "我们今天学习", "我们明天休息"
    default = RougeScorer(["rougeL"]).score(right, wrong)["rougeL"].fmeasure
    # rouge-score's default tokenizer strips non-ASCII: no tokens, so score 0 even for a match.
    assert RougeScorer(["rougeL"]).score(right, right)["rougeL"].fmeasure == 0.0
    assert default == 0.0
    assert CjkTokenizer().tokenize(wrong) == list(wrong)
    # Shared characters 我, 们 and 天: LCS 3 of 6 -> P = R = F = 0.5.
    assert rouge_l([wrong], [right]).f1 == pytest.approx(0.5)


def test_tokenizer_lowercases_words_and_keeps_digits() -> None:
    assert CjkTokenizer().tokenize("Order #42 shipped, 東京 Café!") == [
        "order", "42", "shipped", "東", "京", "café"]


def test_rouge_l_matches_hand_counted_lcs() -> None:
    ref = "the cat sat on the mat"
    hyp = "the cat lay on a mat"
    # Hand count: LCS = the, cat, on, mat = 4; P = 4/6, R = 4/6, F = 4/6.
    assert rouge_l([hyp], [ref]).f1 == pytest.approx(4 / 6)
    hyp2 = "cat on mat"
    # LCS = cat, on, mat = 3; P = 3/3, R = 3/6 -> F = 2PR/(P+R) = 2/3.
    assert rouge_l([hyp2], [ref]).f1 == pytest.approx(2 / 3)


def test_scores_do_not_depend_on_order_or_batch() -> None:
    pairs = [(f"reply number {i} about the weather today", f"reply {i} about weather tomorrow")
             for i in range(12)]
    pairs += [(CHINESE, "我们明天学习机器。")]
    hyps, refs = map(list, zip(*pairs))
    bleu, rouge = corpus_bleu(hyps, refs).score, rouge_l(hyps, refs).f1
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    hyps2, refs2 = map(list, zip(*shuffled))
    assert corpus_bleu(hyps2, refs2).score == pytest.approx(bleu)
    assert rouge_l(hyps2, refs2).f1 == pytest.approx(rouge)
    # ROUGE-L is a mean of per-pair scores: any batching gives the same mean.
    halves = [rouge_l(hyps[:5], refs[:5]).f1 * 5, rouge_l(hyps[5:], refs[5:]).f1 * 8]
    assert sum(halves) / 13 == pytest.approx(rouge)
    assert 0.0 < bleu < 100.0


def test_mismatched_lengths_refused() -> None:
    with pytest.raises(DataError, match="2 replies but 1 references"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(DataError, match="empty"):
        rouge_l([], [])
