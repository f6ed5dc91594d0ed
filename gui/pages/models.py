"""Models page: base models (Hugging Face folders and GGUF files) with what they are made of."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QFileDialog, QFormLayout, QListWidget,
                               QListWidgetItem, QPlainTextEdit, QPushButton,
                               QVBoxLayout, QWidget)

from gui.context import AppContext
from gui.errors import show_error
from gui.jobs import Job
from gui.services import describe
from gui.widgets import column, fill_with_splitter, human_count, label

DETAILS = (("path", "Path"), ("source", "Kind"), ("architecture", "Architecture"),
           ("parameter_count", "Parameters"), ("context_length", "Context length"),
           ("dtype", "Weights dtype"))


BUILTIN_NAME = "gemma-3-270m"  # the same record name the CLI uses


def model_record(info: Any, source: str, name: str | None = None) -> dict[str, Any]:
    """A ``register_base_model`` dict from an ``engine.models.ModelInfo``."""
    data = describe(info)
    data["special_tokens"] = data.pop("special", data.get("special_tokens") or {})
    data["path"] = str(data["path"])
    data["source"] = source
    if name:
        data["name"] = name
    return data


def prepare_model(engine: Any, path: Path, source: str, models_dir: Path, report: Any,
                  cancel: Any) -> dict[str, Any]:
    """Job body: make ``path`` a usable HF folder (import a GGUF, unpack the built-in) and
    describe it."""
    name = None
    if source == "builtin":
        path, name = engine.builtin_base_model(models_dir, report=report, cancel=cancel), BUILTIN_NAME
    elif source == "gguf":
        path = engine.import_gguf_model(path, models_dir / path.stem, report=report, cancel=cancel)
    return model_record(engine.inspect_model(path), source, name)


class ModelsPage(QWidget):
    """List of registered base models; add a folder or a GGUF; the built-in one by default."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.list = QListWidget(objectName="modelList")
        self.list.currentItemChanged.connect(lambda *_: self._show_selected())
        add_folder = QPushButton("Add Hugging Face folder…")
        add_folder.clicked.connect(self._on_add_folder)
        add_gguf = QPushButton("Add GGUF file…")
        add_gguf.clicked.connect(self._on_add_gguf)
        fill_with_splitter(self, column("Models", self.list, add_folder, add_gguf),
                           self._build_details(), sizes=(280, 860))
        ctx.hub.models_changed.connect(self.refresh)
        self.refresh()

    def _build_details(self) -> QWidget:
        self.fields = {key: label("—", wrap=True) for key, _ in DETAILS}
        form = QFormLayout()
        for key, title in DETAILS:
            self.fields[key].setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(title, self.fields[key])
        self.special = QPlainTextEdit(readOnly=True, objectName="specialTokens")
        self.special.setMaximumHeight(110)
        self.template = QPlainTextEdit(readOnly=True, objectName="chatTemplate")
        self.name_label = label("", "title")
        widget = QWidget()
        layout = QVBoxLayout(widget)
        layout.addWidget(self.name_label)
        layout.addLayout(form)
        layout.addWidget(label("Special tokens", "hint"))
        layout.addWidget(self.special)
        layout.addWidget(label("Chat template", "hint"))
        layout.addWidget(self.template, 1)
        return widget

    def refresh(self) -> None:
        """Reload the list (adds the built-in model on first use)."""
        models = self.ctx.store.base_models()
        current = self.list.currentRow()
        self.list.clear()
        for model in models:
            item = QListWidgetItem(f"{model['name']}\n{model.get('source', '')} · "
                                   f"{human_count(model.get('parameter_count'))} parameters")
            item.setData(Qt.ItemDataRole.UserRole, model)
            self.list.addItem(item)
        self.list.setCurrentRow(max(0, min(current, len(models) - 1)) if models else -1)
        if not models and not getattr(self, "_builtin_tried", False):
            self._builtin_tried = True
            self._add_builtin()

    def _show_selected(self) -> None:
        item = self.list.currentItem()
        model = item.data(Qt.ItemDataRole.UserRole) if item else {}
        self.name_label.setText(model.get("name", "No model yet"))
        for key, _ in DETAILS:
            value = model.get(key)
            if key == "parameter_count" and value:
                value = f"{human_count(value)} ({value:,})"
            self.fields[key].setText("—" if value in (None, "") else str(value))
        self.special.setPlainText(json.dumps(model.get("special_tokens") or {}, indent=2,
                                             ensure_ascii=False))
        self.template.setPlainText(model.get("chat_template") or "(no chat template)")

    def _add_builtin(self) -> None:
        self.ctx.hub.status_message.emit("Preparing the built-in Gemma 3 270M (first use only)…")
        job = self.add_model(Path(BUILTIN_NAME), "builtin")
        job.failed.disconnect()
        job.failed.connect(lambda exc: self.ctx.hub.status_message.emit(
            f"Built-in model unavailable: {exc}"))

    def _on_add_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Hugging Face model folder")
        if path:
            self.add_model(Path(path), "hf-folder")

    def _on_add_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "GGUF model", "", "GGUF (*.gguf)")
        if path:
            self.add_model(Path(path), "gguf")

    def add_model(self, path: Path, source: str) -> Job:
        """Import/inspect ``path`` in the background, then register it."""
        engine, models_dir = self.ctx.engine, self.ctx.store.folder("models")
        job = self.ctx.runner.submit(f"Add model {path.name}", lambda report, cancel: prepare_model(
            engine, path, source, models_dir, report, cancel), lane="light")
        job.succeeded.connect(self._register)
        job.failed.connect(lambda exc: show_error(self, exc, f"add the model {path.name}"))
        return job

    def _register(self, record: dict[str, Any]) -> None:
        try:
            self.ctx.store.register_model(record, replace=True)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, exc, f"register the model {record.get('name')}")
            return
        self.ctx.hub.models_changed.emit()
