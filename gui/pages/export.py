"""Export page: merge a run's LoRA adapter, write a GGUF (f16 / q8_0 / q4_k_m), verify it against
the trained model and show one pass/warn/fail card per exported file plus the quantization
report side by side (issue 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QProgressBar,
                               QPushButton, QScrollArea, QVBoxLayout, QWidget)

from engine.fileio import sha256_file
from engine.progress import Progress
from gui.context import AppContext
from gui import export_verify
from gui.errors import show_error
from gui.jobs import Job
from gui.pages.train import plain_example
from gui.scoring import run_settings
from gui.verify_card import VerifyCard, confirm_share, fill_quant_table, quant_table
from gui.widgets import card, human_bytes, label

BODY_WIDTH = 900  # a form this short reads badly stretched across a wide window
QUANTS = (("q8_0", "q8_0 — 8-bit, near-lossless"), ("q4_k_m", "q4_k_m — 4-bit, smallest"),
          ("f16", "f16 — 16-bit, exact"))


QUANT_ORDER = ("f32", "bf16", "f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m")


def export_verify_share(engine: Any, paths: dict[str, Path], quant: str, verify: dict | None,
                        share: dict[str, Any], report: Any, cancel: Any, *,
                        verifier: Any = export_verify.verify_gguf,
                        sharer: Any = export_verify.write_sharing_files) -> dict[str, Any]:
    """Job body: merge and export (:func:`merge_and_export`), verify the GGUF against the
    adapter model when ``verify`` (``verifier`` keyword arguments) is given, then write the
    model card (and Modelfile) beside it. ``paths``: ``model``, ``adapter``, ``merged``,
    ``gguf``. ``share``: ``card`` inputs, ``template``, ``modelfile``."""
    result = merge_and_export(engine, paths["model"], paths["adapter"], paths["merged"],
                              paths["gguf"], quant, report, cancel)
    result["verification"] = None
    if verify is not None:
        report(Progress("verify", message=f"verifying {result['path'].name} against the trained model"))
        result["verification"] = verifier(result["path"], quant, model_dir=paths["model"],
                                          adapter_dir=paths["adapter"], report=report,
                                          cancel=cancel, merged_dtype=result["merged_dtype"],
                                          **verify)
    sharer(result["path"], share["card"], result["verification"], merged_dir=paths["merged"],
           template=share["template"], modelfile=share["modelfile"])
    return result


def merge_and_export(engine: Any, model_dir: Path, adapter_dir: Path, merged_dir: Path,
                     gguf_path: Path, quant: str, report: Any, cancel: Any) -> dict[str, Any]:
    """Job body: merge, convert, then measure the file (size in bytes, SHA-256 hex)."""
    merged = engine.merge_adapter(model_dir, adapter_dir, merged_dir, report=report, cancel=cancel)
    result = engine.export_gguf(merged_dir, gguf_path, quant, report=report, cancel=cancel)
    path = Path(getattr(result, "path", None) or gguf_path)
    digest = getattr(result, "sha256", None)  # the engine's export measures it already
    if not digest:
        report(Progress("checksum", message=f"computing SHA-256 of {path.name}"))
        digest = sha256_file(path)
    return {"path": path, "bytes": path.stat().st_size, "sha256": digest,
            "merged_dir": merged_dir, "quant": quant,
            "merged_dtype": getattr(merged, "dtype", None)}


class ExportPage(QWidget):
    """Pick a finished run and a quantization; shows progress and the result file."""

    def __init__(self, ctx: AppContext, *, verifier: Any = export_verify.verify_gguf,
                 sharer: Any = export_verify.write_sharing_files) -> None:
        super().__init__()
        self.ctx = ctx
        self.verifier, self.sharer = verifier, sharer
        self.cards: list[VerifyCard] = []
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
        self.verify_box = QCheckBox("Verify against the trained model (about a minute)",
                                    objectName="exportVerify", checked=True)
        self.verify_box.setToolTip("Runs up to 8 validation conversations through the trained "
                                   "model and the GGUF: next-token agreement, KL divergence, "
                                   "perplexity, stopping, special tokens and chat template.")
        self.modelfile_box = QCheckBox("Also write an Ollama Modelfile",
                                       objectName="exportModelfile")
        form = QFormLayout()
        form.addRow("Training run", self.run_box)
        form.addRow("Quantization", self.quant_box)
        form.addRow("", self.verify_box)
        form.addRow("", self.modelfile_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
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
        layout = QVBoxLayout(body)
        layout.addWidget(label("Export", "title"))
        layout.addWidget(label("Merges the LoRA adapter into its base model and writes a GGUF "
                               "file for llama.cpp, Ollama or LM Studio.", "hint", wrap=True))
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.stage)
        layout.addWidget(self._build_result())
        layout.addWidget(label("Verification", "title"))
        self.reports_hint = label("", "hint", wrap=True)
        layout.addWidget(self.reports_hint)
        self.cards_layout = QVBoxLayout()
        layout.addLayout(self.cards_layout)
        layout.addWidget(label("Quantization report", "hint"))
        self.quant_table = quant_table([])
        layout.addWidget(self.quant_table)
        layout.addStretch(1)
        ctx.hub.runs_changed.connect(self.refresh)
        self.run_box.currentIndexChanged.connect(lambda _: self.refresh_reports())
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
                self.run_box.addItem(run["name"], {**run, "adapter": adapters[0]["path"],
                                                   "adapter_meta": adapters[0].get("meta") or {}})
        self.export_button.setEnabled(self.run_box.count() > 0 and self.job is None)
        self.refresh_reports()

    def stored_reports(self, train_run_id: int) -> list[dict[str, Any]]:
        """Verification reports of the GGUFs exported from a train run (directly, or through
        its merge run as the CLI does), newest file per path, f16 first then smaller types."""
        store, seen, reports = self.ctx.store, set(), []
        for artifact in store.artifacts(kind="gguf"):
            report = (artifact.get("meta") or {}).get("verification")
            if not report or artifact["path"] in seen or artifact["run_id"] is None:
                continue
            parent = store.run(artifact["run_id"]).get("parent_run_id")
            if parent != train_run_id and (parent is None or
                                           store.run(parent).get("parent_run_id") != train_run_id):
                continue
            seen.add(artifact["path"])
            reports.append(report)
        rank = {q: i for i, q in enumerate(QUANT_ORDER)}
        return sorted(reports, key=lambda r: rank.get(r.get("quant"), len(rank)))

    def refresh_reports(self) -> None:
        """Show the stored reports of the selected run."""
        run = self.run_box.currentData()
        self.show_reports(self.stored_reports(run["id"]) if run else [])

    def show_reports(self, reports: list[dict[str, Any]]) -> None:
        """One :class:`VerifyCard` per report, and the quantization report table."""
        for old in self.cards:
            self.cards_layout.removeWidget(old)
            old.hide()  # deleteLater runs only when control returns to the event loop
            old.deleteLater()
        self.cards = [VerifyCard(r, on_open=self.open_report_folder) for r in reports]
        for widget in self.cards:
            self.cards_layout.addWidget(widget)
        fill_quant_table(self.quant_table, reports)
        self.quant_table.setVisible(bool(reports))
        self.reports_hint.setText(
            "Each exported file was checked against the trained model (adapter on base) on the "
            "run's validation conversations. Hover a check for what it means." if reports else
            "No verified exports of this run yet.")

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
            paths = {"model": Path(model["path"]), "adapter": Path(run["adapter"]),
                     "merged": out / "merged", "gguf": out / f"model-{quant}.gguf"}
            verify, share = self._verify_inputs(run), self._share_inputs(run, model)
            engine, verifier, sharer = self.ctx.engine, self.verifier, self.sharer
            job = self.ctx.runner.submit(f"Export run {run['id']} ({quant})", lambda report, cancel:
                                         export_verify_share(engine, paths, quant, verify, share,
                                                             report, cancel, verifier=verifier,
                                                             sharer=sharer))
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

    def _verify_inputs(self, run: dict[str, Any]) -> dict[str, Any] | None:
        """Validation rows (the run's own seeded split), template and max length, or ``None``
        when verification is switched off."""
        if not self.verify_box.isChecked():
            return None
        settings = run_settings(run)
        rows = [plain_example(r) for r in self.ctx.store.all_examples(
            run["dataset_id"], version_id=run.get("dataset_version_id"))]
        _, val = self.ctx.engine.train_validation_rows(
            rows, validation_fraction=settings["validation_fraction"], seed=settings["seed"])
        return {"rows": list(val)[:export_verify.VERIFY_ROWS],
                "template": run["adapter_meta"].get("template_source"),
                "max_length": settings["max_length"]}

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
        store = self.ctx.store
        store.add_artifact(self.export_run_id, "merged", result["merged_dir"])
        store.add_artifact(self.export_run_id, "gguf", result["path"], sha256=result["sha256"],
                           bytes=result["bytes"], meta={"quantization": result["quant"],
                                                        "verification": result.get("verification")})
        self.show_result(result)
        self.refresh_reports()
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
        self.bar.setRange(0, 1)  # stop the busy indicator of the checksum stage
        self.bar.setValue(1 if status == "succeeded" else 0)
        self.stage.setText({"succeeded": "Done.", "cancelled": "Cancelled."}.get(status, "Failed."))
        self.ctx.hub.runs_changed.emit()
        self.ctx.hub.artifacts_changed.emit()
        if exc is not None:
            show_error(self, exc, "export the model")
