"""Loading the base model for training, attaching LoRA, and the masked next-token loss."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from engine.devices import DevicePlan
from engine.encode import IGNORE_INDEX
from engine.errors import ConfigError, ModelLoadError


def check_model_dir(model_dir: Path, allow_custom_code: bool) -> None:
    """Refuse a folder that is not a transformers model, or needs custom code without consent.

    Raises:
        ModelLoadError: no ``config.json``, or ``auto_map`` (custom Python code) without
            ``allow_custom_code``.
    """
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{model_dir} is not a Hugging Face model folder (no config.json); "
                             "import the model first")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if "auto_map" in config and not allow_custom_code:
        raise ModelLoadError(f"{model_dir} needs custom Python code from the model folder to load "
                             "(auto_map in config.json); allow custom code only if you trust its source")


def load_tokenizer(model_dir: Path, allow_custom_code: bool) -> Any:
    """The model's tokenizer, from local files only.

    Raises:
        ModelLoadError: the tokenizer files are missing or unreadable.
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True,
                                             trust_remote_code=allow_custom_code)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer from {model_dir}: {exc}") from exc


def load_base_model(model_dir: Path, plan: DevicePlan, *, load_in_4bit: bool,
                    allow_custom_code: bool) -> Any:
    """Load the causal LM with frozen weights in ``plan.base_dtype`` on ``plan.device``.

    Raises:
        ModelLoadError: the weights cannot be loaded.
        ConfigError: ``load_in_4bit`` but bitsandbytes is not installed.
    """
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": plan.torch_dtype(plan.base_dtype), "local_files_only": True,
                              "trust_remote_code": allow_custom_code}
    if load_in_4bit:
        kwargs.update(quantization_config=_nf4_config(plan), device_map={"": 0})
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the model from {model_dir}: {exc}") from exc
    if load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model.to(plan.device)
    model.config.use_cache = False
    return model


def _nf4_config(plan: DevicePlan) -> Any:
    """QLoRA's NF4 + double quantization (Dettmers et al., 2023), computing in the plan dtype."""
    try:
        import bitsandbytes  # noqa: F401  (imported only to give a clear error when missing)
    except ImportError as exc:
        raise ConfigError("load_in_4bit needs the bitsandbytes package, which is not installed; "
                          "install it (CUDA only) or turn load_in_4bit off") from exc
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=plan.torch_dtype())


def attach_lora(model: Any, config: Any) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter named ``config.adapter_name``.

    LoRA weights are initialised from ``config.seed`` (A: Kaiming-uniform, B: zeros, as in Hu et
    al., 2021 and PEFT) and kept in fp32 even over a 16-bit base (PEFT ``autocast_adapter_dtype``).

    Raises:
        ConfigError: ``target_modules`` names no module of this model.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    targets = config.target_modules if isinstance(config.target_modules, str) else list(config.target_modules)
    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")
    torch.manual_seed(config.seed)
    try:
        return get_peft_model(model, lora, adapter_name=config.adapter_name)
    except ValueError as exc:
        raise ConfigError(f"target_modules {targets!r} do not match this model: {exc}") from exc


def supports_logits_mask(model: Any) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (transformers >= 4.50 causal LMs)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def masked_loss_sum(model: Any, batch: dict[str, Any], *, logits_mask: bool) -> tuple[Any, int]:
    """Summed next-token cross-entropy over the trained (label != -100) positions.

    Only the positions that predict a trained token go through the output head (a boolean
    ``logits_to_keep``), which skips the vocabulary projection for prompts and padding; for a
    262k-token vocabulary (Gemma 3) that head is a large share of the compute.

    Args:
        model: the causal LM (PEFT-wrapped or not).
        batch: ``input_ids``, ``attention_mask``, ``labels`` of shape (B, T) on the model device.
        logits_mask: pass the mask to the model (see :func:`supports_logits_mask`).

    Returns:
        ``(loss_sum, n_tokens)``: a scalar fp32 tensor (nats, summed) and the trained-token count.
    """
    import torch
    import torch.nn.functional as F

    labels = batch["labels"]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX  # position t predicts token t + 1
    targets = labels[:, 1:][keep[:, :-1]]
    extra = {"logits_to_keep": keep} if logits_mask else {}
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                use_cache=False, **extra)
    logits = out.logits if out.logits.dim() == 2 else out.logits[keep]
    loss = F.cross_entropy(logits.float(), targets, reduction="sum")
    return loss, int(targets.numel())
