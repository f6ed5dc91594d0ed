"""The main window: a sidebar of pages, a status bar with device and job, settings, shortcuts."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMainWindow,
                               QMessageBox, QProgressBar, QStackedWidget, QWidget)

from engine.progress import Progress
from gui.context import AppContext
from gui.errors import show_error
from gui.jobs import Job
from gui.pages.chat import ChatPage
from gui.pages.datasets import DatasetsPage
from gui.pages.export import ExportPage
from gui.pages.models import ModelsPage
from gui.pages.runs import RunsPage
from gui.pages.train import TrainPage
from gui.pages.workbench import WorkbenchPage
from gui.settings_dialog import SettingsDialog
from gui.throttle import Coalescer

STATUS_MS = 250
PAGES = (("Datasets", DatasetsPage), ("Workbench", WorkbenchPage), ("Models", ModelsPage),
         ("Train", TrainPage), ("Runs", RunsPage), ("Export", ExportPage), ("Chat", ChatPage))


class MainWindow(QMainWindow):
    """Sidebar + stacked pages; asks before closing while a heavy job runs."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.setWindowTitle("Tunesmith")
        self.resize(1280, 820)
        self._closing = False
        self.pages: dict[str, QWidget] = {}
        self._build_body()
        self._build_status_bar()
        self._build_actions()
        ctx.runner.active_changed.connect(self._on_active_job)
        # The status bar follows the heavy job's newest event a few times per second.
        self._job_status = Coalescer(STATUS_MS, self._show_job_progress, self)
        ctx.runner.job_progress.connect(self._job_status.push)
        ctx.hub.status_message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        QTimer.singleShot(0, self._probe_device)

    # layout ---------------------------------------------------------------------------------
    def _build_body(self) -> None:
        self.sidebar = QListWidget(objectName="sidebar")
        self.sidebar.setFixedWidth(170)
        self.sidebar.setIconSize(QSize(18, 18))
        self.stack = QStackedWidget()
        for name, page_cls in PAGES:
            page = page_cls(self.ctx)
            page.setObjectName(f"{name.lower()}Page")
            self.pages[name] = page
            self.stack.addWidget(page)
            QListWidgetItem(name, self.sidebar)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.sidebar.setCurrentRow(0)
        body = QWidget()
        layout = QHBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(body)
        self.pages["Runs"].resume_requested.connect(self._on_resume_requested)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.device_label = QLabel("Detecting device…", objectName="deviceLabel")
        self.job_label = QLabel("Idle", objectName="jobLabel")
        self.job_bar = QProgressBar(objectName="jobProgress")
        self.job_bar.setFixedWidth(160)
        self.job_bar.setVisible(False)
        bar.addPermanentWidget(self.job_label)
        bar.addPermanentWidget(self.job_bar)
        bar.addPermanentWidget(self.device_label)

    def _build_actions(self) -> None:
        menu = self.menuBar().addMenu("&File")
        self._action(menu, "&Import dataset…", QKeySequence.StandardKey.Open,
                     lambda: self._show("Datasets").import_dialog())
        self._action(menu, "&Settings…", QKeySequence("Ctrl+,"), self.open_settings)
        menu.addSeparator()
        self._action(menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        go = self.menuBar().addMenu("&Go")
        for index, (name, _) in enumerate(PAGES):
            self._action(go, name, QKeySequence(f"Ctrl+{index + 1}"),
                         lambda _=False, i=index: self.sidebar.setCurrentRow(i))
        job = self.menuBar().addMenu("&Job")
        self._action(job, "Cancel running job", QKeySequence("Ctrl+."), self._cancel_heavy)

    def _action(self, menu, text: str, shortcut, slot) -> QAction:
        action = QAction(text, self)
        action.setShortcut(shortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _show(self, name: str) -> QWidget:
        self.sidebar.setCurrentRow([n for n, _ in PAGES].index(name))
        return self.pages[name]

    # status bar -----------------------------------------------------------------------------
    def _probe_device(self) -> None:
        # Probing imports torch (seconds): do it on the light lane, never on the GUI thread.
        job = self.ctx.runner.submit("Detect device",
                                     lambda report, cancel: self.ctx.engine.device_summary(),
                                     lane="light")
        job.succeeded.connect(self.device_label.setText)
        job.failed.connect(lambda exc: self.device_label.setText("Device: unknown"))

    def _on_active_job(self, job: Job | None) -> None:
        self._job_status.discard()
        self.job_bar.setVisible(job is not None)
        self.job_bar.setRange(0, 0)
        self.job_label.setText(job.name if job else "Idle")

    def _show_job_progress(self, job: Job, event: Progress) -> None:
        if job is not self.ctx.runner.heavy:
            return
        if event.total:
            self.job_bar.setRange(0, event.total)
            self.job_bar.setValue(min(event.step, event.total))
        paused = " (paused)" if job.paused else ""
        self.job_label.setText(f"{job.name}: {event.stage}{paused}")

    def _cancel_heavy(self) -> None:
        if self.ctx.runner.heavy is not None:
            self.ctx.runner.heavy.cancel()

    # settings, navigation -------------------------------------------------------------------
    def open_settings(self) -> None:
        """Show the settings dialog (data dir, default device, theme)."""
        SettingsDialog(self.ctx, self).open()

    def _on_resume_requested(self, run_id: int) -> None:
        try:
            self._show("Train").load_run(run_id, resume=True)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, exc, "resume the run")

    # closing --------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        heavy = self.ctx.runner.heavy
        if heavy is None:
            self._shutdown()
            event.accept()
            return
        event.ignore()
        if self._closing:
            return
        answer = QMessageBox.question(
            self, "Tunesmith", f"'{heavy.name}' is still running.\n\nStop it and quit? "
            "Training keeps its last checkpoint, so you can resume it later from Runs.")
        if answer == QMessageBox.StandardButton.Yes:
            self.request_close_cancelling()

    def request_close_cancelling(self) -> None:
        """Cancel the heavy job and close once it has stopped (no thread is killed)."""
        heavy = self.ctx.runner.heavy
        if heavy is None:
            self.close()
            return
        self._closing = True
        self.job_label.setText(f"Stopping {heavy.name}…")
        heavy.done.connect(self.close, Qt.ConnectionType.QueuedConnection)
        heavy.cancel()

    def _shutdown(self) -> None:
        for page in self.pages.values():
            if hasattr(page, "shutdown"):
                page.shutdown()
        self.ctx.runner.cancel_all()
        self.ctx.runner.wait(10_000)
