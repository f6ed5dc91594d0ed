"""Coalescer: a flood of pushes becomes one call with the newest arguments."""

from __future__ import annotations

from gui.throttle import Coalescer


def test_many_pushes_make_one_call_with_the_latest_arguments(qtbot):
    calls = []
    coalescer = Coalescer(50, lambda *args: calls.append(args))
    for step in range(100):
        coalescer.push(step, "train")
    assert calls == []  # nothing before the interval
    qtbot.waitUntil(lambda: bool(calls), timeout=2000)
    qtbot.wait(120)
    assert calls == [(99, "train")]


def test_flush_calls_now_and_discard_drops(qtbot):
    calls = []
    coalescer = Coalescer(10_000, lambda *args: calls.append(args))
    coalescer.push(1)
    coalescer.flush()
    coalescer.flush()  # nothing pending any more
    coalescer.push(2)
    coalescer.discard()
    qtbot.wait(50)
    assert calls == [(1,)]
