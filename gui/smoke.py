"""Headless start-up check for packaged builds: ``TUNESMITH_SMOKE_EXIT=1 tunesmith``.

With the variable set, the app opens its window as usual, waits until the start-up jobs (device
probe, built-in model preparation) are done, imports the engine's heavy libraries the way the
jobs would, prints one line per check and quits; the exit code is 0 only if every check passed.
``packaging/build_app.sh`` runs a freshly built bundle this way to prove it opens and that the
lazily imported modules made it into the bundle.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

SMOKE_ENV = "TUNESMITH_SMOKE_EXIT"
WAIT_ENV = "TUNESMITH_SMOKE_WAIT"  # seconds to wait for start-up jobs (default 600)
# Modules the jobs import on first use (gui.services imports them by name, so a bundler's
# import tracing cannot see them).
LAZY_MODULES = ("torch", "transformers", "peft", "llama_cpp", "sacrebleu", "rouge_score",
                "engine.data", "engine.train", "engine.merge", "engine.export", "engine.chat",
                "engine.evaluate", "engine.gguf_import", "gui.scoring")


def smoke_requested() -> bool:
    """Whether the environment asks for a smoke run."""
    return os.environ.get(SMOKE_ENV, "") not in ("", "0")


def install(app: QApplication, window: Any) -> None:
    """Run the checks once ``window`` is shown, then quit ``app`` with their verdict."""
    started = time.monotonic()
    wait = float(os.environ.get(WAIT_ENV) or 600)

    def poll() -> None:
        runner = window.ctx.runner
        if runner.jobs and time.monotonic() - started < wait:
            QTimer.singleShot(200, poll)
            return
        failures = _report(window)
        window.close()
        app.exit(1 if failures else 0)

    def shown() -> None:
        size = window.size()
        print(f"smoke: window shown: {window.windowTitle()!r} {size.width()}x{size.height()}, "
              f"{len(window.pages)} pages", flush=True)
        QTimer.singleShot(500, poll)

    QTimer.singleShot(0, shown)


def _report(window: Any) -> int:
    failures = 0
    pending = [job.name for job in window.ctx.runner.jobs]
    if pending:
        failures += 1
        print(f"smoke: FAILED: jobs still running after the wait: {', '.join(pending)}")
    models = [m["name"] for m in window.ctx.store.base_models()]
    print(f"smoke: device: {window.device_label.text()}; base models: {models or 'none'}")
    if not models:  # the built-in Gemma is prepared at first start
        failures += 1
        print(f"smoke: FAILED: no base model; status bar: "
              f"{window.statusBar().currentMessage() or '(empty)'}")
    for name in LAZY_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then counted
            failures += 1
            print(f"smoke: FAILED: import {name}: {type(exc).__name__}: {exc}")
        else:
            print(f"smoke: import {name} {getattr(module, '__version__', '')}".rstrip())
    print(f"smoke: {'FAILED' if failures else 'OK'}", flush=True)
    return failures
