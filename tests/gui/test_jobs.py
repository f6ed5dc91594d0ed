"""Jobs and the one error function."""

from __future__ import annotations

import threading

import pytest

from engine.errors import Cancelled, DataError
from gui.errors import describe_error, show_error
from gui.jobs import JobBusy, JobRunner


def test_job_reports_progress_and_result_on_gui_thread(qtbot):
    runner = JobRunner()
    seen_threads = []

    def work(report, cancel):
        from engine.progress import Progress
        report(Progress("work", 1, 2))
        return threading.current_thread().name

    job = runner.submit("work", work)
    job.progress.connect(lambda e: seen_threads.append(threading.current_thread()))
    with qtbot.waitSignal(job.succeeded, timeout=5000) as blocker:
        pass
    assert blocker.args[0] != threading.main_thread().name  # ran on a worker
    qtbot.waitUntil(lambda: runner.heavy is None)
    assert runner.wait(5000)


def test_only_one_heavy_job_at_a_time(qtbot):
    runner = JobRunner()
    gate = threading.Event()
    first = runner.submit("first", lambda report, cancel: gate.wait(5))
    with pytest.raises(JobBusy, match="first"):
        runner.submit("second", lambda report, cancel: None)
    light = runner.submit("light", lambda report, cancel: 7, lane="light")
    with qtbot.waitSignal(light.succeeded, timeout=5000) as blocker:
        pass
    assert blocker.args == [7]  # the light lane is not blocked by the heavy job
    # A waitSignal blocker must be used as a context manager: one left connected but never
    # waited on is called from a later event loop and crashed the interpreter (segfault in
    # pytest-qt's _quit_loop_by_signal).
    with qtbot.waitSignal(first.done, timeout=5000):
        gate.set()
    qtbot.waitUntil(lambda: not runner.busy)
    runner.submit("third", lambda report, cancel: None)
    assert runner.wait(5000)


def test_pause_holds_and_cancel_emits_cancelled_not_failed(qtbot):
    runner = JobRunner()
    steps = []

    def loop(report, cancel):
        for i in range(1000):
            cancel.check()
            steps.append(i)
            threading.Event().wait(0.002)

    job = runner.submit("loop", loop)
    qtbot.waitUntil(lambda: len(steps) > 3)
    job.pause()
    qtbot.wait(50)
    held = len(steps)
    qtbot.wait(100)
    assert len(steps) <= held + 1  # at most the step in flight finished
    failed = []
    job.failed.connect(failed.append)
    with qtbot.waitSignal(job.cancelled, timeout=5000):
        job.cancel()
    assert not failed
    assert runner.wait(5000)


def test_failed_job_carries_the_exception(qtbot):
    runner = JobRunner()

    def boom(report, cancel):
        raise DataError("data.jsonl line 3: missing 'messages'")

    job = runner.submit("boom", boom)
    with qtbot.waitSignal(job.failed, timeout=5000) as blocker:
        pass
    assert isinstance(blocker.args[0], DataError)
    assert runner.wait(5000)


def test_error_message_says_what_why_and_what_to_do(qtbot):
    try:
        raise DataError("data.jsonl line 3: missing field 'messages'")
    except DataError as exc:
        message = describe_error(exc, "import data.jsonl")
        box = show_error(None, exc, "import data.jsonl")
    assert message.what == "Could not import data.jsonl."
    assert "line 3" in message.why
    assert "Fix the file" in message.todo
    assert "Traceback" in box.detailedText() and "DataError" in box.detailedText()
    box.close()
    assert describe_error(Cancelled("stop"), "train") is None
    assert show_error(None, Cancelled("stop"), "train") is None
    bug = describe_error(KeyError("x"), "open the run")
    assert bug.why.startswith("KeyError") and "bug" in bug.todo
