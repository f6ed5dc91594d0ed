"""How much memory a LoRA training run needs, and advice when it does not fit.

The estimate adds: frozen base weights, LoRA weights (fp32), their gradients, AdamW's two moment
buffers (Loshchilov & Hutter, 2019), activations kept for the backward pass and the fp32 logits
of the trained positions. The activation term counts the tensors a decoder layer saves for
backward per token (in the spirit of Korthikanti et al., 2022, "Reducing Activation
Recomputation in Large Transformer Models", which gives 34*h bytes per token per layer for
16-bit GPT layers; our layers are gated-MLP Llama/Gemma blocks, hence the 4*intermediate term).
It was checked against the bytes autograd really saves (``tests/engine/test_train_memory.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from engine.devices import DevicePlan, dtype_bytes

# Elements saved for backward per token per layer: ~16 hidden-sized tensors (norm inputs and
# outputs, q/k/v, rotary outputs, attention output, residuals, LoRA dropout outputs) + 6
# intermediate-sized ones (gate, up, activation, product, down input, its LoRA dropout output).
# Calibrated with autograd's saved_tensors_hooks on Llama and Gemma 3 layers (within ~15%).
_HIDDEN_TENSORS = 16
_INTERMEDIATE_TENSORS = 6
# bitsandbytes NF4 with double quantization stores ~4.1 bits per weight (Dettmers et al., 2023).
_NF4_BYTES = 0.52


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a causal LM that drive its training memory."""

    n_params: int
    n_lora_params: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    vocab_size: int

    @classmethod
    def from_model(cls, model: Any) -> ModelShape:
        """Read the shape of a (PEFT-wrapped) transformers model: trainable params are LoRA."""
        config = getattr(model, "config", None) or model.get_base_model().config
        config = getattr(config, "text_config", None) or config
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        hidden = int(config.hidden_size)
        return cls(n_params=total - trainable, n_lora_params=trainable, hidden_size=hidden,
                   intermediate_size=int(getattr(config, "intermediate_size", 4 * hidden)),
                   num_layers=int(config.num_hidden_layers), vocab_size=int(config.vocab_size))


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed by one training run, by part."""

    weights: int
    lora: int
    gradients: int
    optimizer: int
    activations: int
    logits: int

    @property
    def total(self) -> int:
        """All parts together, in bytes."""
        return self.weights + self.lora + self.gradients + self.optimizer + self.activations + self.logits

    def describe(self) -> str:
        """One line in GiB, e.g. ``"1.20 GiB (weights 0.50, LoRA+grads+AdamW 0.05, ...)"``."""
        gib = 1024 ** 3
        state = (self.lora + self.gradients + self.optimizer) / gib
        return (f"{self.total / gib:.2f} GiB (weights {self.weights / gib:.2f}, LoRA+grads+AdamW "
                f"{state:.2f}, activations {self.activations / gib:.2f}, logits {self.logits / gib:.2f})")


def estimate_training_memory(shape: ModelShape, plan: DevicePlan, *, batch_size: int, seq_len: int,
                             trained_fraction: float = 1.0, load_in_4bit: bool = False) -> MemoryEstimate:
    """Estimate the peak memory of a LoRA training step.

    Args:
        shape: model sizes (:meth:`ModelShape.from_model`).
        plan: device and precision; the base weights use ``plan.base_dtype``, activations the
            compute precision.
        batch_size: sequences per micro-batch.
        seq_len: padded sequence length, in tokens.
        trained_fraction: share of positions whose logits are computed (assistant tokens).
        load_in_4bit: base weights stored as NF4.

    Returns:
        The estimate, in bytes per part.
    """
    weight_bytes = _NF4_BYTES if load_in_4bit else dtype_bytes(plan.base_dtype)
    tokens = batch_size * seq_len
    per_token = _HIDDEN_TENSORS * shape.hidden_size + _INTERMEDIATE_TENSORS * shape.intermediate_size
    activations = tokens * shape.num_layers * per_token * dtype_bytes(plan.precision)
    # fp32 logits plus the fp32 softmax gradient of the same size.
    logits = int(tokens * trained_fraction) * shape.vocab_size * 4 * 2
    return MemoryEstimate(weights=int(shape.n_params * weight_bytes), lora=shape.n_lora_params * 4,
                          gradients=shape.n_lora_params * 4, optimizer=shape.n_lora_params * 8,
                          activations=activations, logits=logits)


def available_memory(device: str) -> int | None:
    """Free memory on ``device`` in bytes, or ``None`` when it cannot be read."""
    import torch

    if device == "cuda":
        return int(torch.cuda.mem_get_info()[0])
    if device == "mps":
        return int(torch.mps.recommended_max_memory()) if hasattr(torch.mps, "recommended_max_memory") else None
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def oom_advice(estimate: MemoryEstimate | None, available: int | None, *, batch_size: int,
               max_length: int, gradient_accumulation_steps: int) -> str:
    """What to change when training does not fit in memory (one paragraph for the user)."""
    need = f"The run needs about {estimate.describe()}" if estimate else "The run needs more memory"
    have = f"; about {available / 1024 ** 3:.2f} GiB is free" if available else ""
    smaller = max(1, batch_size // 2)
    return (f"{need}{have}. Lower batch_size (e.g. {batch_size} -> {smaller}) and raise "
            f"gradient_accumulation_steps (e.g. {gradient_accumulation_steps} -> "
            f"{gradient_accumulation_steps * batch_size // smaller}) to keep the same effective "
            f"batch, or lower max_length (now {max_length} tokens); on CUDA, load_in_4bit also helps.")
