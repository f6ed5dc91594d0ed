"""TrainConfig validation: every message names the field and the allowed values."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.configs import from_dict, to_dict
from engine.errors import ConfigError
from engine.train_config import TrainConfig


@pytest.mark.parametrize("changes, words", [
    ({"lr_scheduler": "exponential"}, ["lr_scheduler", "cosine", "constant_with_warmup"]),
    ({"precision": "fp8"}, ["precision", "bf16", "fp32"]),
    ({"device": "tpu"}, ["device", "cuda", "mps"]),
    ({"truncation": "middle"}, ["truncation", "left", "drop"]),
    ({"batch_size": 0}, ["batch_size", ">= 1"]),
    ({"learning_rate": 0}, ["learning_rate"]),
    ({"learning_rate": float("nan")}, ["learning_rate", "finite"]),
    ({"lora_dropout": 1.0}, ["lora_dropout", "[0, 1)"]),
    ({"max_steps": 0}, ["max_steps"]),
    ({"target_modules": "q_proj"}, ["target_modules", "all-linear"]),
    ({"target_modules": []}, ["target_modules"]),
    ({"warmup_steps": 5, "warmup_ratio": 0.1}, ["warmup_steps", "warmup_ratio"]),
    ({"adapter_name": "my adapter"}, ["adapter_name"]),
    ({"gradient_accumulation_steps": 1.5}, ["gradient_accumulation_steps", "whole number"]),
])
def test_invalid_values_name_field_and_allowed_values(changes: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes)
    for word in words:
        assert word in str(info.value)


def test_every_field_has_help() -> None:
    for f in dataclasses.fields(TrainConfig):
        assert len(f.metadata.get("help", "")) > 10, f.name


def test_defaults_and_json_round_trip() -> None:
    config = TrainConfig(target_modules=["q_proj", "v_proj"], max_steps=10)
    assert config.learning_rate == 2e-4 and config.target_modules == ("q_proj", "v_proj")
    again = from_dict(TrainConfig, json.loads(json.dumps(to_dict(config))))
    assert again == config


def test_unknown_key_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="lora_rnak"):
        from_dict(TrainConfig, {"lora_rnak": 8})
