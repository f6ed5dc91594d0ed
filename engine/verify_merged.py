"""Verify a merged Hugging Face folder against the adapter-on-base model, and store reports.

After a merge, the merged folder must behave like the base model with the LoRA adapter applied
(CASES K9): :mod:`engine.merge_check` compares raw logits on fixed probe texts; this module
scores the run's own validation rows the way :mod:`engine.verify` scores a GGUF (top-1
next-token agreement, mean KL, perplexity), so merges and exports get the same kind of
pass/warn/fail report.

Reports are stored beside the file they describe as ``<file>.verify.json`` (strict JSON, written
atomically), and read back as plain dicts (:meth:`VerificationReport.to_dict` shape).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from engine.fileio import atomic_write
from engine.progress import CancelToken, Reporter, ignore_progress
from engine.verify import ReferenceRun, VerificationReport, compare_logprobs, reference_run
from engine.verify_checks import (DTYPE_QUANT, Check, VerifyThresholds, check_kl,
                                  check_perplexity, check_top1)

REPORT_SUFFIX = ".verify.json"


def verify_merged(merged_dir: str | os.PathLike[str], reference: ReferenceRun, rows: list[dict],
                  *, dtype: str = "bfloat16", max_length: int = 1024,
                  thresholds: VerifyThresholds = VerifyThresholds(),
                  report: Reporter = ignore_progress,
                  cancel: CancelToken | None = None) -> VerificationReport:
    """Score the merged folder on the rows the adapter-on-base ``reference`` was run on.

    Args:
        merged_dir: the merged Hugging Face folder.
        reference: :func:`engine.verify.reference_run` of the base model with the adapter.
        rows: the same validation rows as ``reference``.
        dtype: the merged folder's storage dtype (``bfloat16``, ``float16``, ``float32``); picks
            the threshold row (rounding a merge to bf16 is expected noise).
        max_length: the same ``max_length`` the reference's perplexity used.

    Returns:
        A :class:`VerificationReport` with ``top1_agreement``, ``mean_kl`` and ``perplexity``
        checks; ``quant`` is the dtype's short name (``bf16``).

    Raises:
        ModelLoadError: the merged folder cannot be loaded.
        Cancelled: ``cancel`` was triggered.
    """
    merged = reference_run(merged_dir, rows, template=reference.template, max_length=max_length,
                           report=report, cancel=cancel)
    top1, kl = compare_logprobs(reference.logprobs, merged.logprobs)
    quant = DTYPE_QUANT.get(dtype, dtype)
    ref_ppl, ppl = reference.perplexity.perplexity, merged.perplexity.perplexity
    checks = [_merged_words(c) for c in (check_top1(top1, quant, thresholds),
                                         check_kl(kl, quant, thresholds),
                                         check_perplexity(ref_ppl, ppl, False, thresholds))]
    metrics = {"top1_agreement": top1, "mean_kl": kl, "perplexity_reference": ref_ppl,
               "perplexity_merged": ppl, "rows": len(rows)}
    return VerificationReport(str(merged_dir), quant, folder_bytes(merged_dir), checks, metrics)


def _merged_words(check: Check) -> Check:
    """The GGUF checks' explanations, reworded for a merged folder."""
    text = check.explanation.replace("the GGUF", "the merged model").replace("(GGUF)", "(merged)")
    text = text.replace("re-export (q8_0 or f16)", "merge again").replace("; re-export", "; merge again")
    return dataclasses.replace(check, explanation=text)


def folder_bytes(path: str | os.PathLike[str]) -> int:
    """Total size in bytes of the files under ``path`` (or of ``path`` itself if a file)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def report_path(target: str | os.PathLike[str]) -> Path:
    """Where the report of ``target`` lives: ``<target>.verify.json`` beside it."""
    return Path(f"{os.fspath(target)}{REPORT_SUFFIX}")


def save_report(report: VerificationReport | dict[str, Any],
                target: str | os.PathLike[str]) -> Path:
    """Write a report as strict JSON beside ``target`` (atomically); returns the file written."""
    data = report.to_dict() if isinstance(report, VerificationReport) else report
    path = report_path(target)
    with atomic_write(path) as handle:
        json.dump(data, handle, indent=2, allow_nan=False)
        handle.write("\n")
    return path


def load_report(target: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The stored report of ``target`` as a dict, or ``None`` when there is none."""
    path = report_path(target)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def report_from_dict(data: dict[str, Any]) -> VerificationReport:
    """A :class:`VerificationReport` back from its :meth:`~VerificationReport.to_dict` form."""
    checks = [Check(c["name"], c["status"], c.get("value"), c.get("threshold", ""),
                    c.get("explanation", "")) for c in data.get("checks", [])]
    return VerificationReport(data["path"], data.get("quant", "unknown"), data.get("bytes") or 0,
                              checks, dict(data.get("metrics") or {}))
