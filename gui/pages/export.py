"""Export page: merge a run's LoRA adapter and write a GGUF (f16 / q8_0 / q4_k_m)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QProgressBar, QPushButton,
                               QVBoxLayout, QWidget)

from engine.fileio import sha256_file
from engine.progress import Progress
from gui.context import AppContext
from gui.errors import show_error
from gui.jobs import Job
from gui.widgets import card, human_bytes, label

BODY_WIDTH = 900  # a form this short reads badly stretched across a wide window
QUANTS = (("q8_0", "q8_0 — 8-bit, near-lossless"), ("q4_k_m", "q4_k_m — 4-bit, smallest"),
          ("f16", "f16 — 16-bit, exact"))


def merge_and_export(engine: Any, model_dir: Path, adapter_dir: Path, merged_dir: Path,
                     gguf_path: Path, quant: str, report: Any, cancel: Any) -> dict[str, Any]:
    """Job body: merge, convert, then measure the file (size in bytes, SHA-256 hex)."""
    engine.merge_adapter(model_dir, adapter_dir, merged_dir, report=report, cancel=cancel)
    result = engine.export_gguf(merged_dir, gguf_path, quant, report=report, cancel=cancel)
    path = Path(getattr(result, "path", None) or gguf_path)
    digest = getattr(result, "sha256", None)  # the engine's export measures it already
    if not digest:
        report(Progress("checksum", message=f"computing SHA-256 of {path.name}"))
        digest = sha256_file(path)
    return {"path": path, "bytes": path.stat().st_size, "sha256": digest,
            "merged_dir": merged_dir, "quant": quant}


class ExportPage(QWidget):
    """Pick a finished run and a quantization; shows progress and the result file."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.job: Job | None = None
        self.result: dict[str, Any] | None = None
        self.run_box = QComboBox(objectName="exportRun")
        self.quant_box = QComboBox(objectName="exportQuant")
        for value, text in QUANTS:
            self.quant_box.addItem(text, value)
        self.export_button = QPushButton("Merge and export", objectName="exportButton")
        self.export_button.setProperty("primary", True)
        self.export_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.cancel_button.clicked.connect(lambda: self.job and self.job.cancel())
        self.bar = QProgressBar(objectName="exportProgress")
        self.stage = label("", "hint")
        form = QFormLayout()
        form.addRow("Training run", self.run_box)
        form.addRow("Quantization", self.quant_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        body = QWidget()
        body.setMaximumWidth(BODY_WIDTH)
        outer = QHBoxLayout(self)
        outer.addWidget(body, 1)
        outer.addStretch(0)
        layout = QVBoxLayout(body)
        layout.addWidget(label("Export", "title"))
        layout.addWidget(label("Merges the LoRA adapter into its base model and writes a GGUF "
                               "file for llama.cpp, Ollama or LM Studio.", "hint", wrap=True))
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.stage)
        layout.addWidget(self._build_result())
        layout.addStretch(1)
        ctx.hub.runs_changed.connect(self.refresh)
        self.refresh()

    def _build_result(self) -> QWidget:
        self.result_labels = {key: label("—", wrap=True) for key in ("path", "size", "sha256")}
        form = QFormLayout()
        for key, title in (("path", "File"), ("size", "Size"), ("sha256", "SHA-256")):
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
                self.run_box.addItem(run["name"], {**run, "adapter": adapters[0]["path"]})
        self.export_button.setEnabled(self.run_box.count() > 0 and self.job is None)

    def start(self) -> Job | None:
        """Start merge + export of the selected run on the heavy lane."""
        run, quant = self.run_box.currentData(), self.quant_box.currentData()
        if run is None:
            return None
        try:
            model = next(m for m in self.ctx.store.base_models() if m["id"] == run["base_model_id"])
            out = self.ctx.store.folder("exports") / f"run-{run['id']}"
            self.export_run_id = self.ctx.store.start_run("export", {"quant": quant},
                                                          parent_run_id=run["id"])
            engine = self.ctx.engine
            job = self.ctx.runner.submit(f"Export run {run['id']} ({quant})", lambda report, cancel:
                                         merge_and_export(engine, Path(model["path"]),
                                                          Path(run["adapter"]), out / "merged",
                                                          out / f"model-{quant}.gguf", quant,
                                                          report, cancel))
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, exc, "start the export")
            return None
        self.job = job
        job.progress.connect(self._on_progress)
        # Finished on ``done`` (after the runner freed the heavy lane; see TrainPage._watch).
        self._outcome: tuple[str, BaseException | None] = ("failed", None)
        job.succeeded.connect(self._on_succeeded)
        job.failed.connect(lambda exc: setattr(self, "_outcome", ("failed", exc)))
        job.cancelled.connect(lambda: setattr(self, "_outcome", ("cancelled", None)))
        job.done.connect(lambda: self._finish(*self._outcome))
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        return job

    def _on_progress(self, event: Progress) -> None:
        self.bar.setRange(0, event.total or 0)
        self.bar.setValue(event.step)
        self.stage.setText(event.message or event.stage)

    def _on_succeeded(self, result: dict[str, Any]) -> None:
        store = self.ctx.store
        store.add_artifact(self.export_run_id, "merged", result["merged_dir"])
        store.add_artifact(self.export_run_id, "gguf", result["path"], sha256=result["sha256"],
                           bytes=result["bytes"], meta={"quantization": result["quant"]})
        self.show_result(result)
        self._outcome = ("succeeded", None)

    def show_result(self, result: dict[str, Any]) -> None:
        """Show the file's path, size and checksum."""
        self.result = result
        self.result_labels["path"].setText(str(result["path"]))
        self.result_labels["size"].setText(f"{human_bytes(result['bytes'])} "
                                           f"({result['bytes']:,} bytes)")
        self.result_labels["sha256"].setText(result["sha256"])
        self.open_button.setEnabled(True)

    def open_folder(self) -> None:
        """Open the folder holding the exported file in the system file manager."""
        if self.result:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(self.result["path"]).parent)))

    def _finish(self, status: str, exc: BaseException | None = None) -> None:
        self.job = None
        self.ctx.store.finish_run(self.export_run_id, status, str(exc) if exc else None)
        self.cancel_button.setEnabled(False)
        self.bar.setRange(0, 1)  # stop the busy indicator of the checksum stage
        self.bar.setValue(1 if status == "succeeded" else 0)
        self.stage.setText({"succeeded": "Done.", "cancelled": "Cancelled."}.get(status, "Failed."))
        self.ctx.hub.runs_changed.emit()
        self.ctx.hub.artifacts_changed.emit()
        if exc is not None:
            show_error(self, exc, "export the model")
