"""inspect_model on tiny folders, custom-code refusal, and the built-in Gemma import."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.errors import ModelLoadError
from engine.models import inspect_model


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_inspect_tiny_model(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = inspect_model(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert info.architecture == "LlamaForCausalLM"
    assert info.parameter_count == sum(p.numel() for p in model.parameters())
    assert info.dtype == str(model.dtype).replace("torch.", "") == "float32"
    assert info.context_length == 256
    assert info.chat_template == tok.chat_template
    ids = tok.convert_tokens_to_ids
    assert info.special["bos"] == ids("<s>") and info.special["eos"] == ids("</s>")
    assert info.special["pad"] == ids("<pad>")
    assert info.special["eot"] == ids("<|im_end|>")
    assert sorted(info.special["end_ids"]) == sorted([ids("</s>"), ids("<|im_end|>")])
    assert torch.get_default_dtype() == torch.float32


def test_custom_code_is_refused_unless_allowed(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "custom")
    _edit_json(folder / "config.json", auto_map={"AutoModelForCausalLM": "modeling_x.XForCausalLM"})
    with pytest.raises(ModelLoadError, match="custom code.*allow_custom_code"):
        inspect_model(folder)
    assert inspect_model(folder, allow_custom_code=True).architecture == "LlamaForCausalLM"


@pytest.mark.parametrize("broken, match", [
    ("model.safetensors", "Missing weights"),
    ("tokenizer.json", "Missing tokenizer"),
    ("config.json", "config.json"),
])
def test_missing_files_are_named(tiny_model_dir: Path, tmp_path: Path, broken: str, match: str) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "m")
    (folder / broken).unlink()
    with pytest.raises(ModelLoadError, match=match):
        inspect_model(folder)


def test_unknown_architecture(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "m")
    _edit_json(folder / "config.json", architectures=["NoSuchForCausalLM"])
    with pytest.raises(ModelLoadError, match="NoSuchForCausalLM"):
        inspect_model(folder)


@pytest.mark.integration
def test_builtin_gemma_import_matches_gguf(gemma_hf_dir: Path) -> None:
    """The imported folder predicts the same next token as transformers reading the GGUF."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.gguf_import import builtin_base_model

    info = inspect_model(gemma_hf_dir)
    assert info.architecture == "Gemma3ForCausalLM" and info.dtype == "bfloat16"
    assert 260e6 < info.parameter_count < 280e6  # Gemma 3 270M, tied embeddings counted once
    assert info.special["eos"] == 1 and info.special["bos"] == 2 and info.special["pad"] == 0
    assert builtin_base_model(gemma_hf_dir.parent) == gemma_hf_dir  # second call: no re-import
    gguf = next((gemma_hf_dir.parent / "cache").glob("*.gguf"))
    tok = AutoTokenizer.from_pretrained(gemma_hf_dir)
    ids = tok("The capital of France is Paris. The capital of Germany is", return_tensors="pt")
    with torch.no_grad():
        direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        expected = direct(**ids).logits[0, -1]
        del direct
        imported = AutoModelForCausalLM.from_pretrained(gemma_hf_dir)
        got = imported(**ids).logits[0, -1]
    assert int(got.argmax()) == int(expected.argmax())
    assert tok.decode(int(got.argmax())).strip() == "Berlin"
