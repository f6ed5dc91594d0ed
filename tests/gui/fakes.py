"""Fake engine functions for GUI tests: same signatures and events as the real ones, no torch."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import Cancelled
from engine.progress import CancelToken, Progress, ignore_progress
from gui.services import Engine, real_engine


@dataclass(frozen=True)
class FakeTrainResult:
    adapter_dir: Path
    steps_done: int


def fake_train_lora(config: Any, model_dir: Path, train_rows: list, val_rows: list,
                    output_dir: Path, *, resume: bool = False, report=ignore_progress,
                    cancel: CancelToken | None = None, step_seconds: float = 0.01) -> FakeTrainResult:
    """Emits the real event shapes: ``train`` with loss/lr/tokens_per_second/eta, ``eval``."""
    total = config.max_steps or 10
    report(Progress("prepare", message=f"fake training on {len(train_rows)} rows"))
    for step in range(1, total + 1):
        time.sleep(step_seconds)
        if cancel is not None:
            try:
                cancel.check()
            except Cancelled:
                (Path(output_dir) / "checkpoints").mkdir(parents=True, exist_ok=True)
                raise
        report(Progress("train", step, total, {"loss": 3.0 / step, "learning_rate": 2e-4,
                                                "tokens_per_second": 1234.0,
                                                "eta_seconds": (total - step) * step_seconds}))
        if step % 5 == 0:
            report(Progress("eval", step, total, {"eval_loss": 3.2 / step}))
    adapter = Path(output_dir) / "adapter"
    adapter.mkdir(parents=True, exist_ok=True)
    (adapter / "adapter_config.json").write_text("{}")
    return FakeTrainResult(adapter, total)


class FakeChatModel:
    """Streams the reply word by word; records the messages it was asked with."""

    instances: list["FakeChatModel"] = []

    def __init__(self, path: str, reply: str = "Hello there, I am a fake model.", *,
                 chat_template: str | None = None) -> None:
        self.path, self.reply, self.asked, self.closed = path, reply, [], False
        FakeChatModel.instances.append(self)

    def stream(self, messages, sampling=None, *, cancel=None):
        self.asked.append(messages)
        for word in self.reply.split(" "):
            if cancel is not None and cancel.cancelled:
                return
            time.sleep(0.002)
            yield word + " "

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True)
class FakeExportResult:
    path: Path


def fake_merge_adapter(model_dir: Path, adapter_dir: Path, out_dir: Path, *,
                       report=ignore_progress, cancel: CancelToken | None = None) -> Path:
    """Writes a stand-in merged folder, reporting three ``merge`` steps."""
    out_dir = Path(out_dir)
    for step in range(1, 4):
        if cancel is not None:
            cancel.check()
        report(Progress("merge", step, 3, message=f"merging layer group {step}"))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text("{}")
    return out_dir


def fake_export_gguf(merged_dir: Path, gguf_path: Path, quant: str, *, report=ignore_progress,
                     cancel: CancelToken | None = None) -> FakeExportResult:
    """Writes a small file (b"GGUF" + the quant name, repeated) in two ``export`` steps."""
    gguf_path = Path(gguf_path)
    report(Progress("export", 1, 2, message=f"converting to {quant}"))
    gguf_path.parent.mkdir(parents=True, exist_ok=True)
    gguf_path.write_bytes(b"GGUF" + quant.encode() * 1000)
    report(Progress("export", 2, 2, message="written"))
    return FakeExportResult(gguf_path)


@dataclass(frozen=True)
class FakeAdapterResult:
    """Like ``engine.adapter_gguf.AdapterExportResult`` without the checksum (the page measures)."""

    path: Path
    architecture: str
    rank: int
    alpha: float


def fake_export_adapter_gguf(adapter_dir: Path, out_path: Path, *, base_dir: Path | None = None,
                             outtype: str = "f32", report=ignore_progress,
                             cancel: CancelToken | None = None) -> FakeAdapterResult:
    """Writes b"GGUF" + ``lora-<outtype>`` repeated, in a ``convert`` and a ``write`` step."""
    out_path = Path(out_path)
    report(Progress("convert", 1, 2, message="model.layers.0.self_attn.q_proj.weight"))
    if cancel is not None:
        cancel.check()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(b"GGUF" + f"lora-{outtype}".encode() * 100)
    report(Progress("write", 2, 2, message=f"Wrote {out_path.name}"))
    return FakeAdapterResult(out_path, "llama", 4, 8.0)


def fake_report(path, quant: str, overall: str, *, top1: float = 1.0, kl: float = 0.002,
                speed: float = 41.5) -> dict:
    """A stored report in VerificationReport.to_dict() shape, checks chosen to give ``overall``."""
    checks = [{"name": "top1_agreement", "status": "pass" if top1 >= 0.9 else "fail",
               "value": top1, "threshold": ">= 0.9 passes for q8_0, < 0.5 fails",
               "explanation": "the GGUF picks the same next token as the trained model"},
              {"name": "stops", "status": "warn" if overall == "warn" else "pass", "value": 0.25,
               "threshold": ">= 0.75 passes, < 0.25 fails",
               "explanation": "the model never learned to end its turn"},
              {"name": "mean_kl", "status": "pass", "value": kl, "threshold": "<= 0.03 nats",
               "explanation": "next-token probabilities match"}]
    return {"path": str(path), "quant": quant, "bytes": 300 * 2**20, "overall": overall,
            "checks": checks, "metrics": {"top1_agreement": top1, "mean_kl": kl,
                                          "perplexity_gguf": 10.5, "perplexity_reference": 10.4,
                                          "tokens_per_second": speed}}


class FakeVerifier:
    """Stands in for ``verify_gguf`` / ``verify_merged`` / ``verify_adapter``
    (``(path, quant | dtype | base_gguf, *, inputs, report, cancel, ...)``): records each call,
    returns a report with ``overall`` (``quant`` names its type, default the second argument)."""

    def __init__(self, overall: str = "pass", quant: str | None = None) -> None:
        self.overall, self.quant, self.calls = overall, quant, []

    def __call__(self, path, what, *, report=ignore_progress, cancel=None, **kwargs) -> dict:
        self.calls.append({"path": path, "what": what, **kwargs})
        report(Progress("verify", 1, 1, message=f"fake verification of {Path(path).name}"))
        return fake_report(path, self.quant or str(what), self.overall)


class FakeScorer:
    """Stands in for ``gui.scoring.score_model``: records each call, returns fixed scores."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, model_dir, adapter_dir, rows, *, report=ignore_progress, cancel=None,
                 **options) -> dict[str, Any]:
        self.calls.append({"model_dir": model_dir, "adapter_dir": adapter_dir, "rows": rows,
                           **options})
        report(Progress("perplexity", 1, 1))
        tuned = adapter_dir is not None
        return {"perplexity": 8.0 if tuned else 20.0, "perplexity_flagged": False,
                "bleu": 30.0 if tuned else 10.0, "bleu_tokenize": "13a",
                "rouge_l": 0.5 if tuned else 0.25, "replies": ["x"] * options.get("generate", 0)}


def fake_model_dir(root: Path) -> Path:
    """A folder that looks like a small HF model to the estimate (config.json only)."""
    folder = root / "fake-model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 400}))
    return folder


def fake_engine(model_root: Path) -> Engine:
    """The real adapter with every slow or heavy function replaced."""
    folder = fake_model_dir(model_root)
    return dataclasses.replace(
        real_engine(),
        train_lora=fake_train_lora,
        estimate_training=lambda *a, **k: "cpu · fp32 · 10 steps · memory ≈ 0.01 GiB",
        device_summary=lambda: "CPU · 2 threads",
        builtin_base_model=lambda _models_dir, **kw: folder,
        import_gguf_model=lambda src, out, **kw: folder,
        inspect_model=lambda path, **kw: {"name": Path(path).name, "path": Path(path),
                                          "architecture": "LlamaForCausalLM",
                                          "parameter_count": 123_456, "context_length": 256,
                                          "chat_template": "{{ messages }}",
                                          "special": {"eos": 2}, "dtype": "float32"},
        open_chat=FakeChatModel,
        sampling_config=lambda **kw: dict(kw),
        merge_adapter=fake_merge_adapter,
        export_gguf=fake_export_gguf,
        export_adapter_gguf=fake_export_adapter_gguf,
        verify_merged=FakeVerifier(quant="bf16"),
        verify_gguf=FakeVerifier(),
        verify_adapter=FakeVerifier(quant="q4_k_m+lora"),
        find_base_gguf=lambda model_dir: None,
        score_model=FakeScorer(),
    )
