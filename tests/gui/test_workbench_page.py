"""Workbench page: history/undo/diff, dedupe and PII preview+apply with the real engine, tags,
statistics, augmentation bookkeeping (fake model), cancel, stale previews, template preview."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path


from engine.data.augment import AugmentPreview, ProposedExample
from gui.pages.workbench import WorkbenchPage
from tests.gui.conftest import wait_idle
from tests.gui.helpers import error_box


def chat(user: str, assistant: str, tags: tuple[str, ...] = ()) -> dict:
    return {"messages": [{"role": "user", "content": user},
                         {"role": "assistant", "content": assistant}], "tags": list(tags)}


DISTINCT = [chat("How do I reset my password today?", "Use the reset link on the login page."),
            chat("Where is my parcel right now?", "Track it with the number in your e-mail."),
            chat("Can I get a refund for my order?", "Yes, within thirty days of delivery.")]


def make_page(ctx, qtbot, examples: list[dict]) -> WorkbenchPage:
    ctx.store.create_dataset("support", examples)
    page = WorkbenchPage(ctx)
    qtbot.addWidget(page)
    return page


def texts(ctx, dataset_id: int) -> list[str]:
    return [e["messages"][0]["content"] for e in ctx.store.all_examples(dataset_id)]


def run_preview(qtbot, panel) -> None:
    job = panel.preview()
    assert job is not None
    with qtbot.waitSignal(job.done, timeout=20_000):
        pass  # the job was queued by preview(); it starts on the next event-loop turn


def test_history_undo_go_to_and_diff(ctx, qtbot) -> None:
    page = make_page(ctx, qtbot, DISTINCT)
    dataset_id = page.dataset_id()
    first = ctx.store.all_examples(dataset_id)
    ctx.store.delete_example(first[0]["id"])                       # version 2: 2 examples
    ctx.store.update_example(first[1]["id"], chat("Where is my parcel now?", "Track it."))  # v3
    ctx.hub.datasets_changed.emit()
    history = page.history
    assert [v["number"] for v in history.versions] == [1, 2, 3]
    assert history.table.item(2, 0).text() == "● 3"               # the head is marked
    assert "version 3 · 2 examples" in page.head_label.text()

    history.undo()
    assert ctx.store.head_version_id(dataset_id) == history.versions[1]["id"]
    assert history.table.item(1, 0).text() == "● 2"
    history.select_numbers(3)
    history.go_to_selected()
    assert "version 3" in page.head_label.text()

    history.select_numbers(1, 3)
    diff = history.diff_selected()
    # v1 -> v3: example 1 deleted, example 2 edited, example 3 untouched (hand count).
    assert diff["counts"] == {"added": 0, "removed": 1, "changed": 1, "resplit": 0}
    assert "0 added, 1 removed, 1 changed" in history.diff_summary.text()
    removed = history.diff_tree.topLevelItem(1)
    assert removed.child(0).text(1) == "How do I reset my password today?"
    changed = history.diff_tree.topLevelItem(2)
    assert changed.child(0).text(1) == "Where is my parcel now?"


def test_dedupe_preview_keep_anyway_and_apply(ctx, qtbot) -> None:
    a, b, c = DISTINCT
    # 6 examples: a, b, a, c, b (whitespace/case differ), a -> groups {a: 2 copies}, {b: 1 copy}.
    b_copy = chat("  where is MY parcel right now? ", "Track it with the number in your e-mail.")
    page = make_page(ctx, qtbot, [a, b, a, c, b_copy, a])
    dataset_id, panel = page.dataset_id(), page.dedupe
    run_preview(qtbot, panel)
    assert panel.result is not None and len(panel.result.exact_groups) == 2
    assert "3 would be removed" in panel.status.text()
    keep_id = ctx.store.all_examples(dataset_id)[5]["id"]        # the last copy of a
    panel.set_checked(keep_id, True)
    with qtbot.waitSignal(ctx.hub.datasets_changed, timeout=2000):
        version = panel.apply()
    assert version["number"] == 2 and version["example_count"] == 4   # 6 - 3 + 1 kept anyway
    assert texts(ctx, dataset_id) == [a["messages"][0]["content"], b["messages"][0]["content"],
                                      c["messages"][0]["content"], a["messages"][0]["content"]]
    assert [v["number"] for v in page.history.versions] == [1, 2]
    assert "exact duplicate" in page.history.table.item(1, 2).text()


def test_pii_unchecked_finding_keeps_its_text(ctx, qtbot) -> None:
    page = make_page(ctx, qtbot, [chat("Write to alice@example.com please", "Done."),
                                  chat("My mail is bob@example.org", "Thanks.")])
    dataset_id, panel = page.dataset_id(), page.pii
    run_preview(qtbot, panel)
    findings = panel.result.findings
    assert [f.text for f in findings] == ["alice@example.com", "bob@example.org"]
    assert panel.checked_keys() == [f.key for f in findings]      # all replaced by default
    panel.set_checked(findings[1].key, False)
    panel.apply()
    first, second = texts(ctx, dataset_id)
    assert "alice@example.com" not in first and "<EMAIL" in first
    assert second == "My mail is bob@example.org"


def test_tag_from_search_and_label_counts(ctx, qtbot) -> None:
    examples = [*DISTINCT, chat("I want a refund, the item broke", "Sorry! Refund started.")]
    page = make_page(ctx, qtbot, examples)
    tags = page.tags
    tags.query.setText("refund")
    tags.tag.setText("billing")
    version = tags.tag_matching()
    assert version["operation"] == "tag"
    assert ctx.store.tag_counts(page.dataset_id()) == {"billing": 2}
    assert (tags.counts.item(0, 0).text(), tags.counts.item(0, 1).text()) == ("billing", "2")
    assert len(page.history.versions) == 2


def test_statistics_numbers_and_charts(ctx, qtbot) -> None:
    examples = [chat("hi", "hello", ("greeting",)), chat("bye", "see you", ("greeting",)),
                {**chat("refund?", "yes"), "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "refund?"},
                    {"role": "assistant", "content": "yes"}]}]
    page = make_page(ctx, qtbot, examples)
    job = page.stats.compute()
    with qtbot.waitSignal(job.done, timeout=10_000):
        pass
    text = page.stats.numbers.text()
    assert "Examples: 3" in text
    assert "Turns: 7" in text and "system 1" in text and "user 3" in text
    assert "Synthetic: 0 (0.0%)" in text
    assert page.stats.tags.values == [2]
    assert dict(zip(page.stats.roles.labels, page.stats.roles.values)) == {
        "system": 1, "user": 3, "assistant": 3}


def fake_paraphrase(examples, config, *, existing=(), report=None, cancel=None):
    """Two proposals per call (no model): the bookkeeping is what is checked."""
    rows = list(examples)
    return AugmentPreview(tuple(ProposedExample(
        rows[0]["id"], "synthetic:paraphrase", chat(f"Rephrased {i}", "ok"), "fake")
        for i in range(2)), ())


def test_augment_reject_one_adds_synthetic(ctx, qtbot) -> None:
    ctx.engine = dataclasses.replace(ctx.engine, paraphrase_examples=fake_paraphrase)
    page = make_page(ctx, qtbot, DISTINCT)
    panel = page.augment
    panel.form.method.setCurrentText("Paraphrase (GGUF model)")
    panel.form.set_model_path("/models/chat.gguf")
    run_preview(qtbot, panel)
    assert panel.table.rowCount() == 2
    panel.set_checked(1, True)                                    # reject the second one
    version = panel.apply()
    assert version["example_count"] == 4
    new = ctx.store.all_examples(page.dataset_id())[-1]
    origin = ctx.store.all_examples(page.dataset_id())[0]["id"]
    assert (new["synthetic"], new["origin_id"]) == (True, origin)
    assert new["messages"][0]["content"] == "Rephrased 0"


def slow_dedupe(examples, config, *, total=None, report=None, cancel=None):
    while True:
        cancel.check()
        time.sleep(0.01)


def test_cancel_preview_changes_nothing(ctx, qtbot) -> None:
    ctx.engine = dataclasses.replace(ctx.engine, find_duplicates=slow_dedupe)
    page = make_page(ctx, qtbot, DISTINCT)
    job = page.dedupe.preview()
    assert page.dedupe.cancel_button.isEnabled()
    with qtbot.waitSignal(job.cancelled, timeout=5000):
        page.dedupe.cancel()
    wait_idle(qtbot, ctx.runner)
    assert "cancelled" in page.dedupe.status.text()
    assert not page.dedupe.apply_button.isEnabled()
    assert len(ctx.store.versions(page.dataset_id())) == 1


def test_stale_preview_is_refused(ctx, qtbot) -> None:
    page = make_page(ctx, qtbot, [*DISTINCT, DISTINCT[0]])
    run_preview(qtbot, page.dedupe)
    page.tags.query.setText("refund")
    page.tags.tag.setText("billing")
    page.tags.tag_matching()                                      # the head moves to version 2
    assert page.dedupe.apply() is None
    assert "changed after this preview" in error_box(page.dedupe).informativeText()
    assert len(ctx.store.versions(page.dataset_id())) == 2


def test_template_preview_highlights_trained_tokens(ctx, qtbot, tiny_model_dir: Path) -> None:
    ctx.store.register_model({"name": "tiny", "path": str(tiny_model_dir)})
    page = make_page(ctx, qtbot, DISTINCT)
    page.template.refresh()
    page.template.example.setValue(3)
    job = page.template.render_example()
    with qtbot.waitSignal(job.done, timeout=60_000):
        pass
    preview = page.template.preview
    trained = "".join(t for t, on in ctx.engine.merge_spans(preview.tokens) if on)
    assert "within thirty days of delivery." in trained
    assert "refund" not in trained                                # the user turn is masked
    assert "refund for my order" in page.template.text.toPlainText()
    assert "#bbf7d0" in page.template.text.toHtml().lower()


def test_window_lists_the_workbench_after_datasets(ctx, qtbot) -> None:
    from gui.main_window import MainWindow

    window = MainWindow(ctx)
    qtbot.addWidget(window)
    assert [window.sidebar.item(i).text() for i in range(2)] == ["Datasets", "Workbench"]
    wait_idle(qtbot, ctx.runner)
    window.ctx.runner.wait(5000)
    assert window.pages["Workbench"].tabs.count() == 9
    assert window.pages["Workbench"].tabs.tabText(0) == "History"
