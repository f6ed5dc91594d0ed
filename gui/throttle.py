"""Coalesce a flood of updates into at most one call per interval, on the GUI thread.

Every Qt call made from Python hands the GIL back and forth; while a worker thread runs Python
(tokenizing, a training step's bookkeeping) each hand-over can cost the GUI thread a whole GIL
switch interval. Updating labels once per event therefore stalls the event loop in proportion
to the event rate; updating them from the latest event a few times per second does not.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer


class Coalescer(QObject):
    """Calls ``fn(*latest_args)`` at most once per ``interval_ms`` after :meth:`push`."""

    def __init__(self, interval_ms: int, fn: Callable[..., Any],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fn = fn
        self._args: tuple[Any, ...] | None = None
        self._timer = QTimer(self, singleShot=True, interval=interval_ms)
        self._timer.timeout.connect(self.flush)

    def push(self, *args: Any) -> None:
        """Remember ``args`` (replacing older ones) and schedule a call."""
        self._args = args
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Make the pending call now (nothing when none is pending)."""
        self._timer.stop()
        args, self._args = self._args, None
        if args is not None:
            self._fn(*args)

    def discard(self) -> None:
        """Drop the pending call."""
        self._timer.stop()
        self._args = None
