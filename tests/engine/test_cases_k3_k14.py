"""CASES K3-K14 inputs that had no test of their own: C10 (training refuses rows whose answer
would be cut away), C15 (Gemma perplexity with and without BOS; absurd perplexity flagged),
C20 (4-bit base), C23 (stop at end-of-turn, no header leaks) and K11 (fallbacks read back).
Expected values come from hand counts, hand-built token sequences scored with transformers
directly, or a scripted token stream."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from engine.errors import DataError, ModelLoadError
from tests.engine.train_helpers import fast_config
from tests.tiny_models import CHATML


# ---- C10: max length 32, ~60-token prompts, 6-token answers -------------------------------

def _c10_rows() -> list[dict]:
    prompt = " ".join(["The quick brown fox jumps over the lazy dog."] * 3)
    return [{"messages": [{"role": "user", "content": f"{prompt} ({i})"},
                          {"role": "assistant", "content": "Sure, thank you."}]} for i in range(3)]


def test_c10_right_truncation_refuses_training_before_any_loss(tiny_model_dir: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """CASES C10: every answer would be cut away, so no step runs and no loss (0.0) is logged."""
    from engine.train import train_lora

    monkeypatch.setenv("TUNESMITH_CPU_THREADS", "1")
    events = []
    with pytest.raises(DataError, match="no training row can be trained on: 3 row"):
        train_lora(fast_config(max_length=32, truncation="right"), tiny_model_dir, _c10_rows(), [],
                   tmp_path, report=events.append)
    assert not [e for e in events if e.stage == "train"]
    assert not (tmp_path / "adapter").exists()


def test_c10_left_truncation_trains_every_answer(tiny_model_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """CASES C10: left-truncating the prompt keeps each answer; the loss is a real positive value."""
    from engine.train import train_lora

    monkeypatch.setenv("TUNESMITH_CPU_THREADS", "1")
    result = train_lora(fast_config(max_length=32, max_steps=1, batch_size=3), tiny_model_dir,
                        _c10_rows(), [], tmp_path)
    # Hand count (tests/engine/test_encode.py::c10_rows): 6 answer tokens + <|im_end|> per row.
    assert result.tokens_trained == 3 * 7 and result.skipped_rows == []
    losses = [value for _, name, value in result.history if name == "loss"]
    assert len(losses) == 1 and losses[0] > 1.0  # a random ~400-token model: near ln(400) ~ 6


# ---- C15: absurd perplexity flagged through the whole evaluation path -----------------------

def test_c15_absurd_perplexity_is_flagged_end_to_end(tiny_model_dir: Path, tmp_path: Path) -> None:
    """CASES C15: a model whose output head is broken (weights x 300) scores > 1e4 and is flagged."""
    import torch
    from safetensors.torch import load_file, save_file

    from engine.evaluate import ABSURD_PERPLEXITY, perplexity_hf

    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "broken"))
    weights = load_file(folder / "model.safetensors")
    weights["lm_head.weight"] = weights["lm_head.weight"] * 300
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]

    result = perplexity_hf(folder, rows, template="chatml", max_length=64)

    # Independent value: transformers' own loss on hand-built ids and labels.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    prompt = tok("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    answer = tok("hello<|im_end|>", add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        loss = float(model(input_ids=torch.tensor([prompt + answer]),
                           labels=torch.tensor([[-100] * len(prompt) + answer])).loss)
    assert loss > math.log(ABSURD_PERPLEXITY)
    assert result.mean_nll == pytest.approx(loss, rel=1e-4)
    assert result.flagged and result.perplexity > ABSURD_PERPLEXITY


GEMMA_PARAGRAPH = ("The sea covers most of the surface of the Earth. Its water is salty because "
                   "rivers carry minerals from the land into it, and the sun slowly evaporates the "
                   "water while the salt stays behind. Tides rise and fall twice a day, pulled by "
                   "the moon.")


@pytest.mark.integration
def test_c15_gemma_perplexity_adds_bos_like_training(gemma_hf_dir: Path) -> None:
    """CASES C15: one paragraph on Gemma 3 270M, scored by hand with and without BOS."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.evaluate import perplexity_hf

    tok = AutoTokenizer.from_pretrained(gemma_hf_dir)
    model = AutoModelForCausalLM.from_pretrained(gemma_hf_dir, dtype=torch.float32).eval()
    # Gemma's format written out by hand; <end_of_turn> closes the trained answer.
    prompt = tok("<start_of_turn>user\nTell me about the sea.<end_of_turn>\n<start_of_turn>model\n",
                 add_special_tokens=False)["input_ids"]
    answer = tok(GEMMA_PARAGRAPH + "<end_of_turn>", add_special_tokens=False)["input_ids"]

    def hand_nll(prefix: list[int]) -> float:
        ids = torch.tensor([prefix + prompt + answer])
        labels = torch.tensor([[-100] * (len(prefix) + len(prompt)) + answer])
        with torch.no_grad():
            return float(model(input_ids=ids, labels=labels).loss)

    with_bos, without_bos = hand_nll([2]), hand_nll([])  # <bos> is id 2 in Gemma's tokenizer
    rows = [{"messages": [{"role": "user", "content": "Tell me about the sea."},
                          {"role": "assistant", "content": GEMMA_PARAGRAPH}]}]
    result = perplexity_hf(gemma_hf_dir, rows, template="gemma", max_length=256)

    assert result.tokens == len(answer)
    assert result.mean_nll == pytest.approx(with_bos, rel=1e-4)
    # Measured: 38.9 with BOS, 300 without: the missing BOS is what the policy prevents.
    assert math.exp(without_bos) > 3 * result.perplexity
    assert result.bos_policy == "one BOS (id 2) at the start, as in training"
    assert not result.flagged


# ---- C20: adapter trained on a 4-bit base ---------------------------------------------------

@pytest.mark.skipif(__import__("importlib.util").util.find_spec("bitsandbytes") is not None,
                    reason="bitsandbytes installed: the 4-bit merge itself would run (needs CUDA)")
def test_c20_4bit_base_without_bitsandbytes_is_refused_plainly(tiny_model_dir: Path,
                                                               tmp_path: Path) -> None:
    """CASES C20 (the part testable on a CPU-only machine): a base whose config.json carries a
    bitsandbytes quantization_config is refused with advice, before any load, and writes nothing."""
    from engine.merge import merge_adapter
    from tests.engine.test_merge import _make_adapter, _special

    base = Path(shutil.copytree(tiny_model_dir, tmp_path / "base-4bit"))
    adapter = _make_adapter(tiny_model_dir, tmp_path / "adapter")
    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True,
                                     "bnb_4bit_compute_dtype": "bfloat16"}
    (base / "config.json").write_text(json.dumps(config), encoding="utf-8")

    with pytest.raises(ModelLoadError, match=r"4-bit \(bitsandbytes\).*not installed.*16-bit base"):
        merge_adapter(base, adapter, tmp_path / "merged", chat_template=CHATML,
                      special=_special(tiny_model_dir))
    assert not (tmp_path / "merged").exists()


def test_c20_merge_dtype_of_a_4bit_base_is_its_16bit_compute_dtype(tmp_path: Path) -> None:
    """CASES C20: the merge target is a 16-bit copy (bnb_4bit_compute_dtype), never packed 4-bit."""
    from engine.merge_check import merge_dtype

    for compute, expected in [("torch.float16", "float16"), ("bfloat16", "bfloat16"),
                              (None, "bfloat16"), ("uint8", "bfloat16")]:
        quant = {"quant_method": "bitsandbytes", "load_in_4bit": True}
        if compute:
            quant["bnb_4bit_compute_dtype"] = compute
        (tmp_path / "config.json").write_text(json.dumps({"quantization_config": quant}))
        assert merge_dtype(tmp_path, "uint8") == expected
    (tmp_path / "config.json").write_text(json.dumps({}))
    assert merge_dtype(tmp_path, "bfloat16") == "bfloat16"


# ---- C23: EOS is end-of-text, turns end with a separate end-of-turn token -------------------

# A Gemma-like vocabulary: <pad> 0, <eos> 1 (end of text), <bos> 2, <start_of_turn> 105,
# <end_of_turn> 106 (end of turn, a separate control token); plain words from 200 on.
CONTROL = {0: "<pad>", 1: "<eos>", 2: "<bos>", 105: "<start_of_turn>", 106: "<end_of_turn>"}
WORDS = {200: "The", 201: " sea", 202: " is", 203: " wide", 204: ".", 205: "model", 206: "\n",
         207: "More", 208: " text", 209: "user"}


class ScriptedLlama:
    """Stands in for ``llama_cpp.Llama``: generation replays a fixed token script."""

    def __init__(self, script: list[int]) -> None:
        self.script = script

    def n_ctx(self) -> int:
        return 4096

    def tokenize(self, text: bytes, add_bos: bool = False, special: bool = True) -> list[int]:
        return [2] + [200] * len(text.split())  # the rendered template starts with <bos>

    def detokenize(self, tokens: list[int], special: bool = False) -> bytes:
        return "".join(WORDS.get(t, "" if not special else CONTROL[t]) for t in tokens).encode()

    def set_seed(self, seed: int) -> None:
        pass

    def reset(self) -> None:
        pass

    def generate(self, prompt: list[int], **kwargs: object):
        yield from self.script

    def close(self) -> None:
        pass


def _scripted_chat(monkeypatch: pytest.MonkeyPatch, script: list[int]):
    import engine.chat as chat
    from engine.llama_runtime import GgufInfo

    info = GgufInfo("gemma3", 32768, 18432, None, bos_id=2, eos_id=1, eot_id=106, add_bos=True,
                    eog_ids=(1, 106), control_ids=tuple(sorted(CONTROL)), bos_text="<bos>",
                    eos_text="<eos>")
    monkeypatch.setattr(chat, "read_gguf_info", lambda path: info)
    monkeypatch.setattr(chat, "load_llama", lambda path, **kwargs: ScriptedLlama(script))
    return chat.ChatModel("scripted.gguf", chat_template="gemma")


@pytest.mark.parametrize("script, expected, n_tokens", [
    # The model ends its turn with <end_of_turn>, then would run on into a new "model" turn.
    ([200, 201, 202, 203, 204, 106, 105, 205, 206, 207, 1], "The sea is wide.", 5),
    # It skips <end_of_turn> and opens a new turn: the header never reaches the reply.
    ([200, 201, 202, 203, 204, 105, 209, 206, 207, 208, 106], "The sea is wide.", 5),
    # End-of-text alone also ends the reply.
    ([207, 208, 1, 207], "More text", 2),
])
def test_c23_reply_ends_at_end_of_turn_without_headers(monkeypatch: pytest.MonkeyPatch,
                                                       script: list[int], expected: str,
                                                       n_tokens: int) -> None:
    """CASES C23: stop on every end-of-generation id and on control tokens; stream == reply."""
    from engine.chat import ChatDelta, ChatFinished, SamplingConfig

    sampling = SamplingConfig(max_tokens=64, temperature=0.0)
    with _scripted_chat(monkeypatch, script) as chat:
        events = list(chat.stream([{"role": "user", "content": "Say something about the sea."}],
                                  sampling))
        reply = chat.reply([{"role": "user", "content": "Say something about the sea."}], sampling)
    text = "".join(e.text for e in events if isinstance(e, ChatDelta))
    final = events[-1]
    assert isinstance(final, ChatFinished) and final.finish_reason == "stop"
    assert text == reply.text == expected
    assert final.completion_tokens == n_tokens


# ---- K11: fallbacks read back from the written file -----------------------------------------

def test_k11_actual_fallbacks_read_from_the_file_types() -> None:
    """CASES K11: tensors (name, type, ne) as a GGUF lists them; ne[0] is the row length."""
    from engine.gguf_checks import QUANTS, actual_fallbacks

    tensors = [("blk.0.attn_q.weight", "Q5_0", [640, 1024]),    # 640 = 2.5 x 256: falls back
               ("blk.0.attn_output.weight", "Q4_K", [1024, 640]),  # 1024 = 4 x 256: fits
               ("blk.0.attn_norm.weight", "F32", [640]),            # 1-D: never quantized
               ("token_embd.weight", "Q6_K", [640, 262144])]
    lines = actual_fallbacks(tensors, QUANTS["q4_k_m"])
    assert [line.split(":")[0] for line in lines] == ["blk.0.attn_q.weight", "token_embd.weight"]
    assert lines[0].endswith("stored as Q5_0") and "row length 640" in lines[0]
    assert actual_fallbacks(tensors, QUANTS["q8_0"]) == []  # 640 = 20 x 32
    assert actual_fallbacks(tensors, QUANTS["f16"]) == []
