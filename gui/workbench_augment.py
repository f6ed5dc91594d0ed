"""Workbench augmentation panel: synonyms (offline thesaurus), paraphrase and back-translation.

Paraphrase and back-translation load a GGUF chat model through llama.cpp, which takes the CPU
or GPU for minutes: they run on the heavy lane (one at a time, never beside training). Synonym
replacement needs no model and runs on the light lane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QLineEdit,
                               QPushButton, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget)

from gui.workbench_ops import OperationPanel, ReviewRow, TupleConfigForm, first_text

# Method shown -> (config key in gui.services.DATA_CONFIGS, engine function field, needs a model)
METHODS = {
    "Synonyms (no model)": ("synonym", "synonym_examples", False),
    "Paraphrase (GGUF model)": ("paraphrase", "paraphrase_examples", True),
    "Back-translation (GGUF model)": ("backtranslate", "back_translate_examples", True),
}


class AugmentForms(QWidget):
    """One config form per method, the current one chosen by a combo box."""

    def __init__(self, config_class: Callable[[str], type]) -> None:
        super().__init__()
        self.method = QComboBox(objectName="augmentMethod")
        self.stack = QStackedWidget()
        self.forms = {}
        for name, (key, _, _) in METHODS.items():
            self.method.addItem(name)
            self.forms[name] = TupleConfigForm(config_class(key))
            self.stack.addWidget(self.forms[name])
        self.method.currentIndexChanged.connect(self._on_method)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        pick = QFormLayout()
        pick.addRow("Method", self.method)
        layout.addLayout(pick)
        layout.addWidget(self.stack)
        self._on_method(0)

    def _on_method(self, index: int) -> None:
        self.stack.setCurrentIndex(index)
        # A stack is as tall as its tallest page; let hidden pages take no room.
        for i in range(self.stack.count()):
            policy = QSizePolicy.Policy.Preferred if i == index else QSizePolicy.Policy.Ignored
            self.stack.widget(i).setSizePolicy(policy, policy)
        self.stack.adjustSize()

    def current(self) -> tuple[str, str, bool]:
        """``(config key, engine field, needs model)`` of the chosen method."""
        return METHODS[self.method.currentText()]

    def build(self) -> Any | None:
        """The chosen method's validated config, or ``None`` (error shown in the form)."""
        return self.forms[self.method.currentText()].build()

    def set_model_path(self, path: str) -> None:
        """Put ``path`` into every form that has a ``model_path`` field."""
        for form in self.forms.values():
            if "model_path" in form.editors:
                form.set_values({"model_path": path})


class AugmentPanel(OperationPanel):
    """Proposed synthetic examples, each of which can be rejected before Apply."""

    operation, title = "augment", "Augmentation"
    check_header = "Reject"
    columns = ("From", "Method", "New user turn", "Note")

    def make_form(self) -> AugmentForms:
        return AugmentForms(self.ctx.engine.data_config_class)

    def extra_widgets(self) -> list[QWidget]:
        self.browse = QPushButton("Choose GGUF model…")
        self.browse.clicked.connect(self._on_browse)
        self.only = QLineEdit(objectName="augmentOnly",
                              placeholderText="Only examples matching this search (optional)")
        self.form.method.currentIndexChanged.connect(
            lambda _: self.browse.setVisible(self.form.current()[2]))
        self.browse.setVisible(self.form.current()[2])
        return [self.browse, self.only]

    def _on_browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "GGUF chat model", str(Path.home()),
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.form.set_model_path(path)

    def preview(self) -> Any:
        self.lane = "heavy" if self.form.current()[2] else "light"
        return super().preview()

    def job_fn(self, config: Any, rows: list[dict]) -> Callable[..., Any]:
        run = getattr(self.ctx.engine, self.form.current()[1])
        ids = (set(self.ctx.store.search_ids(self.page.dataset_id(), self.only.text()))
               if self.only.text().strip() else None)
        # ``rows`` is filled on the job thread: choose from it there.
        return lambda report, cancel: run([e for e in rows if ids is None or e["id"] in ids],
                                          config, existing=rows, report=report, cancel=cancel)

    def review_rows(self, result: Any) -> list[ReviewRow]:
        return [ReviewRow(i, (self.example_label(p.origin_id), p.method.removeprefix("synthetic:"),
                              first_text(p.example), p.note), False)
                for i, p in enumerate(result.proposed)]

    def summary(self, result: Any) -> str:
        return (f"{len(result.proposed):,} synthetic examples proposed, {len(result.rejected):,} "
                "rewrites rejected by the checks (empty, unchanged, too long or duplicates). "
                "Check “Reject” to leave one out.")

    def make_change(self, result: Any, checked: list[Any]) -> Any:
        return self.ctx.engine.version_change("augment", result, self.params(), reject=checked)
