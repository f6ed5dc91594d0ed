"""Memory and time estimate for the Train page, from the model's config.json (no weights loaded).

Memory uses the engine's own model (:func:`engine.train_memory.estimate_training_memory`).
Time is a rough bound from the usual 6·N·tokens FLOPs of a training step (Kaplan et al., 2020,
"Scaling Laws for Neural Language Models", Sec. 2.1) at an assumed sustained throughput per
device; it is labelled as rough in the UI.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

# Sustained FLOP/s assumed for the time estimate (rough: small models use hardware poorly).
ASSUMED_FLOPS = {"cpu": 2e10, "mps": 2e12, "cuda": 2e13}
# Linear layers per transformer block that "all-linear" LoRA targets (q, k, v, o, gate, up, down).
_LINEARS = 7


def model_shape(model_dir: Path, lora_rank: int, parameter_count: int | None) -> Any:
    """An :class:`engine.train_memory.ModelShape` read from ``model_dir/config.json``."""
    from engine.train_memory import ModelShape

    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    config = config.get("text_config", config)
    hidden = int(config["hidden_size"])
    inter = int(config.get("intermediate_size", 4 * hidden))
    layers = int(config["num_hidden_layers"])
    vocab = int(config["vocab_size"])
    lora = layers * lora_rank * (4 * 2 * hidden + 3 * (hidden + inter))
    params = parameter_count or layers * (4 * hidden * hidden + 3 * hidden * inter) + vocab * hidden
    return ModelShape(n_params=int(params), n_lora_params=int(lora), hidden_size=hidden,
                      intermediate_size=inter, num_layers=layers, vocab_size=vocab)


def estimate_training(config: Any, model_dir: Path, parameter_count: int | None,
                      n_train: int) -> str:
    """One line: peak memory, free memory and rough time for ``config`` on its device.

    Args:
        config: a ``TrainConfig``.
        model_dir: Hugging Face model folder.
        parameter_count: known parameter count, or ``None`` to estimate from the config.
        n_train: training conversations.
    """
    from engine.devices import plan_device
    from engine.train_memory import available_memory, estimate_training_memory

    plan = plan_device(config.device, config.precision, load_in_4bit=config.load_in_4bit)
    shape = model_shape(model_dir, config.lora_rank, parameter_count)
    memory = estimate_training_memory(shape, plan, batch_size=config.batch_size,
                                      seq_len=config.max_length, trained_fraction=0.5,
                                      load_in_4bit=config.load_in_4bit)
    free = available_memory(plan.device)
    per_step = config.batch_size * config.gradient_accumulation_steps
    steps = config.max_steps or math.ceil(n_train * config.num_epochs / max(1, per_step))
    # Conversations are usually far shorter than max_length; assume a quarter on average.
    tokens = steps * per_step * config.max_length / 4
    seconds = 6 * shape.n_params * tokens / ASSUMED_FLOPS.get(plan.device, 2e10)
    from gui.widgets import human_duration

    fits = "" if free is None else (f" of {free / 1024 ** 3:.1f} GiB free"
                                    + (" — may not fit!" if memory.total > 0.9 * free else ""))
    return (f"{plan.device} · {plan.precision} · {steps:,} steps · memory ≈ "
            f"{memory.total / 1024 ** 3:.2f} GiB{fits} · time ≈ {human_duration(seconds)} (rough)")
