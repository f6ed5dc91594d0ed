"""Background jobs: engine work runs off the GUI thread and reports back through signals.

A :class:`Job` wraps one callable ``fn(report, cancel) -> result``. It runs on a worker
thread of one of the :class:`JobRunner`'s lanes and turns the engine's ``Progress`` events
into Qt signals. Signals of a ``Job`` (which lives on the GUI thread) emitted from the worker
are delivered queued, so slots always run on the GUI thread — the only thread that touches
SQLite and widgets. Nobody kills threads: cancel and pause go through the job's
:class:`engine.progress.CancelToken`, which the engine polls between steps.

Lanes (napari/superqt-style workers, one pool per lane):
    ``heavy``: training, merge, export, evaluation — one at a time (one GPU).
    ``chat``: llama.cpp generation; a single thread that never expires, because a llama.cpp
        model must be used from one thread only.
    ``light``: file imports, model inspection, device probing — cheap, may overlap training.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, QTimer, Signal

from engine.errors import Cancelled, EngineError
from engine.progress import CancelToken, Progress

log = logging.getLogger(__name__)

JobFn = Callable[[Callable[[Progress], None], CancelToken], Any]
LANES = ("heavy", "chat", "light")
# Heavy jobs run at a lower CPU priority (Linux nice value; threads torch or llama.cpp start
# from the job's thread inherit it), so the GUI thread wins the CPU when it wakes up: on a
# busy machine this keeps event-loop stalls short at little cost to the job.
HEAVY_NICE = 5


class JobBusy(EngineError):
    """A heavy job was submitted while another one runs."""


class Job(QObject):
    """One unit of background work with progress, result and cancellation signals.

    Exactly one of ``succeeded(result)``, ``failed(exception)`` or ``cancelled()`` is emitted,
    then ``done()``.
    """

    progress = Signal(object)  # engine.progress.Progress
    succeeded = Signal(object)
    failed = Signal(object)  # the exception; traceback in exc.__traceback__
    cancelled = Signal()
    done = Signal()

    def __init__(self, name: str, fn: JobFn, *, lane: str = "heavy",
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        if lane not in LANES:
            raise ValueError(f"lane must be one of {', '.join(LANES)}; got {lane!r}")
        self.name = name
        self.lane = lane
        self.token = CancelToken()
        self.last_progress: Progress | None = None
        self.finished = False
        self._fn = fn
        self.progress.connect(self._remember)

    def cancel(self) -> None:
        """Ask the job to stop at its next check; safe from any thread."""
        self.token.cancel()

    def pause(self) -> None:
        """Make the job wait at its next check (state stays in memory)."""
        self.token.pause()

    def resume(self) -> None:
        """Let a paused job carry on."""
        self.token.resume()

    @property
    def paused(self) -> bool:
        """Whether the job is paused."""
        return self.token.paused

    def run_here(self) -> None:
        """Run the job on the calling thread (the worker calls this)."""
        try:
            result = self._fn(self.progress.emit, self.token)
        except Cancelled:
            self.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the GUI
            log.debug("job %s failed", self.name, exc_info=True)
            self.failed.emit(exc)
        else:
            if self.token.cancelled:
                self.cancelled.emit()
            else:
                self.succeeded.emit(result)
        finally:
            self.done.emit()

    def _remember(self, event: Progress) -> None:
        self.last_progress = event


class _Runnable(QRunnable):
    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job
        self.setAutoDelete(True)

    def run(self) -> None:
        if self.job.lane == "heavy":
            lower_thread_priority()
        self.job.run_here()


def lower_thread_priority() -> None:
    """Lower the calling worker thread's CPU priority (best effort, never raises)."""
    try:
        if sys.platform.startswith("linux"):
            # Linux keeps a nice value per thread; raising it needs no privilege.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HEAVY_NICE)
        else:
            QThread.currentThread().setPriority(QThread.Priority.LowPriority)
    except (OSError, AttributeError):
        log.debug("could not lower the worker thread's priority", exc_info=True)


class JobRunner(QObject):
    """Starts jobs on their lanes; at most one heavy job at a time.

    Signals:
        active_changed(job_or_None): the running heavy job changed (for the status bar).
        job_progress(job, progress): the heavy job's progress, for the status bar.
    """

    active_changed = Signal(object)
    job_progress = Signal(object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pools = {lane: QThreadPool(self) for lane in LANES}
        for pool in self.pools.values():
            pool.setMaxThreadCount(1)
        # The chat thread must outlive each job: a llama.cpp context is bound to its thread.
        self.pools["chat"].setExpiryTimeout(-1)
        self.heavy: Job | None = None
        self.jobs: set[Job] = set()
        self._pending: list[Job] = []

    @property
    def busy(self) -> bool:
        """Whether a heavy job is running."""
        return self.heavy is not None

    def start(self, job: Job) -> Job:
        """Queue ``job`` on its lane and return it.

        Raises:
            JobBusy: ``job`` is heavy and another heavy job is running.
        """
        if job.lane == "heavy":
            if self.heavy is not None:
                raise JobBusy(f"'{self.heavy.name}' is still running. Wait for it to finish "
                              f"or cancel it, then start '{job.name}' again.")
            self.heavy = job
            self.active_changed.emit(job)
        self.jobs.add(job)
        if job.lane == "heavy":  # the status bar shows only the heavy job; chat tokens stay out
            job.progress.connect(lambda event, j=job: self.job_progress.emit(j, event))
        job.done.connect(lambda j=job: self._on_done(j))
        # Start on the next event-loop turn, so the caller can connect succeeded/failed first;
        # a job that finished before its slots were connected would lose its result.
        self._pending.append(job)
        QTimer.singleShot(0, self._start_pending)
        return job

    def _start_pending(self) -> None:
        pending, self._pending = self._pending, []
        for job in pending:
            self.pools[job.lane].start(_Runnable(job))

    def submit(self, name: str, fn: JobFn, *, lane: str = "heavy") -> Job:
        """Create and start a job; see :meth:`start`."""
        return self.start(Job(name, fn, lane=lane, parent=self))

    def cancel_all(self) -> None:
        """Ask every running job to stop."""
        for job in list(self.jobs):
            job.cancel()

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until every lane is idle (for shutdown and tests); True when they are."""
        self._start_pending()
        return all(pool.waitForDone(msecs) for pool in self.pools.values())

    def active_threads(self) -> int:
        """Worker threads currently running a job, over all lanes."""
        return sum(pool.activeThreadCount() for pool in self.pools.values())

    def _on_done(self, job: Job) -> None:
        job.finished = True
        self.jobs.discard(job)
        if job is self.heavy:
            self.heavy = None
            self.active_changed.emit(None)
