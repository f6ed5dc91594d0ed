"""The GUI's one adapter over the engine: every engine call a page makes goes through here.

Pages receive an :class:`Engine` (a bundle of plain callables) instead of importing engine
modules, so tests inject fakes field by field (``dataclasses.replace(real_engine(), ...)``) and
a change in an engine signature is fixed in one place. The real functions import their engine
module on first call, so opening the window never imports torch or llama.cpp.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from engine.progress import CancelToken


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """A function that imports ``module`` on first call and forwards to ``module.name``."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)
    call.__name__ = name
    call.__qualname__ = f"{module}.{name}"
    return call


@dataclass
class Engine:
    """Engine entry points used by the GUI (real ones from :func:`real_engine`)."""

    import_file: Callable[..., Any]
    export_jsonl: Callable[..., Any]
    train_validation_rows: Callable[..., Any]
    train_config_class: Callable[[], type]
    train_presets: Callable[[], dict[str, dict[str, Any]]]
    train_lora: Callable[..., Any]
    estimate_training: Callable[..., Any]
    device_summary: Callable[[], str]
    inspect_model: Callable[..., Any]
    builtin_base_model: Callable[..., Any]
    import_gguf_model: Callable[..., Any]
    merge_adapter: Callable[..., Any]
    export_gguf: Callable[..., Any]
    # export verification (reports as dicts, stored beside each file) and the adapter GGUF
    verify_merged: Callable[..., Any]
    verify_gguf: Callable[..., Any]
    verify_adapter: Callable[..., Any]
    write_sharing_files: Callable[..., Any]
    export_adapter_gguf: Callable[..., Any]
    find_base_gguf: Callable[..., Any]
    open_chat: Callable[..., Any]
    sampling_config: Callable[..., Any]
    score_model: Callable[..., Any]
    # dataset workbench: previews run on job lanes, changes are built on the GUI thread
    find_duplicates: Callable[..., Any]
    preview_filters: Callable[..., Any]
    preview_pii: Callable[..., Any]
    paraphrase_examples: Callable[..., Any]
    back_translate_examples: Callable[..., Any]
    synonym_examples: Callable[..., Any]
    split_dataset: Callable[..., Any]
    dataset_stats: Callable[..., Any]
    preview_template: Callable[..., Any]
    merge_spans: Callable[..., Any]
    load_text_tools: Callable[..., Any]
    data_config_class: Callable[[str], type]
    version_change: Callable[..., Any]


def _train_config_class() -> type:
    return importlib.import_module("engine.train_config").TrainConfig


def _train_presets() -> dict[str, dict[str, Any]]:
    """Presets as field overrides; the engine's own table wins when it has one."""
    module = importlib.import_module("engine.train_config")
    presets = getattr(module, "PRESETS", None)
    if presets:
        return {name: (dataclasses.asdict(value) if dataclasses.is_dataclass(value) else dict(value))
                for name, value in presets.items()}
    return DEFAULT_PRESETS


# Used only when engine.train has no PRESETS table; unknown keys are skipped by the form.
DEFAULT_PRESETS: dict[str, dict[str, Any]] = {
    "Quick test": {"num_epochs": 1.0, "max_steps": 20, "lora_rank": 4, "lora_alpha": 8.0,
                   "max_length": 256, "eval_every": 5, "save_every": 10},
    "Balanced": {"num_epochs": 2.0, "max_steps": None, "lora_rank": 16, "lora_alpha": 32.0,
                 "max_length": 1024, "eval_every": 50, "save_every": 100},
    "Thorough": {"num_epochs": 4.0, "max_steps": None, "lora_rank": 32, "lora_alpha": 64.0,
                 "max_length": 2048, "learning_rate": 1e-4, "eval_every": 50, "save_every": 100},
}


# Workbench operation -> (engine module, config class); a new operation is a new row.
DATA_CONFIGS: dict[str, tuple[str, str]] = {
    "dedupe": ("engine.data.dedupe", "DedupeConfig"),
    "filter": ("engine.data.filters", "FilterConfig"),
    "scrub": ("engine.data.pii", "PiiConfig"),
    "paraphrase": ("engine.data.augment", "ParaphraseConfig"),
    "backtranslate": ("engine.data.augment", "BackTranslationConfig"),
    "synonym": ("engine.data.augment", "SynonymConfig"),
    "split": ("engine.data.splits", "SplitConfig"),
    "stats": ("engine.data.stats", "StatsConfig"),
}


def _data_config_class(operation: str) -> type:
    """The config dataclass of a workbench operation (see :data:`DATA_CONFIGS`)."""
    module, name = DATA_CONFIGS[operation]
    return getattr(importlib.import_module(module), name)


def _version_change(operation: str, *args: Any, **kwargs: Any) -> Any:
    """``engine.data.workbench.<operation>_change(*args, **kwargs)``: a ``VersionChange``."""
    workbench = importlib.import_module("engine.data.workbench")
    return getattr(workbench, f"{operation}_change")(*args, **kwargs)


def _load_text_tools(model_dir: Any) -> Any:
    """A base model's tokenizer (local files, never custom code from the folder), chat template
    and special tokens, resolved as training resolves them."""
    return importlib.import_module("engine.data.workbench").load_text_tools(model_dir)


def _device_summary() -> str:
    """One line for the status bar: GPU name and free memory, or CPU and threads."""
    try:
        devices = importlib.import_module("engine.devices")
    except ImportError:
        return f"CPU · {os.cpu_count()} threads"
    for name in ("describe_device", "device_summary"):
        if hasattr(devices, name):
            return str(getattr(devices, name)())
    info = devices.detect_device() if hasattr(devices, "detect_device") else None
    return str(getattr(info, "summary", info) or f"CPU · {os.cpu_count()} threads")


def real_engine() -> Engine:
    """The engine as the app uses it (modules imported lazily on first call)."""
    return Engine(
        import_file=_lazy("engine.data", "import_file"),
        export_jsonl=_lazy("engine.data", "export_jsonl"),
        train_validation_rows=_lazy("engine.data.workbench", "train_validation_rows"),
        train_config_class=_train_config_class,
        train_presets=_train_presets,
        train_lora=_lazy("engine.train", "train_lora"),
        estimate_training=_lazy("gui.estimate", "estimate_training"),
        device_summary=_device_summary,
        inspect_model=_lazy("engine.models", "inspect_model"),
        builtin_base_model=_lazy("engine.gguf_import", "builtin_base_model"),
        import_gguf_model=_lazy("engine.gguf_import", "import_gguf_model"),
        merge_adapter=_lazy("engine.merge", "merge_adapter"),
        export_gguf=_lazy("engine.export", "export_gguf"),
        verify_merged=_lazy("gui.export_verify", "verify_merged_folder"),
        verify_gguf=_lazy("gui.export_verify", "verify_gguf"),
        verify_adapter=_lazy("gui.export_verify", "verify_adapter"),
        write_sharing_files=_lazy("gui.export_verify", "write_sharing_files"),
        export_adapter_gguf=_lazy("engine.adapter_gguf", "export_adapter_gguf"),
        find_base_gguf=_lazy("engine.base_gguf", "find_base_gguf"),
        open_chat=_lazy("engine.chat", "ChatModel"),
        sampling_config=_lazy("engine.chat", "SamplingConfig"),
        score_model=_lazy("gui.scoring", "score_model"),
        find_duplicates=_lazy("engine.data.dedupe", "find_duplicates"),
        preview_filters=_lazy("engine.data.filters", "preview_filters"),
        preview_pii=_lazy("engine.data.pii", "preview"),
        paraphrase_examples=_lazy("engine.data.augment", "paraphrase_examples"),
        back_translate_examples=_lazy("engine.data.augment", "back_translate_examples"),
        synonym_examples=_lazy("engine.data.augment", "synonym_examples"),
        split_dataset=_lazy("engine.data.splits", "split_dataset"),
        dataset_stats=_lazy("engine.data.stats", "dataset_stats"),
        preview_template=_lazy("engine.data.preview", "preview_example"),
        merge_spans=_lazy("engine.data.preview", "merge_spans"),
        load_text_tools=_load_text_tools,
        data_config_class=_data_config_class,
        version_change=_version_change,
    )


def stream_text(model: Any, messages: list[dict[str, str]], sampling: Any,
                cancel: CancelToken) -> Iterator[str]:
    """Yield the reply's text pieces from ``model.stream`` whatever its event shape.

    The engine yields events; a piece of text is a ``str``, an object with ``.text`` or a
    dict with ``"text"``. Events without text (start/stop markers) are skipped.
    """
    for event in model.stream(messages, sampling, cancel=cancel):
        if isinstance(event, str):
            text = event
        elif isinstance(event, dict):
            text = event.get("text") or event.get("delta") or ""
        else:
            text = getattr(event, "text", None) or getattr(event, "delta", None) or ""
        if text:
            yield text


def describe(value: Any) -> dict[str, Any]:
    """A plain dict view of an engine result (dataclass, mapping or object) for display."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return dict(value)
    return {k: v for k, v in vars(value).items() if not k.startswith("_")} if hasattr(
        value, "__dict__") else {"value": value}


def as_path(value: Any) -> Path | None:
    """``value`` as a Path, or ``None`` when empty."""
    return Path(value) if value not in (None, "") else None
