"""Chatting with a GGUF through llama.cpp: sampling settings, history fitting and streaming.

The prompt is rendered with our own chat template code (:mod:`engine.templates`) with the
template recorded for the run, or the GGUF's ``tokenizer.chat_template``; never a format
guessed from the vocabulary (CASES C12). The rendered text is tokenized with special tokens
parsed and the same BOS policy as training, exactly one BOS (C14). Generation stops on every
end-of-generation id and on any control token, so role headers never reach the reply (C23).

Threads: a :class:`ChatModel` owns one ``llama_cpp.Llama``; llama.cpp contexts are not
thread-safe, so one thread at a time may call :meth:`ChatModel.stream`. A second concurrent
call raises :class:`EngineError` instead of corrupting the context. :meth:`ChatModel.close`
frees the native memory deterministically (also via ``with ChatModel(...) as chat:``).
"""

from __future__ import annotations

import codecs
import os
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Union

from engine.chat_history import check_messages, fit_history
from engine.configs import check_range, option
from engine.errors import ConfigError, EngineError, ModelLoadError
from engine.llama_runtime import GgufInfo, load_llama, read_gguf_info
from engine.progress import CancelToken
from engine.templates import ChatTemplate, render, resolve_template


@dataclass(frozen=True)
class SamplingConfig:
    """How the next token is chosen (llama.cpp sampler chain: penalties, top-k, top-p, min-p,
    temperature)."""

    temperature: float = option(0.7, "Randomness; 0 always picks the most likely token "
                                      "(greedy, reproducible). Typical 0.2-1.0.")
    top_p: float = option(0.95, "Nucleus sampling: keep the smallest set of tokens whose "
                                "probabilities add up to this (0-1]; 1 turns it off.")
    top_k: int = option(40, "Keep only the k most likely tokens; 0 turns it off.")
    min_p: float = option(0.05, "Drop tokens less likely than this share of the top token's "
                                "probability [0-1); 0 turns it off.")
    repeat_penalty: float = option(1.1, "Penalty on recently used tokens; 1 turns it off, "
                                        "1.1-1.3 reduces loops.")
    max_tokens: int = option(512, "The most tokens in one reply; capped to the room left in "
                                  "the context.")
    seed: int = option(0, "Random seed (a non-negative integer); the same seed, settings and "
                          "history give the same reply.")

    def __post_init__(self) -> None:
        check_range("temperature", self.temperature, low=0.0, high=5.0)
        check_range("top_p", self.top_p, low=0.0, high=1.0, low_open=True)
        check_range("min_p", self.min_p, low=0.0, high=1.0)
        check_range("repeat_penalty", self.repeat_penalty, low=0.0, high=5.0, low_open=True)
        for name in ("top_k", "max_tokens", "seed"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be an integer; got {getattr(self, name)!r}")
        check_range("top_k", self.top_k, low=0)
        check_range("max_tokens", self.max_tokens, low=1)
        check_range("seed", self.seed, low=0, high=2**32 - 2)


@dataclass(frozen=True)
class ChatDelta:
    """A piece of reply text, complete UTF-8 characters only."""

    text: str


@dataclass(frozen=True)
class ChatFinished:
    """The last event of a reply.

    Attributes:
        finish_reason: ``"stop"`` (end of turn), ``"length"`` (max tokens) or ``"cancelled"``.
        prompt_tokens: tokens in the prompt actually sent (after trimming).
        completion_tokens: tokens generated (the end-of-turn token not counted).
        tokens_per_second: generated tokens per second of generation (prompt processing
            excluded); 0.0 when nothing was generated.
        trimmed: oldest history messages dropped to fit the context (show a notice when > 0).
        max_tokens: the reply budget used, after capping to the room left in the context.
    """

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tokens_per_second: float
    trimmed: int
    max_tokens: int


ChatEvent = Union[ChatDelta, ChatFinished]


@dataclass(frozen=True)
class ChatReply:
    """A whole reply: its text and the final event's statistics."""

    text: str
    finished: ChatFinished


class ChatModel:
    """One GGUF loaded for chat. Use from one thread at a time; ``close()`` when done.

    Args:
        gguf_path: the model file.
        chat_template: the template recorded for the run: a name from
            :data:`engine.templates.TEMPLATES` (``"gemma"``, ``"chatml"``...), or Jinja text.
            ``None`` uses the GGUF's ``tokenizer.chat_template``.
        n_ctx: context size in tokens; ``None`` uses the model's trained context within a
            memory budget (see :func:`engine.llama_runtime.choose_n_ctx`).
        n_threads: CPU threads for generation; ``None`` = llama-cpp-python's default (half
            the logical CPUs).
        adapter: a LoRA adapter GGUF (:mod:`engine.adapter_gguf`) applied on top of the base
            ``gguf_path`` without merging; switch it later with :meth:`set_adapter`.

    Raises:
        ModelLoadError: the file cannot be loaded, the adapter does not fit the base, or
            neither the caller nor the GGUF gives a chat template (CASES C12).
        ConfigError: ``chat_template`` is not a known name nor Jinja text.
    """

    def __init__(self, gguf_path: str | os.PathLike[str], *, chat_template: str | None = None,
                 n_ctx: int | None = None, n_threads: int | None = None,
                 adapter: str | os.PathLike[str] | None = None) -> None:
        self.info: GgufInfo = read_gguf_info(gguf_path)
        self.template = _chat_template(gguf_path, chat_template, self.info.chat_template)
        self._stops = frozenset(self.info.eog_ids) | frozenset(self.info.control_ids)
        self._busy = threading.Lock()
        self._llama: Any = load_llama(gguf_path, n_ctx=n_ctx, n_threads=n_threads,
                                      lora_path=adapter)

    @property
    def n_ctx(self) -> int:
        """The loaded context size in tokens."""
        return int(self._llama_or_raise().n_ctx())

    @property
    def adapter(self) -> Path | None:
        """The LoRA adapter GGUF applied on the base, or ``None``."""
        from engine.llama_lora import current_lora

        return current_lora(self._llama_or_raise())

    def set_adapter(self, adapter: str | os.PathLike[str] | None, scale: float = 1.0) -> None:
        """Switch to another LoRA adapter GGUF on the same base (``None`` = base only).

        Takes well under a second: the base stays loaded, only the adapter is read. Not while
        a reply is streaming (same thread rule as :meth:`stream`).

        Raises:
            ModelLoadError: the adapter is missing or was made for another base model.
            EngineError: the model is closed or busy with a reply.
        """
        from engine.llama_lora import set_lora

        llama = self._llama_or_raise()
        if not self._busy.acquire(blocking=False):
            raise EngineError("the chat model is busy with a reply; switch adapters after it")
        try:
            set_lora(llama, adapter, scale)
        finally:
            self._busy.release()

    def prompt_tokens(self, messages: list[dict]) -> list[int]:
        """Token ids of ``messages`` plus the generation prompt, with exactly one BOS.

        Raises:
            DataError: malformed messages or a template that rejects them.
        """
        llama = self._llama_or_raise()
        text = render(self.template, messages, bos_token=self.info.bos_text,
                      eos_token=self.info.eos_text, add_generation_prompt=True)
        ids = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        # Same policy as training (engine.tokens): add BOS when the model adds one and the
        # template did not already render it, so the prompt holds exactly one BOS.
        if self.info.add_bos and self.info.bos_id >= 0 and ids[:1] != [self.info.bos_id]:
            ids = [self.info.bos_id, *ids]
        return ids

    def stream(self, messages: list[dict], sampling: SamplingConfig | None = None, *,
               cancel: CancelToken | None = None) -> Iterator[ChatEvent]:
        """Generate the assistant's next turn, yielding text as it is produced.

        Args:
            messages: the history, ``[{"role": "system"|"user"|"assistant", "content": str}]``,
                ending with the user's message.
            sampling: sampling settings (default :class:`SamplingConfig`).
            cancel: polled between tokens; cancelling ends the stream with ``"cancelled"``.

        Yields:
            :class:`ChatDelta` pieces, then one :class:`ChatFinished`.

        Raises:
            DataError: malformed messages, or the last user message alone does not fit.
            EngineError: the model is closed or busy on another thread.
        """
        sampling = sampling or SamplingConfig()
        check_messages(messages)
        if not self._busy.acquire(blocking=False):
            raise EngineError("the chat model is busy with another reply; wait for it to finish")
        try:
            yield from self._generate(messages, sampling, cancel)
        finally:
            self._busy.release()

    def reply(self, messages: list[dict], sampling: SamplingConfig | None = None, *,
              cancel: CancelToken | None = None) -> ChatReply:
        """The whole reply at once: the concatenation of :meth:`stream`."""
        pieces: list[str] = []
        finished = None
        for event in self.stream(messages, sampling, cancel=cancel):
            if isinstance(event, ChatDelta):
                pieces.append(event.text)
            else:
                finished = event
        assert finished is not None  # stream always ends with ChatFinished
        return ChatReply("".join(pieces), finished)

    def close(self) -> None:
        """Free the model's native memory now (idempotent)."""
        llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()

    def __enter__(self) -> ChatModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _generate(self, messages: list[dict], sampling: SamplingConfig,
                  cancel: CancelToken | None) -> Iterator[ChatEvent]:
        llama = self._llama_or_raise()
        kept, trimmed, budget = fit_history(messages, self._count, self.n_ctx, sampling.max_tokens)
        prompt = self.prompt_tokens(kept)
        llama.set_seed(sampling.seed)
        # Start from an empty cache every reply: reusing a cached prefix changes how the prompt
        # is split into decode batches, which changes logits in the last bits and can flip
        # greedy choices, so the same history would not give the same reply.
        llama.reset()
        tokens = llama.generate(prompt, temp=sampling.temperature, top_k=sampling.top_k,
                                top_p=sampling.top_p, min_p=sampling.min_p,
                                repeat_penalty=sampling.repeat_penalty, reset=True)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        reason, count, first_at = "length", 0, None
        for token in tokens:
            first_at = first_at or time.perf_counter()
            if token in self._stops:
                reason = "stop"
                break
            count += 1
            # Pieces may end inside a multi-byte character: the decoder holds those bytes back.
            text = decoder.decode(llama.detokenize([token], special=False))
            if text:
                yield ChatDelta(text)
            if cancel is not None and cancel.cancelled:
                reason = "cancelled"
                break
            if count >= budget:
                break
        tail = decoder.decode(b"", final=True)
        if tail:
            yield ChatDelta(tail)
        seconds = time.perf_counter() - first_at if first_at else 0.0
        yield ChatFinished(reason, len(prompt), count, count / seconds if seconds > 0 and count else 0.0,
                           trimmed, budget)

    def _count(self, messages: list[dict]) -> int:
        return len(self.prompt_tokens(messages))

    def _llama_or_raise(self) -> Any:
        if self._llama is None:
            raise EngineError("the chat model was closed; load it again")
        return self._llama


def _chat_template(gguf_path: Any, requested: str | None, embedded: str | None) -> ChatTemplate:
    """The template to chat with: the caller's, else the GGUF's own; never a guess (C12)."""
    if requested is None and not embedded:
        raise ModelLoadError(
            f"{gguf_path}: this GGUF has no chat template (tokenizer.chat_template), so the "
            "conversation format is unknown. Choose the template the model was trained with "
            "(for a fine-tuned model, the one recorded with its training run).")
    # resolve_template reads only ``chat_template`` here: named and Jinja requests return
    # before any vocabulary lookup, and requested=None always finds the embedded template.
    holder = types.SimpleNamespace(chat_template=embedded)
    return resolve_template(holder, requested if requested is not None else "model")

