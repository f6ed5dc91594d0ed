"""Applying, switching and removing LoRA adapter GGUFs on a loaded ``llama_cpp.Llama``.

llama-cpp-python's ``Llama(lora_path=...)`` applies one adapter for the model's lifetime and
turns off mmap for the base. Here the base is loaded once (mmap kept) and adapters are loaded
with ``llama_adapter_lora_init`` and set on the context with ``llama_set_adapters_lora``, so a
chat can switch fine-tunes in well under a second without reloading the base (issue 5).

Native ownership: an adapter belongs to the model it was loaded for. The one in use is freed
when it is replaced or removed, and before the model itself (the callback registered on the
``Llama``'s exit stack runs before the model and context are freed). Same thread rule as the
``Llama``: one thread at a time.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError

_ATTR = "_tunesmith_lora"


class LoraSlot:
    """The adapter applied to one ``Llama`` (at most one at a time)."""

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self._handle: Any = None
        self.path: Path | None = None
        self.scale = 1.0

    def apply(self, path: str | os.PathLike[str] | None, scale: float = 1.0) -> None:
        """Use adapter ``path`` at ``scale`` from the next decode on; ``None`` removes it.

        Raises:
            ModelLoadError: the file is missing, not a LoRA adapter GGUF, or made for another
                architecture or tensor shape than the loaded base.
        """
        import llama_cpp

        if path is None:
            self._set(None, 1.0)
            self._free()
            return
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"{path}: adapter GGUF not found; export the adapter again")
        if path == self.path:
            self._set(self._handle, scale)
            return
        handle = llama_cpp.llama_adapter_lora_init(self._llama.model, str(path).encode("utf-8"))
        if not handle:
            raise ModelLoadError(f"{path}: llama.cpp could not load this LoRA adapter. It must be an "
                                 "adapter GGUF exported for this base model (same architecture "
                                 "and sizes).")
        self._set(None, 1.0)
        self._free()
        self._handle, self.path = handle, path
        self._set(handle, scale)

    def close(self) -> None:
        """Detach and free the adapter (idempotent); runs before the model is freed."""
        if self._handle is not None and getattr(self._llama, "_ctx", None) is not None:
            self._set(None, 1.0)
        self._free()

    def _set(self, handle: Any, scale: float) -> None:
        import llama_cpp

        ctx = self._llama.ctx
        if handle is None:
            status = llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
        else:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(handle)
            scales = (ctypes.c_float * 1)(scale)
            status = llama_cpp.llama_set_adapters_lora(ctx, adapters, 1, scales)
        if status != 0:
            raise ModelLoadError(f"llama.cpp could not set the LoRA adapter {self.path} (status {status})")
        self.scale = scale
        # Cached keys/values were computed with the old weights: forget them.
        self._llama.reset()

    def _free(self) -> None:
        import llama_cpp

        handle, self._handle, self.path = self._handle, None, None
        if handle is not None:
            llama_cpp.llama_adapter_lora_free(handle)


def lora_slot(llama: Any) -> LoraSlot:
    """The :class:`LoraSlot` of ``llama``, created (and tied to its lifetime) on first use."""
    slot = getattr(llama, _ATTR, None)
    if slot is None:
        slot = LoraSlot(llama)
        setattr(llama, _ATTR, slot)
        # llama-cpp-python frees its own lora_path adapter the same way (Llama._stack callback),
        # so the adapter goes before the context and model it refers to.
        llama._stack.callback(slot.close)
    return slot


def set_lora(llama: Any, path: str | os.PathLike[str] | None, scale: float = 1.0) -> None:
    """Apply adapter GGUF ``path`` to ``llama`` at ``scale`` (``None`` = base model only).

    Raises:
        ModelLoadError: see :meth:`LoraSlot.apply`.
    """
    lora_slot(llama).apply(path, scale)


def current_lora(llama: Any) -> Path | None:
    """The adapter file applied to ``llama``, or ``None``."""
    slot = getattr(llama, _ATTR, None)
    return slot.path if slot is not None else None
