"""GUI test fixtures: a context with fake engine functions, and a thread-leak guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.context import AppContext
from gui.jobs import JobRunner
from gui.store import Hub, Store
from tests.gui.fakes import fake_engine


@pytest.fixture()
def settings(tmp_path: Path):
    """QSettings in a temp INI file, so tests never touch the user's settings."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture()
def ctx(qapp, data_dir: Path, tmp_path: Path, settings) -> AppContext:
    """An AppContext over a fresh data dir with fake engine functions.

    Teardown fails the test if a job thread is still running (napari's leak guard idea):
    every job a test starts must finish or be cancelled before the test ends.
    """
    runner = JobRunner()
    context = AppContext(engine=fake_engine(tmp_path), store=Store.open(data_dir), runner=runner,
                         hub=Hub(), settings=settings)
    yield context
    # Jobs not yet ``done``; a worker that just emitted ``done`` may still be unwinding.
    busy = len(runner.jobs)
    runner.cancel_all()
    finished = runner.wait(10_000)
    context.store.close()
    if busy or not finished:
        pytest.fail(f"test left {busy} job thread(s) running", pytrace=False)


def wait_idle(qtbot, runner: JobRunner, timeout: int = 10_000) -> None:
    """Process events until no job is queued or running."""
    qtbot.waitUntil(lambda: not runner.jobs, timeout=timeout)
