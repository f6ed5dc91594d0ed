"""Shared fixtures: tiny models built in the session, an isolated data dir, offline mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a ChatML template (read-only: copy before changing it)."""
    from tests.tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model",
                            generation_eos=["</s>", "<|im_end|>"])


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Tunesmith data dir, also exported as ``TUNESMITH_DATA_DIR``."""
    path = tmp_path / "data"
    monkeypatch.setenv("TUNESMITH_DATA_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def gemma_hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in Gemma 3 270M imported once per session as a bf16 HF folder (read-only)."""
    from engine.gguf_import import builtin_base_model

    return builtin_base_model(tmp_path_factory.mktemp("models"))
