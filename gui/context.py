"""What every page receives: the engine adapter, the store, the job runner and the change hub.

Passing this small object (instead of reaching a global main window) keeps pages testable:
a test builds a context with fake engine functions and a fresh data dir.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QSettings

from gui.jobs import JobRunner
from gui.services import Engine
from gui.store import Hub, Store


@dataclass
class AppContext:
    """Shared services of one main window (GUI thread only)."""

    engine: Engine
    store: Store
    runner: JobRunner
    hub: Hub = field(default_factory=Hub)
    settings: QSettings = field(default_factory=lambda: QSettings("Tunesmith", "Tunesmith"))

    def setting(self, key: str, default: str = "") -> str:
        """A string setting (``QSettings`` returns whatever type it stored; normalise)."""
        value = self.settings.value(key, default)
        return default if value is None else str(value)
