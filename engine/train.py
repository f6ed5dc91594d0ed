"""LoRA fine-tuning of a local causal LM on chat examples: the ``train_lora`` job.

Flow: pick device and precision (:mod:`engine.devices`) -> tokenizer, chat template and
special-token table (:mod:`engine.templates`, :mod:`engine.tokens`) -> encode rows with
assistant-only labels (:mod:`engine.encode`) -> base model + LoRA (:mod:`engine.train_model`)
-> our optimisation loop (:mod:`engine.train_loop`) -> ``output_dir/adapter``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.checkpoints import save_adapter
from engine.configs import to_dict
from engine.devices import DevicePlan, plan_device, set_cpu_threads
from engine.errors import Cancelled, OutOfMemory
from engine.progress import CancelToken, Progress, Reporter, ignore_progress
from engine.train_config import TrainConfig
from engine.train_memory import (MemoryEstimate, ModelShape, available_memory,
                                 estimate_training_memory, oom_advice)

__all__ = ["TrainConfig", "TrainResult", "train_lora"]
ADAPTER = "adapter"
# Warn when the estimate exceeds this share of the free memory.
_MEMORY_WARN_SHARE = 0.9


@dataclass(frozen=True)
class TrainResult:
    """What a finished training run produced.

    Attributes:
        adapter_dir: the PEFT adapter folder (with ``tunesmith_train.json``).
        steps_done, total_steps: optimizer steps.
        final_train_loss: token-weighted mean loss of the last step (nats/token).
        final_eval_loss: validation loss at the end, ``None`` without validation rows.
        tokens_trained: supervised (assistant) tokens over the whole run, resumes included.
        tokens_per_second: supervised tokens per second of step time in this session.
        template: the :class:`engine.templates.ChatTemplate` used (name + source).
        special: the :class:`engine.tokens.SpecialTokens` used.
        precision, device: what the run computed in, and where.
        history: ``(step, name, value)`` for loss, learning_rate, grad_norm, eval_loss.
        skipped_rows: ``(split, row_index, reason)`` of rows left out.
    """

    adapter_dir: Path
    steps_done: int
    total_steps: int
    final_train_loss: float | None
    final_eval_loss: float | None
    tokens_trained: int
    tokens_per_second: float
    template: Any
    special: Any
    precision: str
    device: str
    history: list[tuple[int, str, float]] = field(default_factory=list)
    skipped_rows: list[tuple[str, int, str]] = field(default_factory=list)


def train_lora(config: TrainConfig, model_dir: str | Path, train_rows: list[dict], val_rows: list[dict],
               output_dir: str | Path, *, resume: bool = False, allow_custom_code: bool = False,
               report: Reporter = ignore_progress, cancel: CancelToken | None = None) -> TrainResult:
    """Fine-tune a LoRA adapter on chat rows; loss only on assistant tokens.

    Args:
        config: training settings.
        model_dir: a local Hugging Face causal-LM folder.
        train_rows, val_rows: ``{"messages": [...]}`` dicts; the caller splits them.
        output_dir: run folder; gets ``adapter/`` and ``checkpoints/step-NNNN/``.
        resume: continue from the newest checkpoint in ``output_dir`` (fresh start if none).
        allow_custom_code: allow model folders that need their own Python code.
        report: receives ``train`` (per optimizer step), ``eval``, ``checkpoint`` and
            ``prepare`` progress events.
        cancel: polled between steps; pause blocks there.

    Returns:
        The :class:`TrainResult`.

    Raises:
        ConfigError: settings impossible here (device, precision, 4-bit off CUDA, resume mismatch).
        ModelLoadError: the model folder cannot be used.
        DataError: no row can be trained on.
        OutOfMemory: the device ran out of memory (message says what to lower).
        TrainingDiverged: non-finite loss or gradient norm.
        Cancelled: after saving ``output_dir/adapter`` and a resumable checkpoint.
    """
    from engine.templates import resolve_template
    from engine.tokens import prepare_tokenizer, special_tokens_for
    from engine.train_data import encode_splits
    from engine.train_model import attach_lora, check_model_dir, load_base_model, load_tokenizer

    model_dir, output_dir = Path(model_dir).resolve(), Path(output_dir)
    plan = plan_device(config.device, config.precision, load_in_4bit=config.load_in_4bit)
    if plan.device == "cpu":
        set_cpu_threads()
    check_model_dir(model_dir, allow_custom_code)
    report(Progress("prepare", message=f"training on {plan.device} in {plan.precision}: {plan.reason}"))
    tokenizer = load_tokenizer(model_dir, allow_custom_code)
    template = resolve_template(tokenizer, config.chat_template or None)
    prepare_tokenizer(tokenizer)
    special = special_tokens_for(model_dir, tokenizer, template)
    data = encode_splits(tokenizer, train_rows, val_rows, template, special,
                         max_length=config.max_length, truncation=config.truncation)
    _report_skipped(data.skipped, report)
    model = attach_lora(load_base_model(model_dir, plan, load_in_4bit=config.load_in_4bit,
                                        allow_custom_code=allow_custom_code), config)
    record = {"config": to_dict(config), "template": {"name": template.name, "source": template.source},
              "special_tokens": asdict(special), "base_model_dir": str(model_dir),
              "adapter_name": config.adapter_name, "precision": plan.precision, "device": plan.device}
    loop = _make_loop(config, plan, model, data, special.pad_id, output_dir, report, cancel)
    estimate = _memory_check(loop, report)
    if resume:
        loop.resume()
    _run_guarded(loop, estimate, record, report)
    adapter_dir = save_adapter(model, config.adapter_name, output_dir / ADAPTER,
                               {**record, **_outcome(loop, "completed")})
    report(Progress("checkpoint", loop.step, loop.total, message=f"saved adapter to {adapter_dir}"))
    return TrainResult(adapter_dir, loop.step, loop.total, loop.last_loss, loop.last_eval,
                       loop.tokens_trained, loop.tokens_per_second, template, special, plan.precision,
                       plan.device, list(loop.history), list(data.skipped))


def _make_loop(*args: Any) -> Any:
    from engine.train_loop import TrainingLoop

    return TrainingLoop(*args)


def _run_guarded(loop: Any, estimate: MemoryEstimate, record: dict[str, Any], report: Reporter) -> None:
    """Run the loop; on cancel save adapter + checkpoint; turn device OOM into OutOfMemory."""
    try:
        loop.run()
    except Cancelled:
        loop.save()
        save_adapter(loop.model, loop.config.adapter_name, loop.output_dir / ADAPTER,
                     {**record, **_outcome(loop, "cancelled")})
        report(Progress("checkpoint", loop.step, loop.total,
                        message=f"cancelled at step {loop.step}; adapter and checkpoint saved"))
        raise
    except (MemoryError, RuntimeError) as exc:
        if not _is_oom(exc):
            raise
        _release_cache(loop.plan)
        config = loop.config
        raise OutOfMemory(f"out of memory on {loop.plan.device} at step {loop.step + 1}. " + oom_advice(
            estimate, available_memory(loop.plan.device), batch_size=config.batch_size,
            max_length=config.max_length,
            gradient_accumulation_steps=config.gradient_accumulation_steps)) from exc


def _is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (``torch.OutOfMemoryError`` is a RuntimeError)."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or \
        "out of memory" in text or "can't allocate memory" in text


def _release_cache(plan: DevicePlan) -> None:
    import torch

    if plan.device == "cuda":
        torch.cuda.empty_cache()


def _memory_check(loop: Any, report: Reporter) -> MemoryEstimate:
    """Estimate the run's memory and warn (a ``prepare`` message) when it looks too big."""
    lengths = [len(e.input_ids) for e in loop.data.train]
    trained = sum(e.n_trained for e in loop.data.train) / max(1, sum(lengths))
    config = loop.config
    estimate = estimate_training_memory(
        ModelShape.from_model(loop.model), loop.plan, batch_size=config.batch_size,
        seq_len=max(lengths), trained_fraction=trained, load_in_4bit=config.load_in_4bit)
    free = available_memory(loop.plan.device)
    message = f"memory estimate {estimate.describe()}"
    if free is not None and estimate.total > _MEMORY_WARN_SHARE * free:
        message = "warning: this run may not fit in memory. " + oom_advice(
            estimate, free, batch_size=config.batch_size, max_length=config.max_length,
            gradient_accumulation_steps=config.gradient_accumulation_steps)
    report(Progress("prepare", message=message))
    return estimate


def _report_skipped(skipped: list[tuple[str, int, str]], report: Reporter) -> None:
    if not skipped:
        return
    split, index, reason = skipped[0]
    report(Progress("prepare", message=f"skipped {len(skipped)} row(s) that cannot be trained on; "
                                       f"first: {split} row {index + 1}: {reason}"))


def _outcome(loop: Any, status: str) -> dict[str, Any]:
    return {"status": status, "steps_done": loop.step, "total_steps": loop.total,
            "final_train_loss": loop.last_loss, "final_eval_loss": loop.last_eval,
            "tokens_trained": loop.tokens_trained}
