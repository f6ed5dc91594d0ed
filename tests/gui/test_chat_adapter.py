"""Chat page: a LoRA adapter picker that switches adapters on the loaded base (fake engine)."""

from __future__ import annotations

import dataclasses

from gui.pages.chat import ChatPage
from tests.gui.conftest import wait_idle
from tests.gui.fakes import FakeChatModel


class FakeAdapterChat(FakeChatModel):
    """Records every adapter switch instead of touching llama.cpp."""

    def __init__(self, path: str, **kwargs: object) -> None:
        super().__init__(path, **kwargs)
        self.adapters: list[str | None] = []

    def set_adapter(self, adapter: str | None, scale: float = 1.0) -> None:
        self.adapters.append(adapter)


def test_adapter_switch_reuses_the_loaded_base(qtbot, ctx, tmp_path):
    ctx.engine = dataclasses.replace(ctx.engine, open_chat=FakeAdapterChat)
    FakeChatModel.instances.clear()
    ctx.store.add_artifact(None, "adapter_gguf", tmp_path / "support.gguf")
    page = ChatPage(ctx)
    qtbot.addWidget(page)
    page.add_model_path(str(tmp_path / "base.gguf"))
    listed = [page.adapter_box.itemData(i) for i in range(page.adapter_box.count())]
    assert listed == [None, str(tmp_path / "support.gguf")]
    with qtbot.waitSignal(page.adapter_switched, timeout=10_000) as blocker:
        page.adapter_box.setCurrentIndex(1)
    assert blocker.args == [str(tmp_path / "support.gguf")]
    other = str(tmp_path / "sales.gguf")
    with qtbot.waitSignal(page.adapter_switched, timeout=10_000) as blocker:
        page.panel.add_adapter_path(other)
    assert blocker.args == [other]
    page.input.setPlainText("Hi")
    page.send_button.click()
    qtbot.waitUntil(lambda: not page.jobs, timeout=10_000)
    with qtbot.waitSignal(page.adapter_switched, timeout=10_000) as blocker:
        page.adapter_box.setCurrentIndex(0)
    assert blocker.args == [None]
    (model,) = FakeChatModel.instances  # one base load for every switch and the reply
    assert model.adapters == [str(tmp_path / "support.gguf"), other, None]
    assert model.asked[-1][-1] == {"role": "user", "content": "Hi"}
    page.shutdown()
    wait_idle(qtbot, ctx.runner)
    assert model.closed
