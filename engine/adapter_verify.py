"""Verify a LoRA adapter GGUF applied on its base GGUF against the trained model (issue 5).

The reference is the same as for a merged export (:func:`engine.verify.reference_run`: the
base Hugging Face folder with the PEFT adapter, transformers, fp32). llama.cpp loads the base
GGUF once and scores the validation rows twice: with the adapter (top-1 next-token agreement,
mean KL, perplexity, each a pass/warn/fail check with the base file's export-type limits) and
without it, so the report also shows that the adapter changes the model at all.
"""

from __future__ import annotations

import math
import os
from typing import Any

from engine.evaluate import ABSURD_PERPLEXITY
from engine.progress import CancelToken, Progress, Reporter, ignore_progress
from engine.templates import ChatTemplate
from engine.verify import ReferenceRun, VerificationReport, file_quant, reference_run
from engine.verify_checks import (Check, VerifyThresholds, check_kl, check_perplexity,
                                  check_top1)


def verify_adapter_gguf(base_gguf: str | os.PathLike[str], adapter_gguf: str | os.PathLike[str],
                        *, base_dir: str | os.PathLike[str], adapter_dir: str | os.PathLike[str],
                        rows: list[dict], template: ChatTemplate | str | None = None,
                        thresholds: VerifyThresholds = VerifyThresholds(),
                        reference: ReferenceRun | None = None, report: Reporter = ignore_progress,
                        cancel: CancelToken | None = None) -> VerificationReport:
    """Score base GGUF + adapter GGUF (llama.cpp) against base + PEFT adapter (transformers).

    Args:
        base_gguf: the base model's GGUF (f16 keeps the comparison tight).
        adapter_gguf: the adapter from :func:`engine.adapter_gguf.export_adapter_gguf`.
        base_dir: the base Hugging Face folder the adapter was trained on.
        adapter_dir: the PEFT adapter folder.
        rows: validation conversations, each ending with an assistant turn.
        template: the run's chat template; ``None`` = the tokenizer's own.
        thresholds: limits for pass/warn/fail (the base file's export type picks the row).
        reference: precomputed :func:`engine.verify.reference_run` of base + adapter.
        report: progress (stages ``reference``, ``agreement``, ``perplexity``).
        cancel: checked between rows.

    Returns:
        A :class:`VerificationReport` for the adapter file: checks ``top1_agreement``,
        ``mean_kl``, ``perplexity``, ``adapter_effect`` (information); metrics add
        ``base_gguf``, ``top1_agreement_without_adapter`` and ``mean_kl_without_adapter``.

    Raises:
        DataError: malformed rows.
        ModelLoadError: a model, or the adapter on this base, cannot be loaded.
        Cancelled: ``cancel`` was triggered.
    """
    from engine.llama_lora import set_lora
    from engine.llama_runtime import load_llama

    ref = reference or reference_run(base_dir, rows, adapter_dir=adapter_dir, template=template,
                                     report=report, cancel=cancel)
    quant = file_quant(base_gguf)
    longest = max(len(ids) for ids in [*ref.prompt_ids, *(e.input_ids for e in ref.examples)])
    llama = load_llama(base_gguf, n_ctx=max(64, longest), n_batch=64, lora_path=adapter_gguf)
    try:
        top1, kl = agreement(llama, ref, report, cancel)
        ppl = gguf_perplexity(llama, ref, report, cancel)
        set_lora(llama, None)
        top1_base, kl_base = agreement(llama, ref, report, cancel)
    finally:
        llama.close()
    size = os.path.getsize(adapter_gguf)
    effect = Check("adapter_effect", "pass", kl_base, "information only",
                   f"without the adapter: top-1 agreement {top1_base:.2f}, mean KL {kl_base:.3g} "
                   f"nats; with it: {top1:.2f}, {kl:.3g} nats")
    checks = [check_top1(top1, quant, thresholds), check_kl(kl, quant, thresholds),
              check_perplexity(ref.perplexity.perplexity, ppl, ppl > ABSURD_PERPLEXITY, thresholds),
              effect, Check("file_size", "pass", size, "information only",
                            f"{size / 2**20:.1f} MiB adapter on a {quant} base")]
    metrics = {"top1_agreement": top1, "mean_kl": kl, "perplexity_reference": ref.perplexity.perplexity,
               "perplexity_gguf": ppl, "top1_agreement_without_adapter": top1_base,
               "mean_kl_without_adapter": kl_base, "base_gguf": str(base_gguf), "rows": len(rows)}
    return VerificationReport(str(adapter_gguf), f"{quant}+lora", size, checks, metrics)


def agreement(llama: Any, ref: ReferenceRun, report: Reporter = ignore_progress,
              cancel: CancelToken | None = None) -> tuple[float, float]:
    """Top-1 agreement and mean KL(reference || llama.cpp) in nats at each row's last prompt
    position (vocabularies cut to the shorter one, as HF checkpoints may pad theirs)."""
    import torch

    from engine.llama_runtime import position_logits

    agree, kls = 0, []
    for index, (ids, hf) in enumerate(zip(ref.prompt_ids, ref.logprobs)):
        if cancel is not None:
            cancel.check()
        last = [row.copy() for _, row in position_logits(llama, ids, positions={len(ids) - 1})][-1]
        n = min(hf.shape[0], last.shape[0])
        p = torch.log_softmax(hf[:n].double(), -1)
        q = torch.log_softmax(torch.from_numpy(last[:n]).double(), -1)
        agree += int(p.argmax()) == int(q.argmax())
        kls.append(float((p.exp() * (p - q)).sum()))
        report(Progress("agreement", index + 1, len(ref.prompt_ids)))
    return agree / len(kls), sum(kls) / len(kls)


def gguf_perplexity(llama: Any, ref: ReferenceRun, report: Reporter = ignore_progress,
                    cancel: CancelToken | None = None) -> float:
    """Perplexity of ``llama`` on the reference's encoded rows (assistant tokens only)."""
    from engine.evaluate import _gguf_nll

    total, count = 0.0, 0
    for index, example in enumerate(ref.examples):
        if cancel is not None:
            cancel.check()
        nll, n = _gguf_nll(llama, example)
        total, count = total + nll, count + n
        report(Progress("perplexity", index + 1, len(ref.examples)))
    mean = total / max(count, 1)
    return math.exp(mean) if mean < 700 else math.inf
