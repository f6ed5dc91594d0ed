"""Datasets page driven through its widgets, with the real importer and storage."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QModelIndex

from gui.example_model import PAGE_ROWS, ExampleTableModel
from gui.pages.datasets import DatasetsPage
from tests.gui.conftest import wait_idle


def _write_jsonl(path: Path, n_good: int, bad_line: int | None = None) -> Path:
    lines = []
    for i in range(n_good):
        lines.append(json.dumps({"messages": [{"role": "user", "content": f"question {i} about llamas"},
                                              {"role": "assistant", "content": f"answer {i}"}]}))
    if bad_line is not None:
        lines.insert(bad_line - 1, json.dumps({"messages": [{"role": "user", "content": "no reply"}]}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_import_shows_report_and_pages_rows(qtbot, ctx, tmp_path):
    page = DatasetsPage(ctx)
    qtbot.addWidget(page)
    source = _write_jsonl(tmp_path / "support chats.jsonl", 30, bad_line=4)
    with qtbot.waitSignal(page.dataset_imported, timeout=10_000) as blocker:
        page.import_path(source)
    assert blocker.args == ["support chats"]
    report = page.report_dialog
    assert report.table.rowCount() == 1
    assert report.table.item(0, 0).text() == "4"  # the bad row's line, counted by hand
    assert "skipped <b>1</b>" in report.summary.text()
    assert page.model.rowCount() == 30
    assert page.model.index(0, 1).data() == "question 0 about llamas"
    assert page.status.text() == "30 examples"
    report.close()
    wait_idle(qtbot, ctx.runner)


def test_search_edit_and_delete(qtbot, ctx):
    examples = [{"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]}
                for text in ("reset my password", "refund please", "password expired", "你好世界")]
    ctx.store.create_dataset("demo", examples)
    page = DatasetsPage(ctx)
    qtbot.addWidget(page)
    page.search.setText("password")
    qtbot.waitUntil(lambda: page.model.rowCount() == 2)
    page.search.setText("你好")
    qtbot.waitUntil(lambda: page.model.rowCount() == 1)
    page.search.clear()
    qtbot.waitUntil(lambda: page.model.rowCount() == 4)
    page.table.selectRow(1)
    dialog = page.edit_selected()
    dialog.turns[1].text.setPlainText("Your refund is on its way.")
    dialog.tags.setText("billing, refunds")
    dialog.accept()
    stored = ctx.store.examples(page.current_dataset_id(), 1, 1)[0]
    assert stored["messages"][1]["content"] == "Your refund is on its way."
    assert stored["tags"] == ["billing", "refunds"]
    page.table.selectRow(0)
    page.delete_selected()
    assert ctx.store.count_examples(page.current_dataset_id()) == 3


def test_table_model_loads_only_visible_pages(qtbot, ctx):
    n = 20 * PAGE_ROWS
    examples = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
                for i in range(n)]
    dataset_id = ctx.store.create_dataset("big", examples)
    model = ExampleTableModel(ctx.store)
    model.set_dataset(dataset_id)
    assert model.rowCount() == n
    assert model.page_loads == 0  # counting rows reads no rows
    assert model.index(n - 1, 1).data() == f"q{n - 1}"
    assert model.index(0, 1).data() == "q0"
    assert model.page_loads == 2
    assert model.rowCount(model.index(0, 0)) == 0 and model.rowCount(QModelIndex()) == n


def test_export_jsonl_round_trips(qtbot, ctx, tmp_path):
    examples = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    dataset_id = ctx.store.create_dataset("one", examples)
    page = DatasetsPage(ctx)
    qtbot.addWidget(page)
    target = tmp_path / "out.jsonl"
    page.export_to(dataset_id, target)
    wait_idle(qtbot, ctx.runner)
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["messages"] for r in rows] == [examples[0]["messages"]]
