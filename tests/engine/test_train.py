"""train_lora on the tiny model: learning, assistant-only loss, cancel, divergence, OOM, refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import engine.train_loop as train_loop
from engine.errors import Cancelled, ConfigError, OutOfMemory, TrainingDiverged
from engine.progress import CancelToken, Progress
from engine.train import train_lora
from tests.engine.train_helpers import ROWS, fast_config


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test machine is shared; one OpenMP thread avoids spin-wait slowdowns (see devices).
    monkeypatch.setenv("TUNESMITH_CPU_THREADS", "1")


def test_loss_decreases_and_events_are_complete(tiny_model_dir: Path, tmp_path: Path) -> None:
    events: list[Progress] = []
    result = train_lora(fast_config(max_steps=30, learning_rate=5e-3, eval_every=10, lora_rank=16,
                                    lora_alpha=32.0, lr_scheduler="constant"),
                        tiny_model_dir, ROWS, ROWS[:2], tmp_path, report=events.append)
    losses = [v for _, name, v in result.history if name == "loss"]
    assert len(losses) == 30 and result.steps_done == result.total_steps == 30
    # A random 2-layer model learns slowly: ~0.9 nats in 30 steps (measured); 0.5 is safely above noise.
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5
    evals = [v for _, name, v in result.history if name == "eval_loss"]
    assert evals[-1] < evals[0]
    train = [e for e in events if e.stage == "train" and e.metrics]
    assert [e.step for e in train] == list(range(1, 31))
    assert set(train[0].metrics) == {"loss", "learning_rate", "grad_norm", "tokens_per_second",
                                     "eta_seconds", "epoch"}
    assert train[-1].metrics["epoch"] == pytest.approx(15.0)  # 30 steps x 1 batch of 2 / 4 rows
    assert [e.step for e in events if e.stage == "eval"] == [10, 20, 30]
    assert result.final_eval_loss == pytest.approx([v for s, n, v in result.history if n == "eval_loss"][-1])
    record = json.loads((result.adapter_dir / "tunesmith_train.json").read_text(encoding="utf-8"))
    assert record["template"]["name"] == result.template.name and record["status"] == "completed"
    assert record["special_tokens"]["pad_id"] == result.special.pad_id
    assert (result.device, result.precision) == ("cpu", "fp32")


def test_first_loss_equals_masked_cross_entropy_over_hand_made_labels(tiny_model_dir: Path,
                                                                     tmp_path: Path) -> None:
    """LoRA B starts at zero, so step 1's loss is the base model's loss on the answer tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    row = {"messages": [{"role": "user", "content": "What is your name?"},
                        {"role": "assistant", "content": "My name is Tunesmith."}]}
    prompt = tokenizer("<|im_start|>user\nWhat is your name?<|im_end|>\n<|im_start|>assistant\n",
                       add_special_tokens=False)["input_ids"]
    answer = tokenizer("My name is Tunesmith.<|im_end|>", add_special_tokens=False)["input_ids"]
    tail = tokenizer("\n", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + answer + tail])
    labels = torch.tensor([[-100] * len(prompt) + answer + [-100] * len(tail)])
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    with torch.no_grad():
        expected = float(base(input_ids=ids, labels=labels).loss)  # HF's own shifted mean CE

    result = train_lora(fast_config(max_steps=1, batch_size=1), tiny_model_dir, [row], [], tmp_path)
    assert result.history[0][1] == "loss"
    assert result.history[0][2] == pytest.approx(expected, rel=1e-5)
    assert result.tokens_trained == len(answer)


def test_cancel_leaves_loadable_adapter_and_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    token = CancelToken()

    def report(event: Progress) -> None:
        if event.stage == "train" and event.step == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        train_lora(fast_config(max_steps=10, adapter_name="coach"), tiny_model_dir, ROWS, [],
                   tmp_path, report=report, cancel=token)
    assert (tmp_path / "checkpoints" / "step-0002" / "state.json").is_file()
    record = json.loads((tmp_path / "adapter" / "tunesmith_train.json").read_text(encoding="utf-8"))
    assert (record["status"], record["steps_done"], record["adapter_name"]) == ("cancelled", 2, "coach")
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    model = PeftModel.from_pretrained(base, str(tmp_path / "adapter"), adapter_name="coach")
    assert model.active_adapter == "coach"
    assert any(float(p.abs().sum()) > 0 for n, p in model.named_parameters() if "lora_B" in n)
    logits = model(input_ids=torch.tensor([[1, 5, 9]])).logits
    assert logits.shape[:2] == (1, 3) and bool(torch.isfinite(logits).all())


def test_non_finite_loss_stops_with_advice(tiny_model_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """CASES C16: the first non-finite loss stops the run with advice; no NaN is logged."""
    calls = {"n": 0}
    real = train_loop.masked_loss_sum

    def poisoned(*args, **kwargs):
        loss, n = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 else loss), n

    monkeypatch.setattr(train_loop, "masked_loss_sum", poisoned)
    events: list[Progress] = []
    with pytest.raises(TrainingDiverged, match="step 3.*learning_rate"):
        train_lora(fast_config(max_steps=6), tiny_model_dir, ROWS, [], tmp_path, report=events.append)
    logged = [e.metrics["loss"] for e in events if e.stage == "train" and e.metrics]
    assert len(logged) == 2 and all(math.isfinite(x) for x in logged)


def test_device_out_of_memory_becomes_advice(tiny_model_dir: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_loop, "masked_loss_sum", no_memory)
    with pytest.raises(OutOfMemory, match="batch_size.*gradient_accumulation_steps.*max_length"):
        train_lora(fast_config(), tiny_model_dir, ROWS, [], tmp_path)


def test_4bit_on_cpu_is_refused_before_loading(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="load_in_4bit"):
        train_lora(fast_config(load_in_4bit=True), tiny_model_dir, ROWS, [], tmp_path)
    assert not (tmp_path / "adapter").exists()


def test_non_finite_gradient_norm_stops_with_advice(tiny_model_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """CASES C16: an infinite gradient norm (finite loss) stops the run at that step."""
    import torch

    calls = {"n": 0}
    real = torch.nn.utils.clip_grad_norm_

    def exploding(*args, **kwargs):
        norm = real(*args, **kwargs)
        calls["n"] += 1
        return norm * float("inf") if calls["n"] == 2 else norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", exploding)
    events: list[Progress] = []
    with pytest.raises(TrainingDiverged, match="step 2: the gradient norm became inf.*learning_rate"):
        train_lora(fast_config(max_steps=4), tiny_model_dir, ROWS, [], tmp_path, report=events.append)
    assert [e.step for e in events if e.stage == "train" and e.metrics] == [1]
