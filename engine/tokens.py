"""One reconciled table of BOS/EOS/end-of-turn/PAD ids per model (CASES K3, K6).

Training, merge, export and chat all read the same :class:`SpecialTokens`: which id begins a
sequence, which ids end generation (the tokenizer's EOS, the template's end-of-turn token and
every ``eos_token_id`` in ``config.json`` / ``generation_config.json``), which id pads (never an
end id), and whether encoding must prepend BOS (exactly one BOS per sequence).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError
from engine.templates import ChatTemplate, render_for

# End-of-turn / end-of-text markers of common formats: never usable as padding.
END_TOKEN_TEXTS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>",
                   "<|end|>", "<|eom_id|>", "</s>", "<eos>")
# Tokens that exist only to pad or are never produced, in order of preference as a pad token.
PAD_CANDIDATES = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>", "<unk>", "[UNK]")
RESERVED_PATTERN = re.compile(r"^<\|?(reserved_special_token_\d+|unused\d+|reserved_\d+)\|?>$")
# A sample conversation to discover what the template emits around an answer.
_PROBE_ANSWER = "Tunesmith"
_PROBE = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _PROBE_ANSWER}]


@dataclass(frozen=True)
class SpecialTokens:
    """The special-token table of one model + chat template.

    Attributes:
        bos_id: beginning-of-sequence id, or ``None`` when the model has none.
        eos_id: the tokenizer's EOS id.
        eot_id: the single-token end-of-turn the template emits after each turn (e.g.
            ``<end_of_turn>``, ``<|im_end|>``), or ``None`` if it is not one token.
        pad_id: padding id; never equal to any end id.
        end_ids: every end-of-generation id, sorted and unique.
        add_bos: encoding must prepend BOS (the tokenizer adds BOS and the rendered template
            does not already start with the BOS text).
    """

    bos_id: int | None
    eos_id: int
    eot_id: int | None
    pad_id: int
    end_ids: tuple[int, ...]
    add_bos: bool


def special_tokens_for(model_dir: str | Path | None, tokenizer: Any,
                       template: ChatTemplate) -> SpecialTokens:
    """Reconcile the special tokens of a model folder, its tokenizer and a chat template.

    Args:
        model_dir: the Hugging Face folder (``config.json`` and ``generation_config.json`` are
            read if present), or ``None`` when only a tokenizer is at hand (e.g. from a GGUF).
        tokenizer: the transformers tokenizer (not modified).
        template: the chat template used for training and chat.

    Returns:
        The table; ``end_ids`` holds the tokenizer EOS, the end-of-turn id and every
        ``eos_token_id`` from the config files (CASES C07).

    Raises:
        ModelLoadError: the model has no EOS at all, or no token can pad without resizing.
    """
    folder_ids = _folder_eos_ids(model_dir)
    eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else _first(folder_ids)
    if eos_id is None:
        raise ModelLoadError("the tokenizer has no EOS token and config.json names no eos_token_id; "
                             "the model cannot learn to stop. Use a model with an EOS token.")
    eot_id = end_of_turn_id(tokenizer, template)
    end_ids = tuple(sorted({eos_id, *folder_ids, *([eot_id] if eot_id is not None else [])}))
    return SpecialTokens(bos_id=tokenizer.bos_token_id, eos_id=eos_id, eot_id=eot_id,
                         pad_id=_choose_pad(tokenizer, end_ids), end_ids=end_ids,
                         add_bos=_must_add_bos(tokenizer, template))


def prepare_tokenizer(tokenizer: Any) -> int:
    """Make sure ``tokenizer.pad_token`` is set and is not an end-of-generation token.

    Prefers an existing unused token (``<pad>``, ``<unk>``, a reserved token) so that no
    embedding resize is needed. Modifies ``tokenizer`` in place.

    Returns:
        The pad id.

    Raises:
        ModelLoadError: no such token exists; padding would need a new token and a resized
            embedding matrix, which Tunesmith does not do.
    """
    end_ids = {tokenizer.eos_token_id, *_vocab_end_ids(tokenizer)} - {None}
    pad_id = _choose_pad(tokenizer, tuple(end_ids))
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id)
    return pad_id


def end_of_turn_text(tokenizer: Any, template: ChatTemplate) -> str:
    """The text the template emits right after an assistant answer, whitespace stripped.

    E.g. ``"<|im_end|>"`` for ChatML, ``"<end_of_turn>"`` for Gemma, the EOS text for Zephyr.
    """
    before = render_for(tokenizer, template, _PROBE[:1], add_generation_prompt=True)
    through = render_for(tokenizer, template, _PROBE)
    answer = through[len(before):] if through.startswith(before) else through
    at = answer.find(_PROBE_ANSWER)
    return answer[at + len(_PROBE_ANSWER):].strip() if at >= 0 else ""


def end_of_turn_id(tokenizer: Any, template: ChatTemplate) -> int | None:
    """The id of :func:`end_of_turn_text` if it is exactly one token, else ``None``."""
    text = end_of_turn_text(tokenizer, template)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
    return ids[0] if len(ids) == 1 else None


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """Whether ``tokenizer(text)`` (with special tokens) starts with the BOS id."""
    if tokenizer.bos_token_id is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def _must_add_bos(tokenizer: Any, template: ChatTemplate) -> bool:
    """BOS policy: prepend BOS only if the tokenizer would and the template does not (C14)."""
    if not tokenizer_adds_bos(tokenizer):
        return False
    return not render_for(tokenizer, template, _PROBE[:1]).startswith(tokenizer.bos_token)



def _folder_eos_ids(model_dir: str | Path | None) -> list[int]:
    """Every ``eos_token_id`` (int or list) in ``config.json`` and ``generation_config.json``."""
    ids: list[int] = []
    if model_dir is None:
        return ids
    for name in ("config.json", "generation_config.json"):
        path = Path(model_dir) / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{path}: cannot read JSON ({exc}); restore the file") from exc
        value = data.get("eos_token_id", data.get("text_config", {}).get("eos_token_id"))
        ids.extend(value if isinstance(value, list) else [] if value is None else [value])
    return [int(i) for i in ids]


def _vocab_end_ids(tokenizer: Any) -> list[int]:
    """Ids of the known end-of-turn markers present in the vocabulary."""
    vocab = tokenizer.get_vocab()
    return [vocab[text] for text in END_TOKEN_TEXTS if text in vocab]


def _choose_pad(tokenizer: Any, end_ids: tuple[int, ...]) -> int:
    """An existing token id that may pad: the current pad, a pad/unk token or a reserved one."""
    forbidden = set(end_ids) | set(_vocab_end_ids(tokenizer))
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id not in forbidden:
        return tokenizer.pad_token_id
    vocab = tokenizer.get_vocab()
    for text in PAD_CANDIDATES:
        if text in vocab and vocab[text] not in forbidden:
            return vocab[text]
    reserved = sorted(i for t, i in vocab.items() if RESERVED_PATTERN.match(t) and i not in forbidden)
    if reserved:
        return reserved[0]
    raise ModelLoadError("the tokenizer has no token usable for padding (pad, unk or reserved) "
                         "other than an end-of-generation token; padding would need a new token "
                         "and a resized embedding matrix, which Tunesmith does not do. Use a "
                         "tokenizer with a <pad> or <unk> token.")


def _first(ids: list[int]) -> int | None:
    return ids[0] if ids else None
