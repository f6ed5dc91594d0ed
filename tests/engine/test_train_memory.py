"""Memory estimate vs hand counts (parameters) and vs what autograd really saves (activations)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.devices import choose_precision
from engine.train_memory import ModelShape, estimate_training_memory, oom_advice


def _lora_model(model_dir: Path, rank: int):
    from transformers import AutoModelForCausalLM

    from engine.train_model import attach_lora

    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype="float32")
    settings = SimpleNamespace(target_modules="all-linear", lora_rank=rank, lora_alpha=16,
                               lora_dropout=0.05, seed=0, adapter_name="default")
    return base, attach_lora(base, settings)


def test_parameter_parts_match_a_hand_count(tiny_model_dir: Path) -> None:
    base, model = _lora_model(tiny_model_dir, rank=8)
    v, h, i, kv = base.config.vocab_size, 64, 128, 32  # kv: 2 key/value heads x head_dim 16
    per_layer = h * h + 2 * h * kv + h * h + 3 * h * i + 2 * h  # q, k, v, o, gate/up/down, 2 norms
    n_base = 2 * v * h + 2 * per_layer + h  # embeddings, lm_head, layers, final norm
    # LoRA r * (in + out) on q, k, v, o, gate, up, down of both layers.
    n_lora = 2 * 8 * ((h + h) + 2 * (h + kv) + (h + h) + 3 * (h + i))
    estimate = estimate_training_memory(ModelShape.from_model(model), choose_precision("cpu", "fp32"),
                                        batch_size=2, seq_len=32)
    assert estimate.weights == 4 * n_base
    assert (estimate.lora, estimate.gradients, estimate.optimizer) == (4 * n_lora, 4 * n_lora, 8 * n_lora)


def test_activations_are_close_to_what_autograd_saves(tiny_model_dir: Path) -> None:
    import torch

    from engine.train_model import masked_loss_sum

    _, model = _lora_model(tiny_model_dir, rank=8)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(10, 300, (4, 96))
    labels = ids.clone()
    labels[:, :48] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        masked_loss_sum(model, batch, logits_mask=True)
    measured = sum(n for ptr, n in saved.items() if ptr not in params)
    estimate = estimate_training_memory(ModelShape.from_model(model), choose_precision("cpu", "fp32"),
                                        batch_size=4, seq_len=96, trained_fraction=0.5)
    assert 0.7 < (estimate.activations + estimate.logits) / measured < 1.5


def test_activations_scale_with_batch_and_precision(tiny_model_dir: Path) -> None:
    _, model = _lora_model(tiny_model_dir, rank=4)
    shape = ModelShape.from_model(model)
    fp32 = estimate_training_memory(shape, choose_precision("cpu", "fp32"), batch_size=2, seq_len=64)
    double = estimate_training_memory(shape, choose_precision("cpu", "fp32"), batch_size=4, seq_len=64)
    bf16 = estimate_training_memory(shape, choose_precision("cpu", "bf16"), batch_size=2, seq_len=64)
    assert double.activations == 2 * fp32.activations
    assert bf16.activations * 2 == fp32.activations


@pytest.mark.parametrize("batch, accumulation", [(8, 1), (3, 2)])
def test_advice_keeps_the_effective_batch(batch: int, accumulation: int) -> None:
    text = oom_advice(None, 2 * 1024 ** 3, batch_size=batch, max_length=512,
                      gradient_accumulation_steps=accumulation)
    smaller = max(1, batch // 2)
    assert f"{batch} -> {smaller}" in text and "max_length" in text and "2.00 GiB" in text
    assert f"{accumulation} -> {accumulation * batch // smaller}" in text
