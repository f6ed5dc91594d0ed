"""Text-overlap metrics for evaluation: corpus BLEU (sacrebleu) and ROUGE-L (rouge-score).

Both metrics depend on how text is cut into tokens, and the libraries' defaults break on
CJK text: sacrebleu's ``13a`` tokenizer keeps a whole Chinese sentence as one "word", and
rouge-score's default tokenizer replaces every non-ASCII character with a space, so Chinese
replies score 0 whatever they say. So the tokenization is chosen per text and recorded with
every score (CASES K14).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from engine.errors import DataError

# Han ideographs (sacrebleu's "zh" tokenizer splits these into single characters).
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
# Kana and Hangul: scripts written without spaces that sacrebleu's "zh" tokenizer leaves whole.
_KANA_HANGUL = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_HAN_RE = re.compile(f"[{_HAN}]")
_KANA_HANGUL_RE = re.compile(f"[{_KANA_HANGUL}]")
# One token per CJK character, else a run of letters/digits (any script); punctuation dropped.
_ROUGE_TOKEN_RE = re.compile(f"[{_HAN}{_KANA_HANGUL}]|[^\\W_{_HAN}{_KANA_HANGUL}]+")

BLEU_TOKENIZERS = ("13a", "zh", "char")


@dataclass(frozen=True)
class BleuScore:
    """Corpus BLEU on the 0-100 scale with the tokenization it was computed with.

    Attributes:
        score: corpus BLEU, 0-100.
        tokenize: sacrebleu tokenizer name (``"13a"``, ``"zh"`` or ``"char"``).
        signature: sacrebleu's full signature string, for reproducibility.
    """

    score: float
    tokenize: str
    signature: str


@dataclass(frozen=True)
class RougeScore:
    """Mean sentence-level ROUGE-L F-measure in [0, 1] with the tokenization used."""

    f1: float
    tokenize: str = "cjk-chars+words-lowercase"


def choose_bleu_tokenizer(references: Sequence[str]) -> str:
    """Pick the sacrebleu tokenizer for a set of references.

    Kana or Hangul anywhere -> ``"char"`` (the proper ``ja-mecab``/``ko-mecab`` tokenizers need
    MeCab, which the app does not ship); Han ideographs -> ``"zh"``; otherwise ``"13a"``
    (sacrebleu's default, as in WMT).
    """
    if any(_KANA_HANGUL_RE.search(text) for text in references):
        return "char"
    if any(_HAN_RE.search(text) for text in references):
        return "zh"
    return "13a"


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str],
                *, tokenize: str | None = None) -> BleuScore:
    """Corpus BLEU of hypotheses against one reference each (sacrebleu).

    ``effective_order`` is on, so a corpus of replies shorter than four tokens is scored on
    the n-gram orders it has instead of scoring 0 (Chen & Cherry 2014; sacrebleu's option).

    Args:
        hypotheses: generated texts, one per example.
        references: reference texts, same length and order.
        tokenize: force a sacrebleu tokenizer; default chosen by :func:`choose_bleu_tokenizer`.

    Raises:
        DataError: the lists differ in length or are empty.
    """
    from sacrebleu.metrics import BLEU

    _check_pairs(hypotheses, references)
    name = tokenize or choose_bleu_tokenizer(references)
    bleu = BLEU(tokenize=name, effective_order=True)
    result = bleu.corpus_score(list(hypotheses), [list(references)])
    return BleuScore(score=float(result.score), tokenize=name, signature=str(bleu.get_signature()))


class CjkTokenizer:
    """rouge-score tokenizer: each CJK character is a token; other words are lowercased runs
    of letters and digits in any script (rouge-score's default keeps only ``[a-z0-9]``)."""

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into ROUGE tokens."""
        return _ROUGE_TOKEN_RE.findall(text.lower())


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> RougeScore:
    """Mean ROUGE-L F-measure over pairs (rouge-score, with :class:`CjkTokenizer`).

    ROUGE-L is the longest common subsequence of tokens (Lin 2004); the corpus value is the
    plain mean of per-pair F-measures, so it does not depend on batch order or size.

    Raises:
        DataError: the lists differ in length or are empty.
    """
    from rouge_score.rouge_scorer import RougeScorer

    _check_pairs(hypotheses, references)
    scorer = RougeScorer(["rougeL"], tokenizer=CjkTokenizer())
    scores = [scorer.score(ref, hyp)["rougeL"].fmeasure for hyp, ref in zip(hypotheses, references)]
    return RougeScore(f1=sum(scores) / len(scores))


def _check_pairs(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if not hypotheses:
        raise DataError("cannot score an empty set of replies; add validation examples")
    if len(hypotheses) != len(references):
        raise DataError(f"{len(hypotheses)} replies but {len(references)} references; "
                        "each reply needs exactly one reference")
