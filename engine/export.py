"""Export a Hugging Face folder to GGUF with llama.cpp's own converter and quantizer.

Steps: pre-checks (K10) -> ``convert_hf_to_gguf`` in a subprocess (cancellable; its log lines
become progress events) -> chat template and every end-of-generation id written into the
metadata (K3, K5) -> llama.cpp's quantizer for k-quants (K11, via llama-cpp-python, also in a
subprocess) -> read back and verify -> rename into place.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.errors import ExportError
from engine.export_tools import run_converter, run_quantizer
from engine.fileio import sha256_file
from engine.gguf_checks import (INTERMEDIATE, ExportPlan, QuantSpec, actual_fallbacks,
                                precheck, predict_fallbacks, quant_spec)
from engine.gguf_meta import (GgufSummary, missing_metadata, read_summary, rewrite_metadata,
                              wanted_metadata)
from engine.progress import CancelToken, Progress, Reporter, ignore_progress


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_gguf` wrote.

    Attributes:
        path: the GGUF file.
        quant: the export type (``q8_0``, ``q4_k_m``, ...).
        bytes: file size in bytes.
        sha256: hex SHA-256 of the file.
        seconds: wall time of the export.
        fallbacks: one line per tensor stored in another type than ``quant``'s main type
            because its row length does not fit the block size (K11).
        metadata: chat-format metadata read back from the file (template, EOS/EOT ids, ...).
    """

    path: Path
    quant: str
    bytes: int
    sha256: str
    seconds: float
    fallbacks: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def export_gguf(hf_dir: str | Path, out_path: str | Path, quant: str = "q8_0", *,
                chat_template: str | None = None, report: Reporter = ignore_progress,
                cancel: CancelToken | None = None) -> ExportResult:
    """Convert a plain Hugging Face checkpoint to a GGUF file llama.cpp can run.

    Args:
        hf_dir: a plain 16/32-bit model folder (e.g. a merged fine-tune).
        out_path: the ``.gguf`` file to write (replaced if it exists; written as a temporary
            file in the same folder and renamed when complete).
        quant: one of ``f16``, ``bf16``, ``q8_0``, ``q4_k_m``, ``q5_k_m``, ``q6_k``.
        chat_template: template to embed when the folder has none (or to override it).
        report: progress callback (stages ``check``, ``convert``, ``metadata``, ``quantize``,
            ``verify``).
        cancel: checked between converter log lines and between tensors.

    Returns:
        An :class:`ExportResult`.

    Raises:
        ConfigError: unknown ``quant``.
        ExportError: a pre-check failed, the converter or quantizer failed, or the written file
            lacks the chat template or an end-of-generation id; the message says what to do.
    """
    started = time.perf_counter()
    hf_dir, out_path = Path(hf_dir), Path(out_path)
    spec = quant_spec(quant)
    check = cancel.check if cancel else (lambda: None)
    plan = precheck(hf_dir, chat_template)
    predicted = predict_fallbacks(plan.headers, spec)
    report(Progress("check", 1, 1, message=f"{len(predicted)} tensor(s) cannot use "
                    f"{spec.main_type} and will fall back" if predicted else "pre-checks passed"))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=f".{out_path.name}.") as work:
        final, summary = _build(hf_dir, Path(work), spec, plan, report, check)
        _verify(summary, plan, out_path)
        os.replace(final, out_path)
    size = out_path.stat().st_size
    fallbacks = actual_fallbacks(summary.tensors, spec)
    seconds = time.perf_counter() - started
    report(Progress("verify", 1, 1, metrics={"bytes": float(size), "seconds": seconds},
                    message=f"Wrote {out_path.name}: {size / 2**20:.1f} MiB"))
    return ExportResult(out_path, quant, size, sha256_file(out_path), seconds, fallbacks,
                        summary.metadata)


def _build(hf_dir: Path, work: Path, spec: QuantSpec, plan: ExportPlan, report: Reporter,
           check: Callable[[], None]) -> tuple[Path, GgufSummary]:
    """Convert, fix metadata and quantize inside ``work``; return the final file and summary."""
    outtype = spec.outtype or INTERMEDIATE.get(plan.dtype, "f32")
    converted = work / f"converted-{outtype}.gguf"
    run_converter(hf_dir, converted, outtype, len(plan.headers), report, check)
    wanted = wanted_metadata(plan.chat_template, plan.special)
    fixed = work / "fixed.gguf"
    report(Progress("metadata", 0, None, message="Writing chat template and end-of-generation ids"))
    rewrite_metadata(converted, fixed, wanted, report, check)
    converted.unlink()
    if spec.ftype is None:
        return fixed, read_summary(fixed)
    quantized = work / f"{spec.name}.gguf"
    run_quantizer(fixed, quantized, spec.ftype, report, check)
    return quantized, read_summary(quantized)


def _verify(summary: GgufSummary, plan: ExportPlan, out_path: Path) -> None:
    missing = missing_metadata(summary, wanted_metadata(plan.chat_template, plan.special))
    if missing:
        raise ExportError(f"The GGUF for {out_path.name} lacks {', '.join(missing)} after "
                          "export, so chat apps could not find its format or where replies "
                          "end. This is a bug in the export; please report it.")
