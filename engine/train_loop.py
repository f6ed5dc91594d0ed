"""The LoRA optimisation loop: token-weighted loss, accumulation, eval, checkpoints, resume.

Our own loop rather than ``transformers.Trainer``: it computes logits only for trained
positions, groups batches by length, and exposes every step to progress/cancel (see
``bench/train_throughput.py`` for the speed comparison).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from engine.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from engine.configs import to_dict
from engine.devices import DevicePlan
from engine.encode import IGNORE_INDEX, collate
from engine.errors import ConfigError, TrainingDiverged
from engine.progress import CancelToken, Progress, Reporter
from engine.train_data import BatchOrder, EncodedSplits, eval_batches, total_steps
from engine.train_model import masked_loss_sum, supports_logits_mask

# Fields that may differ between a checkpoint and the resumed run (they do not change training).
_RESUMABLE_CHANGES = {"eval_every", "save_every"}


class TrainingLoop:
    """State of one training run between optimizer steps (everything a checkpoint holds)."""

    def __init__(self, config: Any, plan: DevicePlan, model: Any, data: EncodedSplits, pad_id: int,
                 output_dir: Path, report: Reporter, cancel: CancelToken | None) -> None:
        import torch
        from transformers import get_scheduler

        self.config, self.plan, self.model, self.data = config, plan, model, data
        self.pad_id, self.output_dir, self.report, self.cancel = pad_id, output_dir, report, cancel
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.order = BatchOrder([len(e.input_ids) for e in data.train], config.batch_size,
                                config.seed, config.group_by_length)
        self.total = total_steps(self.order.batches_per_epoch, config.gradient_accumulation_steps,
                                 config.num_epochs, config.max_steps)
        self.optimizer = torch.optim.AdamW(self.params, lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        warmup = config.warmup_steps or math.ceil(config.warmup_ratio * self.total)
        self.scheduler = get_scheduler(config.lr_scheduler, self.optimizer, num_warmup_steps=warmup,
                                       num_training_steps=self.total)
        self.scaler = torch.amp.GradScaler(plan.device) if plan.use_grad_scaler else None
        self.logits_mask = supports_logits_mask(model)
        self.step = self.position = self.tokens_trained = 0
        self.history: list[tuple[int, str, float]] = []
        self.last_loss: float | None = None
        self.last_eval: float | None = None
        self._session_tokens, self._session_steps, self._session_seconds = 0, 0, 0.0

    # -- public steps -------------------------------------------------------------------------

    def run(self) -> None:
        """Train until ``self.total`` steps, evaluating and checkpointing on schedule.

        Raises:
            Cancelled: from ``cancel.check()`` between steps (state is consistent then).
            TrainingDiverged: a non-finite loss or gradient norm.
        """
        self.model.train()
        while self.step < self.total:
            if self.cancel is not None:
                self.cancel.check()
            self.train_step()
            if self.config.eval_every and self.step % self.config.eval_every == 0 and self.step < self.total:
                self.evaluate()
            if self.config.save_every and self.step % self.config.save_every == 0:
                self.save()
        if self.data.val:
            self.evaluate()

    def train_step(self) -> None:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches."""
        start = time.perf_counter()
        accumulation = self.config.gradient_accumulation_steps
        batches = [self._micro_batch(self.position + k) for k in range(accumulation)]
        self.position += accumulation
        n_tokens = sum(_n_targets(b) for b in batches)
        if n_tokens == 0:  # cannot happen after encode's checks; never log such a step as loss 0
            self._skip_step("no trained token in this step's batches")
            return
        loss = self._accumulate(batches, n_tokens)
        grad_norm = self._clip_gradients()
        learning_rate = self.scheduler.get_last_lr()[0]
        self._optimizer_step()
        self._session_seconds += time.perf_counter() - start
        self._session_tokens += n_tokens
        self._session_steps += 1
        self.tokens_trained += n_tokens
        self.last_loss = loss
        self._log_step(loss, learning_rate, grad_norm)

    def evaluate(self) -> float:
        """Token-weighted mean validation loss (nats/token); logged as ``eval_loss``."""
        import torch

        self.model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for indices in eval_batches(self.data.val, self.config.batch_size):
                batch = self._to_device(collate([self.data.val[i] for i in indices], self.pad_id))
                if _n_targets(batch):
                    loss_sum, n = self._forward(batch)
                    total, count = total + float(loss_sum), count + n
        self.model.train()
        if count == 0:
            return float("nan")
        self.last_eval = total / count
        self._check_finite("validation loss", self.last_eval)
        self.history.append((self.step, "eval_loss", self.last_eval))
        self.report(Progress("eval", self.step, self.total, {"eval_loss": self.last_eval}))
        return self.last_eval

    def save(self) -> Path:
        """Write a resumable checkpoint for the current step and report it."""
        folder = save_checkpoint(self.output_dir, self.step, self.model, self.config.adapter_name,
                                 self._objects(), self._state())
        self.report(Progress("checkpoint", self.step, self.total,
                             message=f"saved checkpoint {folder.name} (step {self.step} of {self.total})"))
        return folder

    def resume(self) -> bool:
        """Restore the newest checkpoint in ``output_dir``; ``False`` when there is none.

        Raises:
            ConfigError: the checkpoint was written with different training settings.
        """
        folder = latest_checkpoint(self.output_dir)
        if folder is None:
            self.report(Progress("train", 0, self.total, message="no checkpoint to resume; starting at step 0"))
            return False
        state = load_checkpoint(folder, self.model, self.config.adapter_name, self._objects())
        _check_same_config(state["config"], to_dict(self.config), folder)
        self.step, self.position = state["step"], state["position"]
        self.tokens_trained, self.last_loss = state["tokens_trained"], state["last_loss"]
        self.last_eval = state.get("last_eval")
        self.history = [tuple(entry) for entry in state["history"]]
        self.report(Progress("train", self.step, self.total,
                             message=f"resumed from {folder.name} at step {self.step} of {self.total}"))
        return True

    # -- pieces -------------------------------------------------------------------------------

    def _micro_batch(self, position: int) -> dict[str, Any]:
        indices = self.order.batch(position)
        return self._to_device(collate([self.data.train[i] for i in indices], self.pad_id))

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.plan.device, non_blocking=True) for k, v in batch.items()}

    def _forward(self, batch: dict[str, Any]) -> tuple[Any, int]:
        import torch

        with torch.autocast(self.plan.device, dtype=self.plan.torch_dtype(), enabled=self.plan.autocast):
            return masked_loss_sum(self.model, batch, logits_mask=self.logits_mask)

    def _accumulate(self, batches: list[dict[str, Any]], n_tokens: int) -> float:
        """Backward each micro-batch's share of the step's token-weighted mean; return the mean."""
        total = 0.0
        for batch in batches:
            if not _n_targets(batch):
                continue
            loss_sum, _ = self._forward(batch)
            scaled = loss_sum / n_tokens
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total += float(loss_sum.detach())
        loss = total / n_tokens
        self._check_finite("loss", loss)
        return loss

    def _clip_gradients(self) -> float:
        import torch

        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        limit = self.config.max_grad_norm or float("inf")
        norm = float(torch.nn.utils.clip_grad_norm_(self.params, limit))
        if self.scaler is None:  # with loss scaling an inf norm only makes the scaler skip the step
            self._check_finite("gradient norm", norm)
        return norm

    def _optimizer_step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1

    def _skip_step(self, why: str) -> None:
        self.scheduler.step()
        self.step += 1
        self.report(Progress("train", self.step, self.total, message=f"step {self.step} skipped: {why}"))

    @property
    def tokens_per_second(self) -> float:
        """Supervised tokens per second of step time in this session (0 before the first step)."""
        return self._session_tokens / self._session_seconds if self._session_seconds else 0.0

    def _log_step(self, loss: float, learning_rate: float, grad_norm: float) -> None:
        rate = self.tokens_per_second
        eta = self._session_seconds / self._session_steps * (self.total - self.step)
        metrics = {"loss": loss, "learning_rate": learning_rate, "grad_norm": grad_norm,
                   "tokens_per_second": rate, "eta_seconds": eta,
                   "epoch": self.position / self.order.batches_per_epoch}
        for name in ("loss", "learning_rate", "grad_norm"):
            self.history.append((self.step, name, metrics[name]))
        self.report(Progress("train", self.step, self.total, metrics))

    def _check_finite(self, what: str, value: float) -> None:
        if math.isfinite(value):
            return
        lr = self.config.learning_rate
        fp16 = " use precision 'bf16' or 'fp32' instead of fp16;" if self.plan.precision == "fp16" else ""
        raise TrainingDiverged(
            f"training diverged at step {self.step + 1}: the {what} became {value} "
            f"(precision {self.plan.precision}). Lower learning_rate (now {lr:g}, try {lr / 10:g});"
            f"{fp16} keep max_grad_norm at 1.0 or lower; check the data for extremely long rows.")

    def _objects(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler}

    def _state(self) -> dict[str, Any]:
        return {"step": self.step, "position": self.position, "total_steps": self.total,
                "tokens_trained": self.tokens_trained, "last_loss": self.last_loss,
                "last_eval": self.last_eval, "history": [list(h) for h in self.history],
                "adapter_name": self.config.adapter_name, "config": to_dict(self.config)}


def _n_targets(batch: dict[str, Any]) -> int:
    """Trained next-token targets in a collated batch (labels shifted by one)."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def _check_same_config(saved: dict[str, Any], current: dict[str, Any], folder: Path) -> None:
    """Raise :class:`ConfigError` naming the first training setting that differs."""
    for name, value in saved.items():
        now = current.get(name)
        if name in _RESUMABLE_CHANGES or _jsonish(value) == _jsonish(now):
            continue
        raise ConfigError(f"resume: {name} is {now!r} but checkpoint {folder.name} was trained with "
                          f"{value!r}; use the same settings or start a new run")


def _jsonish(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
