"""How long the GUI event loop stalls while a training job and a chat stream run.

Usage: ``python bench/gui_responsiveness.py [--seconds 10] [--real TINY_MODEL_DIR]``

A 5 ms QTimer ticks on the GUI thread; the longest gap between ticks, minus the interval, is
the longest stall a user would feel. Meanwhile the real Train page runs a training job (by
default a fake ``train_lora`` whose steps burn pure-Python CPU, the worst case for the GIL;
with ``--real`` the tiny model trains for real) and the real Chat page streams replies from a
fake model on the chat lane (~500 words/s), so chart redraws, metric writes and transcript
rendering count. The machine's load average is printed too: on shared cores the OS scheduler,
not the app, causes much of what is measured. Target: under 100 ms. Prints the numbers; never asserts (speed targets live in bench/).
"""

from __future__ import annotations

import argparse
import faulthandler
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TICK_MS = 5


def busy_train(config, model_dir, train_rows, val_rows, output_dir, *, resume=False,
               report, cancel):
    """A fake train_lora: each step is ~30 ms of pure-Python work (holds the GIL)."""
    from engine.progress import Progress
    from tests.gui.fakes import FakeTrainResult

    total = config.max_steps or 10_000
    for step in range(1, total + 1):
        end = time.perf_counter() + 0.03
        while time.perf_counter() < end:
            sum(i * i for i in range(500))
        cancel.check()
        report(Progress("train", step, total, {"loss": 3 / step ** 0.3, "tokens_per_second": 900.0,
                                                "eta_seconds": float(total - step)}))
        if step % 20 == 0:
            report(Progress("eval", step, total, {"eval_loss": 3.1 / step ** 0.3}))
    return FakeTrainResult(Path(output_dir) / "adapter", total)


def _load() -> str:
    """The 1-minute load average (other processes compete for the same cores)."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--real", type=Path, help="tiny HF model folder: train it for real")
    parser.add_argument("--no-chat", action="store_true", help="training only")
    parser.add_argument("--no-train", action="store_true", help="chat only")
    args = parser.parse_args()
    faulthandler.dump_traceback_later(args.seconds + 40, exit=True)  # never hang silently
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from gui.app import create_app, create_window
    from tests.gui.fakes import FakeChatModel, fake_engine, fake_model_dir

    load_before = _load()
    app = create_app()
    data_dir = Path(tempfile.mkdtemp(prefix="tunesmith-bench-"))
    engine = fake_engine(data_dir)
    if not args.real:
        engine = dataclasses.replace(engine, train_lora=busy_train)
    long_reply = " ".join(f"word{i}" for i in range(400))
    engine = dataclasses.replace(engine, open_chat=lambda path, **kw: FakeChatModel(path, long_reply))
    window = create_window(data_dir, engine=engine)
    store = window.ctx.store
    store.create_dataset("bench", [{"messages": [{"role": "user", "content": f"question {i}"},
                                                 {"role": "assistant", "content": f"answer {i}"}]}
                                   for i in range(200)])
    model_dir = args.real or fake_model_dir(data_dir)
    store.register_model({"name": "bench model", "path": str(model_dir)}, replace=True)
    window.show()
    train, chat = window.pages["Train"], window.pages["Chat"]
    train.refresh_choices()
    train.form.set_values({"max_steps": 100_000 if not args.real else 200, "eval_every": 20,
                           "batch_size": 2, "max_length": 64})
    window.sidebar.setCurrentRow(2)
    job = None if args.no_train else train.start()
    chat.add_model_path(str(data_dir / "bench.gguf"))

    gaps: list[float] = []
    times: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        times.append(now / 1e6)
        last[0] = now
        if not args.no_chat and not chat.jobs:  # keep a reply streaming the whole time
            chat.input.setPlainText("Tell me a long story.")
            chat.send()

    timer = QTimer(interval=TICK_MS)
    timer.timeout.connect(tick)
    timer.start()
    # A local loop: QApplication.quit() would ask the main window to close (Qt 6).
    loop = QEventLoop()
    QTimer.singleShot(int(args.seconds * 1000), loop.quit)
    loop.exec()
    timer.stop()
    steps = job.last_progress.step if job and job.last_progress else 0
    replies = sum(m["role"] == "assistant" for m in chat.transcript.messages)
    window.request_close_cancelling()
    while window.ctx.runner.jobs:
        app.processEvents()
        time.sleep(0.01)
    window.ctx.runner.wait(10_000)
    window.ctx.store.close()
    stalls = [max(0.0, g - TICK_MS) for g in gaps[1:]]
    print(f"mode: {'real tiny-model training' if args.real else 'fake GIL-heavy training'} "
          f"+ fake chat stream, {args.seconds:.0f} s; {os.cpu_count()} CPUs, load average "
          f"before/after: {load_before} / {_load()}")
    print(f"training steps done: {steps}; chat replies streamed: {replies}; "
          f"event-loop ticks: {len(gaps)}")
    warm = [st for st, t in zip(stalls, times[1:]) if t > 1000] or [0.0]
    print(f"longest stall after the first second (page/chart first paint): {max(warm):.1f} ms")
    print(f"longest stall: {max(stalls):.1f} ms (target < 100 ms); "
          f"p99 {sorted(stalls)[int(len(stalls) * 0.99)]:.1f} ms; "
          f"median {statistics.median(stalls):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
