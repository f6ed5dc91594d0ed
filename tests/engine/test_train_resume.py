"""CASES C19: a run killed (SIGKILL) after its 2nd checkpoint resumes to the same adapter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.checkpoints import latest_checkpoint
from engine.progress import Progress
from engine.train import train_lora
from tests.engine.train_helpers import ROWS, fast_config

# Dropout on, so restoring the RNG state matters; a non-default adapter name (C19).
SETTINGS = dict(max_steps=5, save_every=1, lora_dropout=0.1, adapter_name="coach",
                gradient_accumulation_steps=2, batch_size=1, lr_scheduler="cosine", warmup_steps=1)
CHILD = textwrap.dedent("""
    import sys, time
    from engine.train import train_lora
    from tests.engine.train_helpers import ROWS, fast_config

    def report(event):
        if event.stage == "checkpoint" and event.step == 2:
            print("CHECKPOINT 2", flush=True)
            time.sleep(600)  # wait here to be killed, like a crash right after a save

    train_lora(fast_config(**{settings!r}), sys.argv[1], ROWS, [], sys.argv[2], report=report)
""")


def _adapter_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def _run_child_until_second_checkpoint(model_dir: Path, out: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "TUNESMITH_CPU_THREADS": "1", "PYTHONPATH": str(root)}
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(settings=SETTINGS), str(model_dir), str(out)],
                             cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "CHECKPOINT 2", "child ended before its 2nd checkpoint"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_killed_run_resumes_to_the_same_adapter(tiny_model_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv("TUNESMITH_CPU_THREADS", "1")
    killed = tmp_path / "killed"
    _run_child_until_second_checkpoint(tiny_model_dir, killed)
    assert latest_checkpoint(killed).name == "step-0002"
    assert not (killed / "adapter").exists()

    events: list[Progress] = []
    resumed = train_lora(fast_config(**SETTINGS), tiny_model_dir, ROWS, [], killed, resume=True,
                         report=events.append)
    straight = train_lora(fast_config(**SETTINGS), tiny_model_dir, ROWS, [], tmp_path / "straight")

    assert [e.step for e in events if e.stage == "train" and e.metrics] == [3, 4, 5]
    assert resumed.steps_done == 5
    assert [s for s, n, _ in resumed.history if n == "loss"] == [1, 2, 3, 4, 5]
    loss = {s: v for s, n, v in straight.history if n == "loss"}
    assert all(v == pytest.approx(loss[s], rel=1e-5) for s, n, v in resumed.history if n == "loss")
    got, want = _adapter_weights(resumed.adapter_dir), _adapter_weights(straight.adapter_dir)
    assert got.keys() == want.keys() and any("lora_B" in k for k in got)
    for key in want:
        assert torch.allclose(got[key], want[key], atol=1e-6), key
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["step-0004", "step-0005"]


def test_resume_with_different_settings_is_refused(tiny_model_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.errors import ConfigError

    monkeypatch.setenv("TUNESMITH_CPU_THREADS", "1")
    train_lora(fast_config(max_steps=2, save_every=1), tiny_model_dir, ROWS, [], tmp_path)
    with pytest.raises(ConfigError, match="learning_rate"):
        train_lora(fast_config(max_steps=2, save_every=1, learning_rate=1e-3), tiny_model_dir, ROWS,
                   [], tmp_path, resume=True)
