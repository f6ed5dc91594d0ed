"""Train page with a fake train_lora: form validation, live chart, run records, pause/cancel."""

from __future__ import annotations

import dataclasses

from gui.pages.train import TrainPage
from tests.gui.conftest import wait_idle
from tests.gui.fakes import fake_model_dir, fake_train_lora


def _prepare(ctx, tmp_path, n=20):
    examples = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
                for i in range(n)]
    ctx.store.create_dataset("chats", examples)
    ctx.store.register_model({"name": "tiny", "path": str(fake_model_dir(tmp_path)),
                              "parameter_count": 1000})


def test_invalid_value_is_shown_inline_and_nothing_starts(qtbot, ctx, tmp_path):
    _prepare(ctx, tmp_path)
    page = TrainPage(ctx)
    qtbot.addWidget(page)
    page.form.editors["learning_rate"].setText("-1")
    assert page.start() is None
    error = page.form.errors["learning_rate"]
    assert not error.isHidden() and "learning_rate" in error.text()
    assert ctx.store.runs() == []
    page.form.editors["batch_size"].setText("four")
    page.form.editors["learning_rate"].setText("1e-4")
    assert page.start() is None
    assert "whole number" in page.form.errors["batch_size"].text()
    assert page.form.errors["learning_rate"].isHidden()
    wait_idle(qtbot, ctx.runner)


def test_training_run_updates_chart_and_records_metrics(qtbot, ctx, tmp_path):
    _prepare(ctx, tmp_path)
    page = TrainPage(ctx)
    qtbot.addWidget(page)
    page.apply_preset("Quick test")
    page.form.editors["max_steps"].setText("10")
    with qtbot.waitSignal(page.run_finished, timeout=10_000) as blocker:
        assert page.start() is not None
    run_id, status = blocker.args
    assert status == "succeeded"
    xs, ys = page.monitor.chart.points["train loss"]
    assert xs == list(range(1, 11)) and ys[0] == 3.0
    assert page.monitor.chart.points["eval loss"][0] == [5.0, 10.0]
    metrics = ctx.store.metrics(run_id)
    assert [s for s, _ in metrics["loss"]] == list(range(1, 11))
    assert ctx.store.run(run_id)["config"]["max_steps"] == 10
    assert ctx.store.artifacts(run_id, "adapter")
    assert page.start_button.isEnabled() and not page.cancel_button.isEnabled()
    wait_idle(qtbot, ctx.runner)


def test_pause_resume_then_cancel_keeps_a_resumable_run(qtbot, ctx, tmp_path):
    _prepare(ctx, tmp_path)
    ctx.engine = dataclasses.replace(ctx.engine, train_lora=lambda *a, **k: fake_train_lora(
        *a, step_seconds=0.02, **k))
    page = TrainPage(ctx)
    qtbot.addWidget(page)
    page.form.editors["max_steps"].setText("500")
    job = page.start()
    qtbot.waitUntil(lambda: job.last_progress is not None and job.last_progress.step >= 2)
    page.pause_button.click()
    assert page.resume_button.isEnabled() and not page.pause_button.isEnabled()
    qtbot.wait(100)
    held = job.last_progress.step
    qtbot.wait(150)
    assert job.last_progress.step <= held + 1
    page.resume_button.click()
    qtbot.waitUntil(lambda: job.last_progress.step > held + 1)
    with qtbot.waitSignal(page.run_finished, timeout=10_000) as blocker:
        page.cancel_button.click()
    run_id, status = blocker.args
    assert status == "cancelled"
    assert ctx.store.run(run_id)["status"] == "cancelled"
    page.load_run(run_id, resume=True)
    assert "resume run" in page.state_label.text()
    with qtbot.waitSignal(page.run_finished, timeout=20_000) as blocker:
        page.form.editors["max_steps"].setText("5")
        page.start()
    assert blocker.args[1] == "succeeded"
    assert ctx.store.run(blocker.args[0])["parent_run_id"] == run_id
    wait_idle(qtbot, ctx.runner)
