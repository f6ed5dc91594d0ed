"""PySide6 6.12.0 on Python 3.11 loses a reference to ``True`` on every ``Signal.emit()`` and
aborts the interpreter after a few hundred emits ("bool_dealloc"). We pin a release without the
bug (packaging/requirements.txt); this test fails if a version bump brings it back."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Probe(QObject):
    fired = Signal()


def test_signal_emit_keeps_reference_counts() -> None:
    probe = _Probe()
    before = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(500):
        probe.fired.emit()
    after = sys.getrefcount(True), sys.getrefcount(None)
    assert after[0] >= before[0] - 5 and after[1] >= before[1] - 5, (before, after)
