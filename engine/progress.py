"""Progress events and cooperative cancellation, shared by every long-running engine job.

Every long job ends its signature with ``*, report: Reporter, cancel: CancelToken``. The job
calls ``report(Progress(...))`` between steps and ``cancel.check()`` wherever stopping is safe.
Nobody kills threads: the CLI's Ctrl-C handler and the GUI's Cancel button only set the token.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from engine.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One progress event.

    Attributes:
        stage: short machine-readable stage name, e.g. ``"train"``, ``"convert"``.
        step: steps done so far in this stage (0-based count).
        total: total steps of the stage, or ``None`` when unknown.
        metrics: numbers that belong to this step (``loss``, ``learning_rate``,
            ``tokens_per_second``, ``eta_seconds``, ...).
        message: one human-readable line, may be empty.
    """

    stage: str
    step: int = 0
    total: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""

    @property
    def fraction(self) -> float | None:
        """Share of the stage done in [0, 1], or ``None`` when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, self.step / self.total)


Reporter = Callable[[Progress], None]


def ignore_progress(_: Progress) -> None:
    """A :data:`Reporter` that drops every event (for callers that do not show progress)."""


class CancelToken:
    """A thread-safe flag a job polls between steps; also supports pause/resume.

    ``cancel()`` may be called from any thread. ``check()`` raises :class:`Cancelled` once
    cancelled and blocks while paused, so a paused job holds its state in memory and carries
    on where it stopped after ``resume()``.
    """

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def cancel(self) -> None:
        """Ask the job to stop at its next check (also wakes a paused job)."""
        self._cancelled.set()
        self._running.set()

    def pause(self) -> None:
        """Make the job wait at its next check until :meth:`resume` or :meth:`cancel`."""
        self._running.clear()

    def resume(self) -> None:
        """Let a paused job carry on."""
        self._running.set()

    @property
    def cancelled(self) -> bool:
        """Whether cancellation was requested."""
        return self._cancelled.is_set()

    @property
    def paused(self) -> bool:
        """Whether the job is asked to wait."""
        return not self._running.is_set()

    def check(self) -> None:
        """Block while paused; raise :class:`Cancelled` if cancellation was requested.

        Raises:
            Cancelled: the job should stop now.
        """
        while not self._running.wait(timeout=0.1):
            pass
        if self._cancelled.is_set():
            raise Cancelled("cancelled by the user")


class Stopwatch:
    """Measures elapsed wall time and estimates the time left from a constant step rate."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since creation."""
        return time.perf_counter() - self.start

    def eta(self, done: int, total: int) -> float | None:
        """Seconds left for ``total - done`` more steps, or ``None`` before the first step."""
        if done <= 0:
            return None
        return self.elapsed() / done * max(0, total - done)
