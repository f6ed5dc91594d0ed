"""Loading GGUF models with llama.cpp (llama-cpp-python) safely, and reading their metadata.

Two hazards shape this module:

* **AMX crash.** On Intel CPUs with AMX (Sapphire Rapids and later), llama.cpp's AMX "extra
  buffer type" (weight repacking into AMX tiles) crashes the process with a segfault in
  ``ggml_backend_amx_mul_mat`` as soon as a q8_0 or q4_k_m model generates (seen with
  llama-cpp-python 0.3.36 during development; f16 models are not repacked and work). The model
  parameter ``use_extra_bufts = false`` avoids it. ``llama_cpp.Llama`` 0.3.36 has no argument
  for it and silently swallows unknown keyword arguments (``**kwargs``), so passing
  ``use_extra_bufts=False`` to ``Llama`` does nothing. We therefore patch
  ``llama_model_default_params`` for the duration of the load (under a lock). Extra buffer
  types are turned off when the CPU reports AMX or the llama.cpp build contains AMX code, and
  stay on elsewhere because the same mechanism gives other CPUs faster repacked kernels.
* **Context size.** ``Llama`` defaults to ``n_ctx=512`` whatever the model was trained with
  (CASES C24). We take the model's trained context (``<arch>.context_length``), capped by
  :data:`DEFAULT_MAX_CTX` and a KV-cache memory budget, or the user's setting.

A ``Llama`` must be used from one thread at a time; callers own it and call ``close()``.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterator

from engine.errors import ConfigError, ModelLoadError

DEFAULT_MAX_CTX = 8192  # tokens; enough for chat history, a user setting can raise it
KV_BUDGET_BYTES = 2 << 30  # the f16 KV cache may take at most this much by default
_AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16")
_LOAD_LOCK = threading.Lock()
_LOG_CALLBACK: Any = None  # the ctypes log callback; kept alive for the process lifetime


@dataclass(frozen=True)
class GgufInfo:
    """What a GGUF says about itself (read without loading the weights).

    Attributes:
        architecture: ``general.architecture``, e.g. ``"gemma3"``.
        context_length: trained context in tokens (``<arch>.context_length``), 0 if absent.
        kv_bytes_per_token: f16 KV-cache bytes per token of context (0 when unknown).
        chat_template: ``tokenizer.chat_template`` or ``None``.
        bos_id, eos_id, eot_id: special token ids (-1 when the model has none).
        add_bos: whether the tokenizer adds BOS (``tokenizer.ggml.add_bos_token``).
        eog_ids: every end-of-generation id (``llama_vocab_is_eog``), sorted.
        control_ids: every control token id (template markers such as ``<start_of_turn>``,
            BOS, EOS), sorted; a reply never shows these.
        bos_text, eos_text: the BOS/EOS token text (for rendering chat templates).
    """

    architecture: str
    context_length: int
    kv_bytes_per_token: int
    chat_template: str | None
    bos_id: int
    eos_id: int
    eot_id: int
    add_bos: bool
    eog_ids: tuple[int, ...]
    control_ids: tuple[int, ...]
    bos_text: str
    eos_text: str


def cpu_has_amx(cpuinfo: str | None = None) -> bool:
    """Whether the CPU reports Intel AMX (``amx_tile``/``amx_int8``/``amx_bf16`` flags).

    Args:
        cpuinfo: text of ``/proc/cpuinfo``; read from the system when ``None``. On systems
            without that file (Windows, macOS) returns ``False``; :func:`extra_bufts_safe`
            also asks the llama.cpp build.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    flags = set(re.findall(r"\b(amx_\w+)\b", cpuinfo))
    return any(flag in flags for flag in _AMX_FLAGS)


def build_has_amx() -> bool:
    """Whether the installed llama.cpp was compiled with its AMX code (``AMX_INT8 = 1``)."""
    import llama_cpp

    return "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode("utf-8", "replace")


def extra_bufts_safe() -> bool:
    """Whether llama.cpp's extra buffer types (weight repacking) may be used on this machine.

    ``TUNESMITH_LLAMA_EXTRA_BUFTS=0/1`` overrides the detection (for support cases).
    """
    forced = os.environ.get("TUNESMITH_LLAMA_EXTRA_BUFTS")
    if forced in ("0", "1"):
        return forced == "1"
    return not (cpu_has_amx() or build_has_amx())


def quiet_llama_logs() -> None:
    """Route llama.cpp's log lines to the ``tunesmith.llama_cpp`` logger at DEBUG level.

    llama-cpp-python prints llama.cpp's logs to stderr, and llama.cpp reports benign things at
    error level (e.g. Gemma's "control-looking token 212 '</s>' was not control-type"), so
    every load would print. Real failures surface as exceptions from the load and decode calls,
    so all log lines go to DEBUG. Installed once; the callback must stay referenced.
    """
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    import ctypes
    import logging

    import llama_cpp

    log = logging.getLogger("tunesmith.llama_cpp")

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: Any) -> None:
        log.debug("%s", text.decode("utf-8", "replace").rstrip())

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    _LOG_CALLBACK = callback


def gpu_offload_available() -> bool:
    """Whether the installed llama.cpp can offload layers to a GPU (CUDA/Metal/Vulkan build)."""
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


@contextlib.contextmanager
def _model_params(*, use_extra_bufts: bool) -> Iterator[None]:
    """Make ``llama_model_default_params()`` return ``use_extra_bufts`` while a model loads.

    ``Llama.__init__`` builds its model params from that function and has no argument for the
    field; the lock keeps two loads from racing on the patched module attribute.
    """
    import llama_cpp.llama_cpp as low

    original = low.llama_model_default_params

    def patched() -> Any:
        params = original()
        params.use_extra_bufts = use_extra_bufts
        return params

    with _LOAD_LOCK:
        low.llama_model_default_params = patched
        try:
            yield
        finally:
            low.llama_model_default_params = original


def read_gguf_info(gguf_path: str | os.PathLike[str]) -> GgufInfo:
    """Read a GGUF's metadata and special-token table by loading only its vocabulary.

    Raises:
        ModelLoadError: the file is missing or llama.cpp cannot read it.
    """
    import llama_cpp.llama_cpp as low

    quiet_llama_logs()
    path = _existing(gguf_path)
    params = low.llama_model_default_params()
    params.vocab_only = True
    model = low.llama_model_load_from_file(str(path).encode("utf-8"), params)
    if not model:
        raise ModelLoadError(f"{path}: llama.cpp could not read this GGUF file; it may be "
                             "damaged or from a newer llama.cpp. Re-export it.")
    try:
        return _info_from_model(low, model)
    finally:
        low.llama_model_free(model)


def _info_from_model(low: Any, model: Any) -> GgufInfo:
    meta = _meta_reader(low, model)
    arch = meta("general.architecture") or ""
    vocab = low.llama_model_get_vocab(model)
    bos, eos = int(low.llama_vocab_bos(vocab)), int(low.llama_vocab_eos(vocab))
    n_vocab = low.llama_vocab_n_tokens(vocab)
    control = low.LLAMA_TOKEN_ATTR_CONTROL
    return GgufInfo(
        architecture=arch,
        # llama_model_n_ctx_train() is 0 for a vocab-only load: read the key itself.
        context_length=_int_or_zero(meta(f"{arch}.context_length")),
        kv_bytes_per_token=_kv_bytes_per_token(meta, arch),
        chat_template=meta("tokenizer.chat_template"),
        bos_id=bos,
        eos_id=eos,
        eot_id=int(low.llama_vocab_eot(vocab)),
        add_bos=bool(low.llama_vocab_get_add_bos(vocab)),
        eog_ids=tuple(t for t in range(n_vocab) if low.llama_vocab_is_eog(vocab, t)),
        control_ids=tuple(t for t in range(n_vocab) if low.llama_vocab_get_attr(vocab, t) & control),
        bos_text=_token_text(low, vocab, bos),
        eos_text=_token_text(low, vocab, eos),
    )


def _int_or_zero(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _token_text(low: Any, vocab: Any, token: int) -> str:
    if token < 0:
        return ""
    return low.llama_vocab_get_text(vocab, token).decode("utf-8", "replace")


def _meta_reader(low: Any, model: Any) -> Any:
    import ctypes

    def meta(key: str) -> str | None:
        size = 256
        while True:
            buf = ctypes.create_string_buffer(size)
            n = low.llama_model_meta_val_str(model, key.encode("utf-8"), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", "replace")
            size = n + 1

    return meta


def _kv_bytes_per_token(meta: Any, arch: str) -> int:
    """f16 K+V bytes per context token: layers x KV heads x (key + value length) x 2 bytes."""
    try:
        layers = int(meta(f"{arch}.block_count"))
        heads = int(meta(f"{arch}.attention.head_count"))
        kv_heads = int(meta(f"{arch}.attention.head_count_kv") or heads)
        head_dim = int(meta(f"{arch}.embedding_length")) // heads
        k_len = int(meta(f"{arch}.attention.key_length") or head_dim)
        v_len = int(meta(f"{arch}.attention.value_length") or head_dim)
    except (TypeError, ValueError):
        return 0  # per-layer arrays or missing keys: fall back to DEFAULT_MAX_CTX alone
    return layers * kv_heads * (k_len + v_len) * 2


def choose_n_ctx(info: GgufInfo, requested: int | None = None) -> int:
    """The context size to load with, in tokens.

    ``requested`` (the user's setting) wins but is capped at the trained context. Otherwise the
    trained context capped by :data:`DEFAULT_MAX_CTX` and :data:`KV_BUDGET_BYTES` (never the
    512 that ``llama_cpp.Llama`` would use, CASES C24).

    Raises:
        ConfigError: ``requested`` is below 16 tokens.
    """
    trained = info.context_length or DEFAULT_MAX_CTX
    if requested is not None:
        if requested < 16:
            raise ConfigError(f"n_ctx must be at least 16 tokens; got {requested}")
        return min(requested, trained)
    by_memory = KV_BUDGET_BYTES // info.kv_bytes_per_token if info.kv_bytes_per_token else trained
    return max(256, min(trained, DEFAULT_MAX_CTX, by_memory))


def load_llama(gguf_path: str | os.PathLike[str], *, n_ctx: int | None = None,
               n_threads: int | None = None, logits_all: bool = False,
               n_gpu_layers: int | None = None, seed: int = 0, n_batch: int = 512,
               lora_path: str | os.PathLike[str] | None = None, lora_scale: float = 1.0) -> Any:
    """Load a GGUF as a ``llama_cpp.Llama`` with AMX-safe parameters and a real context size.

    Args:
        gguf_path: the model file.
        n_ctx: context size in tokens; ``None`` chooses with :func:`choose_n_ctx`.
        n_threads: CPU threads; ``None`` uses one per physical core
            (:func:`engine.devices.cpu_thread_count`; llama-cpp-python's own default is half
            the logical CPUs, i.e. one thread on a 2-core machine).
        logits_all: keep logits for every position (needed by ``Llama.eval`` callers that
            read ``scores``; costs n_ctx x vocab x 4 bytes).
        n_gpu_layers: layers to offload; ``None`` = all on a GPU build, 0 on a CPU build.
        seed: sampling seed (0 is a valid fixed seed here).
        n_batch: tokens per decode call (also bounds the logits buffer).
        lora_path: a LoRA adapter GGUF to apply on top (:mod:`engine.adapter_gguf` makes
            them); switch or remove it later with :func:`engine.llama_lora.set_lora`.
        lora_scale: multiplier of the adapter's ``alpha / rank`` scaling (1.0 = as trained).

    Returns:
        The loaded ``llama_cpp.Llama``; the caller owns it and must ``close()`` it.

    Raises:
        ModelLoadError: the file is missing, llama.cpp cannot load it, or the adapter does
            not fit the model.
    """
    import llama_cpp

    from engine.devices import cpu_thread_count
    from engine.llama_lora import set_lora

    quiet_llama_logs()
    path = _existing(gguf_path)
    n_threads = n_threads or cpu_thread_count()
    ctx = choose_n_ctx(read_gguf_info(path), n_ctx)
    layers = n_gpu_layers if n_gpu_layers is not None else (-1 if gpu_offload_available() else 0)
    try:
        with _model_params(use_extra_bufts=extra_bufts_safe()):
            llama = llama_cpp.Llama(
                str(path), n_ctx=ctx, n_threads=n_threads, logits_all=logits_all,
                n_gpu_layers=layers, n_batch=min(n_batch, ctx), verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{path}: llama.cpp could not load the model ({exc}). Check that the "
                             "file is a complete GGUF and that there is enough memory.") from exc
    if lora_path:
        # Not Llama(lora_path=...): that turns off mmap and fixes the adapter for the model's life.
        try:
            set_lora(llama, lora_path, lora_scale)
        except ModelLoadError:
            llama.close()
            raise
    llama.set_seed(seed)  # set_seed keeps 0; the constructor would turn seed=0 into "random"
    return llama


def gguf_chat_metadata(llama: Any) -> dict[str, Any]:
    """Chat-relevant metadata of a loaded model.

    Returns:
        The fields of :class:`GgufInfo` (``chat_template``, ``bos_id``, ``eos_id``, ``eot_id``,
        ``add_bos``, ``eog_ids``, ``control_ids``, ``context_length`` = trained context, ...)
        plus ``n_ctx``, the loaded context size in tokens.
    """
    import dataclasses

    import llama_cpp.llama_cpp as low

    return {**dataclasses.asdict(_info_from_model(low, llama.model)), "n_ctx": llama.n_ctx()}


def position_logits(llama: Any, tokens: list[int], *, chunk: int = 64,
                    positions: Collection[int] | None = None) -> Iterator[tuple[int, Any]]:
    """Decode ``tokens`` from an empty cache and yield ``(position, logits)`` for each position
    in ``positions`` (default: every position), in increasing order.

    Only the requested positions go through the output head (llama.cpp's per-token logits
    flag), which matters for large vocabularies (Gemma: 262k).

    ``logits`` is a float32 numpy view of shape ``(n_vocab,)``: the model's next-token scores
    after ``tokens[: position + 1]``. It is only valid until the next item is requested.
    Works on a model loaded with ``logits_all=False``: only ``chunk`` rows are held at a time.

    Raises:
        ModelLoadError: llama.cpp failed to decode (e.g. more tokens than the context).
    """
    import llama_cpp._internals as internals
    import llama_cpp.llama_cpp as low
    import numpy as np

    if len(tokens) > llama.n_ctx():
        raise ModelLoadError(f"{len(tokens)} tokens do not fit the loaded context of {llama.n_ctx()}")
    llama.reset()
    low.llama_memory_clear(low.llama_get_memory(llama.ctx), True)
    chunk = max(1, min(chunk, llama.n_batch))
    n_vocab = llama.n_vocab()
    batch = internals.LlamaBatch(n_tokens=chunk, embd=0, n_seq_max=1, verbose=False)
    try:
        for start in range(0, len(tokens), chunk):
            part = tokens[start:start + chunk]
            batch.set_batch(part, n_past=start, logits_all=True)
            wanted = [i for i in range(len(part)) if positions is None or start + i in positions]
            for i in range(len(part)):
                batch.batch.logits[i] = i in wanted
            if positions is not None and not any(p >= start for p in positions):
                break  # nothing left to score: skip decoding the rest
            if low.llama_decode(llama.ctx, batch.batch) != 0:
                raise ModelLoadError(f"llama.cpp failed to decode tokens {start}..{start + len(part)}")
            for i in wanted:
                row = low.llama_get_logits_ith(llama.ctx, i)
                yield start + i, np.ctypeslib.as_array(row, shape=(n_vocab,))
    finally:
        batch.close()
        llama.reset()  # the cache no longer matches Llama's own token record


def _existing(gguf_path: str | os.PathLike[str]) -> Path:
    path = Path(gguf_path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: GGUF file not found; export the model again or pick another file")
    return path
