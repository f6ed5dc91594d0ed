"""Work around a reference-count bug of the installed PySide6 (found with 6.12.0, Python 3.11).

Every Python-side ``SignalInstance.emit()`` drops one reference to the ``True`` it returns
(and queued deliveries across threads drop references to ``None``/``False``). On Python 3.11
those singletons are not immortal, so after a few hundred emits — pyqtgraph emits on every
redraw, training reports every step — CPython aborts with "bool_dealloc: deallocating True or
False" or "none_dealloc". Reproduce: emit any signal 1,000 times in a fresh interpreter.

Python 3.12+ makes these objects immortal (PEP 683), which is why the bug goes unseen there.
Here we detect the leak once at import and, only if present, add a very large number of
references to ``None``, ``True`` and ``False`` so they can never reach zero: they are never
freed anyway, so extra references cost nothing. The real fix is a PySide6 without the bug.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

# 2**40 emits at a million per second would take 12 days of uninterrupted signalling.
_PADDING = 1 << 40


class _Probe(QObject):
    fired = Signal()


def emit_leaks_references(trials: int = 20) -> bool:
    """Whether ``Signal.emit()`` loses references to ``True`` on this PySide6."""
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(trials):
        probe.fired.emit()
    return sys.getrefcount(True) < before - trials // 2


def pad_singletons() -> None:
    """Add :data:`_PADDING` references to None/True/False (CPython 3.11 object layout)."""
    for obj in (None, True, False):
        # ob_refcnt is the first field of every CPython object (Include/object.h).
        ctypes.c_ssize_t.from_address(id(obj)).value += _PADDING


APPLIED = sys.implementation.name == "cpython" and sys.version_info < (3, 12) and \
    emit_leaks_references()
if APPLIED:
    pad_singletons()
