"""Workbench template preview: one example rendered with a base model's chat template, with the
trained tokens highlighted (what the loss sees) and the masked ones plain."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtWidgets import (QFormLayout, QHBoxLayout, QPushButton, QSpinBox, QTextEdit,
                               QVBoxLayout, QWidget)

from gui.errors import show_error
from gui.jobs import Job
from gui.widgets import label
from gui.workbench_ops import ModelPicker

TRAINED_BACKGROUND = "#bbf7d0"  # light green: readable in both themes behind dark text
TRAINED_TEXT = "#14532d"


def spans_html(spans: list[tuple[str, bool]]) -> str:
    """HTML for ``(text, trained)`` runs: trained runs on a green background, whitespace kept."""
    parts = []
    for text, trained in spans:
        body = html.escape(text)
        if trained:
            body = (f'<span style="background-color:{TRAINED_BACKGROUND};'
                    f'color:{TRAINED_TEXT}">{body}</span>')
        parts.append(body)
    return f'<pre style="white-space:pre-wrap">{"".join(parts)}</pre>'


class TemplatePanel(QWidget):
    """Pick an example and a base model; render the example as training will see it."""

    def __init__(self, page: Any) -> None:
        super().__init__()
        self.page, self.ctx = page, page.ctx
        self.job: Job | None = None
        self.preview: Any = None
        self.model = ModelPicker(self.ctx.store)
        self.example = QSpinBox(objectName="templateExample", minimum=1, maximum=1)
        self.render_button = QPushButton("Render", objectName="templateRender")
        self.render_button.setProperty("primary", True)
        self.render_button.clicked.connect(self.render_example)
        form = QFormLayout()
        form.addRow("Base model", self.model)
        form.addRow("Example #", self.example)
        row = QHBoxLayout()
        row.addLayout(form)
        row.addWidget(self.render_button)
        row.addStretch(1)
        self.summary = label("Trained tokens are highlighted; the rest is masked (no loss).",
                             "hint", wrap=True)
        self.text = QTextEdit(objectName="templateText", readOnly=True)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.summary)
        layout.addWidget(self.text, 1)

    def refresh(self) -> None:
        """Follow the head's size and the registered models."""
        dataset_id = self.page.dataset_id()
        count = self.ctx.store.count_examples(dataset_id) if dataset_id is not None else 0
        self.example.setMaximum(max(count, 1))
        self.model.refresh()

    def render_example(self) -> Job | None:
        """Load the tokenizer and render the chosen example on the light lane."""
        dataset_id, path = self.page.dataset_id(), self.model.model_path()
        if dataset_id is None or not path:
            self.summary.setText("Register a base model on the Models page first.")
            return None
        rows = self.ctx.store.examples(dataset_id, self.example.value() - 1, 1)
        if not rows:
            return None
        messages = rows[0]["messages"]
        preview, tokenizers = self.ctx.engine.preview_template, self.page.tokenizers
        self.job = self.ctx.runner.submit(
            "Template preview", lambda report, cancel: _render(preview, tokenizers.get(path),
                                                                messages),
            lane="light")
        self.render_button.setEnabled(False)
        self.summary.setText("Loading the tokenizer…")
        self.job.succeeded.connect(self.show_preview)
        self.job.failed.connect(lambda exc: show_error(self, exc, "render the example"))
        self.job.done.connect(lambda: self.render_button.setEnabled(True))
        return self.job

    def show_preview(self, preview: Any) -> None:
        """Show a ``TemplatePreview`` with the trained spans highlighted."""
        self.preview = preview
        name = getattr(preview.template, "name", "") or "the model's own"
        self.summary.setText(f"Template: {name}. {preview.n_trained:,} tokens trained "
                             f"(highlighted), {preview.n_masked:,} masked.")
        self.text.setHtml(spans_html(self.ctx.engine.merge_spans(preview.tokens)))


def _render(preview: Any, tools: Any, messages: list[dict]) -> Any:
    """The template preview with the model's tokenizer, chat template and special tokens."""
    return preview(tools.tokenizer, messages, template=tools.template, special=tools.special)
