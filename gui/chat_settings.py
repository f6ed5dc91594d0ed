"""The Chat page's right-hand panel: model pickers, chat template, persona, sampling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QInputDialog,
                               QPlainTextEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from gui.context import AppContext
from gui.widgets import label

# Names of engine.templates.TEMPLATES (listed here so opening the page imports no engine code).
TEMPLATE_NAMES = ("gemma", "chatml", "llama3", "zephyr", "llama2")
PERSONAS = {"Helpful assistant": "You are a helpful assistant.",
            "Concise expert": "Answer briefly and precisely. Use bullet points when useful.",
            "Friendly support agent": "You are a friendly customer-support agent. Be warm and "
                                      "solve the customer's problem step by step."}


class ChatSettingsPanel(QWidget):
    """Which model answers (and which one to compare with), and how it samples."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.opened: list[str] = []  # GGUF files opened by hand; kept across list refreshes
        self.model_box = QComboBox(objectName="chatModel")
        self.compare_box = QComboBox(objectName="compareModel")
        self.adapter_box = QComboBox(objectName="chatAdapter")
        self.adapter_box.setToolTip("A LoRA adapter GGUF applied on top of the model without "
                                    "merging (export one with Export adapter). The model must "
                                    "be the base the adapter was trained on.")
        self.opened_adapters: list[str] = []
        self.template_box = QComboBox(objectName="chatTemplate")
        self.template_box.addItem("from the GGUF", None)
        for name in TEMPLATE_NAMES:
            self.template_box.addItem(name, name)
        self.template_box.setToolTip("The conversation format. Use the GGUF's own unless it has "
                                     "none; then pick the one the model was trained with.")
        self.persona_box = QComboBox(objectName="persona")
        self.persona_box.addItems(list(self.personas()))
        self.persona_box.currentTextChanged.connect(
            lambda name: self.system.setPlainText(self.personas().get(name, "")))
        self.system = QPlainTextEdit(objectName="systemPrompt")
        self.system.setPlainText(next(iter(PERSONAS.values())))
        self.temperature = QDoubleSpinBox(decimals=2, maximum=2.0, singleStep=0.05, value=0.7)
        self.top_p = QDoubleSpinBox(decimals=2, maximum=1.0, singleStep=0.05, value=0.95)
        self.max_tokens = QSpinBox(minimum=1, maximum=8192, value=512)
        self._layout()

    def _layout(self) -> None:
        browse = QPushButton("Open GGUF…")
        browse.clicked.connect(self._on_browse)
        save_persona = QPushButton("Save as persona…")
        save_persona.clicked.connect(self._on_save_persona)
        form = QFormLayout()
        browse_adapter = QPushButton("Open adapter GGUF…")
        browse_adapter.clicked.connect(self._on_browse_adapter)
        for caption, widget in (("Model", self.model_box), ("", browse),
                                ("LoRA adapter", self.adapter_box), ("", browse_adapter),
                                ("Chat template", self.template_box),
                                ("Compare with", self.compare_box), ("Persona", self.persona_box),
                                ("", save_persona), ("Temperature", self.temperature),
                                ("Top-p", self.top_p), ("Max tokens", self.max_tokens)):
            form.addRow(caption, widget)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(label("System prompt", "hint"))
        layout.addWidget(self.system, 1)

    # models ---------------------------------------------------------------------------------
    def refresh_models(self) -> None:
        """List exported GGUF files, GGUF base models and files opened by hand."""
        found = [(f"{Path(a['path']).name} (run {a['run_id']})", a["path"])
                 for a in self.ctx.store.artifacts(kind="gguf")]
        found += [(m["name"], m["path"]) for m in self.ctx.store.base_models()
                  if str(m["path"]).endswith(".gguf")]
        known = {path for _, path in found}
        found += [(Path(p).name, p) for p in self.opened if p not in known]
        for box, none_text in ((self.model_box, None), (self.compare_box, "(no comparison)")):
            current = box.currentData()
            box.blockSignals(True)
            box.clear()
            if none_text:
                box.addItem(none_text, None)
            for text, path in found:
                box.addItem(text, path)
            box.blockSignals(False)
            box.setCurrentIndex(max(0, box.findData(current)) if current is not None else 0)
        self.refresh_adapters()

    def refresh_adapters(self) -> None:
        """List exported LoRA adapter GGUFs and adapters opened by hand (keeps the choice)."""
        found = [(f"{Path(a['path']).name} (run {a['run_id']})", a["path"])
                 for a in self.ctx.store.artifacts(kind="adapter_gguf")]
        known = {path for _, path in found}
        found += [(Path(p).name, p) for p in self.opened_adapters if p not in known]
        current = self.adapter_box.currentData()
        self.adapter_box.blockSignals(True)
        self.adapter_box.clear()
        self.adapter_box.addItem("(none: the model alone)", None)
        for text, path in found:
            self.adapter_box.addItem(text, path)
        self.adapter_box.setCurrentIndex(max(0, self.adapter_box.findData(current)))
        self.adapter_box.blockSignals(False)

    def add_adapter_path(self, path: str) -> None:
        """Offer adapter GGUF ``path`` in the adapter picker and select it."""
        if path not in self.opened_adapters:
            self.opened_adapters.append(path)
        if self.adapter_box.findData(path) < 0:
            self.adapter_box.addItem(Path(path).name, path)
        self.adapter_box.setCurrentIndex(self.adapter_box.findData(path))

    def _on_browse_adapter(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "LoRA adapter GGUF", "", "GGUF (*.gguf)")
        if path:
            self.add_adapter_path(path)

    def add_model_path(self, path: str) -> None:
        """Offer ``path`` in the model pickers and select it for replies."""
        if path not in self.opened:
            self.opened.append(path)
        if self.model_box.findData(path) < 0:
            self.model_box.addItem(Path(path).name, path)
            self.compare_box.addItem(Path(path).name, path)
        self.model_box.setCurrentIndex(self.model_box.findData(path))

    def _on_browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "GGUF model", "", "GGUF (*.gguf)")
        if path:
            self.add_model_path(path)

    # personas, sampling ---------------------------------------------------------------------
    def personas(self) -> dict[str, str]:
        """Built-in personas plus the user's saved ones (QSettings)."""
        saved = json.loads(self.ctx.setting("personas", "{}") or "{}")
        return {**PERSONAS, **saved}

    def _on_save_persona(self) -> None:
        name, ok = QInputDialog.getText(self, "Save persona", "Persona name")
        if ok and name.strip():
            self.save_persona(name.strip())

    def save_persona(self, name: str) -> None:
        """Store the current system prompt as persona ``name``."""
        saved = json.loads(self.ctx.setting("personas", "{}") or "{}")
        saved[name] = self.system.toPlainText()
        self.ctx.settings.setValue("personas", json.dumps(saved))
        if self.persona_box.findText(name) < 0:
            self.persona_box.addItem(name)

    def sampling(self) -> Any:
        """The engine's sampling config from the spin boxes."""
        return self.ctx.engine.sampling_config(temperature=self.temperature.value(),
                                               top_p=self.top_p.value(),
                                               max_tokens=self.max_tokens.value())

    def system_prompt(self) -> str:
        """The system prompt text (may be empty)."""
        return self.system.toPlainText()
