"""Perplexity, reply generation and runtime agreement.

Fast tests check perplexity on the tiny model against a cross-entropy computed by hand with
torch on labels built by hand. Integration tests compare transformers with llama.cpp on the
real Gemma 3 270M (HF folder from engine.models, GGUFs from engine.export or the converter).
"""

from __future__ import annotations

import math

import pytest

from engine.errors import DataError
from engine.evaluate import ABSURD_PERPLEXITY, perplexity_hf

PROMPT = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
ANSWER = "hello<|im_end|>"
ROWS = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    {"messages": [{"role": "user", "content": "What is your name?"},
                  {"role": "assistant", "content": "My name is Tunesmith."}]},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"},
                  {"role": "assistant", "content": "你好，世界！"}]},
]


def _manual_nll(model_dir, prompt: str, answer: str) -> tuple[float, int]:
    """Summed NLL of ``answer`` tokens after ``prompt``: tokenized separately, scored by hand."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    a = tok(answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + a])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    nll = -sum(logp[len(p) + i - 1, token].item() for i, token in enumerate(a))
    return nll, len(a)


def test_perplexity_matches_hand_computed_cross_entropy(tiny_model_dir) -> None:
    nll, n = _manual_nll(tiny_model_dir, PROMPT, ANSWER)
    result = perplexity_hf(tiny_model_dir, ROWS[:1], template="chatml", max_length=64)
    assert result.tokens == n
    assert result.mean_nll == pytest.approx(nll / n, rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(nll / n), rel=1e-5)
    # A random 2-layer model over a ~400-token vocabulary sits near uniform: ~400, not absurd.
    assert not result.flagged and result.perplexity < ABSURD_PERPLEXITY
    assert "BOS" in result.bos_policy


def test_perplexity_independent_of_batch_size_and_padding(tiny_model_dir) -> None:
    one = perplexity_hf(tiny_model_dir, ROWS, template="chatml", max_length=64, batch_size=1)
    three = perplexity_hf(tiny_model_dir, ROWS, template="chatml", max_length=64, batch_size=3)
    assert one.tokens == three.tokens
    assert three.mean_nll == pytest.approx(one.mean_nll, rel=1e-5)


def test_perplexity_reports_progress_and_skipped_rows(tiny_model_dir) -> None:
    events = []
    rows = ROWS[:2] + [{"messages": [{"role": "user", "content": "no answer"}]}]
    result = perplexity_hf(tiny_model_dir, rows, template="chatml", max_length=64,
                           batch_size=1, report=events.append)
    assert [e.step for e in events] == [1, 2]
    assert [index for index, _ in result.skipped] == [2]
    with pytest.raises(DataError, match="no validation row"):
        perplexity_hf(tiny_model_dir, rows[2:], template="chatml", max_length=64)
