"""Perplexity, reply generation and runtime agreement.

Fast tests check perplexity on the tiny model against a cross-entropy computed by hand with
torch on labels built by hand. Integration tests compare transformers with llama.cpp on the
real Gemma 3 270M (HF folder from engine.models, GGUFs from engine.export or the converter).
"""

from __future__ import annotations

import math
from pathlib import Path

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
    """CASES K14: results do not depend on batch size or padding."""
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


def test_absurd_perplexity_is_flagged() -> None:
    """CASES C15: the threshold itself (end to end in test_cases_k3_k14.py)."""
    from engine.evaluate import _result

    # Mean NLL 10 nats -> perplexity e^10 ~ 22026 > 1e4; 2 nats -> 7.39.
    assert _result(10.0 * 5, 5, "policy", ()).flagged
    assert not _result(2.0 * 5, 5, "policy", ()).flagged


def test_split_reply_uses_last_assistant_turn() -> None:
    from engine.replies import split_reply

    prompt, reference = split_reply(ROWS[2])
    assert reference == "你好，世界！" and prompt[-1] == {"role": "user", "content": "你好"}
    with pytest.raises(DataError, match="row 4"):
        split_reply({"messages": [{"role": "assistant", "content": "x"}]}, 3)


def test_generate_replies_hf_is_greedy_and_stops(tiny_model_dir) -> None:
    from engine.replies import generate_replies_hf

    first = generate_replies_hf(tiny_model_dir, ROWS, template="chatml", max_new_tokens=8)
    again = generate_replies_hf(tiny_model_dir, ROWS, template="chatml", max_new_tokens=8)
    assert len(first) == 3 and first == again
    assert not any("<|im_end|>" in reply or "<|im_start|>" in reply for reply in first)


# ---- integration: transformers vs llama.cpp on the real Gemma 3 270M -----------------------

GEMMA_ROWS = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"},
                  {"role": "assistant", "content": "The capital of France is Paris."}]},
    {"messages": [{"role": "user", "content": "Name a primary colour."},
                  {"role": "assistant", "content": "Red is a primary colour."}]},
    {"messages": [{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "How many days are in a week?"},
                  {"role": "assistant", "content": "There are seven days in a week."}]},
]
PROMPTS = [[{"role": "user", "content": "What is the capital of France?"}],
           [{"role": "user", "content": "Count from one to five."}],
           [{"role": "user", "content": "Translate 'good morning' into Spanish."}],
           [{"role": "user", "content": "你好，请介绍一下你自己。"}]]


@pytest.fixture(scope="module")
def gemma(gemma_hf_dir: Path):
    """(HF folder, Q4_K_M GGUF): the folder is the GGUF dequantized by engine.gguf_import, so
    both runtimes hold the same weights."""
    pytest.importorskip("llama_cpp")
    return gemma_hf_dir, next((gemma_hf_dir.parent / "cache").glob("*.gguf"))


@pytest.mark.integration
def test_gguf_perplexity_matches_transformers(gemma) -> None:
    from engine.evaluate import perplexity_gguf

    hf_dir, gguf = gemma
    hf = perplexity_hf(hf_dir, GEMMA_ROWS, template="gemma", max_length=128)
    # tokenizer_dir: same ids as the HF path, and llama.cpp's own tokenization is checked.
    same_ids = perplexity_gguf(gguf, GEMMA_ROWS, template="gemma", max_length=128, tokenizer_dir=hf_dir)
    own_tok = perplexity_gguf(gguf, GEMMA_ROWS, template="gemma", max_length=128)
    assert hf.tokens == same_ids.tokens == own_tok.tokens
    # Measured: HF 79.4, q4_k_m GGUF 77.4 (llama.cpp quantizes activations to 8 bits).
    assert same_ids.perplexity == pytest.approx(hf.perplexity, rel=0.08)
    assert own_tok.perplexity == pytest.approx(same_ids.perplexity, rel=1e-6)
    assert not hf.flagged and hf.bos_policy.startswith("one BOS (id 2)")


@pytest.mark.integration
def test_next_token_agreement_on_same_ids(gemma) -> None:
    from engine.replies import next_token_agreement

    hf_dir, gguf = gemma
    result = next_token_agreement(hf_dir, gguf, PROMPTS, template="gemma")
    assert len(result.per_prompt) == 4
    assert result.top1_agreement == 1.0  # measured: also 1.0 for an f16 export
    assert 0.0 <= result.mean_kl < 0.05  # measured 0.013 (q4_k_m), 7e-6 (f16)
