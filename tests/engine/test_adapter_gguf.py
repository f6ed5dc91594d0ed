"""LoRA adapter GGUF export: llama.cpp applies it on the tiny model's base GGUF and gives the
logits of transformers + PEFT (a second runtime); switching adapters; refusals; verification."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.adapter_gguf import converted_b, export_adapter_gguf
from engine.errors import ExportError

IDS = [0, 5, 17, 42, 99, 130, 7, 250]


def _tiny_base_gguf(model_dir: Path, out: Path) -> Path:
    """The tiny Llama as an f32 GGUF through llama.cpp's converter.

    The converter refuses the tiny model's home-made BPE pre-tokenizer (CASES C22); the tests
    feed token ids, never text, so this test-only subclass names a known one.
    """
    import gguf
    from conversion import get_model_class

    llama_class = get_model_class("LlamaForCausalLM")

    class TinyLlama(llama_class):  # type: ignore[misc, valid-type]
        model_arch = llama_class.model_arch

        def get_vocab_base_pre(self, tokenizer: object) -> str:
            return "gpt-2"

    TinyLlama(model_dir, gguf.LlamaFileType.ALL_F32, out, eager=True).write()
    return out


def _adapter(model_dir: Path, out: Path, seed: int, **lora: object) -> Path:
    """A PEFT LoRA on every linear layer with random, nonzero B (B starts at zero in training)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    torch.manual_seed(seed)
    config = {"r": 4, "lora_alpha": 8, "target_modules": "all-linear", **lora}
    peft = get_peft_model(model, LoraConfig(**config))
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0.0, 0.2)
    peft.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def files(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapter")
    return {"base": _tiny_base_gguf(tiny_model_dir, root / "base.gguf"),
            "one": _adapter(tiny_model_dir, root / "one", seed=1),
            "two": _adapter(tiny_model_dir, root / "two", seed=2, use_rslora=True),
            "root": root}


def _hf_logits(model_dir: Path, adapter_dir: Path | None) -> np.ndarray:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, adapter_dir)
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits[0].numpy()


def _llama_logits(llama: object) -> np.ndarray:
    from engine.llama_runtime import position_logits

    return np.stack([row.copy() for _, row in position_logits(llama, IDS)])


def test_base_plus_adapter_matches_transformers_peft(files: dict, tiny_model_dir: Path) -> None:
    from engine.llama_lora import current_lora, set_lora
    from engine.llama_runtime import load_llama

    one = export_adapter_gguf(files["one"], files["root"] / "one.gguf", base_dir=tiny_model_dir)
    two = export_adapter_gguf(files["two"], files["root"] / "two.gguf", base_dir=tiny_model_dir,
                              outtype="f16")
    assert (one.architecture, one.rank, one.alpha, one.weights) == ("llama", 4, 8.0, 14)
    assert two.alpha == pytest.approx(8.0 * 2.0)  # rsLoRA: alpha / sqrt(4) == (alpha * 2) / 4
    base, ref_one, ref_two = (_hf_logits(tiny_model_dir, a) for a in (None, files["one"], files["two"]))
    llama = load_llama(files["base"], n_ctx=64, lora_path=one.path)
    try:
        with_one = _llama_logits(llama)
        set_lora(llama, two.path)  # switch on the same loaded base
        assert current_lora(llama) == two.path
        with_two = _llama_logits(llama)
        set_lora(llama, None)
        without = _llama_logits(llama)
    finally:
        llama.close()
    assert np.abs(ref_one - base).max() > 0.3  # the adapter really changes the model
    assert np.abs(with_one - ref_one).max() < 2e-3  # f32 adapter: float rounding only
    assert np.abs(with_two - ref_two).max() < 2e-2  # f16 adapter tensors
    assert np.abs(without - base).max() < 2e-3


def test_gguf_layout_follows_llama_cpp(files: dict, tiny_model_dir: Path) -> None:
    import gguf

    out = export_adapter_gguf(files["one"], files["root"] / "layout.gguf", base_dir=tiny_model_dir)
    reader = gguf.GGUFReader(out.path)
    fields = {k: reader.fields[k].contents() for k in
              ("general.architecture", "general.type", "adapter.type", "adapter.lora.alpha")}
    assert fields == {"general.architecture": "llama", "general.type": "adapter",
                      "adapter.type": "lora", "adapter.lora.alpha": 8.0}
    shapes = {t.name: list(t.shape) for t in reader.tensors}
    # ggml order (n_in first): lora_a = (n_in, r), lora_b = (r, n_out); hidden 64, MLP 128.
    assert shapes["blk.1.ffn_down.weight.lora_a"] == [128, 4]
    assert shapes["blk.1.ffn_down.weight.lora_b"] == [4, 64]
    assert len(shapes) == 2 * 7 * 2
    import hashlib
    assert out.sha256 == hashlib.sha256(out.path.read_bytes()).hexdigest()
    assert out.bytes == out.path.stat().st_size


@pytest.mark.parametrize("change, words", [
    ({"use_dora": True}, "DoRA"),
    ({"rank_pattern": {"q_proj": 8}}, "rank or alpha patterns"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
])
def test_unsupported_adapters_are_refused(files: dict, tiny_model_dir: Path, tmp_path: Path,
                                          change: dict, words: str) -> None:
    import shutil

    folder = Path(shutil.copytree(files["one"], tmp_path / "a"))
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    (folder / "adapter_config.json").write_text(json.dumps({**config, **change}), encoding="utf-8")
    with pytest.raises(ExportError, match=words):
        export_adapter_gguf(folder, tmp_path / "out.gguf", base_dir=tiny_model_dir)
    assert not (tmp_path / "out.gguf").exists()


def test_embedding_lora_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _adapter(tiny_model_dir, tmp_path / "emb", seed=3, target_modules=["embed_tokens"])
    with pytest.raises(ExportError, match="embedding LoRA"):
        export_adapter_gguf(folder, tmp_path / "out.gguf", base_dir=tiny_model_dir)


class _ShiftingConverter:
    """A converter that adds 1 to the weight (like Gemma's norms): B @ A cannot follow it."""

    def filter_tensors(self, item: tuple) -> tuple:
        return item

    def modify_tensors(self, data: object, name: str, bid: int | None) -> list:
        return [("blk.0.attn_q.weight", data + 1.0)]


def test_transform_a_lora_cannot_follow_is_refused() -> None:
    import torch

    a, b = torch.randn(4, 16), torch.randn(8, 4)
    with pytest.raises(ExportError, match="cannot carry"):
        converted_b(_ShiftingConverter(), "model.layers.0.self_attn.q_proj.weight", a, b)


def test_verification_report_for_base_plus_adapter(files: dict, tiny_model_dir: Path) -> None:
    from engine.adapter_verify import verify_adapter_gguf

    out = export_adapter_gguf(files["one"], files["root"] / "verify.gguf", base_dir=tiny_model_dir)
    rows = [{"messages": [{"role": "user", "content": "Hello, how are you?"},
                          {"role": "assistant", "content": "I am fine, thank you."}]},
            {"messages": [{"role": "user", "content": "What is your name?"},
                          {"role": "assistant", "content": "My name is Tunesmith."}]}]
    result = verify_adapter_gguf(files["base"], out.path, base_dir=tiny_model_dir,
                                 adapter_dir=files["one"], rows=rows, template="chatml")
    assert result.check("top1_agreement").status == "pass"
    assert result.metrics["mean_kl"] < 1e-4
    assert result.metrics["mean_kl_without_adapter"] > 100 * result.metrics["mean_kl"]
    ratio = result.metrics["perplexity_gguf"] / result.metrics["perplexity_reference"]
    assert abs(ratio - 1) < 1e-3
