"""Train page: a form generated from ``TrainConfig``, presets, an estimate, and the live run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QPushButton,
                               QScrollArea, QVBoxLayout, QWidget)

from engine.configs import to_dict
from engine.progress import Progress
from gui.config_form import ConfigForm
from gui.context import AppContext
from gui.errors import show_error
from gui.jobs import Job
from gui.train_monitor import TrainMonitor
from gui.widgets import fill_with_splitter, label

BASIC_FIELDS = ("learning_rate", "num_epochs", "max_steps", "batch_size",
                "gradient_accumulation_steps", "max_length", "lora_rank", "lora_alpha", "device")
# Metrics are written to SQLite in batches: one transaction every two seconds, not one per step
# (a commit is a WAL append plus locking, milliseconds on a busy disk, on the GUI thread).
METRICS_FLUSH_MS = 2000


def plain_example(row: dict[str, Any]) -> dict[str, Any]:
    """A stored example row reduced to the engine's example dict."""
    return {key: row.get(key) for key in ("id", "messages", "tags", "source_file", "source_line",
                                          "split", "synthetic", "origin_id")}


class TrainPage(QWidget):
    """Pick model, dataset and settings; start, pause, resume or cancel a training run."""

    run_finished = Signal(int, str)  # run id, final status

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.job: Job | None = None
        self.run_id: int | None = None
        self._resume_run: dict[str, Any] | None = None
        self._metrics: list[tuple[int, dict[str, float]]] = []
        self.config_cls = ctx.engine.train_config_class()
        self.form = ConfigForm(self.config_cls, BASIC_FIELDS)
        self.monitor = TrainMonitor()
        self._build()
        self._flush_timer = QTimer(self, interval=METRICS_FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush_metrics)
        self._estimate_timer = QTimer(self, singleShot=True, interval=400)
        self._estimate_timer.timeout.connect(self._update_estimate)
        for editor in self.form.editors.values():
            signal = getattr(editor, "textChanged", None) or getattr(editor, "currentTextChanged",
                                                                      None) or editor.toggled
            signal.connect(lambda *_: self._estimate_timer.start())
        ctx.hub.datasets_changed.connect(self.refresh_choices)
        ctx.hub.models_changed.connect(self.refresh_choices)
        self.form.set_values({"device": ctx.setting("device", "auto")})  # Settings' default
        self.refresh_choices()
        self._set_state("idle")

    # layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.model_box = QComboBox(objectName="modelChoice")
        self.dataset_box = QComboBox(objectName="datasetChoice")
        self.val_fraction = QDoubleSpinBox(objectName="valFraction", decimals=2, maximum=0.5,
                                           singleStep=0.05, value=0.1)
        self.val_fraction.setToolTip("Share of the dataset held out to compute the eval loss.")
        self.preset_box = QComboBox(objectName="presetChoice")
        self.preset_box.addItem("Custom")
        self.preset_box.addItems(list(self.ctx.engine.train_presets()))
        self.preset_box.currentTextChanged.connect(self.apply_preset)
        top = QFormLayout()
        top.addRow("Base model", self.model_box)
        top.addRow("Dataset", self.dataset_box)
        top.addRow("Validation share", self.val_fraction)
        top.addRow("Preset", self.preset_box)
        self.estimate = label("", "hint", wrap=True)
        self.estimate.setObjectName("estimateLabel")
        inner = QWidget()
        column = QVBoxLayout(inner)
        column.addWidget(label("Train", "title"))
        column.addLayout(top)
        column.addWidget(self.form)
        column.addWidget(self.estimate)
        column.addStretch(1)
        scroll = QScrollArea(widgetResizable=True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        scroll.setMinimumWidth(inner.sizeHint().width() + 20)
        fill_with_splitter(self, scroll, self._build_run_side(), sizes=(440, 760))

    def _build_run_side(self) -> QWidget:
        self.start_button = QPushButton("Start training", objectName="startButton")
        self.start_button.setProperty("primary", True)
        self.start_button.setShortcut("Ctrl+Return")
        self.pause_button = QPushButton("Pause", objectName="pauseButton")
        self.resume_button = QPushButton("Resume", objectName="resumeButton")
        self.cancel_button = QPushButton("Cancel", objectName="cancelButton")
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self.resume)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.resume_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.state_label = label("", "hint")
        side = QWidget()
        layout = QVBoxLayout(side)
        layout.addLayout(buttons)
        layout.addWidget(self.state_label)
        layout.addWidget(self.monitor, 1)
        return side

    # choices --------------------------------------------------------------------------------
    def refresh_choices(self) -> None:
        """Reload the model and dataset pickers (keeping the current choice)."""
        _fill(self.model_box, [(m["name"], m) for m in self.ctx.store.base_models()])
        _fill(self.dataset_box, [(f"{d['name']} ({d['example_count']:,})", d)
                                 for d in self.ctx.store.datasets()])
        self._estimate_timer.start()

    def apply_preset(self, name: str) -> None:
        """Load a preset's values into the form (unknown keys ignored)."""
        preset = self.ctx.engine.train_presets().get(name)
        if preset:
            self.form.set_values({k: v for k, v in preset.items() if k in self.form.fields})

    def _update_estimate(self) -> None:
        config, model, dataset = self.form.raw_config(), self.model_box.currentData(), \
            self.dataset_box.currentData()
        if config is None or model is None or dataset is None:
            self.estimate.setText("")
            return
        n_train = int(dataset["example_count"] * (1 - self.val_fraction.value()))
        estimate = self.ctx.engine.estimate_training
        job = self.ctx.runner.submit("Estimate", lambda report, cancel: estimate(
            config, Path(model["path"]), model.get("parameter_count"), n_train), lane="light")
        job.succeeded.connect(lambda text: self._show_estimate(f"Estimate: {text}"))
        job.failed.connect(lambda exc: self._show_estimate(f"No estimate: {exc}"))

    def _show_estimate(self, text: str) -> None:
        # The light lane may finish after the window closed (app exit, a test's teardown): a
        # lambda is not disconnected when the page goes, so check the label still exists.
        if shiboken6.isValid(self.estimate):
            self.estimate.setText(text)

    # run control ----------------------------------------------------------------------------
    def start(self) -> Job | None:
        """Validate the form, record a run and start training on the heavy lane."""
        config = self.form.build()
        model, dataset = self.model_box.currentData(), self.dataset_box.currentData()
        if config is None:
            return None
        if model is None or dataset is None:
            self.state_label.setText("Pick a base model and a dataset first.")
            return None
        try:
            return self._launch(config, model, dataset)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, exc, "start training")
            return None

    def _launch(self, config: Any, model: dict[str, Any], dataset: dict[str, Any]) -> Job:
        rows = [plain_example(r) for r in self.ctx.store.all_examples(dataset["id"])]
        train_rows, val_rows = self.ctx.engine.train_validation_rows(
            rows, validation_fraction=self.val_fraction.value(), seed=config.seed)
        resume = self._resume_run
        record = {**to_dict(config), "validation_fraction": self.val_fraction.value()}
        self.run_id = self.ctx.store.start_run(
            "train", record, base_model_id=model["id"], dataset_id=dataset["id"],
            parent_run_id=resume["id"] if resume else None)
        output_dir = (resume["output_dir"] if resume else
                      self.ctx.store.folder("runs") / f"run-{self.run_id}")
        # The run folder is recorded at once so an interrupted run can be resumed from it.
        self.ctx.store.add_artifact(self.run_id, "checkpoint", output_dir.resolve())
        train = self.ctx.engine.train_lora
        job = self.ctx.runner.submit(f"Training run {self.run_id}", lambda report, cancel: train(
            config, Path(model["path"]), train_rows, val_rows, output_dir,
            resume=resume is not None, report=report, cancel=cancel))
        self._resume_run = None
        self._watch(job, output_dir, len(train_rows), len(val_rows))
        return job

    def _watch(self, job: Job, output_dir: Path, n_train: int, n_val: int) -> None:
        self.job = job
        self.monitor.reset(f"run {self.run_id}: {n_train} training / {n_val} validation "
                           f"conversations → {output_dir}")
        self._output_dir = output_dir
        job.progress.connect(self._on_progress)
        # The outcome is recorded now, the run finished on ``done``: only then has the runner
        # let go of the heavy lane, so Start works again the moment it is enabled.
        self._outcome: tuple[str, BaseException | None] = ("failed", None)
        job.succeeded.connect(self._on_succeeded)
        job.failed.connect(lambda exc: setattr(self, "_outcome", ("failed", exc)))
        job.cancelled.connect(lambda: setattr(self, "_outcome", ("cancelled", None)))
        job.done.connect(self._on_done)
        self._flush_timer.start()
        self._set_state("running")

    def pause(self) -> None:
        """Hold the run in memory at its next step."""
        if self.job:
            self.job.pause()
            self._set_state("paused")

    def resume(self) -> None:
        """Carry on a paused run."""
        if self.job:
            self.job.resume()
            self._set_state("running")

    def cancel(self) -> None:
        """Stop the run; the engine saves the adapter and a resumable checkpoint."""
        if self.job:
            self.job.cancel()
            self._set_state("stopping")

    def load_run(self, run_id: int, resume: bool = False) -> None:
        """Fill the form from a stored run; with ``resume`` the next Start continues it."""
        run = self.ctx.store.run(run_id)
        self.form.set_values(run["config"])
        self.val_fraction.setValue(float(run["config"].get("validation_fraction", 0.1)))
        _select(self.model_box, run.get("base_model_id"))
        _select(self.dataset_box, run.get("dataset_id"))
        if resume:
            folders = self.ctx.store.artifacts(run_id, "checkpoint")
            out = Path(folders[0]["path"]) if folders else self.ctx.store.folder("runs") / f"run-{run_id}"
            self._resume_run = {**run, "output_dir": out}
            self.state_label.setText(f"Press Start to resume run {run_id} from its checkpoint.")

    # job events -----------------------------------------------------------------------------
    def _on_progress(self, event: Progress) -> None:
        self.monitor.on_progress(event)
        numbers = {k: float(v) for k, v in event.metrics.items() if v is not None}
        if event.stage in ("train", "eval") and numbers:
            self._metrics.append((event.step, numbers))

    def _flush_metrics(self) -> None:
        if self.run_id is None or not self._metrics:
            return
        pending, self._metrics = self._metrics, []
        self.ctx.store.add_metric_rows(self.run_id, [(step, name, value) for step, metrics in pending
                                                     for name, value in metrics.items()])

    def _on_succeeded(self, result: Any) -> None:
        adapter = getattr(result, "adapter_dir", None) or self._output_dir / "adapter"
        # The template is recorded as the CLI does, so evaluation scores the same format.
        template = getattr(getattr(result, "template", None), "source", None)
        self.ctx.store.add_artifact(self.run_id, "adapter", Path(adapter).resolve(),
                                    meta={"output_dir": str(self._output_dir),
                                          "template_source": template})
        self.monitor.append_log(f"finished: adapter saved to {adapter}")
        self._outcome = ("succeeded", None)

    def _on_done(self) -> None:
        status, exc = self._outcome
        self._finish(status, str(exc) if exc is not None else None)
        if exc is not None:
            show_error(self, exc, "train the model")

    def _finish(self, status: str, error: str | None = None) -> None:
        self._flush_timer.stop()
        self._flush_metrics()
        self.monitor.flush()
        run_id, self.job = self.run_id, None
        if run_id is not None:
            self.ctx.store.finish_run(run_id, status, error)
            self.ctx.hub.runs_changed.emit()
            self.run_finished.emit(run_id, status)
        if status == "cancelled":
            self.monitor.append_log("cancelled: adapter and checkpoint kept; resume it from Runs")
        self._set_state("idle", f"Run {run_id} {status}.")

    def _set_state(self, state: str, text: str = "") -> None:
        self.start_button.setEnabled(state == "idle")
        self.pause_button.setEnabled(state == "running")
        self.resume_button.setEnabled(state == "paused")
        self.cancel_button.setEnabled(state in ("running", "paused"))
        self.state_label.setText(text or {"running": "Training…", "paused": "Paused — the run "
                                          "waits in memory.", "stopping": "Stopping at the next "
                                          "step…"}.get(state, ""))


def _fill(box: QComboBox, items: list[tuple[str, dict[str, Any]]]) -> None:
    current = box.currentData()
    box.blockSignals(True)
    box.clear()
    for text, data in items:
        box.addItem(text, data)
    box.blockSignals(False)
    if current is not None:
        _select(box, current.get("id"))


def _select(box: QComboBox, row_id: int | None) -> None:
    for index in range(box.count()):
        if (box.itemData(index) or {}).get("id") == row_id:
            box.setCurrentIndex(index)
