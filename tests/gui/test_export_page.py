"""Export page with fake merge/export/verification: progress, the result's path/size/SHA-256,
errors, the merged folder's verification, the LoRA adapter GGUF export (verified on the base
GGUF when there is one), one pass/warn/fail card per stored verification report, the
quantization report, and the warning before a failing file is opened."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from pathlib import Path

import pytest
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QLabel, QMessageBox, QPushButton

from engine.errors import ExportError
from engine.progress import ignore_progress
from gui.export_verify import VerifyInputs, verify_gguf, verify_merged_folder
from gui.pages.export import ExportPage
from gui.verify_card import VerifyCard
from tests.gui.conftest import wait_idle
from tests.gui.fakes import fake_report
from tests.gui.helpers import add_train_run, error_box


def store_export(ctx, train_id: int, tmp_path: Path, quant: str, overall: str, *,
                 via_merge: bool = False, kind: str = "gguf", **values) -> dict:
    """An export run with a verified file of ``kind``: child of the train run (GUI) or of a
    merge run of it (CLI, ``via_merge``)."""
    parent = (ctx.store.start_run("merge", {}, parent_run_id=train_id) if via_merge
              else train_id)
    run_id = ctx.store.start_run("export", {"quant": quant}, parent_run_id=parent)
    path = tmp_path / (f"model-{quant}.gguf" if kind == "gguf" else f"{kind}-{quant}")
    path.write_bytes(b"GGUF")
    report = fake_report(path, quant, overall, **values)
    ctx.store.add_artifact(run_id, kind, path, meta={"verification": report})
    ctx.store.finish_run(run_id, "succeeded")
    return report


def test_merge_and_export_shows_progress_and_the_file(qtbot, ctx, tmp_path):
    run_id = add_train_run(ctx, tmp_path)
    verifier, merged_verifier = ctx.engine.verify_gguf, ctx.engine.verify_merged
    page = ExportPage(ctx)
    qtbot.addWidget(page)
    assert page.run_box.count() == 1 and page.export_button.isEnabled()
    assert page.cards == [] and "No verified exports" in page.reports_hint.text()
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
    # Verified on the run's validation split (10% of 20 conversations = 2), report stored with
    # the artifact and shown as a card; the model card was written beside the GGUF.
    [call] = verifier.calls
    assert (call["path"], call["what"], len(call["inputs"].rows)) == (gguf, "q4_k_m", 2)
    assert stored[0]["meta"]["verification"]["overall"] == "pass"
    # The merged folder was verified too, against the same inputs, and its card comes first.
    [merged_call] = merged_verifier.calls
    merged_dir = gguf.parent / "merged"
    assert merged_call["path"] == merged_dir and merged_call["inputs"] is call["inputs"]
    [merged] = ctx.store.artifacts(kind="merged")
    assert merged["path"] == str(merged_dir) and merged["meta"]["verification"]["quant"] == "bf16"
    assert [(c.status, c.header.text().split(" (")[0]) for c in page.cards] == [
        ("pass", "✔ PASS — Merged model: merged"), ("pass", "✔ PASS — model-q4_k_m.gguf")]
    assert page.result_labels["verification"].text() == (
        "merged model ✔ PASS, file ✔ PASS — details in the cards below.")
    card_text = gguf.with_suffix(".md").read_text()
    assert "# Fine-tune of tiny" in card_text and "Overall: **PASS**" in card_text
    assert "- Name: chats" in card_text
    wait_idle(qtbot, ctx.runner)


def test_verification_can_be_switched_off(qtbot, ctx, tmp_path):
    add_train_run(ctx, tmp_path)
    page = ExportPage(ctx)
    qtbot.addWidget(page)
    page.verify_box.setChecked(False)
    with qtbot.waitSignal(page.start().done, timeout=10_000):
        pass
    assert ctx.engine.verify_gguf.calls == ctx.engine.verify_merged.calls == []
    assert page.cards == []
    assert ctx.store.artifacts(kind="gguf")[0]["meta"]["verification"] is None
    assert ctx.store.artifacts(kind="merged")[0]["meta"]["verification"] is None
    assert page.result_labels["verification"].text() == "Not verified (switched off)."
    assert "Not verified." in Path(page.result["path"]).with_suffix(".md").read_text()
    wait_idle(qtbot, ctx.runner)


def test_cards_and_quantization_report_from_stored_reports(qtbot, ctx, tmp_path):
    train_id = add_train_run(ctx, tmp_path)
    store_export(ctx, train_id, tmp_path, "q4_k_m", "fail", top1=0.25, kl=0.9, speed=55.0)
    store_export(ctx, train_id, tmp_path, "f16", "pass", speed=20.0, via_merge=True)
    store_export(ctx, train_id, tmp_path, "q8_0", "warn", speed=38.0)
    store_export(ctx, train_id, tmp_path, "q4_k_m+lora", "pass", kind="adapter_gguf")
    store_export(ctx, train_id, tmp_path, "bf16", "warn", kind="merged", via_merge=True)
    other = add_train_run(ctx, tmp_path)  # another run's export is not shown
    (tmp_path / "other").mkdir()
    store_export(ctx, other, tmp_path / "other", "q8_0", "pass")
    page = ExportPage(ctx)
    qtbot.addWidget(page)
    box = page.run_box
    box.setCurrentIndex(next(i for i in range(box.count()) if box.itemData(i)["id"] == train_id))
    # The merged folder first, GGUFs f16 first then smaller types (whatever the export
    # order), the adapter last; the quantization report has the GGUFs only.
    assert [(c.report["quant"], c.status) for c in page.cards] == [
        ("bf16", "warn"), ("f16", "pass"), ("q8_0", "warn"), ("q4_k_m", "fail"),
        ("q4_k_m+lora", "pass")]
    merged, *ggufs, adapter = page.cards
    assert merged.header.text() == "⚠ WARN — Merged model: merged-bf16 (bf16, 300.0 MiB)"
    assert merged.findChild(QPushButton, "cardOpen") is None  # a folder is not shared
    assert adapter.header.text().startswith("✔ PASS — LoRA adapter: adapter_gguf-q4_k_m+lora")
    assert ggufs[0].header.text() == "✔ PASS — model-f16.gguf (f16, 300.0 MiB)"
    assert ggufs[1].header.text().startswith("⚠ WARN — model-q8_0.gguf")
    assert ggufs[2].header.text().startswith("✖ FAIL — model-q4_k_m.gguf")
    top1 = [cell.text() for cell in ggufs[2].rows[0]]
    assert top1 == ["✖ FAIL", "Top-1 next-token agreement", "0.25",
                    "threshold: >= 0.9 passes for q8_0, < 0.5 fails"]
    tip = ggufs[1].rows[1][2].toolTip()
    assert "never learned to end its turn" in tip and ">= 0.75 passes" in tip
    table = page.quant_table
    cells = [[table.item(r, c).text() for c in range(table.columnCount())]
             for r in range(table.rowCount())]
    assert [row[1] for row in cells] == ["f16", "q8_0", "q4_k_m"]
    assert cells[2][3:] == ["55", "10.5 / 10.4", "0.25", "0.9", "✖ FAIL"]
    assert cells[0][2] == "300.0 MiB"


def test_a_failed_file_warns_before_it_is_opened(qtbot, ctx, tmp_path, monkeypatch):
    train_id = add_train_run(ctx, tmp_path)
    store_export(ctx, train_id, tmp_path, "q4_k_m", "fail", top1=0.25)
    store_export(ctx, train_id, tmp_path, "f16", "pass")
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()))
    page = ExportPage(ctx)
    qtbot.addWidget(page)
    passing, failing = page.cards
    passing.findChild(QPushButton, "cardOpen").click()
    assert opened == [str(tmp_path)] and page.findChild(QMessageBox, "shareWarning") is None
    failing.findChild(QPushButton, "cardOpen").click()
    box = page.findChild(QMessageBox, "shareWarning")
    assert box is not None and opened == [str(tmp_path)]  # not opened yet
    assert "Top-1 next-token agreement" in box.informativeText()
    cancel = box.button(QMessageBox.StandardButton.Cancel)
    cancel.click()
    assert opened == [str(tmp_path)]
    failing.findChild(QPushButton, "cardOpen").click()
    box = [b for b in page.findChildren(QMessageBox, "shareWarning") if b.isVisible()][-1]
    anyway = next(b for b in box.buttons() if b.text() == "Open anyway")
    anyway.click()
    assert opened == [str(tmp_path), str(tmp_path)]


def test_a_report_that_could_not_run_says_why(qtbot):
    card = VerifyCard({"path": "/x/m.gguf", "quant": "q8_0", "bytes": 0, "overall": "warn",
                       "checks": [], "metrics": {},
                       "error": "Verification could not run: no validation rows"})
    qtbot.addWidget(card)
    texts = [w.text() for w in card.findChildren(QLabel)]
    assert "⚠ WARN — m.gguf (q8_0)" in texts
    assert "Verification could not run: no validation rows" in texts


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


def test_the_lora_adapter_exports_and_verifies_on_the_base_gguf(qtbot, ctx, tmp_path):
    run_id = add_train_run(ctx, tmp_path)
    base = tmp_path / "base-q4_k_m.gguf"
    base.write_bytes(b"GGUF base")
    ctx.engine = dataclasses.replace(ctx.engine, find_base_gguf=lambda model_dir: base)
    page = ExportPage(ctx)
    qtbot.addWidget(page)
    page.adapter_type_box.setCurrentIndex(page.adapter_type_box.findData("f16"))
    seen = []
    job = page.start_adapter()
    job.progress.connect(lambda event: seen.append((event.stage, page.stage.text())))
    assert not page.export_button.isEnabled() and not page.adapter_button.isEnabled()
    with qtbot.waitSignal(job.done, timeout=10_000):
        pass
    out = ctx.store.root / "exports" / f"run-{run_id}" / "adapter-f16.gguf"
    data = out.read_bytes()
    assert data.startswith(b"GGUFlora-f16") and page.stage.text() == "Done."
    assert ("write", "Wrote adapter-f16.gguf") in seen
    # The artifact the Chat page's adapter picker lists, with the file's own checksum.
    [artifact] = ctx.store.artifacts(kind="adapter_gguf")
    assert (artifact["path"], artifact["sha256"]) == (str(out), hashlib.sha256(data).hexdigest())
    meta = artifact["meta"]
    assert (meta["outtype"], meta["rank"], meta["alpha"], meta["base_gguf"]) == (
        "f16", 4, 8.0, str(base))
    assert meta["verification"]["overall"] == "pass"
    export_run = ctx.store.run(artifact["run_id"])
    assert (export_run["status"], export_run["parent_run_id"]) == ("succeeded", run_id)
    assert ctx.store.artifacts(kind="gguf") == []  # nothing merged or converted
    [call] = ctx.engine.verify_adapter.calls
    assert (call["path"], call["what"], len(call["inputs"].rows)) == (out, base, 2)
    assert call["inputs"].adapter_dir == Path(ctx.store.artifacts(run_id, "adapter")[0]["path"])
    assert page.result_labels["path"].text() == str(out)
    assert page.result_labels["sha256"].text() == hashlib.sha256(data).hexdigest()
    assert page.result_labels["verification"].text() == "file ✔ PASS — details in the cards below."
    assert [c.header.text().split(" (")[0] for c in page.cards] == [
        "✔ PASS — LoRA adapter: adapter-f16.gguf"]
    assert page.export_button.isEnabled() and page.adapter_button.isEnabled()
    wait_idle(qtbot, ctx.runner)


def test_without_a_base_gguf_the_adapter_is_exported_with_a_note(qtbot, ctx, tmp_path):
    add_train_run(ctx, tmp_path)
    page = ExportPage(ctx)  # the fake engine finds no base GGUF (a Hugging Face folder)
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.start_adapter().done, timeout=10_000):
        pass
    [artifact] = ctx.store.artifacts(kind="adapter_gguf")
    assert Path(artifact["path"]).name == "adapter-f32.gguf"
    assert artifact["meta"]["verification"] is None and artifact["meta"]["base_gguf"] is None
    assert ctx.engine.verify_adapter.calls == [] and page.cards == []
    note = page.result_labels["verification"].text()
    assert note.startswith("Not verified: the base model was not imported from a GGUF file")
    assert "--verify-base" in note
    wait_idle(qtbot, ctx.runner)


def test_a_verification_that_cannot_run_is_a_stored_warning(tmp_path):
    """No validation rows: the merged folder's and the GGUF's reports say why (the reason
    found once), each stored beside its file; no model is loaded."""
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "model.safetensors").write_bytes(b"x" * 10)
    gguf = tmp_path / "model-q8_0.gguf"
    gguf.write_bytes(b"GGUF" * 5)
    inputs = VerifyInputs(tmp_path / "no-model", tmp_path / "no-adapter", [], None, 128)
    folder_report = verify_merged_folder(merged, "bfloat16", inputs=inputs, report=ignore_progress,
                                         cancel=None)
    file_report = verify_gguf(gguf, "q8_0", inputs=inputs, report=ignore_progress, cancel=None)
    for report, target, quant, size in ((folder_report, merged, "bf16", 10),
                                        (file_report, gguf, "q8_0", 20)):
        assert (report["overall"], report["quant"], report["bytes"]) == ("warn", quant, size)
        assert "no validation rows" in report["error"]
        assert json.loads(Path(f"{target}.verify.json").read_text()) == report


@pytest.mark.integration
def test_real_adapter_export_and_merge_verification_on_the_tiny_model(tiny_model_dir, tmp_path):
    """The job steps against the real engine (transformers + PEFT reference, llama.cpp with the
    adapter on the tiny base GGUF): the keyword arguments fit and the checks pass."""
    from engine.merge import merge_adapter
    from gui.export_verify import export_adapter
    from gui.services import real_engine
    from tests.engine.test_adapter_gguf import _adapter, _tiny_base_gguf
    from tests.engine.test_merge import _special
    from tests.tiny_models import CHATML

    base = _tiny_base_gguf(tiny_model_dir, tmp_path / "base.gguf")
    adapter = _adapter(tiny_model_dir, tmp_path / "adapter", seed=1)
    rows = [{"messages": [{"role": "user", "content": "Hello, how are you?"},
                          {"role": "assistant", "content": "I am fine, thank you."}]},
            {"messages": [{"role": "user", "content": "What is your name?"},
                          {"role": "assistant", "content": "My name is Tunesmith."}]}]
    inputs = VerifyInputs(tiny_model_dir, adapter, rows, "chatml", 128)
    engine = dataclasses.replace(real_engine(), find_base_gguf=lambda model_dir: base)
    paths = {"model": tiny_model_dir, "adapter": adapter, "adapter_gguf": tmp_path / "a.gguf"}
    result = export_adapter(engine, paths, "f32", inputs, ignore_progress, None)
    data = (tmp_path / "a.gguf").read_bytes()
    assert result["sha256"] == hashlib.sha256(data).hexdigest() and result["bytes"] == len(data)
    assert result["meta"]["rank"] == 4 and result["meta"]["base_gguf"] == str(base)
    report = result["verification"]
    assert report["overall"] == "pass", report
    assert report["metrics"]["mean_kl"] < 1e-4  # adapter in llama.cpp == PEFT (fp32 both)
    reference = inputs._reference
    merged = merge_adapter(tiny_model_dir, adapter, tmp_path / "merged", chat_template=CHATML,
                           special=_special(tiny_model_dir))
    folder = verify_merged_folder(tmp_path / "merged", merged.dtype, inputs=inputs,
                                  report=ignore_progress, cancel=None)
    assert inputs._reference is reference  # one reference run for both checks
    assert folder["overall"] == "pass" and folder["metrics"]["top1_agreement"] == 1.0, folder
    assert json.loads((tmp_path / "merged.verify.json").read_text()) == folder
