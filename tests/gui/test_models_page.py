"""Models page: the built-in model is prepared on first use; added models are described."""

from __future__ import annotations

from gui.pages.models import ModelsPage
from tests.gui.conftest import wait_idle


def test_builtin_model_is_listed_and_described(qtbot, ctx):
    page = ModelsPage(ctx)
    qtbot.addWidget(page)
    wait_idle(qtbot, ctx.runner)
    models = ctx.store.base_models()
    assert [m["name"] for m in models] == ["gemma-3-270m"]
    assert models[0]["source"] == "builtin" and models[0]["special_tokens"] == {"eos": 2}
    assert page.list.count() == 1
    assert page.fields["architecture"].text() == "LlamaForCausalLM"
    assert page.fields["parameter_count"].text() == "123K (123,456)"
    assert page.template.toPlainText() == "{{ messages }}"


def test_gguf_is_imported_then_registered(qtbot, ctx, tmp_path):
    page = ModelsPage(ctx)
    qtbot.addWidget(page)
    wait_idle(qtbot, ctx.runner)
    page.add_model(tmp_path / "my-model.gguf", "gguf")
    wait_idle(qtbot, ctx.runner)
    sources = sorted(m["source"] for m in ctx.store.base_models())
    assert sources == ["builtin", "gguf"]
