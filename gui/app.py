"""Application entry point: ``python main.py`` with no arguments calls :func:`run_app`."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication

from gui.context import AppContext
from gui.jobs import JobRunner
from gui.services import Engine, real_engine
from gui.store import Store
from gui.theme import apply_theme

# The app icon (packaging/icons); the PyInstaller spec bundles it at the same relative path.
ICON = Path(__file__).resolve().parents[1] / "packaging" / "icons" / "tunesmith.png"


def create_app() -> QApplication:
    """The QApplication (created once), with high-DPI and the theme applied."""
    app = QApplication.instance()
    if app is None:
        # Fractional scale factors (125 %, 150 %) render crisply instead of rounding to 1x/2x.
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        # Workers run Python code too (tokenizing, data loading); a shorter GIL switch interval
        # (default 5 ms) lets the GUI thread get the GIL back sooner, keeping stalls short.
        sys.setswitchinterval(0.002)
        app = QApplication(sys.argv[:1])
        app.setApplicationName("Tunesmith")
        app.setOrganizationName("Tunesmith")
        app.setDesktopFileName("tunesmith")
        if ICON.exists():
            app.setWindowIcon(QIcon(str(ICON)))
    return app


def create_window(data_dir: Path | None = None, engine: Engine | None = None):
    """Build the main window over ``data_dir`` (tests and screenshots use this too)."""
    from gui.main_window import MainWindow

    app = create_app()
    settings = QSettings("Tunesmith", "Tunesmith")
    chosen = data_dir or (Path(str(settings.value("data_dir"))) if settings.value("data_dir")
                          else None)
    mode = str(settings.value("theme", "system") or "system")
    apply_theme(app, mode)
    app.styleHints().colorSchemeChanged.connect(
        lambda _: apply_theme(app, str(settings.value("theme", "system") or "system")))
    ctx = AppContext(engine=engine or real_engine(), store=Store.open(chosen),
                     runner=JobRunner(), settings=settings)
    return MainWindow(ctx)


def run_app(data_dir: Path | None) -> int:
    """Open the desktop app and run its event loop; returns the exit code.

    Args:
        data_dir: the data directory, or ``None`` for the saved setting / the per-user default.
    """
    from gui import smoke

    app = create_app()
    window = create_window(data_dir)
    window.show()
    if smoke.smoke_requested():
        smoke.install(app, window)
    code = app.exec()
    window.ctx.store.close()
    return int(code)
