"""Merge a LoRA adapter into its base model and save a plain Hugging Face folder (CASES K9).

The merge never touches its inputs: base and adapter are read, the merged model is written to
a new folder. Each LoRA delta ``scaling * B @ A`` is added to its weight in float32 and the sum
is cast back to the base's stored dtype (C17: a bf16 base stays bf16, no fp32 doubling; C18:
bf16 matmuls are very slow on many CPUs, so time does not depend on the stored dtype).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, ModelLoadError
from engine.fileio import atomic_path, atomic_write
from engine.hf_files import read_json, safetensors_headers, weight_files
from engine.merge_check import PROBE_TEXTS, logits_for, max_abs_diff, merge_dtype
from engine.models import stored_dtype
from engine.progress import CancelToken, Progress, Reporter, ignore_progress

TRAIN_RECORD = "tunesmith_train.json"
MERGE_RECORD = "tunesmith_merge.json"


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge_adapter` produced.

    Attributes:
        path: the merged Hugging Face folder.
        dtype: stored dtype of the merged weights (the base's), e.g. ``"bfloat16"``.
        max_logit_diff: largest absolute logit difference between the unmerged adapter model
            and the merged model, before and after save + reload, over the probe prompts.
        seconds: wall time of the whole merge.
        logit_diffs: the same split up: ``{"merged": ..., "reloaded": ...}``.
    """

    path: Path
    dtype: str
    max_logit_diff: float
    seconds: float
    logit_diffs: dict[str, float] = field(default_factory=dict)


def merge_adapter(base_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path, *,
                  chat_template: str | None = None, special: Any = None,
                  report: Reporter = ignore_progress, cancel: CancelToken | None = None) -> MergeResult:
    """Merge a PEFT LoRA adapter into its base and save the result with its chat format.

    Args:
        base_dir: the base model folder the adapter was trained on (16-bit or 32-bit; a
            bitsandbytes 4-bit checkpoint is dequantized to 16 bit first, C20).
        adapter_dir: the PEFT adapter folder; its ``tunesmith_train.json`` supplies the chat
            template and special tokens when the arguments below are omitted.
        out_dir: the merged folder to create (written under a temporary name, then renamed).
        chat_template: the Jinja template used in training; stored in ``tokenizer_config.json``.
        special: the special-token table used in training: an ``engine.tokens.SpecialTokens``
            or a dict with ``bos``/``eos``/``pad``/``eot``/``end_ids`` (``*_id`` keys accepted).
        report: progress callback (stages ``load``, ``merge`` per module, ``save``, ``verify``).
        cancel: checked between modules and stages.

    Returns:
        A :class:`MergeResult`.

    Raises:
        ConfigError: no chat template or special tokens known, or pad equals an end id.
        ModelLoadError: base or adapter folder unusable.
    """
    started = time.perf_counter()
    base_dir, adapter_dir, out_dir = Path(base_dir), Path(adapter_dir), Path(out_dir)
    record = read_json(adapter_dir / TRAIN_RECORD, missing_ok=True)
    template = chat_template or (record.get("template") or {}).get("source")
    tokens = normalize_special(special if special is not None else record.get("special_tokens"))
    _check_inputs(template, tokens, adapter_dir)
    dtype = merge_dtype(base_dir, stored_dtype(safetensors_headers(weight_files(base_dir)),
                                               read_json(base_dir / "config.json", what="model config")))
    check = cancel.check if cancel else (lambda: None)
    report(Progress("load", 0, 1, message=f"Loading {base_dir.name} + adapter {adapter_dir.name}"))
    tokenizer = _load_tokenizer(base_dir, adapter_dir)
    model, reference = _load_for_merge(base_dir, adapter_dir, tokenizer, dtype, template)
    check()
    merged = _merge_in_fp32(model, report, check)
    diffs = {"merged": max_abs_diff(reference, logits_for(merged, tokenizer, template))}
    report(Progress("save", 0, 1, message=f"Writing {out_dir}"))
    with atomic_path(out_dir) as tmp:
        merged.save_pretrained(tmp)
        save_chat_files(tokenizer, tmp, template, tokens, base_dir)
        diffs["reloaded"] = _reloaded_diff(tmp, tokenizer, template, reference, dtype)
        _write_record(tmp, base_dir, adapter_dir, dtype, diffs)
    seconds = time.perf_counter() - started
    result = MergeResult(out_dir, dtype, max(diffs.values()), seconds, diffs)
    report(Progress("verify", 1, 1, metrics={"max_logit_diff": result.max_logit_diff,
                                             "seconds": seconds},
                    message=f"Merged; max logit difference vs the adapter model {result.max_logit_diff:.3g}"))
    return result


def normalize_special(special: Any) -> dict[str, Any] | None:
    """Turn a ``SpecialTokens`` object or dict into ``{bos, eos, pad, eot, end_ids}``."""
    if special is None:
        return None
    get = special.get if isinstance(special, dict) else (lambda k, d=None: getattr(special, k, d))
    out = {key: get(key, get(f"{key}_id")) for key in ("bos", "eos", "pad", "eot")}
    ends = [out["eos"], *(get("end_ids") or ()), out["eot"]]
    out["end_ids"] = [int(i) for i in dict.fromkeys(ends) if i is not None]
    return out


def save_chat_files(tokenizer: Any, folder: Path, template: str, tokens: dict[str, Any],
                    base_dir: Path) -> None:
    """Write tokenizer (template inside ``tokenizer_config.json``) and ``generation_config.json``.

    ``generation_config.json`` lists every end-of-generation id as ``eos_token_id`` so that
    generation stops at end-of-turn as well as at EOS (C07, C08).
    """
    from transformers import GenerationConfig

    tokenizer.chat_template = template
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(tokens["pad"])
    # save_jinja_files=False keeps the template in tokenizer_config.json, where every runtime
    # and llama.cpp's converter look for it.
    tokenizer.save_pretrained(folder, save_jinja_files=False)
    try:
        generation = GenerationConfig.from_pretrained(base_dir)
    except OSError:
        generation = GenerationConfig()
    generation.bos_token_id = tokens["bos"]
    generation.eos_token_id = list(tokens["end_ids"])
    generation.pad_token_id = tokens["pad"]
    generation.save_pretrained(folder)


def _check_inputs(template: str | None, tokens: dict[str, Any] | None, adapter_dir: Path) -> None:
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelLoadError(f"{adapter_dir} is not a LoRA adapter folder (no adapter_config.json).")
    if not template or tokens is None:
        raise ConfigError(f"The chat template and special tokens used in training are unknown: "
                          f"{adapter_dir / TRAIN_RECORD} is missing or incomplete. Pass "
                          "chat_template and special explicitly.")
    if tokens["eos"] is None or tokens["pad"] is None:
        raise ConfigError("special must name both eos and pad ids; got " + repr(tokens))
    if tokens["pad"] in tokens["end_ids"]:
        raise ConfigError(f"special: pad id {tokens['pad']} is also an end-of-generation id "
                          f"{tokens['end_ids']}; padding must use a different token (CASES C06).")


def _load_tokenizer(base_dir: Path, adapter_dir: Path) -> Any:
    from transformers import AutoTokenizer

    source = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base_dir
    return AutoTokenizer.from_pretrained(source, trust_remote_code=False)


def _load_for_merge(base_dir: Path, adapter_dir: Path, tokenizer: Any, dtype: str,
                    template: str) -> tuple[Any, Any]:
    """The adapter model to merge (16-bit base) and the unmerged reference logits."""
    from engine.merge_check import (load_dequantized_base, load_peft, quantization_config,
                                    require_bitsandbytes)

    if quantization_config(base_dir):
        # Before loading the 4-bit reference, which would fail with transformers' bare ImportError.
        require_bitsandbytes(base_dir)
        # C20: the adapter was trained on a 4-bit base. The reference is that 4-bit model;
        # the merge goes into a dequantized 16-bit copy, never into packed 4-bit weights.
        quantized = load_peft(base_dir, adapter_dir, None)
        reference = logits_for(quantized, tokenizer, template)
        del quantized
        return load_peft(base_dir, adapter_dir, load_dequantized_base(base_dir)), reference
    model = load_peft(base_dir, adapter_dir, None, dtype=dtype)
    return model, logits_for(model, tokenizer, template)


def _merge_in_fp32(model: Any, report: Reporter, check: Any) -> Any:
    """Add each LoRA delta in float32, store in the weight's dtype, return the unwrapped model."""
    import torch
    from peft.tuners.lora import LoraLayer

    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, LoraLayer)]
    with torch.no_grad():
        for step, (name, layer) in enumerate(layers):
            check()
            for adapter in layer.active_adapters:
                if layer.use_dora.get(adapter):
                    layer.merge(safe_merge=True, adapter_names=[adapter])  # peft's own DoRA path
                    continue
                weight = layer.get_base_layer().weight
                merged = weight.float() + layer.get_delta_weight(adapter).float()
                weight.data = merged.to(weight.dtype)
            report(Progress("merge", step + 1, len(layers), message=name))
    return model.unload()


def _reloaded_diff(folder: Path, tokenizer: Any, template: str, reference: Any, dtype: str) -> float:
    import torch
    from transformers import AutoModelForCausalLM

    # Load in the stored dtype like the reference (logits_for upcasts): buffers such as Gemma's
    # embed_scale are computed at init in the load dtype and must match.
    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
    return max_abs_diff(reference, logits_for(reloaded, tokenizer, template))


def _write_record(folder: Path, base_dir: Path, adapter_dir: Path, dtype: str,
                  diffs: dict[str, float]) -> None:
    record = {"base_dir": str(base_dir), "adapter_dir": str(adapter_dir), "dtype": dtype,
              "max_logit_diff": diffs, "probe_texts": list(PROBE_TEXTS)}
    with atomic_write(folder / MERGE_RECORD) as handle:
        json.dump(record, handle, indent=2)
