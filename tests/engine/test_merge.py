"""merge_adapter on the tiny model: logits equal peft's unmerged forward, dtype kept (C17),
inputs untouched (K9), template and every end id written (C08, C11)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.merge import merge_adapter
from tests.tiny_models import CHATML

PROMPTS = ["Hello, how are you today?", "你好，世界！", "The quick brown fox"]


def _make_adapter(base_dir: Path, out: Path, dtype: str = "float32") -> Path:
    """A LoRA adapter with random non-zero A and B, so the merge changes the logits."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=getattr(torch, dtype))
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                        init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(out)
    return out


def _bf16_copy(src: Path, out: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16).save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


def _special(folder: Path) -> dict:
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    ids = {t["content"]: t["id"] for t in vocab["added_tokens"]}
    return {"bos": ids["<s>"], "eos": ids["</s>"], "pad": ids["<pad>"], "eot": ids["<|im_end|>"],
            "end_ids": [ids["</s>"], ids["<|im_end|>"]]}


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _peft_logits(base_dir: Path, adapter_dir: Path, dtype: str) -> list:
    """The expected values: peft's own unmerged forward."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=getattr(torch, dtype))
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    with torch.no_grad():
        return [model(**tok(p, return_tensors="pt")).logits.float() for p in PROMPTS]


def _merged_logits(folder: Path) -> list:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        return [model(**tok(p, return_tensors="pt")).logits.float() for p in PROMPTS]


def test_merge_matches_unmerged_adapter_and_keeps_inputs(tiny_model_dir: Path, tmp_path: Path) -> None:
    # CASES K9 (logits vs peft), C08/C11 (template, pad and every end id written), C07.
    adapter = _make_adapter(tiny_model_dir, tmp_path / "adapter")
    before = (_hashes(tiny_model_dir), _hashes(adapter))
    special = _special(tiny_model_dir)
    events = []
    result = merge_adapter(tiny_model_dir, adapter, tmp_path / "merged", chat_template=CHATML,
                           special=special, report=events.append)
    # one event per LoRA module: 2 layers x (q_proj, v_proj, down_proj)
    assert [e.step for e in events if e.stage == "merge"] == [1, 2, 3, 4, 5, 6]
    assert (_hashes(tiny_model_dir), _hashes(adapter)) == before
    expected = _peft_logits(tiny_model_dir, adapter, "float32")
    got = _merged_logits(result.path)
    assert max(float((a - b).abs().max()) for a, b in zip(expected, got)) < 1e-4
    assert result.dtype == "float32" and result.max_logit_diff < 1e-4
    tok_config = json.loads((result.path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert tok_config["chat_template"] == CHATML
    generation = json.loads((result.path / "generation_config.json").read_text(encoding="utf-8"))
    assert sorted(generation["eos_token_id"]) == sorted(special["end_ids"])
    assert generation["pad_token_id"] == special["pad"] != special["eos"]


def test_merge_keeps_bf16_and_size(tiny_model_dir: Path, tmp_path: Path) -> None:
    """CASES C17: weights and config.json stay bf16, size within 3% of the base."""
    from safetensors import safe_open

    base = _bf16_copy(tiny_model_dir, tmp_path / "base-bf16")
    adapter = _make_adapter(base, tmp_path / "adapter", "bfloat16")
    result = merge_adapter(base, adapter, tmp_path / "merged", chat_template=CHATML,
                           special=_special(tiny_model_dir))
    assert result.dtype == "bfloat16"
    assert json.loads((result.path / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(result.path / "model.safetensors", "pt") as handle:
        assert {str(handle.get_slice(k).get_dtype()) for k in handle.keys()} == {"BF16"}
    size = (result.path / "model.safetensors").stat().st_size
    assert abs(size / (base / "model.safetensors").stat().st_size - 1) < 0.03
    expected = _peft_logits(base, adapter, "bfloat16")
    got = _merged_logits(result.path)
    # bf16 keeps 8 mantissa bits: the merged weights round once more than the unmerged path.
    assert max(float((a - b).abs().max()) for a, b in zip(expected, got)) < 0.05


def test_merge_reads_train_record_and_refuses_pad_equal_eos(tiny_model_dir: Path, tmp_path: Path) -> None:
    adapter = _make_adapter(tiny_model_dir, tmp_path / "adapter")
    special = _special(tiny_model_dir)
    record = {"template": {"name": "chatml", "source": CHATML},
              "special_tokens": {"bos_id": special["bos"], "eos_id": special["eos"],
                                 "eot_id": special["eot"], "pad_id": special["eos"],
                                 "end_ids": special["end_ids"], "add_bos": False}}
    (adapter / "tunesmith_train.json").write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(ConfigError, match="pad id"):
        merge_adapter(tiny_model_dir, adapter, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_bf16_merge_is_computed_in_fp32_and_reports_progress(tiny_model_dir: Path, tmp_path: Path) -> None:
    """CASES C18: each merged bf16 weight equals a hand merge W + (alpha/r) * B @ A done in fp32
    and cast to bf16 once; the other weights are untouched; one progress event per module."""
    import torch
    from safetensors.torch import load_file

    base = _bf16_copy(tiny_model_dir, tmp_path / "base-bf16")
    adapter = _make_adapter(base, tmp_path / "adapter", "bfloat16")
    events = []
    result = merge_adapter(base, adapter, tmp_path / "merged", chat_template=CHATML,
                           special=_special(tiny_model_dir), report=events.append)

    before, after = load_file(base / "model.safetensors"), load_file(result.path / "model.safetensors")
    lora = load_file(adapter / "adapter_model.safetensors")
    scaling = 8 / 4  # lora_alpha / r of _make_adapter
    merged_names, bf16_differs = set(), 0
    for key in [k for k in lora if ".lora_A." in k]:
        name = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        a, b = lora[key], lora[key.replace(".lora_A.", ".lora_B.")]
        expected = (before[name].float() + scaling * (b.float() @ a.float())).to(torch.bfloat16)
        assert torch.equal(after[name], expected), name
        # The same sum done in bf16 rounds differently: the check above can tell the two apart.
        in_bf16 = before[name] + scaling * (b.to(torch.bfloat16) @ a.to(torch.bfloat16))
        bf16_differs += int((in_bf16 != expected).sum())
        merged_names.add(name)
    assert len(merged_names) == 6 and bf16_differs > 0
    assert all(torch.equal(after[n], before[n]) for n in before if n not in merged_names)
    merge_steps = [(e.step, e.total) for e in events if e.stage == "merge"]
    assert merge_steps == [(i, 6) for i in range(1, 7)]
    assert [e.stage for e in events][0] == "load" and events[-1].stage == "verify"
