"""Checks around GGUF export: the quantization table, converter pre-checks and block sizes.

K10: before converting, the folder must be a plain 16/32-bit checkpoint whose vocabulary sizes
agree. K11: k-quants pack rows in super-blocks of 256 values, q8_0/q4_0 in blocks of 32; a
tensor whose row length (GGUF ``ne[0]``, the last dim of the Hugging Face tensor) is not a
multiple falls back to another type. Block sizes and fallbacks are llama.cpp's
(``ggml/src/ggml-common.h`` QK_K / QK8_0, ``src/llama-quant.cpp`` "incompatible tensor").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, ExportError
from engine.hf_files import read_json, read_tokenizer_vocab, safetensors_headers, tokenizer_size, weight_files
from engine.models import special_tokens


@dataclass(frozen=True)
class QuantSpec:
    """One export type.

    Attributes:
        name: the name as llama.cpp spells it (``q4_k_m``).
        outtype: ``--outtype`` of llama.cpp's converter, or ``None`` for types made by the
            quantizer from a lossless intermediate file.
        ftype: llama.cpp ``LLAMA_FTYPE_*`` constant for the quantizer, or ``None``.
        main_type: the GGML type most 2-D weights get.
        block: row length the main type needs a multiple of (1 = any).
        fallback: GGML type llama.cpp uses for a tensor whose rows do not fit.
    """

    name: str
    outtype: str | None
    ftype: str | None
    main_type: str
    block: int
    fallback: str


QUANTS: dict[str, QuantSpec] = {q.name: q for q in (
    QuantSpec("f16", "f16", None, "F16", 1, "F16"),
    QuantSpec("bf16", "bf16", None, "BF16", 1, "BF16"),
    QuantSpec("q8_0", "q8_0", None, "Q8_0", 32, "F16"),
    QuantSpec("q4_k_m", None, "LLAMA_FTYPE_MOSTLY_Q4_K_M", "Q4_K", 256, "Q5_0"),
    QuantSpec("q5_k_m", None, "LLAMA_FTYPE_MOSTLY_Q5_K_M", "Q5_K", 256, "Q5_1"),
    QuantSpec("q6_k", None, "LLAMA_FTYPE_MOSTLY_Q6_K", "Q6_K", 256, "Q8_0"),
)}
# Lossless converter outtype for the intermediate file a k-quant is made from.
INTERMEDIATE = {"bfloat16": "bf16", "float16": "f16", "float32": "f32"}
PLAIN_DTYPES = {"F32", "F16", "BF16"}
# Tensor-name suffixes of packed quantized checkpoints (bitsandbytes, GPTQ, AWQ).
PACKED_SUFFIXES = (".absmax", ".quant_map", ".quant_state", ".nested_absmax", ".qweight",
                   ".qzeros", ".g_idx", ".SCB")
EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight",
                      "tok_embeddings.weight", "embed_in.weight")
_MERGE_FIRST = ("Merge the adapter into a 16-bit copy of the base model first (Tunesmith's merge "
                "does this), then export that folder.")


@dataclass(frozen=True)
class ExportPlan:
    """What the pre-checks learned about the folder to convert."""

    name: str
    dtype: str
    chat_template: str
    special: dict[str, Any]
    headers: dict[str, dict]


def quant_spec(quant: str) -> QuantSpec:
    """The :class:`QuantSpec` for ``quant``; raises ConfigError naming the allowed values."""
    if quant not in QUANTS:
        raise ConfigError(f"quant must be one of {', '.join(QUANTS)}; got {quant!r}")
    return QUANTS[quant]


def precheck(hf_dir: Path, chat_template: str | None = None) -> ExportPlan:
    """Check that ``hf_dir`` can be converted (K10) and collect what the export needs.

    Raises:
        ExportError: quantized or packed checkpoint (C21), vocabulary sizes disagree, or no
            chat template is known (C11).
    """
    from engine.errors import ModelLoadError
    from engine.models import stored_dtype

    try:
        config = read_json(hf_dir / "config.json", what="model config")
        headers = safetensors_headers(weight_files(hf_dir))
        vocab = read_tokenizer_vocab(hf_dir)
    except ModelLoadError as exc:
        raise ExportError(f"Cannot export {hf_dir}: {exc}") from exc
    check_plain(hf_dir, config, headers)
    check_vocab(hf_dir, config, headers, vocab)
    template, special = special_tokens(hf_dir, config, chat_template)
    if not template:
        raise ExportError(f"{hf_dir.name} has no chat template (tokenizer_config.json), so a "
                          "chat app could only guess its format. Export a merged fine-tune "
                          "(it carries the template used in training) or give the template.")
    return ExportPlan(hf_dir.name, stored_dtype(headers, config), template, special, headers)


def check_plain(hf_dir: Path, config: dict, headers: dict[str, dict]) -> None:
    """Refuse checkpoints that hold quantized or packed weights (CASES C21)."""
    if config.get("quantization_config"):
        method = config["quantization_config"].get("quant_method", "unknown")
        raise ExportError(f"{hf_dir.name} is a quantized checkpoint ({method}; config.json has a "
                          f"quantization_config). llama.cpp's converter needs plain 16/32-bit "
                          f"weights. {_MERGE_FIRST}")
    packed = [name for name, meta in headers.items()
              if name.endswith(PACKED_SUFFIXES) or meta["dtype"] not in PLAIN_DTYPES]
    if packed:
        raise ExportError(f"{hf_dir.name} holds packed or integer tensors (e.g. {packed[0]}, "
                          f"{headers[packed[0]]['dtype']}); it looks like a 4-bit checkpoint. "
                          f"{_MERGE_FIRST}")


def check_vocab(hf_dir: Path, config: dict, headers: dict[str, dict], vocab: dict[str, int]) -> None:
    """Config ``vocab_size``, embedding rows and tokenizer size must agree (K10).

    A tokenizer smaller than the embedding is fine (rows padded to a multiple of 64 or 128 are
    common); a larger one would produce ids the model has no row for.
    """
    embedding = next((n for n in headers if n.endswith(EMBEDDING_SUFFIXES)), None)
    rows = headers[embedding]["shape"][0] if embedding else None
    size = config.get("vocab_size", config.get("text_config", {}).get("vocab_size"))
    tokens = tokenizer_size(vocab)
    if rows is not None and size is not None and rows != size:
        raise ExportError(f"{hf_dir.name}: config.json vocab_size is {size} but the embedding "
                          f"{embedding} has {rows} rows; the checkpoint is inconsistent. Re-save "
                          "it from the model it came from.")
    limit = rows if rows is not None else size
    if limit is not None and tokens > limit:
        raise ExportError(f"{hf_dir.name}: the tokenizer has {tokens} tokens but the model only "
                          f"{limit} embedding rows, so some tokens have no embedding. Use the "
                          "tokenizer the model was trained with.")


def predict_fallbacks(headers: dict[str, dict], spec: QuantSpec) -> list[str]:
    """2-D tensors whose row length does not fit ``spec``'s block size (K11), as messages."""
    if spec.block == 1:
        return []
    out = []
    for name, meta in sorted(headers.items()):
        shape = meta["shape"]
        if len(shape) >= 2 and shape[-1] % spec.block:
            out.append(f"{name}: row length {shape[-1]} is not a multiple of {spec.block}, so "
                       f"it cannot be {spec.main_type}; llama.cpp stores it as {spec.fallback}")
    return out


def actual_fallbacks(tensors: list[tuple[str, str, list[int]]], spec: QuantSpec) -> list[str]:
    """From the written GGUF: 2-D tensors whose row length forced a type other than intended.

    Args:
        tensors: ``(name, ggml_type_name, ne)`` per tensor of the final file.
    """
    if spec.block == 1:
        return []
    return [f"{name}: row length {ne[0]} is not a multiple of {spec.block}, so {spec.name}'s "
            f"{spec.block}-value blocks do not fit; stored as {kind}"
            for name, kind, ne in tensors if len(ne) >= 2 and ne[0] % spec.block]

