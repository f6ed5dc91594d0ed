"""Shared rows and settings for the training tests (tiny model, a few seconds per run)."""

from __future__ import annotations

from engine.train_config import TrainConfig

ROWS = [
    {"messages": [{"role": "user", "content": "What is your name?"},
                  {"role": "assistant", "content": "My name is Tunesmith."}]},
    {"messages": [{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": "Hello, how are you today?"},
                  {"role": "assistant", "content": "I am fine, thank you."}]},
    {"messages": [{"role": "user", "content": "Please reset my password."},
                  {"role": "assistant", "content": "Sure, I can help with that."}]},
    {"messages": [{"role": "user", "content": "hi"},
                  {"role": "assistant", "content": "hello"}]},
]


def fast_config(**changes: object) -> TrainConfig:
    """A CPU fp32 config that trains the tiny model quickly and deterministically."""
    base = dict(max_steps=4, batch_size=2, learning_rate=5e-3, lora_rank=4, lora_alpha=8.0,
                lora_dropout=0.0, eval_every=0, save_every=0, device="cpu", precision="fp32",
                max_length=64, seed=7)
    base.update(changes)
    return TrainConfig(**base)
