"""Device and precision choice (CASES C16): fp16 never without loss scaling, CPU bf16 only native."""

from __future__ import annotations

import pytest

import engine.devices as devices
from engine.errors import ConfigError


def test_cpu_auto_is_fp32_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: False)
    plan = devices.choose_precision("cpu", "auto")
    assert (plan.precision, plan.base_dtype, plan.use_grad_scaler, plan.autocast) == ("fp32", "fp32", False, False)


def test_cpu_auto_is_bf16_autocast_over_fp32_weights_with_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: True)
    plan = devices.choose_precision("cpu", "auto")
    assert (plan.precision, plan.base_dtype, plan.use_grad_scaler) == ("bf16", "fp32", False)


def test_this_cpu_reports_bf16_capability_like_torch() -> None:
    import torch

    caps = torch.cpu.get_capabilities()
    assert devices.cpu_has_fast_bf16() == bool(caps["avx512_bf16"] or caps["amx_bf16"])


def test_cuda_without_bf16_uses_fp16_with_grad_scaler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_cuda_bf16", lambda: False)
    plan = devices.choose_precision("cuda", "auto")
    assert (plan.precision, plan.use_grad_scaler) == ("fp16", True)
    monkeypatch.setattr(devices, "_cuda_bf16", lambda: True)
    assert devices.choose_precision("cuda", "auto").precision == "bf16"


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_fp16_refused_off_cuda(device: str) -> None:
    with pytest.raises(ConfigError, match="fp16.*CUDA"):
        devices.choose_precision(device, "fp16")


def test_unknown_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match="precision must be one of auto, bf16, fp32, fp16"):
        devices.choose_precision("cpu", "fp8")
    with pytest.raises(ConfigError, match="device must be one of"):
        devices.resolve_device("tpu")


def test_missing_cuda_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    assert devices.resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        devices.resolve_device("cuda")


def test_4bit_refused_on_cpu() -> None:
    with pytest.raises(ConfigError, match="load_in_4bit.*CUDA"):
        devices.plan_device("cpu", "auto", load_in_4bit=True)


def test_cpu_threads_override(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("TUNESMITH_CPU_THREADS", "1")
    try:
        assert devices.set_cpu_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
