"""Adapter folders and resumable training checkpoints, written atomically.

Layout under a run's output folder::

    adapter/                      final (or cancelled) adapter, PEFT format + tunesmith_train.json
    checkpoints/step-0002/        adapter/, optimizer.pt, scheduler.pt, rng.pt, state.json

A checkpoint folder is written under a temporary name and renamed when complete
(:func:`engine.fileio.atomic_path`), so a process killed mid-save leaves the previous checkpoint
intact. Only the newest :data:`KEEP_CHECKPOINTS` are kept.

PEFT's ``save_pretrained`` puts a non-"default" adapter into a sub-folder named after it; here
the adapter files always sit at the top of ``adapter/`` so ``PeftModel.from_pretrained(base,
folder, adapter_name=...)`` loads any name (CASES C19).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.fileio import atomic_path

KEEP_CHECKPOINTS = 2
CHECKPOINTS = "checkpoints"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
TRAIN_RECORD = "tunesmith_train.json"
STATE = "state.json"


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    """The folder of the checkpoint after ``step`` optimizer steps (``step-0007``)."""
    return Path(output_dir) / CHECKPOINTS / f"step-{step:04d}"


def write_adapter_files(model: Any, adapter_name: str, folder: Path) -> None:
    """Write one adapter's weights (safetensors) and ``adapter_config.json`` into ``folder``."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(model, adapter_name=adapter_name)
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(folder / ADAPTER_WEIGHTS),
              metadata={"format": "pt"})
    model.peft_config[adapter_name].save_pretrained(str(folder))


def save_adapter(model: Any, adapter_name: str, target: str | Path, record: dict[str, Any]) -> Path:
    """Atomically write an adapter folder plus its ``tunesmith_train.json`` record.

    Args:
        model: the PEFT model.
        adapter_name: which adapter to save.
        target: the adapter folder to (re)place.
        record: JSON-ready facts the merge step needs (config, template, special tokens, base).

    Returns:
        ``target`` as a path.
    """
    target = Path(target)
    with atomic_path(target) as tmp:
        write_adapter_files(model, adapter_name, tmp)
        (tmp / TRAIN_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return target


def save_checkpoint(output_dir: str | Path, step: int, model: Any, adapter_name: str,
                    trainer_objects: dict[str, Any], state: dict[str, Any]) -> Path:
    """Atomically write a resumable checkpoint and prune older ones.

    Args:
        output_dir: the run's output folder.
        step: optimizer steps done.
        model: the PEFT model.
        adapter_name: the adapter being trained.
        trainer_objects: ``{"optimizer": ..., "scheduler": ..., "scaler": ... or None}``; each
            is saved with ``state_dict()``.
        state: JSON-ready loop state (step, data position, history, config, ...).

    Returns:
        The checkpoint folder.
    """
    import torch

    target = checkpoint_dir(output_dir, step)
    with atomic_path(target) as tmp:
        write_adapter_files(model, adapter_name, tmp / "adapter")
        for name, obj in trainer_objects.items():
            if obj is not None:
                torch.save(obj.state_dict(), tmp / f"{name}.pt")
        torch.save(capture_rng(), tmp / "rng.pt")
        (tmp / STATE).write_text(json.dumps(state, indent=2), encoding="utf-8")
    prune_checkpoints(output_dir)
    return target


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step, or ``None``."""
    root = Path(output_dir) / CHECKPOINTS
    found = [p for p in root.glob("step-*") if p.is_dir() and (p / STATE).is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def prune_checkpoints(output_dir: str | Path, keep: int = KEEP_CHECKPOINTS) -> None:
    """Delete all but the newest ``keep`` checkpoints (and leftovers of interrupted saves)."""
    root = Path(output_dir) / CHECKPOINTS
    found = sorted((p for p in root.glob("step-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))
    for old in found[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, model: Any, adapter_name: str,
                    trainer_objects: dict[str, Any]) -> dict[str, Any]:
    """Restore adapter weights, optimizer/scheduler/scaler and RNG states; return the loop state.

    Raises:
        ConfigError: the checkpoint's adapter does not fit this model (different LoRA settings).
    """
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(folder / "adapter" / ADAPTER_WEIGHTS))
    result = set_peft_model_state_dict(model, weights, adapter_name=adapter_name)
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if missing:
        raise ConfigError(f"resume: checkpoint {folder} does not match this LoRA setup "
                          f"(unexpected weights such as {missing[0]}); start a new run instead")
    for name, obj in trainer_objects.items():
        path = folder / f"{name}.pt"
        if obj is not None and path.is_file():
            obj.load_state_dict(torch.load(path, weights_only=True))
    restore_rng(torch.load(folder / "rng.pt", weights_only=True))
    return json.loads((folder / STATE).read_text(encoding="utf-8"))


def capture_rng() -> dict[str, Any]:
    """The random states that affect training (dropout masks): Python, torch CPU and CUDA."""
    import torch

    states: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` returned."""
    import torch

    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])

