"""Tunesmith desktop app (PySide6). Only this package imports Qt."""

from gui import qt_compat  # noqa: F401  - must run before any signal is emitted
