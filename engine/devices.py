"""Device and precision selection for training (the memory estimate is in engine.train_memory).

Precision policy (CASES C16): never fp16 without loss scaling.

* CUDA with bf16 support: bf16 autocast, base weights stored in bf16, LoRA weights in fp32.
* CUDA without bf16 (pre-Ampere): fp16 autocast with ``torch.amp.GradScaler``.
* Apple MPS: fp32 (bf16 autocast on MPS depends on the macOS version; fp32 is the safe default).
* CPU: bf16 autocast only where the CPU has native bf16 matrix instructions (AVX512-BF16 or
  AMX-BF16); otherwise fp32. On CPUs without them bf16 is emulated and much slower than fp32:
  on the development machine (AMD EPYC, AVX2 only, 2 cores, 1 thread) our loop trained the
  tiny test model at ~850 supervised tokens/s in fp32 vs ~190-290 in bf16 autocast
  (``bench/train_throughput.py --tiny --precision-sweep``).

Heavy imports (torch) live inside functions so ``import engine.devices`` stays cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "bf16", "fp32", "fp16")
_DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


@dataclass(frozen=True)
class DevicePlan:
    """Where and in which precision a training run computes.

    Attributes:
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``.
        precision: ``"bf16"``, ``"fp16"`` or ``"fp32"`` (the autocast compute dtype).
        base_dtype: storage dtype name of the frozen base weights (``"bf16"``/``"fp16"``/``"fp32"``).
        use_grad_scaler: whether fp16 loss scaling (``torch.amp.GradScaler``) is on.
        reason: one sentence saying why this precision was chosen (shown to the user).
    """

    device: str
    precision: str
    base_dtype: str
    use_grad_scaler: bool
    reason: str

    @property
    def autocast(self) -> bool:
        """Whether the forward pass runs under ``torch.autocast`` (any 16-bit precision)."""
        return self.precision != "fp32"

    def torch_dtype(self, name: str | None = None) -> Any:
        """The ``torch.dtype`` for ``name`` (default: the compute precision)."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name or self.precision]


def cuda_available() -> bool:
    """Whether a CUDA device can be used."""
    import torch

    return torch.cuda.is_available()


def mps_available() -> bool:
    """Whether Apple's Metal (MPS) backend can be used."""
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX-BF16).

    Without them PyTorch emulates bf16 matmuls by converting to fp32, which is slower than
    plain fp32 (measured, see the module docstring).
    """
    import torch

    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def resolve_device(requested: str = "auto") -> str:
    """Turn ``"auto"`` into a concrete device, and refuse a device that is not present.

    Raises:
        ConfigError: ``requested`` is unknown or that device is not available here.
    """
    if requested not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}; got {requested!r}")
    if requested == "auto":
        return "cuda" if cuda_available() else "mps" if mps_available() else "cpu"
    if requested == "cuda" and not cuda_available():
        raise ConfigError("device is 'cuda' but no CUDA GPU is available to PyTorch; "
                          "choose device 'auto' or 'cpu'")
    if requested == "mps" and not mps_available():
        raise ConfigError("device is 'mps' but Apple MPS is not available; choose 'auto' or 'cpu'")
    return requested


def choose_precision(device: str, requested: str = "auto") -> DevicePlan:
    """Pick the compute precision for ``device`` (see the module docstring for the policy).

    Raises:
        ConfigError: ``requested`` is unknown, or fp16/bf16 is asked for where it is unsafe or
            unsupported (fp16 needs CUDA, where it runs with loss scaling).
    """
    if requested not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    if requested == "auto":
        return _auto_precision(device)
    if requested == "fp32":
        return DevicePlan(device, "fp32", "fp32", False, "fp32 was requested")
    if requested == "fp16":
        if device != "cuda":
            raise ConfigError(f"precision 'fp16' is only supported on CUDA (with loss scaling); "
                              f"on {device} choose 'auto', 'bf16' or 'fp32'")
        return DevicePlan(device, "fp16", "fp16", True, "fp16 was requested; loss scaling is on")
    if device == "cuda" and not _cuda_bf16():
        raise ConfigError("precision 'bf16' is not supported by this GPU; choose 'auto' "
                          "(fp16 with loss scaling) or 'fp32'")
    # On CPU/MPS the frozen base stays fp32 and only matmuls autocast: weights never lose bits.
    base = "bf16" if device == "cuda" else "fp32"
    return DevicePlan(device, "bf16", base, False, "bf16 was requested")


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_bf16_supported()


def _auto_precision(device: str) -> DevicePlan:
    if device == "cuda":
        if _cuda_bf16():
            return DevicePlan(device, "bf16", "bf16", False, "this GPU supports bf16")
        return DevicePlan(device, "fp16", "fp16", True,
                          "this GPU lacks bf16; fp16 with loss scaling (GradScaler)")
    if device == "cpu" and cpu_has_fast_bf16():
        return DevicePlan(device, "bf16", "fp32", False,
                          "this CPU has native bf16 instructions (AVX512-BF16/AMX)")
    why = ("this CPU has no native bf16 instructions, so fp32 is faster and exact"
           if device == "cpu" else "fp32 is the safe default on Apple MPS")
    return DevicePlan(device, "fp32", "fp32", False, why)


def plan_device(device: str = "auto", precision: str = "auto", *, load_in_4bit: bool = False) -> DevicePlan:
    """Resolve the device, then the precision, and check that 4-bit loading is possible there.

    Raises:
        ConfigError: unknown/unavailable device or precision, or ``load_in_4bit`` off CUDA.
    """
    plan = choose_precision(resolve_device(device), precision)
    if load_in_4bit and plan.device != "cuda":
        raise ConfigError(f"load_in_4bit (QLoRA) needs a CUDA GPU (bitsandbytes); this run is on "
                          f"{plan.device}. Turn load_in_4bit off to train in "
                          f"{plan.precision} on {plan.device}.")
    return plan


def cpu_thread_count() -> int:
    """Threads for CPU compute: one per physical core we may run on (hyper-threads slow matmuls).

    ``TUNESMITH_CPU_THREADS`` overrides the count: on a machine shared with other busy
    processes fewer threads are faster, because OpenMP threads spin at every barrier (measured
    on a 2-core VM under load 5: a tiny-model step took 12x longer with 2 threads than with 1).
    Used for both PyTorch (training, evaluation) and llama.cpp (chat, GGUF perplexity).
    """
    import psutil

    override = os.environ.get("TUNESMITH_CPU_THREADS", "")
    if override.isdigit() and int(override) > 0:
        return int(override)
    logical = os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    # With fewer usable CPUs than logical ones, keep the same share of physical cores.
    return max(1, min(physical, affinity * physical // logical if affinity < logical else physical))


def set_cpu_threads() -> int:
    """Set PyTorch's intra-op threads to :func:`cpu_thread_count` and return it."""
    import torch

    threads = cpu_thread_count()
    torch.set_num_threads(threads)
    return threads


def dtype_bytes(name: str) -> int:
    """Bytes per element of a precision name (``"bf16"`` -> 2)."""
    return _DTYPE_BYTES[name]
