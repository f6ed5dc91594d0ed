"""Base models: describe a local Hugging Face folder without loading its weights.

:func:`inspect_model` reads ``config.json``, the tokenizer files and the safetensors headers
only, so describing a model costs milliseconds and no RAM for weights. The built-in base model
(Gemma 3 270M, shipped as a GGUF inside a Python package) is in :mod:`engine.gguf_import`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError
from engine.gguf_import import builtin_base_model, import_gguf_model  # noqa: F401  (re-exported)
from engine.hf_files import (read_json, read_tokenizer_vocab, safetensors_headers,
                             weight_files)

# Tokens that end an assistant turn in the chat formats we know (format knowledge as data).
# A token counts as end-of-turn for a model only if its chat template uses it.
END_OF_TURN_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<turn|>",
                      "<|endoftext|>", "</s>")
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
_SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                      "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


@dataclass(frozen=True)
class ModelInfo:
    """What the app needs to know about a base or merged model folder.

    Attributes:
        name: folder name, used as the display name.
        path: the model folder.
        architecture: transformers class name, e.g. ``"Gemma3ForCausalLM"``.
        parameter_count: number of stored weights (tied embeddings counted once).
        dtype: stored floating dtype of the weights, e.g. ``"bfloat16"``.
        context_length: maximum positions in tokens, or ``None`` when the config has none.
        chat_template: the Jinja chat template, or ``None`` for a base model without one.
        special: token ids ``{"bos", "eos", "pad", "eot", "end_ids"}``; ``end_ids`` lists every
            end-of-generation id (eos first); ``eot`` is the end-of-turn id or ``None``.
        source: where the folder came from, e.g. ``"hf-folder"`` or ``"gguf-import:<file>"``.
    """

    name: str
    path: Path
    architecture: str
    parameter_count: int
    dtype: str
    context_length: int | None
    chat_template: str | None
    special: dict[str, Any] = field(default_factory=dict)
    source: str = "hf-folder"


def inspect_model(path: str | Path, *, allow_custom_code: bool = False) -> ModelInfo:
    """Describe a local Hugging Face model folder without loading its weights.

    Args:
        path: folder holding ``config.json``, ``*.safetensors`` and tokenizer files.
        allow_custom_code: accept a model that ships its own Python code (``auto_map``).
            Off by default because that code would run on this machine.

    Returns:
        A :class:`ModelInfo`.

    Raises:
        ModelLoadError: the folder lacks config, weights or tokenizer, the architecture is
            unknown to transformers, or the model needs custom code and it was not allowed.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ModelLoadError(f"Model folder {folder} does not exist.")
    config = read_json(folder / "config.json", what="model config")
    _check_custom_code(folder, config, allow_custom_code)
    architecture = _architecture(folder, config, allow_custom_code)
    headers = safetensors_headers(weight_files(folder))
    template, special = special_tokens(folder, config)
    return ModelInfo(
        name=folder.name, path=folder, architecture=architecture,
        parameter_count=parameter_count(headers), dtype=stored_dtype(headers, config),
        context_length=_context_length(config), chat_template=template, special=special,
        source=str(read_json(folder / "tunesmith_source.json", missing_ok=True).get("source", "hf-folder")),
    )


def parameter_count(headers: dict[str, dict]) -> int:
    """Total elements of all tensors in safetensors ``headers`` (name -> {dtype, shape})."""
    return sum(math.prod(meta["shape"]) for meta in headers.values())


def stored_dtype(headers: dict[str, dict], config: dict) -> str:
    """The floating dtype holding most weights (by bytes), else the config's ``dtype``."""
    totals: dict[str, int] = {}
    for meta in headers.values():
        name = _DTYPE_NAMES.get(meta["dtype"])
        if name:
            totals[name] = totals.get(name, 0) + math.prod(meta["shape"])
    if totals:
        return max(totals, key=totals.get)
    return str(config.get("dtype") or config.get("torch_dtype") or "unknown")


def special_tokens(folder: Path, config: dict,
                   template: str | None = None) -> tuple[str | None, dict[str, Any]]:
    """Read the chat template and the reconciled special-token table of a model folder.

    End-of-generation ids are the union of ``config.json`` ``eos_token_id``,
    ``generation_config.json`` ``eos_token_id`` (int or list), the tokenizer's EOS token and
    the end-of-turn token its chat template uses (CASES C07).

    Args:
        folder: the model folder.
        config: its parsed ``config.json``.
        template: a chat template to use instead of the folder's own.

    Returns:
        ``(chat_template, {"bos", "eos", "pad", "eot", "end_ids"})``.

    Raises:
        ModelLoadError: no tokenizer files in ``folder``.
    """
    tok_config = read_json(folder / "tokenizer_config.json", missing_ok=True)
    vocab = read_tokenizer_vocab(folder)
    template = template or chat_template_of(folder, tok_config)
    generation = read_json(folder / "generation_config.json", missing_ok=True)

    def token_id(key: str) -> int | None:
        token = tok_config.get(key)
        token = token.get("content") if isinstance(token, dict) else token
        return vocab.get(token) if isinstance(token, str) else None

    eos = token_id("eos_token")
    eos = eos if eos is not None else _first(config.get("eos_token_id"))
    eot = end_of_turn_id(template, vocab)
    end_ids = _unique([eos, *_as_list(config.get("eos_token_id")),
                       *_as_list(generation.get("eos_token_id")), eot])
    pad = token_id("pad_token")
    special = {"bos": token_id("bos_token") if token_id("bos_token") is not None
               else _first(config.get("bos_token_id")),
               "eos": eos, "pad": pad if pad is not None else _first(config.get("pad_token_id")),
               "eot": eot, "end_ids": end_ids}
    return template, special


def chat_template_of(folder: Path, tok_config: dict) -> str | None:
    """The chat template from ``tokenizer_config.json`` or ``chat_template.jinja``, if any."""
    template = tok_config.get("chat_template")
    jinja = folder / "chat_template.jinja"
    if template is None and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    if isinstance(template, list):  # named templates: the default one is used for chat
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return template


def end_of_turn_id(template: str | None, vocab: dict[str, int]) -> int | None:
    """Id of the first known end-of-turn token that ``template`` uses and the vocab has."""
    if not template:
        return None
    for token in END_OF_TURN_TOKENS:
        if token in template and token in vocab:
            return vocab[token]
    return None


def _check_custom_code(folder: Path, config: dict, allowed: bool) -> None:
    tok_config = read_json(folder / "tokenizer_config.json", missing_ok=True)
    if allowed or not ("auto_map" in config or "auto_map" in tok_config):
        return
    raise ModelLoadError(
        f"The model in {folder} needs custom code (config.json or tokenizer_config.json has "
        "'auto_map'), which would run Python code shipped with the model. Tunesmith does not "
        "run it by default. If you trust the model's source, allow custom code for it "
        "(allow_custom_code=True / --allow-custom-code).")


def _architecture(folder: Path, config: dict, allow_custom_code: bool) -> str:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    architectures = config.get("architectures") or []
    if not architectures:
        raise ModelLoadError(f"{folder / 'config.json'} has no 'architectures' entry, so the "
                             "model class is unknown; is this a causal language model folder?")
    name = architectures[0]
    known = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if name in known or (allow_custom_code and "auto_map" in config):
        return name
    model_type = config.get("model_type")
    hint = ("" if model_type in CONFIG_MAPPING_NAMES else
            f" (model_type {model_type!r} is unknown to this transformers version)")
    raise ModelLoadError(f"{folder / 'config.json'}: architecture {name!r} is not a causal "
                         f"language model this version of transformers supports{hint}.")


def _context_length(config: dict) -> int | None:
    for key in _CONTEXT_KEYS:
        if isinstance(config.get(key), int):
            return config[key]
    return None


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _first(value: Any) -> int | None:
    values = _as_list(value)
    return values[0] if values else None


def _unique(ids: list) -> list[int]:
    out: list[int] = []
    for item in ids:
        if isinstance(item, int) and item not in out:
            out.append(item)
    return out
