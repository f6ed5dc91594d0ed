"""Perplexity of validation conversations, through transformers and through llama.cpp.

Perplexity is ``exp(mean NLL)`` over the trained (assistant) tokens only, encoded exactly as
training encodes them (:func:`engine.encode.encode_rows`: same template, BOS policy, labels and
left truncation), so it equals ``exp(eval loss)``. The GGUF path scores the same label
positions from llama.cpp's logits. An absurd perplexity (> :data:`ABSURD_PERPLEXITY`, e.g. a
missing BOS on a Gemma model, CASES C15) is flagged, not reported silently.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from engine.encode import IGNORE_INDEX, EncodedExample, collate, encode_rows
from engine.errors import DataError, ModelLoadError
from engine.progress import CancelToken, Progress, Reporter, ignore_progress
from engine.templates import ChatTemplate, render, resolve_template
from engine.tokens import SpecialTokens, special_tokens_for

ABSURD_PERPLEXITY = 1e4  # ordinary text under any working LM is far below this


@dataclass(frozen=True)
class PerplexityResult:
    """Perplexity over the trained tokens of a set of conversations.

    Attributes:
        perplexity: ``exp(mean_nll)``.
        mean_nll: mean negative log-likelihood per trained token, in nats.
        tokens: number of trained tokens scored.
        flagged: ``perplexity > ABSURD_PERPLEXITY``; show a warning (wrong BOS, template or model).
        bos_policy: how BOS was handled, in words (recorded with the score, CASES C15).
        skipped: ``(row_index, reason)`` for rows that had no trained token.
    """

    perplexity: float
    mean_nll: float
    tokens: int
    flagged: bool
    bos_policy: str
    skipped: tuple[tuple[int, str], ...] = ()


@dataclass
class HfEval:
    """A transformers model prepared for evaluation (eval mode, on CPU or its device)."""

    model: Any
    tokenizer: Any
    template: ChatTemplate
    special: SpecialTokens


def load_hf(model_dir: str | os.PathLike[str], *, adapter_dir: str | os.PathLike[str] | None = None,
            template: ChatTemplate | str | None = None) -> HfEval:
    """Load a Hugging Face folder (plus an optional LoRA adapter) for evaluation in fp32.

    Raises:
        ModelLoadError: the folder or adapter cannot be loaded.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        if adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter_dir))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model_dir}: cannot load the model for evaluation ({exc})") from exc
    chosen = template if isinstance(template, ChatTemplate) else resolve_template(tokenizer, template)
    special = special_tokens_for(model_dir, tokenizer, chosen)
    return HfEval(model.eval(), tokenizer, chosen, special)


def perplexity_hf(model_dir: str | os.PathLike[str], rows: list[dict], *,
                  adapter_dir: str | os.PathLike[str] | None = None,
                  template: ChatTemplate | str | None = None, max_length: int = 1024,
                  batch_size: int = 4, report: Reporter = ignore_progress,
                  cancel: CancelToken | None = None) -> PerplexityResult:
    """Perplexity of a transformers model (+ adapter) on the trained tokens of ``rows``.

    Args:
        model_dir: Hugging Face folder of the (base or merged) model.
        rows: conversations ``{"messages": [...]}``; every assistant turn is scored.
        adapter_dir: a PEFT LoRA adapter to apply, or ``None``.
        template: the run's chat template (name, Jinja text or :class:`ChatTemplate`).
        max_length: tokens per example; longer ones are left-truncated like in training.
        batch_size: examples per forward pass (does not change the result).

    Raises:
        DataError: no row has a trained token.
        Cancelled: ``cancel`` was triggered.
    """
    loaded = load_hf(model_dir, adapter_dir=adapter_dir, template=template)
    return perplexity_of_loaded(loaded, rows, max_length=max_length, batch_size=batch_size,
                                report=report, cancel=cancel)


def perplexity_of_loaded(loaded: HfEval, rows: list[dict], *, max_length: int = 1024,
                         batch_size: int = 4, report: Reporter = ignore_progress,
                         cancel: CancelToken | None = None) -> PerplexityResult:
    """:func:`perplexity_hf` for a model already loaded with :func:`load_hf`."""
    import torch

    from engine.train_model import masked_loss_sum, supports_logits_mask

    examples, skipped = _encode(loaded.tokenizer, rows, loaded.template, loaded.special, max_length)
    total, count = 0.0, 0
    batches = range(0, len(examples), batch_size)
    # The same loss function as training's eval loss, so perplexity == exp(eval loss); it sends
    # only the scored positions through the (262k-wide, for Gemma) output head.
    logits_mask = supports_logits_mask(loaded.model)
    for step, start in enumerate(batches):
        if cancel is not None:
            cancel.check()
        batch = collate(examples[start:start + batch_size], loaded.special.pad_id)
        with torch.no_grad():
            loss_sum, n = masked_loss_sum(loaded.model, batch, logits_mask=logits_mask)
        total, count = total + float(loss_sum), count + n
        report(Progress("perplexity", step + 1, len(batches), {"mean_nll": total / max(count, 1)}))
    return _result(total, count, bos_policy(examples, loaded.special), skipped)


def perplexity_gguf(gguf_path: str | os.PathLike[str], rows: list[dict], *,
                    template: ChatTemplate | str | None = None, max_length: int = 1024,
                    tokenizer_dir: str | os.PathLike[str] | None = None,
                    report: Reporter = ignore_progress,
                    cancel: CancelToken | None = None) -> PerplexityResult:
    """Perplexity of a GGUF on the trained tokens of ``rows``, through llama.cpp.

    Args:
        gguf_path: the model file.
        rows: conversations, as for :func:`perplexity_hf`.
        template: the run's chat template; ``None`` uses the GGUF's own (refused if it has none).
        max_length: tokens per example (left truncation, as in training).
        tokenizer_dir: the Hugging Face folder the GGUF was exported from. When given, rows are
            encoded with its tokenizer (identical ids to :func:`perplexity_hf`) and each row's
            llama.cpp tokenization is checked against them; otherwise llama.cpp's tokenizer
            encodes the rows.

    Raises:
        DataError: no row has a trained token, or llama.cpp tokenizes a row differently from
            the Hugging Face tokenizer (the GGUF's vocabulary does not match the model's).
        ModelLoadError: the GGUF cannot be loaded or has no usable chat template.
        Cancelled: ``cancel`` was triggered.
    """
    from engine.llama_runtime import load_llama, read_gguf_info

    info = read_gguf_info(gguf_path)
    llama = load_llama(gguf_path, n_ctx=max(max_length, 64), n_batch=64)
    try:
        tokenizer, special, chosen = _gguf_encoding(llama, info, template, tokenizer_dir)
        examples, skipped = _encode(tokenizer, rows, chosen, special, max_length)
        if tokenizer_dir is not None:
            check_llama_tokens(llama, tokenizer, rows, chosen, examples, special, skipped)
        total, count = 0.0, 0
        for step, example in enumerate(examples):
            if cancel is not None:
                cancel.check()
            nll, n = _gguf_nll(llama, example)
            total, count = total + nll, count + n
            report(Progress("perplexity", step + 1, len(examples), {"mean_nll": total / max(count, 1)}))
    finally:
        llama.close()
    return _result(total, count, bos_policy(examples, special), skipped)


def bos_policy(examples: list[EncodedExample], special: SpecialTokens) -> str:
    """Describe how the scored sequences begin, e.g. ``"one BOS (id 2) at the start"``."""
    if special.bos_id is None:
        return "no BOS: the model has no BOS token"
    starts = sum(1 for e in examples if e.input_ids[:1] == [special.bos_id])
    extra = sum(1 for e in examples if special.bos_id in e.input_ids[1:])
    if starts == len(examples) and not extra:
        return f"one BOS (id {special.bos_id}) at the start, as in training"
    return (f"BOS (id {special.bos_id}) at the start of {starts}/{len(examples)} sequences, "
            f"repeated inside {extra}; as in training (the template/tokenizer decide)")


def check_llama_tokens(llama: Any, tokenizer: Any, rows: list[dict], template: ChatTemplate,
                       examples: list[EncodedExample], special: SpecialTokens,
                       problems: tuple[tuple[int, str], ...] = ()) -> None:
    """Check that llama.cpp tokenizes each (untruncated) row like the Hugging Face tokenizer.

    Args:
        examples: the encoded rows, ``rows`` minus those listed in ``problems``.

    Raises:
        DataError: naming the first row whose ids differ.
    """
    skipped = {index for index, _ in problems}
    kept = [index for index in range(len(rows)) if index not in skipped]
    for index, example in zip(kept, examples):
        row = rows[index]
        if example.truncated:
            continue
        text = render(template, row["messages"], bos_token=tokenizer.bos_token,
                      eos_token=tokenizer.eos_token)
        ids = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if special.add_bos and special.bos_id is not None and ids[:1] != [special.bos_id]:
            ids = [special.bos_id, *ids]
        if ids != example.input_ids:
            raise DataError(f"row {index + 1}: llama.cpp tokenizes the conversation into different "
                            "token ids than the model's tokenizer; the GGUF's vocabulary does not "
                            "match this model. Re-export the GGUF from this model.")


def _gguf_nll(llama: Any, example: EncodedExample) -> tuple[float, int]:
    """Summed NLL (nats) and count of the example's labelled tokens under llama.cpp."""
    import numpy as np

    from engine.llama_runtime import position_logits

    ids, labels = example.input_ids, example.labels
    scored = {p for p in range(len(ids) - 1) if labels[p + 1] != IGNORE_INDEX}
    total, count = 0.0, 0
    for position, logits in position_logits(llama, ids, positions=scored):
        if position in scored:
            row = logits.astype(np.float64)
            peak = row.max()
            total += peak + math.log(np.exp(row - peak).sum()) - row[labels[position + 1]]
            count += 1
    return total, count


def _gguf_encoding(llama: Any, info: Any, template: ChatTemplate | str | None,
                   tokenizer_dir: str | os.PathLike[str] | None) -> tuple[Any, SpecialTokens, ChatTemplate]:
    """The tokenizer, special-token table and template to encode rows for a GGUF."""
    from engine.chat import _chat_template  # one rule for "which template" in chat and eval

    if tokenizer_dir is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        chosen = template if isinstance(template, ChatTemplate) else resolve_template(tokenizer, template)
        return tokenizer, special_tokens_for(tokenizer_dir, tokenizer, chosen), chosen
    chosen = template if isinstance(template, ChatTemplate) else _chat_template(
        llama.model_path, template, info.chat_template)
    tokenizer = LlamaTextTokenizer(llama, info)
    starts_with_bos = render(chosen, [{"role": "user", "content": "Hi"}], bos_token=info.bos_text,
                             eos_token=info.eos_text).startswith(info.bos_text or "\0")
    special = SpecialTokens(bos_id=info.bos_id if info.bos_id >= 0 else None, eos_id=info.eos_id,
                            eot_id=info.eot_id if info.eot_id >= 0 else None, pad_id=0,
                            end_ids=info.eog_ids, add_bos=info.add_bos and not starts_with_bos)
    return tokenizer, special, chosen


class LlamaTextTokenizer:
    """The slice of the transformers tokenizer interface :mod:`engine.encode` uses, backed by
    llama.cpp's tokenizer (special tokens parsed; no offsets, so answers are tokenized as
    separate pieces, like transformers' slow tokenizers)."""

    is_fast = False

    def __init__(self, llama: Any, info: Any) -> None:
        self._llama = llama
        self.bos_token = info.bos_text or None
        self.eos_token = info.eos_text or None

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        ids = self._llama.tokenize(text.encode("utf-8"), add_bos=add_special_tokens, special=True)
        return {"input_ids": ids}


def _encode(tokenizer: Any, rows: list[dict], template: ChatTemplate, special: SpecialTokens,
            max_length: int) -> tuple[list[EncodedExample], tuple[tuple[int, str], ...]]:
    examples, problems = encode_rows(tokenizer, rows, template, special, max_length=max_length,
                                     truncation="left")
    if not examples:
        reasons = "; ".join(f"row {i + 1}: {why}" for i, why in problems[:3])
        raise DataError(f"no validation row has a trained token to score ({reasons})")
    return examples, tuple(problems)


def _result(total: float, count: int, policy: str,
            skipped: tuple[tuple[int, str], ...]) -> PerplexityResult:
    mean = float(total) / count
    perplexity = math.exp(mean) if mean < 700 else math.inf
    return PerplexityResult(perplexity, mean, count, perplexity > ABSURD_PERPLEXITY, policy, skipped)

