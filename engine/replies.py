"""Greedy replies for evaluation, runtime agreement, and base-vs-fine-tuned comparison.

Each validation row is split at its last assistant turn: the conversation before it is the
prompt and that turn is the reference. Replies are greedy (reproducible) in both runtimes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from engine.encode import prompt_ids
from engine.errors import DataError
from engine.evaluate import HfEval, load_hf, perplexity_of_loaded
from engine.metrics import corpus_bleu, rouge_l
from engine.progress import CancelToken, Progress, Reporter, ignore_progress
from engine.templates import ChatTemplate


@dataclass(frozen=True)
class AgreementResult:
    """How closely llama.cpp's next-token distribution follows the transformers model.

    Attributes:
        top1_agreement: share of prompts whose most likely next token is the same, in [0, 1].
        per_prompt: ``(hf_top1, gguf_top1)`` token ids per prompt.
        mean_kl: mean KL(HF || GGUF) of the next-token distributions, in nats.
    """

    top1_agreement: float
    per_prompt: list[tuple[int, int]]
    mean_kl: float


def split_reply(row: dict, index: int = 0) -> tuple[list[dict], str]:
    """``(prompt_messages, reference)``: the row's conversation before its last assistant turn.

    Raises:
        DataError: the row has no assistant turn or nothing before it (``index`` is 0-based).
    """
    messages = row.get("messages") or []
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    if last < 0 or not any(m.get("role") == "user" for m in messages[:last]):
        raise DataError(f"row {index + 1}: needs a user message followed by an assistant reply "
                        "to be used as a reference")
    return messages[:last], messages[last]["content"]


def generate_replies_hf(model_dir: str | os.PathLike[str], rows: list[dict], *,
                        adapter_dir: str | os.PathLike[str] | None = None,
                        template: ChatTemplate | str | None = None, max_new_tokens: int = 128,
                        report: Reporter = ignore_progress,
                        cancel: CancelToken | None = None) -> list[str]:
    """Greedy replies of a transformers model (+ adapter) to each row's prompt.

    Generation stops on every end id of the model's special-token table.

    Raises:
        DataError: a row has no prompt/reference pair.
        Cancelled: ``cancel`` was triggered.
    """
    loaded = load_hf(model_dir, adapter_dir=adapter_dir, template=template)
    return replies_of_loaded(loaded, rows, max_new_tokens=max_new_tokens, report=report, cancel=cancel)


def replies_of_loaded(loaded: HfEval, rows: list[dict], *, max_new_tokens: int = 128,
                      report: Reporter = ignore_progress, cancel: CancelToken | None = None) -> list[str]:
    """:func:`generate_replies_hf` for a model loaded with :func:`engine.evaluate.load_hf`."""
    import torch

    replies = []
    for index, row in enumerate(rows):
        if cancel is not None:
            cancel.check()
        prompt, _ = split_reply(row, index)
        ids = prompt_ids(loaded.tokenizer, prompt, loaded.template, loaded.special)
        with torch.no_grad():
            out = loaded.model.generate(
                input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_new_tokens, do_sample=False,
                eos_token_id=list(loaded.special.end_ids), pad_token_id=loaded.special.pad_id)
        new = [t for t in out[0, len(ids):].tolist() if t not in loaded.special.end_ids]
        replies.append(loaded.tokenizer.decode(new, skip_special_tokens=True))
        report(Progress("generate", index + 1, len(rows)))
    return replies


def generate_replies_gguf(gguf_path: str | os.PathLike[str], rows: list[dict], *,
                          template: str | None = None, max_new_tokens: int = 128,
                          n_ctx: int | None = None, report: Reporter = ignore_progress,
                          cancel: CancelToken | None = None) -> list[str]:
    """Greedy replies of a GGUF through the chat path (:class:`engine.chat.ChatModel`).

    Raises:
        DataError: a row has no prompt/reference pair.
        ModelLoadError: the GGUF cannot be loaded or has no chat template and none was given.
        Cancelled: ``cancel`` was triggered.
    """
    from engine.chat import ChatModel, SamplingConfig

    greedy = SamplingConfig(temperature=0.0, repeat_penalty=1.0, max_tokens=max_new_tokens)
    replies = []
    with ChatModel(gguf_path, chat_template=template, n_ctx=n_ctx) as chat:
        for index, row in enumerate(rows):
            if cancel is not None:
                cancel.check()
            replies.append(chat.reply(split_reply(row, index)[0], greedy).text)
            report(Progress("generate", index + 1, len(rows)))
    return replies


def next_token_agreement(hf_dir: str | os.PathLike[str], gguf_path: str | os.PathLike[str],
                         prompts: list[list[dict]], *, template: ChatTemplate | str | None = None,
                         adapter_dir: str | os.PathLike[str] | None = None) -> AgreementResult:
    """Compare the next-token distributions of transformers and llama.cpp on the same ids.

    Each prompt (a message list ending with a user turn) is encoded once with the HF tokenizer
    and the training BOS policy; both runtimes score exactly those ids.

    Raises:
        DataError: no prompts, or a malformed prompt.
        ModelLoadError: either model cannot be loaded.
    """
    import torch

    from engine.llama_runtime import load_llama, position_logits

    if not prompts:
        raise DataError("next_token_agreement needs at least one prompt")
    loaded = load_hf(hf_dir, adapter_dir=adapter_dir, template=template)
    encoded = [prompt_ids(loaded.tokenizer, p, loaded.template, loaded.special) for p in prompts]
    llama = load_llama(gguf_path, n_ctx=max(64, max(len(ids) for ids in encoded)), n_batch=64)
    pairs, kls = [], []
    try:
        for ids in encoded:
            with torch.no_grad():
                hf = loaded.model(input_ids=torch.tensor([ids])).logits[0, -1].double()
            last = position_logits(llama, ids, positions={len(ids) - 1})
            gguf = torch.from_numpy(_last_logits(last)).double()
            # HF checkpoints may pad the vocabulary dimension; compare the shared ids only.
            n = min(hf.shape[0], gguf.shape[0])
            hf, gguf = torch.log_softmax(hf[:n], -1), torch.log_softmax(gguf[:n], -1)
            pairs.append((int(hf.argmax()), int(gguf.argmax())))
            kls.append(float((hf.exp() * (hf - gguf)).sum()))
    finally:
        llama.close()
    agree = sum(a == b for a, b in pairs) / len(pairs)
    return AgreementResult(agree, pairs, sum(kls) / len(kls))


def _last_logits(rows: Any) -> Any:
    last = None
    for _, logits in rows:
        last = logits
    return last.copy()


def evaluate_hf(model_dir: str | os.PathLike[str], rows: list[dict], *,
                adapter_dir: str | os.PathLike[str] | None = None,
                template: ChatTemplate | str | None = None, max_length: int = 1024,
                max_new_tokens: int = 128, generate: int | None = None,
                report: Reporter = ignore_progress,
                cancel: CancelToken | None = None) -> dict[str, Any]:
    """Perplexity, BLEU and ROUGE-L of one model (+ adapter) on validation rows.

    Perplexity covers every row; BLEU and ROUGE-L score greedy replies to the first
    ``generate`` rows (all rows when ``None``) against each row's last assistant turn.

    Returns:
        ``{"perplexity", "perplexity_flagged", "bos_policy", "bleu", "bleu_tokenize",
        "rouge_l", "replies"}`` (BLEU 0-100, ROUGE-L F1 0-1; ``None`` for both when no reply
        was generated).
    """
    loaded = load_hf(model_dir, adapter_dir=adapter_dir, template=template)
    ppl = perplexity_of_loaded(loaded, rows, max_length=max_length, report=report, cancel=cancel)
    result: dict[str, Any] = {"perplexity": ppl.perplexity, "perplexity_flagged": ppl.flagged,
                              "bos_policy": ppl.bos_policy, "bleu": None, "bleu_tokenize": None,
                              "rouge_l": None, "replies": []}
    sample = rows if generate is None else rows[:generate]
    if sample:
        replies = replies_of_loaded(loaded, sample, max_new_tokens=max_new_tokens, report=report,
                                    cancel=cancel)
        references = [split_reply(row, i)[1] for i, row in enumerate(sample)]
        bleu = corpus_bleu(replies, references)
        result.update(bleu=bleu.score, bleu_tokenize=bleu.tokenize,
                      rouge_l=rouge_l(replies, references).f1, replies=replies)
    return result


def compare_models(model_dir: str | os.PathLike[str], adapter_dir: str | os.PathLike[str],
                   rows: list[dict], *, template: ChatTemplate | str | None = None,
                   max_length: int = 1024, max_new_tokens: int = 128,
                   report: Reporter = ignore_progress,
                   cancel: CancelToken | None = None) -> dict[str, dict[str, Any]]:
    """Base model vs the same model with the fine-tuned adapter, on the same rows and template.

    Returns:
        ``{"before": evaluate_hf(base), "after": evaluate_hf(base + adapter)}``.
    """
    common = dict(template=template, max_length=max_length, max_new_tokens=max_new_tokens,
                  report=report, cancel=cancel)
    return {"before": evaluate_hf(model_dir, rows, **common),
            "after": evaluate_hf(model_dir, rows, adapter_dir=adapter_dir, **common)}

