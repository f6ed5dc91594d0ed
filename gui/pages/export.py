"""Export page: merge a run's LoRA adapter, write a GGUF (f16 / q8_0 / q4_k_m), or export the
adapter alone as a llama.cpp LoRA GGUF; verify each against the trained model and show one
pass/warn/fail card per merged folder and file, plus the quantization report side by side
(issue 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QScrollArea, QVBoxLayout, QWidget)

from engine.progress import Progress
from gui.context import AppContext
from gui.export_verify import VERIFY_ROWS, VerifyInputs, export_adapter, export_merged
from gui.errors import show_error
from gui.jobs import Job
from gui.pages.train import plain_example
from gui.scoring import run_settings
from gui.verify_card import (VerifyCard, confirm_share, fill_quant_table, quant_table,
                             stored_reports, verdict_text)
from gui.widgets import card, human_bytes, label

BODY_WIDTH = 900  # a form this short reads badly stretched across a wide window
QUANTS = (("q8_0", "q8_0 — 8-bit, near-lossless"), ("q4_k_m", "q4_k_m — 4-bit, smallest"),
          ("f16", "f16 — 16-bit, exact"))
ADAPTER_TYPES = (("f32", "f32 — exact"), ("f16", "f16 — half the size"))


class ExportPage(QWidget):
    """Pick a finished run; merge and export a GGUF, or export its LoRA adapter as a GGUF;
    shows progress, the result file and the verification cards of the run's exports."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.cards: list[VerifyCard] = []
        self.job: Job | None = None
        self.result: dict[str, Any] | None = None
        self.run_box = QComboBox(objectName="exportRun")
        self.quant_box = combo("exportQuant", QUANTS)
        self.adapter_type_box = combo("adapterOuttype", ADAPTER_TYPES)
        self.export_button = QPushButton("Merge and export", objectName="exportButton")
        self.export_button.setProperty("primary", True)
        self.export_button.clicked.connect(self.start)
        self.adapter_button = QPushButton("Export LoRA adapter (GGUF)", objectName="adapterButton")
        self.adapter_button.setToolTip("Writes only the adapter (a few MiB) as a GGUF that "
                                       "llama.cpp applies on the base model's GGUF at load time; "
                                       "the Chat page can switch adapters without merging.")
        self.adapter_button.clicked.connect(self.start_adapter)
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.cancel_button.clicked.connect(lambda: self.job and self.job.cancel())
        self.bar = QProgressBar(objectName="exportProgress")
        self.stage = label("", "hint")
        self.verify_box = QCheckBox("Verify against the trained model (about a minute)",
                                    objectName="exportVerify", checked=True)
        self.verify_box.setToolTip(f"Runs up to {VERIFY_ROWS} validation conversations through "
                                   "the trained model and the export: next-token agreement, KL "
                                   "divergence, perplexity, stopping, special tokens and chat "
                                   "template.")
        self.modelfile_box = QCheckBox("Also write an Ollama Modelfile",
                                       objectName="exportModelfile")
        layout = self._scrolling_body()
        layout.addWidget(label("Export", "title"))
        layout.addWidget(label("Merges the LoRA adapter into its base model and writes a GGUF "
                               "file for llama.cpp, Ollama or LM Studio, or writes the adapter "
                               "alone as a small GGUF applied on the base model's GGUF.", "hint",
                               wrap=True))
        layout.addLayout(self._build_form())
        layout.addWidget(buttons(self.bar, self.cancel_button))
        layout.addWidget(self.stage)
        layout.addWidget(self._build_result())
        layout.addWidget(label("Verification", "title"))
        self.reports_hint = label("", "hint", wrap=True)
        layout.addWidget(self.reports_hint)
        self.cards_layout = QVBoxLayout()
        layout.addLayout(self.cards_layout)
        self.quant_title = label("Quantization report", "hint")
        layout.addWidget(self.quant_title)
        self.quant_table = quant_table([])
        layout.addWidget(self.quant_table)
        layout.addStretch(1)
        ctx.hub.runs_changed.connect(self.refresh)
        self.run_box.currentIndexChanged.connect(lambda _: self.refresh_reports())
        self.refresh()

    def _scrolling_body(self) -> QVBoxLayout:
        """A width-capped column in a scroll area filling the page; returns its layout."""
        body = QWidget()
        body.setMaximumWidth(BODY_WIDTH)
        scroll = QScrollArea(widgetResizable=True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.addWidget(body, 1)
        row.addStretch(0)
        scroll.setWidget(holder)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        return QVBoxLayout(body)

    def _build_form(self) -> QFormLayout:
        form = QFormLayout()
        form.addRow("Training run", self.run_box)
        form.addRow("", self.verify_box)
        form.addRow("Quantization", self.quant_box)
        form.addRow("", self.modelfile_box)
        form.addRow("", buttons(self.export_button))
        form.addRow("LoRA adapter", self.adapter_type_box)
        form.addRow("", buttons(self.adapter_button, label(
            "Only the adapter, applied on the base model's GGUF at load time; verified when the "
            "base model was added from a GGUF file.", "hint", wrap=True)))
        return form

    def _build_result(self) -> QWidget:
        self.result_labels = {key: label("—", wrap=True) for key, _ in RESULT_ROWS}
        form = QFormLayout()
        for key, title in RESULT_ROWS:
            form.addRow(title, self.result_labels[key])
        self.open_button = QPushButton("Open folder", objectName="openFolder", enabled=False)
        self.open_button.clicked.connect(self.open_folder)
        inner = QWidget()
        inner_layout = QVBoxLayout(inner)
        inner_layout.setContentsMargins(0, 0, 0, 0)
        inner_layout.addLayout(form)
        inner_layout.addWidget(self.open_button)
        self.result_card = card(label("Result", "hint"), inner)
        return self.result_card

    def refresh(self) -> None:
        """List finished training runs that have an adapter."""
        self.run_box.clear()
        for run in self.ctx.store.runs():
            adapters = self.ctx.store.artifacts(run["id"], "adapter")
            if run["kind"] == "train" and run["status"] == "succeeded" and adapters:
                self.run_box.addItem(run["name"], {**run, "adapter": adapters[0]["path"],
                                                   "adapter_meta": adapters[0].get("meta") or {}})
        self._enable()
        self.refresh_reports()

    def _enable(self) -> None:
        idle = self.run_box.count() > 0 and self.job is None
        self.export_button.setEnabled(idle)
        self.adapter_button.setEnabled(idle)

    def refresh_reports(self) -> None:
        """Show the stored reports of the selected run: merged folders, GGUFs, adapters."""
        run = self.run_box.currentData()
        found = {kind: stored_reports(self.ctx.store, run["id"], kind) if run else []
                 for kind in CARD_KINDS}
        self.show_reports(found["gguf"], merged=found["merged"], adapters=found["adapter_gguf"])

    def show_reports(self, reports: list[dict[str, Any]], *, merged: list[dict[str, Any]] = (),
                     adapters: list[dict[str, Any]] = ()) -> None:
        """One :class:`VerifyCard` per report (merged folders above the GGUFs, adapters below)
        and the quantization report table of the GGUFs."""
        for old in self.cards:
            self.cards_layout.removeWidget(old)
            old.hide()  # deleteLater runs only when control returns to the event loop
            old.deleteLater()
        self.cards = ([VerifyCard(r, title="Merged model") for r in merged]
                      + [VerifyCard(r, on_open=self.open_report_folder) for r in reports]
                      + [VerifyCard(r, title="LoRA adapter", on_open=self.open_report_folder)
                         for r in adapters])
        for widget in self.cards:
            self.cards_layout.addWidget(widget)
        fill_quant_table(self.quant_table, reports)
        self.quant_table.setVisible(bool(reports))
        self.quant_title.setVisible(bool(reports))
        self.reports_hint.setText(
            "Each export was checked against the trained model (adapter on base) on the run's "
            "validation conversations. Hover a check for what it means." if self.cards else
            "No verified exports of this run yet.")

    def start(self) -> Job | None:
        """Start merge + export (+ verification) of the selected run on the heavy lane."""
        quant, engine = self.quant_box.currentData(), self.ctx.engine

        def prepare(run: dict[str, Any], model: dict[str, Any], out: Path) -> Any:
            paths = {"model": Path(model["path"]), "adapter": Path(run["adapter"]),
                     "merged": out / "merged", "gguf": out / f"model-{quant}.gguf"}
            inputs, share = self._verify_inputs(run, model), self._share_inputs(run, model)
            return {"quant": quant}, f"Export run {run['id']} ({quant})", (
                lambda report, cancel: export_merged(engine, paths, quant, inputs, share,
                                                     report, cancel))

        return self._launch(prepare, "export the model")

    def start_adapter(self) -> Job | None:
        """Start the LoRA adapter GGUF export (+ verification) of the selected run."""
        outtype, engine = self.adapter_type_box.currentData(), self.ctx.engine

        def prepare(run: dict[str, Any], model: dict[str, Any], out: Path) -> Any:
            paths = {"model": Path(model["path"]), "adapter": Path(run["adapter"]),
                     "adapter_gguf": out / f"adapter-{outtype}.gguf"}
            inputs = self._verify_inputs(run, model)
            return ({"kind": "adapter_gguf", "quant": outtype},
                    f"Export LoRA adapter of run {run['id']} ({outtype})",
                    lambda report, cancel: export_adapter(engine, paths, outtype, inputs,
                                                          report, cancel))

        return self._launch(prepare, "export the LoRA adapter")

    def _launch(self, prepare: Any, what: str) -> Job | None:
        """Record an export run and submit ``prepare(run, model, out)``'s job body; wire the
        job to the page. ``prepare`` returns (run config, job name, job body)."""
        run = self.run_box.currentData()
        if run is None:
            return None
        try:
            model = next(m for m in self.ctx.store.base_models() if m["id"] == run["base_model_id"])
            config, name, body = prepare(run, model, self.ctx.store.folder("exports") / f"run-{run['id']}")
            self.export_run_id = self.ctx.store.start_run("export", config, parent_run_id=run["id"])
            job = self.ctx.runner.submit(name, body)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, exc, what)
            return None
        self.job, self._what = job, what
        job.progress.connect(self._on_progress)
        # Finished on ``done`` (after the runner freed the heavy lane; see TrainPage._watch).
        self._outcome: tuple[str, BaseException | None] = ("failed", None)
        job.succeeded.connect(self._on_succeeded)
        job.failed.connect(lambda exc: setattr(self, "_outcome", ("failed", exc)))
        job.cancelled.connect(lambda: setattr(self, "_outcome", ("cancelled", None)))
        job.done.connect(lambda: self._finish(*self._outcome))
        self._enable()
        self.cancel_button.setEnabled(True)
        return job

    def _verify_inputs(self, run: dict[str, Any], model: dict[str, Any]) -> VerifyInputs | None:
        """Validation rows (the run's own seeded split), template and max length, or ``None``
        when verification is switched off."""
        if not self.verify_box.isChecked():
            return None
        settings = run_settings(run)
        rows = [plain_example(r) for r in self.ctx.store.all_examples(
            run["dataset_id"], version_id=run.get("dataset_version_id"))]
        _, val = self.ctx.engine.train_validation_rows(
            rows, validation_fraction=settings["validation_fraction"], seed=settings["seed"])
        return VerifyInputs(Path(model["path"]), Path(run["adapter"]), list(val)[:VERIFY_ROWS],
                            run["adapter_meta"].get("template_source"), settings["max_length"])

    def _share_inputs(self, run: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
        store = self.ctx.store
        config = run.get("config") or {}
        card = {"base_model": model["name"], "base_model_path": model["path"],
                "dataset_name": store.dataset(run["dataset_id"])["name"],
                "dataset_hash": run.get("dataset_hash"),
                "dataset_version": run.get("dataset_version") or run.get("dataset_version_id"),
                "train_config": config.get("train", config),
                "metrics": {name: points[-1][1] for name, points in store.metrics(run["id"]).items()
                            if points}}
        return {"card": card, "template": run["adapter_meta"].get("template_source"),
                "modelfile": self.modelfile_box.isChecked()}

    def _on_progress(self, event: Progress) -> None:
        self.bar.setRange(0, event.total or 0)
        self.bar.setValue(event.step)
        self.stage.setText(event.message or event.stage)

    def _on_succeeded(self, result: dict[str, Any]) -> None:
        store, run_id = self.ctx.store, self.export_run_id
        if result["kind"] == "adapter_gguf":
            store.add_artifact(run_id, "adapter_gguf", result["path"], sha256=result["sha256"],
                               bytes=result["bytes"], meta={**result["meta"],
                                                            "verification": result["verification"]})
        else:
            store.add_artifact(run_id, "merged", result["merged_dir"],
                               meta={"dtype": result["merged_dtype"],
                                     "verification": result["merged_verification"]})
            store.add_artifact(run_id, "gguf", result["path"], sha256=result["sha256"],
                               bytes=result["bytes"], meta={"quantization": result["quant"],
                                                            "verification": result["verification"]})
        self.show_result(result)
        self.refresh_reports()
        self._outcome = ("succeeded", None)

    def show_result(self, result: dict[str, Any]) -> None:
        """Show the file's path, size, checksum and verification verdict (or why none)."""
        self.result = result
        self.result_labels["path"].setText(str(result["path"]))
        self.result_labels["size"].setText(f"{human_bytes(result['bytes'])} "
                                           f"({result['bytes']:,} bytes)")
        self.result_labels["sha256"].setText(result["sha256"])
        self.result_labels["verification"].setText(verdict_text(result))
        self.open_button.setEnabled(True)

    def open_folder(self) -> None:
        """Open the folder holding the exported file (after a warning if it failed verification)."""
        if self.result:
            self.open_report_folder(self.result.get("verification")
                                    or {"path": str(self.result["path"])})

    def open_report_folder(self, report: dict[str, Any]) -> None:
        """Open the folder of a reported file; a failed report first asks (:func:`confirm_share`)."""
        folder = str(Path(report["path"]).parent)
        confirm_share(self, report, lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(folder)))

    def _finish(self, status: str, exc: BaseException | None = None) -> None:
        self.job = None
        self.ctx.store.finish_run(self.export_run_id, status, str(exc) if exc else None)
        self.cancel_button.setEnabled(False)
        self._enable()
        self.bar.setRange(0, 1)  # stop the busy indicator of the checksum stage
        self.bar.setValue(1 if status == "succeeded" else 0)
        self.stage.setText({"succeeded": "Done.", "cancelled": "Cancelled."}.get(status, "Failed."))
        self.ctx.hub.runs_changed.emit()
        self.ctx.hub.artifacts_changed.emit()
        if exc is not None:
            show_error(self, exc, self._what)


RESULT_ROWS = (("path", "File"), ("size", "Size"), ("sha256", "SHA-256"),
               ("verification", "Verification"))
CARD_KINDS = ("merged", "gguf", "adapter_gguf")


def combo(name: str, items: tuple[tuple[str, str], ...]) -> QComboBox:
    """A combo box of ``(value, text)`` items."""
    box = QComboBox(objectName=name)
    for value, text in items:
        box.addItem(text, value)
    return box


def buttons(*widgets: QWidget) -> QWidget:
    """Widgets in a row, left-aligned; a label or progress bar takes the spare width."""
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        row.addWidget(widget, 1 if isinstance(widget, (QLabel, QProgressBar)) else 0)
    if not any(isinstance(w, (QLabel, QProgressBar)) for w in widgets):
        row.addStretch(1)
    return holder
