"""Pass/warn/fail checks of an exported GGUF against its reference model, and their thresholds.

Each check turns one measured number (or metadata comparison) into a :class:`Check` with the
threshold used and a one-line explanation a user can act on. The checks are pure functions of
numbers, so the judgement is tested apart from the (slow) measurement in :mod:`engine.verify`.

Where the default thresholds come from: the real Gemma 3 270M (Tunesmith's built-in base model,
imported as a bf16 folder), exported with :func:`engine.export.export_gguf` and compared with its
transformers model in fp32 on three short chat rows (``tests/engine/test_verify.py``; measured
with llama-cpp-python 0.3.36 on this project's 2-core CPU test machine):

======  ======  ==============  ==========================  ===========
type    top-1   mean KL (nats)  perplexity GGUF / reference  file size
======  ======  ==============  ==========================  ===========
f16     1.0     5.6e-6          79.54 / 79.52               526 MiB
q8_0    1.0     6.6e-3          79.65 / 79.52               286 MiB  
q4_k_m  1.0     8.3e-3          77.65 / 79.52               249 MiB
======  ======  ==============  ==========================  ===========

The built-in model's weights were themselves dequantized from Q4_K_M, so re-quantizing to
q4_k_m loses little here; for an ordinary 16-bit checkpoint llama.cpp's own KL statistics
(``llama-perplexity --kl-divergence``) put q4_k_m around 0.02-0.05 nats. The pass limits
therefore leave about 5x headroom over those values, so ordinary quantization noise passes,
while a damaged tensor (one scrambled norm: KL 65 nats, top-1 agreement 0) fails by orders of
magnitude. Perplexity ratios: llama.cpp quantizes activations to 8 bits in its CPU matmuls, so
even f16 may differ from transformers by a few percent; 10% warns, 50% fails.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from engine.configs import check_range, option
from engine.errors import ConfigError

STATUSES = ("pass", "warn", "fail")  # in increasing severity
# Pass limits per export type (see the module docstring for their source). Unknown types use
# the most lenient row ("q4_k_m").
TOP1_PASS = {"f32": 0.99, "f16": 0.99, "bf16": 0.99, "q8_0": 0.9, "q6_k": 0.85,
             "q5_k_m": 0.85, "q4_k_m": 0.8}
KL_PASS = {"f32": 1e-3, "f16": 1e-3, "bf16": 1e-2, "q8_0": 0.03, "q6_k": 0.04,
           "q5_k_m": 0.06, "q4_k_m": 0.1}
LENIENT = "q4_k_m"


# torch dtype name -> the export-type row of the thresholds (a merged folder is "exported" in
# its storage dtype).
DTYPE_QUANT = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}

@dataclass(frozen=True)
class VerifyThresholds:
    """Limits that turn verification measurements into pass/warn/fail (see the module docstring
    for where the defaults come from)."""

    top1_pass: dict = option(dict(TOP1_PASS), "Per export type: the share of prompts whose most "
                             "likely next token matches the reference at or above which the "
                             "export passes; below it warns.")
    top1_fail: float = option(0.5, "Top-1 agreement below this fails (for every export type): "
                              "the model no longer picks the reference's next token.")
    kl_pass: dict = option(dict(KL_PASS), "Per export type: mean KL(reference || GGUF) of the "
                           "next-token distributions, in nats, at or below which the export "
                           "passes; above it warns.")
    kl_fail_factor: float = option(10.0, "Mean KL above kl_pass x this factor fails.")
    ppl_ratio_warn: float = option(1.1, "GGUF perplexity / reference perplexity above this "
                                   "warns (either direction: the ratio is taken >= 1).")
    ppl_ratio_fail: float = option(1.5, "Perplexity ratio above this fails.")
    stop_pass: float = option(0.75, "Share of greedy answers that end with an end-of-generation "
                              "token within the token budget at or above which the check passes.")
    stop_fail: float = option(0.25, "Share of stopping answers below which the check fails "
                              "(the model rambles instead of ending its turn).")

    def __post_init__(self) -> None:
        for name in ("top1_fail", "stop_pass", "stop_fail"):
            check_range(name, getattr(self, name), low=0.0, high=1.0)
        check_range("kl_fail_factor", self.kl_fail_factor, low=1.0)
        check_range("ppl_ratio_warn", self.ppl_ratio_warn, low=1.0)
        check_range("ppl_ratio_fail", self.ppl_ratio_fail, low=self.ppl_ratio_warn)
        for table in ("top1_pass", "kl_pass"):
            if LENIENT not in getattr(self, table):
                raise ConfigError(f"{table} must have a {LENIENT!r} entry (used for other types)")

    def with_floor(self, source: str | None) -> "VerifyThresholds":
        """These limits, loosened to at least those of ``source`` for every export type.

        A GGUF converted from a merged folder stored in bf16 inherits the merge's bf16 rounding
        (measured on Gemma 3 270M: mean KL 0.0046 nats against the fp32 adapter model), so
        even its f16 export cannot be closer to the adapter model than the bf16 row allows.
        ``None`` or an unknown ``source`` leaves the limits as they are.
        """
        if source is None or source not in self.kl_pass or source not in self.top1_pass:
            return self
        top1, kl = self.limit("top1_pass", source), self.limit("kl_pass", source)
        return dataclasses.replace(
            self, top1_pass={k: min(v, top1) for k, v in self.top1_pass.items()},
            kl_pass={k: max(v, kl) for k, v in self.kl_pass.items()})

    @classmethod
    def for_merged_dtype(cls, dtype: str | None) -> "VerifyThresholds":
        """The default limits with the floor of a merged folder stored in ``dtype`` (a torch
        dtype name such as ``bfloat16``; ``None`` or unknown: the defaults)."""
        return cls().with_floor(DTYPE_QUANT.get(dtype or ""))

    def limit(self, table: str, quant: str) -> float:
        """The ``top1_pass`` or ``kl_pass`` entry for ``quant`` (the q4_k_m one if unknown)."""
        values = getattr(self, table)
        return float(values.get(quant, values[LENIENT]))


@dataclass(frozen=True)
class Check:
    """The outcome of one verification check.

    Attributes:
        name: machine-readable name (``top1_agreement``, ``eos_id``, ...).
        status: ``"pass"``, ``"warn"`` or ``"fail"``.
        value: what was measured (number, id, text or ``None``).
        threshold: the limit applied, in words (e.g. ``">= 0.9 passes, < 0.5 fails"``).
        explanation: one line saying what the result means for the user.
    """

    name: str
    status: str
    value: Any
    threshold: str
    explanation: str


def worst(statuses: list[str]) -> str:
    """The most severe of ``statuses`` (``"pass"`` for none)."""
    return max(statuses, key=STATUSES.index, default="pass")


def check_top1(value: float, quant: str, limits: VerifyThresholds) -> Check:
    """Top-1 next-token agreement with the reference, in [0, 1]."""
    good = limits.limit("top1_pass", quant)
    status = "pass" if value >= good else "fail" if value < limits.top1_fail else "warn"
    words = {"pass": "the GGUF picks the same next token as the trained model",
             "warn": "the GGUF sometimes picks another next token than the trained model; "
                     "try a less aggressive quantization",
             "fail": "the GGUF rarely agrees with the trained model: the export is damaged or "
                     "the quantization too strong; re-export (q8_0 or f16)"}[status]
    return Check("top1_agreement", status, value,
                 f">= {good} passes for {quant}, < {limits.top1_fail} fails", words)


def check_kl(value: float, quant: str, limits: VerifyThresholds) -> Check:
    """Mean KL(reference || GGUF) of next-token distributions, in nats."""
    good = limits.limit("kl_pass", quant)
    bad = good * limits.kl_fail_factor
    status = "pass" if value <= good else "warn" if value <= bad else "fail"
    words = {"pass": "next-token probabilities match the trained model within quantization noise",
             "warn": "next-token probabilities drift from the trained model more than usual for "
                     f"{quant}",
             "fail": "next-token probabilities differ strongly from the trained model: the "
                     "weights were damaged in merge, conversion or quantization; re-export"}[status]
    return Check("mean_kl", status, value, f"<= {good:g} nats passes for {quant}, "
                 f"> {bad:g} fails", words)


def check_perplexity(reference: float, gguf: float, flagged: bool,
                     limits: VerifyThresholds) -> Check:
    """GGUF perplexity against the reference perplexity on the same tokens."""
    ratio = max(gguf, reference) / min(gguf, reference) if min(gguf, reference) > 0 else float("inf")
    status = ("fail" if flagged or ratio > limits.ppl_ratio_fail
              else "warn" if ratio > limits.ppl_ratio_warn else "pass")
    words = (f"perplexity {gguf:.2f} (GGUF) vs {reference:.2f} (trained model); "
             + ("absurdly high: wrong BOS, template or weights" if flagged
                else {"pass": "same quality on the validation rows",
                      "warn": "noticeably different quality on the validation rows",
                      "fail": "very different quality: the export is damaged"}[status]))
    return Check("perplexity", status, {"reference": reference, "gguf": gguf, "ratio": ratio},
                 f"ratio <= {limits.ppl_ratio_warn} passes, > {limits.ppl_ratio_fail} fails", words)


def check_stopping(stopped: int, rows: int, max_new_tokens: int, limits: VerifyThresholds,
                   reference_stopped: int | None = None) -> Check:
    """Share of greedy answers that ended with an end-of-generation token within the budget.

    With ``reference_stopped`` (how many of the same rows the reference model's greedy answers
    ended within the same budget) the check blames the export only when the reference stops
    and the GGUF does not. An untrained or undertrained model may never stop in either runtime:
    that is a training issue, reported as a warning with advice, not an export failure.

    Truth table (``stops`` = share >= ``stop_pass``):

    =================  ============  =====================================================
    reference stops    GGUF stops    status
    =================  ============  =====================================================
    yes                yes           pass
    yes                no            fail below ``stop_fail``, else warn (export broke it)
    no                 yes           pass
    no                 no            warn (the model never stops: train longer)
    unknown (None)     -             the GGUF share alone: pass / warn / fail
    =================  ============  =====================================================
    """
    share = stopped / rows if rows else 0.0
    gguf_stops = share >= limits.stop_pass
    counted = f"{stopped} of {rows} answers ended by themselves within {max_new_tokens} tokens"
    threshold = f">= {limits.stop_pass} passes, < {limits.stop_fail} fails"
    if reference_stopped is None:
        status = "pass" if gguf_stops else "fail" if share < limits.stop_fail else "warn"
        return Check("stops", status, share, threshold, counted + (
            "" if status == "pass" else "; the model may ramble in chat apps (check the "
            "end-of-generation ids and that training taught the end of turn)"))
    ref_share = reference_stopped / rows if rows else 0.0
    threshold += f" when the trained model stops ({reference_stopped} of {rows} in transformers)"
    if gguf_stops:
        return Check("stops", "pass", share, threshold, counted)
    if ref_share >= limits.stop_pass:
        status = "fail" if share < limits.stop_fail else "warn"
        return Check("stops", status, share, threshold, counted + f", but {reference_stopped} "
                     "of the trained model's did: the export broke stopping (check the "
                     "end-of-generation ids and the embedded chat template); re-export")
    return Check("stops", "warn", share, threshold, counted + f", and only {reference_stopped} "
                 "of the trained model's did: the model never learned to end its turn (a "
                 "training issue, not the export). Train longer or on data whose answers end "
                 "properly, or set a max-tokens limit in the chat app.")


def check_special_tokens(gguf: dict[str, Any], reference: dict[str, Any]) -> list[Check]:
    """Compare the GGUF's BOS/EOS/end-of-generation ids with the reference tokenizer's table.

    Args:
        gguf: ``bos_id``, ``eos_id``, ``eot_id`` (-1 when absent) and ``eog_ids`` of the file
            (:class:`engine.llama_runtime.GgufInfo` fields).
        reference: ``bos_id`` (``None`` when absent), ``eos_id`` and ``end_ids`` of the
            reference's :class:`engine.tokens.SpecialTokens`.
    """
    ref_bos = -1 if reference["bos_id"] is None else reference["bos_id"]
    missing = sorted(set(reference["end_ids"]) - set(gguf["eog_ids"]))
    return [
        _equal("eos_id", gguf["eos_id"], reference["eos_id"],
               "chat apps stop at EOS; a changed id makes the model ramble or stop early"),
        _equal("bos_id", gguf["bos_id"], ref_bos,
               "every prompt starts with BOS; another id shifts the model's input"),
        Check("end_ids", "fail" if missing else "pass", sorted(gguf["eog_ids"]),
              f"contains every reference end id {sorted(reference['end_ids'])}",
              f"end-of-generation ids {missing} are not marked in the GGUF: generation would run "
              "past the end of turn (CASES C07)" if missing
              else f"every end-of-generation id is marked (EOT {gguf['eot_id']})"),
    ]


def _equal(name: str, value: Any, expected: Any, why: str) -> Check:
    same = value == expected
    return Check(name, "pass" if same else "fail", value, f"== {expected} (reference tokenizer)",
                 f"same as the reference ({why})" if same
                 else f"is {value}, the reference has {expected}: {why}; re-export")


def check_template(embedded: str | None, expected: str | None) -> Check:
    """The GGUF's ``tokenizer.chat_template`` against the template used for training."""
    if not embedded:
        return Check("chat_template", "fail", None, "present (CASES C11, C13)",
                     "the GGUF carries no chat template: other apps will guess the format and "
                     "the model will answer badly; re-export with the run's template")
    if expected is not None and embedded.strip() != expected.strip():
        return Check("chat_template", "warn", embedded, "equal to the training template",
                     "the embedded template differs from the one used in training; check the "
                     "format before sharing")
    return Check("chat_template", "pass", embedded, "present and equal to the training template",
                 "the file carries the training chat format")


def check_bos_count(counts: list[int], has_bos: bool) -> Check:
    """BOS ids per rendered chat prompt (llama.cpp tokenization): exactly one (CASES C14)."""
    good = all(n == 1 for n in counts) if has_bos else all(n == 0 for n in counts)
    want = 1 if has_bos else 0
    return Check("bos_count", "pass" if good else "fail", counts, f"exactly {want} per prompt",
                 "one BOS per prompt, as in training" if good else
                 "the prompt holds a doubled or missing BOS; the template and the add-BOS flag "
                 "disagree (CASES C14)")


def check_prompt_ids(same: int, rows: int) -> Check:
    """Rows whose chat-path prompt ids (llama.cpp) equal the reference tokenizer's ids."""
    status = "pass" if same == rows else "fail"
    return Check("prompt_tokens", status, same / rows if rows else 0.0, "all prompts identical",
                 f"{same} of {rows} prompts tokenize identically in llama.cpp and the trained "
                 "model's tokenizer" + ("" if status == "pass" else
                                        "; the GGUF vocabulary or template differs"))
