"""Loading and logit probes for :mod:`engine.merge` (CASES K9, C20).

K9: compare the logits of the unmerged adapter model, the merged model and the merged model
after save + reload on the same prompts; the largest absolute difference is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError
from engine.hf_files import read_json

PROBE_TEXTS = ("The quick brown fox jumps over the lazy dog.",
               "Hello, how are you today?",
               "Please reset my password.")
_PROBE_CHAT = [{"role": "user", "content": "What is your name?"},
               {"role": "assistant", "content": "I am a helpful assistant."}]


def logits_for(model: Any, tokenizer: Any, template: str | None) -> list[Any]:
    """Float32 logits ``[seq, vocab]`` for each probe text and one templated conversation.

    A 16-bit model runs the probe in float32 (bf16 -> fp32 -> bf16 is exact, so the model is
    unchanged afterwards): bf16 activations alone move Gemma's logits by whole units, which
    would hide what K9 measures, the rounding of the merged weights.
    """
    import torch

    quantized = getattr(model, "hf_quantizer", None) is not None
    upcast = model.dtype in (torch.bfloat16, torch.float16) and not quantized
    # Restore each tensor's own dtype, not the model's: peft keeps LoRA weights in float32 on
    # a bf16 base, and casting them to bf16 here would round them before the merge (C18).
    dtypes = {name: t.dtype for name, t in _named_tensors(model)} if upcast else {}
    if upcast:
        model.to(torch.float32)
    try:
        return _probe(model, tokenizer, template)
    finally:
        for name, tensor in _named_tensors(model) if upcast else ():
            tensor.data = tensor.data.to(dtypes.get(name, tensor.dtype))


def _named_tensors(model: Any) -> list[tuple[str, Any]]:
    # Read again after ``model.to``: it keeps parameter objects but replaces buffers.
    return [*model.named_parameters(), *model.named_buffers()]


def _probe(model: Any, tokenizer: Any, template: str | None) -> list[Any]:
    import torch

    texts = list(PROBE_TEXTS)
    if template:
        texts.append(tokenizer.apply_chat_template(_PROBE_CHAT, chat_template=template,
                                                   tokenize=False))
    model.eval()
    out = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"].to(model.device)
            out.append(model(input_ids=ids).logits[0].float().cpu())
    return out


def max_abs_diff(a: list[Any], b: list[Any]) -> float:
    """Largest absolute elementwise difference between two lists of equal-shape tensors."""
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def quantization_config(base_dir: Path) -> dict | None:
    """The ``quantization_config`` of a checkpoint folder, or ``None`` for a plain checkpoint."""
    return read_json(base_dir / "config.json", what="model config").get("quantization_config")


def merge_dtype(base_dir: Path, stored: str) -> str:
    """The dtype to store the merged model in: the base's, or a 4-bit base's compute dtype."""
    quant = quantization_config(base_dir)
    if not quant:
        return stored
    compute = str(quant.get("bnb_4bit_compute_dtype") or "bfloat16").replace("torch.", "")
    return compute if compute in ("bfloat16", "float16", "float32") else "bfloat16"


def load_peft(base_dir: Path, adapter_dir: Path, base: Any | None, *, dtype: str | None = None) -> Any:
    """Wrap ``base`` (or the base loaded from ``base_dir`` in ``dtype``) with the adapter.

    Raises:
        ModelLoadError: the adapter does not fit the base (wrong model or shapes).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if base is None:
        kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
        base = AutoModelForCausalLM.from_pretrained(base_dir, trust_remote_code=False, **kwargs)
    try:
        return PeftModel.from_pretrained(base, adapter_dir, is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"The adapter in {adapter_dir} does not fit the base model in "
                             f"{base_dir}: {exc}. Merge it into the base it was trained on.") from exc


def load_dequantized_base(base_dir: Path) -> Any:
    """Load a bitsandbytes 4-bit checkpoint and dequantize it to its 16-bit compute dtype (C20).

    Not exercised on CPU-only test machines: bitsandbytes 4-bit needs its native library.

    Raises:
        ModelLoadError: bitsandbytes is not installed.
    """
    import torch
    from transformers import AutoModelForCausalLM

    require_bitsandbytes(base_dir)
    dtype = merge_dtype(base_dir, "bfloat16")
    model = AutoModelForCausalLM.from_pretrained(base_dir, trust_remote_code=False)
    model = model.dequantize()
    model = model.to(getattr(torch, dtype))
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def require_bitsandbytes(base_dir: Path) -> None:
    """Refuse a 4-bit base plainly when bitsandbytes is missing (C20), before any load.

    Raises:
        ModelLoadError: bitsandbytes is not installed.
    """
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelLoadError(f"{base_dir} is a 4-bit (bitsandbytes) checkpoint; dequantizing it "
                             "for the merge needs the bitsandbytes package, which is not "
                             "installed. Merge on a machine with a GPU build, or train on a "
                             "16-bit base.")
