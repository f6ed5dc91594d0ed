"""Scoring a model for the Evaluate tab (no Qt): perplexity, BLEU and ROUGE-L.

Uses the engine's :func:`engine.replies.evaluate_hf`, like ``main.py eval``: perplexity over
every validation row, and BLEU/ROUGE-L of greedy replies to the first ``generate`` rows against
their last assistant turn. The same job body scores the base model and the fine-tuned one, so both see the same
rows, template and length limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

# The before/after table's rows: (result key, label, higher is better).
METRICS = (("perplexity", "Perplexity", False), ("bleu", "BLEU (0-100)", True),
           ("rouge_l", "ROUGE-L F1 (0-1)", True))


def score_model(model_dir: Path, adapter_dir: Path | None, rows: list[dict[str, Any]], *,
                template: str | None, max_length: int, generate: int, max_new_tokens: int,
                report: Any, cancel: Any) -> dict[str, Any]:
    """Perplexity on ``rows``; BLEU and ROUGE-L of greedy replies to the first ``generate``
    (:func:`engine.replies.evaluate_hf`, the same scoring as ``main.py eval``)."""
    from engine.replies import evaluate_hf

    return evaluate_hf(model_dir, rows, adapter_dir=adapter_dir, template=template,
                       max_length=max_length, generate=generate, max_new_tokens=max_new_tokens,
                       report=report, cancel=cancel)


def score_before_after(score: Callable[..., dict[str, Any]], model_dir: Path, adapter_dir: Path,
                       rows: list[dict[str, Any]], report: Any, cancel: Any,
                       **options: Any) -> dict[str, dict[str, Any]]:
    """Job body: ``{"before": score(base), "after": score(base + adapter)}``.

    ``options`` are :func:`score_model`'s keyword arguments (template, max_length, ...).
    """
    before = score(model_dir, None, rows, report=report, cancel=cancel, **options)
    after = score(model_dir, adapter_dir, rows, report=report, cancel=cancel, **options)
    return {"before": before, "after": after}


def run_settings(run: dict[str, Any]) -> dict[str, Any]:
    """Validation share, seed and max length of a train run, as recorded by the GUI or the CLI.

    The GUI stores the flat ``TrainConfig`` plus ``validation_fraction``; the CLI nests the
    training settings under ``"train"``.
    """
    config = run.get("config") or {}
    train = config.get("train", config)
    return {"validation_fraction": float(config.get("validation_fraction",
                                                    train.get("validation_fraction", 0.1))),
            "seed": int(train.get("seed", 42)), "max_length": int(train.get("max_length", 1024))}
