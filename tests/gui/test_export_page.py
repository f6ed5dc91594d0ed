"""Export page with fake merge/export: progress, the result's path/size/SHA-256, errors."""

from __future__ import annotations

import dataclasses
import hashlib

from engine.errors import ExportError
from gui.pages.export import ExportPage
from tests.gui.conftest import wait_idle
from tests.gui.helpers import add_train_run, error_box


def test_merge_and_export_shows_progress_and_the_file(qtbot, ctx, tmp_path):
    run_id = add_train_run(ctx, tmp_path)
    page = ExportPage(ctx)
    qtbot.addWidget(page)
    assert page.run_box.count() == 1 and page.export_button.isEnabled()
    page.quant_box.setCurrentIndex(page.quant_box.findData("q4_k_m"))
    seen = []
    job = page.start()
    job.progress.connect(lambda event: seen.append((event.stage, page.stage.text(),
                                                    page.bar.maximum(), page.bar.value())))
    with qtbot.waitSignal(job.done, timeout=10_000):
        pass
    assert ("merge", "merging layer group 2", 3, 2) in seen
    assert ("export", "converting to q4_k_m", 2, 1) in seen
    gguf = ctx.store.root / "exports" / f"run-{run_id}" / "model-q4_k_m.gguf"
    data = gguf.read_bytes()
    assert page.result_labels["path"].text() == str(gguf)
    assert page.result_labels["sha256"].text() == hashlib.sha256(data).hexdigest()
    assert f"({len(data):,} bytes)" in page.result_labels["size"].text()
    assert page.open_button.isEnabled() and page.stage.text() == "Done."
    assert (page.bar.maximum(), page.bar.value()) == (1, 1)
    stored = ctx.store.artifacts(kind="gguf")
    assert [(a["path"], a["sha256"]) for a in stored] == [(str(gguf), hashlib.sha256(data).hexdigest())]
    export_run = ctx.store.run(stored[0]["run_id"])
    assert (export_run["kind"], export_run["status"], export_run["parent_run_id"]) == (
        "export", "succeeded", run_id)
    wait_idle(qtbot, ctx.runner)


def test_a_failed_export_goes_through_the_error_function(qtbot, ctx, tmp_path):
    add_train_run(ctx, tmp_path)

    def broken_export(*args, **kwargs):
        raise ExportError("model.safetensors: tensor 'lm_head' has an unsupported shape")

    ctx.engine = dataclasses.replace(ctx.engine, export_gguf=broken_export)
    page = ExportPage(ctx)
    qtbot.addWidget(page)
    job = page.start()
    with qtbot.waitSignal(job.done, timeout=10_000):
        pass
    box = error_box(page)
    assert box is not None and "Could not export the model" in box.text()
    assert "unsupported shape" in box.informativeText()
    assert "disk space" in box.informativeText()  # the advice for ExportError
    box.close()
    export_run = next(r for r in ctx.store.runs() if r["kind"] == "export")
    assert export_run["status"] == "failed" and "unsupported shape" in export_run["error"]
    assert page.stage.text() == "Failed." and page.result_labels["path"].text() == "—"
    assert page.export_button.isEnabled() and not page.cancel_button.isEnabled()
    wait_idle(qtbot, ctx.runner)
