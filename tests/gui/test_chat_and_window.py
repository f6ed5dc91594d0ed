"""Chat page with a fake streaming model; the main window's close-while-training flow."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import QMessageBox

from gui.main_window import MainWindow
from gui.pages.chat import ChatPage
from tests.gui.conftest import wait_idle
from tests.gui.fakes import FakeChatModel, fake_model_dir, fake_train_lora


def test_chat_streams_reply_stores_it_and_saves_to_dataset(qtbot, ctx, tmp_path):
    page = ChatPage(ctx)
    qtbot.addWidget(page)
    page.add_model_path(str(tmp_path / "model.gguf"))
    page.system.setPlainText("Be brief.")
    page.input.setPlainText("Hi there")
    page.send_button.click()
    qtbot.waitUntil(lambda: not page.jobs, timeout=10_000)
    assert page.transcript.messages[-1] == {"role": "assistant",
                                            "content": "Hello there, I am a fake model. "}
    model = FakeChatModel.instances[-1]
    assert model.asked[-1] == [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Hi there"}]
    stored = [(m["role"], m["content"]) for m in ctx.store.chat_messages(page.chat_id)]
    assert stored == [("user", "Hi there"), ("assistant", "Hello there, I am a fake model. ")]
    dataset_id = ctx.store.create_dataset("saved", [])
    page.save_into(dataset_id)
    example = ctx.store.examples(dataset_id, 0, 10)[0]
    assert [m["role"] for m in example["messages"]] == ["system", "user", "assistant"]
    page.regenerate()
    qtbot.waitUntil(lambda: not page.jobs, timeout=10_000)
    assert len(model.asked) == 2 and model.asked[1] == model.asked[0]
    page.shutdown()
    wait_idle(qtbot, ctx.runner)
    assert model.closed


def test_closing_during_training_cancels_and_keeps_the_run(qtbot, ctx, tmp_path, monkeypatch):
    ctx.engine = dataclasses.replace(ctx.engine, train_lora=lambda *a, **k: fake_train_lora(
        *a, step_seconds=0.02, **k))
    ctx.store.create_dataset("d", [{"messages": [{"role": "user", "content": f"q{i}"},
                                                 {"role": "assistant", "content": "a"}]} for i in range(5)])
    ctx.store.register_model({"name": "tiny", "path": str(fake_model_dir(tmp_path))})
    window = MainWindow(ctx)
    qtbot.addWidget(window)
    window.show()
    train = window.pages["Train"]
    train.refresh_choices()
    train.form.editors["max_steps"].setText("1000")
    job = train.start()
    qtbot.waitUntil(lambda: job.last_progress is not None and job.last_progress.step > 1)
    assert window.job_label.text().startswith("Training run")
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a) or
                        QMessageBox.StandardButton.Yes)
    window.close()
    assert asked and window.isVisible()  # asked first; closes only once the job stopped
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10_000)
    runs = ctx.store.runs()
    assert runs[0]["status"] == "cancelled"
    wait_idle(qtbot, ctx.runner)


def test_an_opened_gguf_stays_listed_when_the_model_lists_refresh(qtbot, ctx, tmp_path):
    page = ChatPage(ctx)
    qtbot.addWidget(page)
    opened = str(tmp_path / "mine.gguf")
    page.add_model_path(opened)
    ctx.store.register_model({"name": "base", "path": str(tmp_path / "base.gguf")})
    ctx.hub.models_changed.emit()
    listed = [page.model_box.itemData(i) for i in range(page.model_box.count())]
    assert listed == [str(tmp_path / "base.gguf"), opened]
    assert page.model_box.currentData() == opened


def test_streamed_text_reaches_the_gui_in_batches(qtbot, ctx, tmp_path):
    ctx.engine = dataclasses.replace(ctx.engine, open_chat=lambda path, **kw: FakeChatModel(
        path, " ".join(f"w{i}" for i in range(300))))
    page = ChatPage(ctx)
    qtbot.addWidget(page)
    page.add_model_path(str(tmp_path / "model.gguf"))
    page.input.setPlainText("Tell me a story")
    page.send_button.click()
    job = page.jobs[0]
    events = []
    job.progress.connect(lambda event: events.append(event))
    qtbot.waitUntil(lambda: not page.jobs, timeout=10_000)
    text = "".join(f"w{i} " for i in range(300))
    assert "".join(e.message for e in events) == text == page.transcript.messages[-1]["content"]
    # 300 pieces ~2 ms apart arrive as a few dozen batches (one per 40 ms), not 300 events.
    assert len(events) < 100 and events[-1].step == 300
    page.shutdown()
    wait_idle(qtbot, ctx.runner)
