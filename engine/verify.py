"""Verify an exported GGUF against the model it was made from (issue 5).

The validation rows go through the reference (a Hugging Face folder, plus the LoRA adapter
when given, in fp32 with transformers) and through the GGUF (llama.cpp), on the same token ids:
next-token agreement and KL divergence at the last prompt position of each row, perplexity on
the rows' assistant turns in both runtimes, greedy answers through the chat path (do they end
with an end-of-generation token within the budget? tokens/s), the special-token ids and the chat
template embedded in the file, and the BOS count of the rendered prompts (CASES C14). Each
result becomes a pass/warn/fail :class:`engine.verify_checks.Check`.

The reference outputs do not depend on the GGUF: compute them once with :func:`reference_run`
and pass them to :func:`verify_export` for every export type (f16, q8_0, q4_k_m).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import DataError
from engine.evaluate import ABSURD_PERPLEXITY
from engine.progress import CancelToken, Progress, Reporter, Stopwatch, ignore_progress
from engine.templates import ChatTemplate
from engine.tokens import SpecialTokens
from engine.verify_checks import (Check, VerifyThresholds, check_bos_count, check_kl,
                                  check_perplexity, check_prompt_ids, check_special_tokens,
                                  check_stopping, check_template, check_top1, worst)


@dataclass
class ReferenceRun:
    """The reference model's outputs on the validation rows (independent of any GGUF).

    Attributes:
        model_dir: the Hugging Face folder (its tokenizer encodes the rows for both runtimes).
        template: the chat template used.
        special: the reference special-token table.
        prompt_ids: per row, the ids of the conversation before its last assistant turn plus
            the generation prompt (training BOS policy).
        logprobs: per row, log-softmax of the next-token scores after ``prompt_ids``; float64
            tensors of shape ``(n_vocab,)``.
        perplexity: perplexity over the rows' assistant tokens.
        examples: the rows encoded as training encodes them (scored by the GGUF too).
        stopped: how many greedy answers (transformers) ended with an end-of-generation id
            within ``max_new_tokens``; ``None`` when not generated.
        max_new_tokens: the token budget of those answers, or ``None``.
    """

    model_dir: Path
    template: ChatTemplate
    special: SpecialTokens
    prompt_ids: list[list[int]]
    logprobs: list[Any]
    perplexity: Any
    examples: list[Any]
    stopped: int | None = None
    max_new_tokens: int | None = None


@dataclass(frozen=True)
class VerificationReport:
    """The verification of one GGUF file.

    Attributes:
        path: the GGUF file.
        quant: its export type (``f16``, ``q8_0``, ``q4_k_m``, ...).
        bytes: file size in bytes.
        checks: one :class:`Check` per verified property.
        metrics: the raw numbers (``top1_agreement``, ``mean_kl``, ``perplexity_reference``,
            ``perplexity_gguf``, ``stop_share``, ``tokens_per_second``, ``bos_id``,
            ``eos_id``, ``eot_id``, ``eog_ids``, ``max_new_tokens``, ``rows``, ``seconds``: wall
            time per stage).
    """

    path: str
    quant: str
    bytes: int
    checks: list[Check] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def overall(self) -> str:
        """The most severe status of all checks: ``"pass"``, ``"warn"`` or ``"fail"``."""
        return worst([c.status for c in self.checks])

    def check(self, name: str) -> Check:
        """The check called ``name``.

        Raises:
            KeyError: no such check.
        """
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict (``path``, ``quant``, ``bytes``, ``overall``, ``checks``,
        ``metrics``); infinite or NaN numbers (e.g. the perplexity of a broken file) become
        ``None``."""
        return _finite({"path": self.path, "quant": self.quant, "bytes": self.bytes,
                        "overall": self.overall, "checks": [asdict(c) for c in self.checks],
                        "metrics": dict(self.metrics)})


def _finite(value: Any) -> Any:
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def reference_run(reference_dir: str | os.PathLike[str], rows: list[dict], *,
                  adapter_dir: str | os.PathLike[str] | None = None,
                  template: ChatTemplate | str | None = None, max_length: int = 1024,
                  max_new_tokens: int | None = None, report: Reporter = ignore_progress,
                  cancel: CancelToken | None = None) -> ReferenceRun:
    """Run the validation rows through the reference model (transformers, fp32).

    Args:
        reference_dir: the base model folder (with ``adapter_dir``) or a merged folder.
        rows: conversations ``{"messages": [...]}`` each ending with an assistant turn.
        adapter_dir: a PEFT LoRA adapter applied on top, or ``None``.
        template: the run's chat template (name, Jinja text or :class:`ChatTemplate`).
        max_length: tokens per row for perplexity (left truncation, as in training).
        max_new_tokens: when given, also answer each prompt greedily (transformers) within this
            budget and count the answers that end with an end-of-generation id, so the stopping
            check can tell a broken export from a model that never learned to stop.

    Raises:
        DataError: a row has no user turn before its last assistant turn, or no trained token.
        ModelLoadError: the model or adapter cannot be loaded.
        Cancelled: ``cancel`` was triggered.
    """
    import torch

    from engine.encode import encode_rows, prompt_ids
    from engine.evaluate import load_hf, perplexity_of_loaded
    from engine.replies import split_reply

    loaded = load_hf(reference_dir, adapter_dir=adapter_dir, template=template)
    encoded = [prompt_ids(loaded.tokenizer, split_reply(row, i)[0], loaded.template, loaded.special)
               for i, row in enumerate(rows)]
    logprobs = []
    for index, ids in enumerate(encoded):
        _check(cancel)
        with torch.no_grad():
            logits = loaded.model(input_ids=torch.tensor([ids])).logits[0, -1]
        logprobs.append(torch.log_softmax(logits.double(), -1))
        report(Progress("reference", index + 1, len(encoded), message="reference next tokens"))
    ppl = perplexity_of_loaded(loaded, rows, max_length=max_length, report=report, cancel=cancel)
    examples, _ = encode_rows(loaded.tokenizer, rows, loaded.template, loaded.special,
                              max_length=max_length, truncation="left")
    stopped = (None if max_new_tokens is None
               else _reference_stops(loaded, encoded, max_new_tokens, report, cancel))
    return ReferenceRun(Path(reference_dir), loaded.template, loaded.special, encoded, logprobs,
                        ppl, examples, stopped, max_new_tokens)


def _reference_stops(loaded: Any, prompts: list[list[int]], max_new_tokens: int,
                     report: Reporter, cancel: CancelToken | None) -> int:
    """How many greedy transformers answers emit an end-of-generation id within the budget."""
    import torch

    end_ids = set(loaded.special.end_ids)
    stopped = 0
    for index, ids in enumerate(prompts):
        _check(cancel)
        with torch.no_grad():
            out = loaded.model.generate(input_ids=torch.tensor([ids]), do_sample=False,
                                        max_new_tokens=max_new_tokens,
                                        eos_token_id=sorted(end_ids),
                                        pad_token_id=loaded.special.pad_id)
        stopped += any(int(t) in end_ids for t in out[0, len(ids):])
        report(Progress("reference", index + 1, len(prompts), message="reference answers"))
    return stopped


def verify_export(gguf_path: str | os.PathLike[str], *, reference_dir: str | os.PathLike[str],
                  rows: list[dict], adapter_dir: str | os.PathLike[str] | None = None,
                  template: ChatTemplate | str | None = None, quant: str | None = None,
                  thresholds: VerifyThresholds = VerifyThresholds(), max_new_tokens: int = 64,
                  reference: ReferenceRun | None = None, report: Reporter = ignore_progress,
                  cancel: CancelToken | None = None) -> VerificationReport:
    """Verify a GGUF against the model it was exported from.

    Args:
        gguf_path: the exported file.
        reference_dir: the base folder (with ``adapter_dir``) or the merged folder.
        rows: validation conversations, each ending with an assistant turn (3-20 rows is
            plenty; every row costs one forward pass per runtime and one greedy answer).
        adapter_dir: the LoRA adapter the reference applies, or ``None``.
        template: the run's chat template; ``None`` = the reference tokenizer's own.
        quant: the export type; ``None`` reads it from ``general.file_type``.
        thresholds: limits for pass/warn/fail.
        max_new_tokens: token budget of each greedy answer.
        reference: precomputed :func:`reference_run` outputs (then ``reference_dir``,
            ``adapter_dir`` and ``template`` are not loaded again).
        report: progress (stages ``reference``, ``agreement``, ``perplexity``, ``generate``).
        cancel: checked between rows.

    Returns:
        The :class:`VerificationReport`; never raises for a bad export (that is a failed check).

    Raises:
        DataError: malformed rows.
        ModelLoadError: the reference model or the GGUF cannot be loaded at all.
        Cancelled: ``cancel`` was triggered.
    """
    from engine.llama_runtime import read_gguf_info

    ref = reference or reference_run(reference_dir, rows, adapter_dir=adapter_dir,
                                     template=template, max_new_tokens=max_new_tokens,
                                     report=report, cancel=cancel)
    ref_stopped = ref.stopped if ref.max_new_tokens == max_new_tokens else None
    clock = Stopwatch()
    info = read_gguf_info(gguf_path)
    quant = quant or file_quant(gguf_path)
    seconds = {"metadata": clock.elapsed()}
    top1, kl, ppl = _score(gguf_path, ref, report, cancel)
    seconds["scores"] = clock.elapsed() - sum(seconds.values())
    gen = _generate(gguf_path, rows, ref, info, max_new_tokens, report, cancel)
    seconds["generate"] = clock.elapsed() - sum(seconds.values())
    size = os.path.getsize(gguf_path)
    checks = [check_top1(top1, quant, thresholds), check_kl(kl, quant, thresholds),
              check_perplexity(ref.perplexity.perplexity, ppl, ppl > ABSURD_PERPLEXITY, thresholds),
              check_stopping(gen["stopped"], len(rows), max_new_tokens, thresholds, ref_stopped),
              check_template(info.chat_template, ref.template.source),
              *check_special_tokens(_gguf_ids(info), _reference_ids(ref.special)),
              check_bos_count(gen["bos_counts"], ref.special.bos_id is not None),
              check_prompt_ids(gen["same_ids"], len(rows)),
              _info("file_size", size, f"{size / 2**20:.1f} MiB on disk"),
              _info("tokens_per_second", gen["tokens_per_second"],
                    f"{gen['tokens_per_second']:.1f} generated tokens/s on this machine")]
    metrics = {"top1_agreement": top1, "mean_kl": kl, "perplexity_reference": ref.perplexity.perplexity,
               "perplexity_gguf": ppl, "stop_share": gen["stopped"] / len(rows),
               "reference_stop_share": None if ref_stopped is None else ref_stopped / len(rows),
               "tokens_per_second": gen["tokens_per_second"], "max_new_tokens": max_new_tokens,
               "rows": len(rows), **_gguf_ids(info), "seconds": seconds}
    return VerificationReport(str(gguf_path), quant, size, checks, metrics)


def _check(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.check()


def _info(name: str, value: float, text: str) -> Check:
    return Check(name, "pass", value, "information only", text)


def _gguf_ids(info: Any) -> dict[str, Any]:
    return {"bos_id": info.bos_id, "eos_id": info.eos_id, "eot_id": info.eot_id,
            "eog_ids": list(info.eog_ids)}


def _reference_ids(special: SpecialTokens) -> dict[str, Any]:
    return {"bos_id": special.bos_id, "eos_id": special.eos_id, "end_ids": list(special.end_ids)}


def file_quant(gguf_path: str | os.PathLike[str]) -> str:
    """The export type of a GGUF from ``general.file_type`` (``q8_0``, ``q4_k_m``, ``f16``...)."""
    from gguf import LlamaFileType

    from engine.gguf_meta import read_summary

    kind = read_summary(Path(gguf_path)).metadata.get("general.file_type")
    try:
        name = LlamaFileType(int(kind)).name
    except (TypeError, ValueError):
        return "unknown"
    return "f32" if name == "ALL_F32" else name.removeprefix("MOSTLY_").lower()


def _score(gguf_path: Any, ref: ReferenceRun, report: Reporter,
           cancel: CancelToken | None) -> tuple[float, float, float]:
    """Top-1 agreement, mean KL(reference || GGUF) in nats at each row's last prompt position,
    and perplexity on the reference's encoded rows, from one llama.cpp load."""
    import math

    from engine.evaluate import _gguf_nll
    from engine.llama_runtime import load_llama

    longest = max(len(ids) for ids in [*ref.prompt_ids, *(e.input_ids for e in ref.examples)])
    llama = load_llama(gguf_path, n_ctx=max(64, longest), n_batch=64)
    try:
        top1, kl = _agreement(llama, ref, report, cancel)
        total, count = 0.0, 0
        for index, example in enumerate(ref.examples):
            _check(cancel)
            nll, n = _gguf_nll(llama, example)
            total, count = total + nll, count + n
            report(Progress("perplexity", index + 1, len(ref.examples)))
    finally:
        llama.close()
    mean = total / count
    return top1, kl, math.exp(mean) if mean < 700 else math.inf


def _agreement(llama: Any, ref: ReferenceRun, report: Reporter,
               cancel: CancelToken | None) -> tuple[float, float]:
    import torch

    from engine.llama_runtime import position_logits

    gguf = []
    for index, ids in enumerate(ref.prompt_ids):
        _check(cancel)
        rows = [logits.copy() for _, logits in position_logits(llama, ids, positions={len(ids) - 1})]
        gguf.append(torch.from_numpy(rows[-1]).double())
        report(Progress("agreement", index + 1, len(ref.prompt_ids)))
    return compare_logprobs(ref.logprobs, gguf)


def compare_logprobs(reference: list[Any], other: list[Any]) -> tuple[float, float]:
    """Top-1 agreement and mean KL(reference || other) in nats over paired score rows.

    Args:
        reference, other: equal-length lists of 1-D float tensors (logits or log-probabilities)
            over the vocabulary. HF checkpoints may pad the vocabulary dimension, so both are cut
            to the shorter length and renormalized with log-softmax.

    Raises:
        DataError: the lists are empty or of different lengths.
    """
    import torch

    if not reference or len(reference) != len(other):
        raise DataError(f"cannot compare {len(reference)} reference rows with {len(other)} rows")
    agree, kls = 0, []
    for p_row, q_row in zip(reference, other):
        n = min(p_row.shape[0], q_row.shape[0])
        p, q = torch.log_softmax(p_row[:n].double(), -1), torch.log_softmax(q_row[:n].double(), -1)
        agree += int(p.argmax()) == int(q.argmax())
        kls.append(float((p.exp() * (p - q)).sum()))
    return agree / len(kls), sum(kls) / len(kls)


def _generate(gguf_path: Any, rows: list[dict], ref: ReferenceRun, info: Any,
              max_new_tokens: int, report: Reporter, cancel: CancelToken | None) -> dict[str, Any]:
    """Greedy answers through the chat path: stops, tokens/s, BOS counts, identical prompt ids."""
    from engine.chat import ChatModel, SamplingConfig
    from engine.replies import split_reply

    greedy = SamplingConfig(temperature=0.0, repeat_penalty=1.0, max_tokens=max_new_tokens)
    n_ctx = max(len(ids) for ids in ref.prompt_ids) + max_new_tokens + 16
    out: dict[str, Any] = {"stopped": 0, "bos_counts": [], "same_ids": 0, "speeds": []}
    with ChatModel(gguf_path, chat_template=ref.template.source, n_ctx=n_ctx) as chat:
        for index, (row, ref_ids) in enumerate(zip(rows, ref.prompt_ids)):
            _check(cancel)
            prompt = split_reply(row, index)[0]
            ids = chat.prompt_tokens(prompt)
            out["bos_counts"].append(ids.count(info.bos_id) if info.bos_id >= 0 else 0)
            out["same_ids"] += ids == ref_ids
            done = chat.reply(prompt, greedy, cancel=cancel).finished
            out["stopped"] += done.finish_reason == "stop"
            if done.completion_tokens:
                out["speeds"].append(done.tokens_per_second)
            report(Progress("generate", index + 1, len(rows)))
    speeds = out.pop("speeds")
    out["tokens_per_second"] = sum(speeds) / len(speeds) if speeds else 0.0
    return out


def quantization_report(reports: list[VerificationReport]) -> list[dict[str, Any]]:
    """One row per export for a side-by-side table (f16 vs q8_0 vs q4_k_m ...), in input order.

    Returns:
        Dicts with ``file``, ``quant``, ``bytes``, ``overall``, ``top1_agreement``,
        ``mean_kl``, ``perplexity_reference``, ``perplexity_gguf``, ``stop_share``,
        ``tokens_per_second`` and ``failed`` (names of failing checks).
    """
    keys = ("top1_agreement", "mean_kl", "perplexity_reference", "perplexity_gguf", "stop_share",
            "tokens_per_second")
    return [{"file": Path(r.path).name, "quant": r.quant, "bytes": r.bytes, "overall": r.overall,
             **{k: r.metrics.get(k) for k in keys},
             "failed": [c.name for c in r.checks if c.status == "fail"]} for r in reports]
