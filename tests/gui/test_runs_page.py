"""Runs page: history, loss chart from stored metrics, comparing two runs, resume, delete."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel
from PySide6.QtWidgets import QMessageBox

from gui.pages.runs import RunsPage
from tests.gui.helpers import add_train_run


def _select(page: RunsPage, *rows: int) -> None:
    page.table.clearSelection()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for row in rows:
        page.table.selectionModel().select(page.table.model().index(row, 0), flags)


def _row_of(page: RunsPage, run_id: int) -> int:
    return [r["id"] for r in page.rows].index(run_id)


def test_history_lists_runs_with_status_dataset_and_last_loss(qtbot, ctx, tmp_path):
    first = add_train_run(ctx, tmp_path, losses=(3.0, 2.5))
    second = add_train_run(ctx, tmp_path, status="cancelled", losses=(3.1, 2.0, 1.25))
    page = RunsPage(ctx)
    qtbot.addWidget(page)
    cells = [[page.table.item(r, c).text() for c in (0, 1, 2, 3, 5)]
             for r in range(page.table.rowCount())]
    assert cells == [[f"train {second}", "train", "cancelled", "chats", "1.2500"],
                     [f"train {first}", "train", "succeeded", "chats", "2.5000"]]


def test_selected_run_shows_its_loss_curve_and_config(qtbot, ctx, tmp_path):
    run_id = add_train_run(ctx, tmp_path, losses=(3.0, 2.0, 1.5),
                           config={"seed": 7, "max_length": 64})
    page = RunsPage(ctx)
    qtbot.addWidget(page)
    _select(page, 0)
    assert page.chart.points == {"loss": ([1.0, 2.0, 3.0], [3.0, 2.0, 1.5])}
    assert '"max_length": 64' in page.config_view.toPlainText()
    assert f"train {run_id}" in page.summary.text() and "1.5000" in page.summary.text()


def test_two_selected_runs_are_compared_on_one_chart(qtbot, ctx, tmp_path):
    a = add_train_run(ctx, tmp_path, losses=(3.0, 2.0))
    b = add_train_run(ctx, tmp_path, losses=(2.8, 1.0, 0.5))
    page = RunsPage(ctx)
    qtbot.addWidget(page)
    _select(page, 0, 1)
    assert page.chart.points[f"train {a}: loss"] == ([1.0, 2.0], [3.0, 2.0])
    assert page.chart.points[f"train {b}: loss"] == ([1.0, 2.0, 3.0], [2.8, 1.0, 0.5])
    assert f"train {a}" in page.summary.text() and f"train {b}" in page.summary.text()
    assert not page.resume_button.isEnabled()  # resume works on one run


def test_resume_is_offered_for_an_interrupted_run_only(qtbot, ctx, tmp_path):
    done = add_train_run(ctx, tmp_path)
    stopped = add_train_run(ctx, tmp_path, status="cancelled")
    page = RunsPage(ctx)
    qtbot.addWidget(page)
    _select(page, _row_of(page, done))
    assert not page.resume_button.isEnabled()
    _select(page, _row_of(page, stopped))
    assert page.resume_button.isEnabled()
    with qtbot.waitSignal(page.resume_requested, timeout=2000) as blocker:
        page.resume_button.click()
    assert blocker.args == [stopped]


def test_delete_removes_the_record_and_files_inside_the_data_dir_only(qtbot, ctx, tmp_path,
                                                                       monkeypatch):
    run_id = add_train_run(ctx, tmp_path)
    keep = add_train_run(ctx, tmp_path)
    outside = tmp_path / "my-own-model.gguf"  # e.g. a GGUF the user exported elsewhere
    outside.write_bytes(b"GGUF")
    ctx.store.add_artifact(run_id, "gguf", outside)
    adapter = ctx.store.root / "runs" / f"run-{run_id}" / "adapter"
    assert adapter.is_dir()
    page = RunsPage(ctx)
    qtbot.addWidget(page)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    _select(page, _row_of(page, run_id))
    page.delete_button.click()
    assert [r["id"] for r in ctx.store.runs()] == [keep]
    assert not adapter.exists() and outside.exists()
    assert (ctx.store.root / "runs" / f"run-{keep}" / "adapter").is_dir()
    assert ctx.store.metrics(run_id) == {} and ctx.store.artifacts(run_id) == []
    assert page.table.rowCount() == 1
