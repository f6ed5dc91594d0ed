"""Export page with fake merge/export/verification: progress, the result's path/size/SHA-256,
errors, one pass/warn/fail card per stored verification report, the quantization report, and
the warning before a failing file is opened."""

from __future__ import annotations

import dataclasses
import hashlib

from pathlib import Path

from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QLabel, QMessageBox, QPushButton

from engine.errors import ExportError
from gui.pages.export import ExportPage
from gui.verify_card import VerifyCard
from tests.gui.conftest import wait_idle
from tests.gui.helpers import add_train_run, error_box


def fake_report(path, quant: str, overall: str, *, top1: float = 1.0, kl: float = 0.002,
                speed: float = 41.5) -> dict:
    """A stored report in VerificationReport.to_dict() shape, checks chosen to give ``overall``."""
    checks = [{"name": "top1_agreement", "status": "pass" if top1 >= 0.9 else "fail",
               "value": top1, "threshold": ">= 0.9 passes for q8_0, < 0.5 fails",
               "explanation": "the GGUF picks the same next token as the trained model"},
              {"name": "stops", "status": "warn" if overall == "warn" else "pass", "value": 0.25,
               "threshold": ">= 0.75 passes, < 0.25 fails",
               "explanation": "the model never learned to end its turn"},
              {"name": "mean_kl", "status": "pass", "value": kl, "threshold": "<= 0.03 nats",
               "explanation": "next-token probabilities match"}]
    return {"path": str(path), "quant": quant, "bytes": 300 * 2**20, "overall": overall,
            "checks": checks, "metrics": {"top1_agreement": top1, "mean_kl": kl,
                                          "perplexity_gguf": 10.5, "perplexity_reference": 10.4,
                                          "tokens_per_second": speed}}


class FakeVerifier:
    def __init__(self) -> None:
        self.calls = []

    def __call__(self, gguf_path, quant, **kwargs):
        self.calls.append({"path": gguf_path, "quant": quant, **kwargs})
        return fake_report(gguf_path, quant, "pass")


def store_export(ctx, train_id: int, tmp_path: Path, quant: str, overall: str, *,
                 via_merge: bool = False, **values) -> dict:
    """An export run with a verified GGUF: child of the train run (GUI) or of a merge run
    of it (CLI, ``via_merge``)."""
    parent = (ctx.store.start_run("merge", {}, parent_run_id=train_id) if via_merge
              else train_id)
    run_id = ctx.store.start_run("export", {"quant": quant}, parent_run_id=parent)
    path = tmp_path / f"model-{quant}.gguf"
    path.write_bytes(b"GGUF")
    report = fake_report(path, quant, overall, **values)
    ctx.store.add_artifact(run_id, "gguf", path, meta={"verification": report})
    ctx.store.finish_run(run_id, "succeeded")
    return report


def test_merge_and_export_shows_progress_and_the_file(qtbot, ctx, tmp_path):
    run_id = add_train_run(ctx, tmp_path)
    verifier = FakeVerifier()
    page = ExportPage(ctx, verifier=verifier)
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
    assert (call["path"], call["quant"], len(call["rows"])) == (gguf, "q4_k_m", 2)
    assert stored[0]["meta"]["verification"]["overall"] == "pass"
    assert [c.status for c in page.cards] == ["pass"]
    card_text = gguf.with_suffix(".md").read_text()
    assert "# Fine-tune of tiny" in card_text and "Overall: **PASS**" in card_text
    assert "- Name: chats" in card_text
    wait_idle(qtbot, ctx.runner)


def test_verification_can_be_switched_off(qtbot, ctx, tmp_path):
    add_train_run(ctx, tmp_path)
    verifier = FakeVerifier()
    page = ExportPage(ctx, verifier=verifier)
    qtbot.addWidget(page)
    page.verify_box.setChecked(False)
    with qtbot.waitSignal(page.start().done, timeout=10_000):
        pass
    assert verifier.calls == [] and page.cards == []
    assert ctx.store.artifacts(kind="gguf")[0]["meta"]["verification"] is None
    assert "Not verified." in Path(page.result["path"]).with_suffix(".md").read_text()
    wait_idle(qtbot, ctx.runner)


def test_cards_and_quantization_report_from_stored_reports(qtbot, ctx, tmp_path):
    train_id = add_train_run(ctx, tmp_path)
    store_export(ctx, train_id, tmp_path, "q4_k_m", "fail", top1=0.25, kl=0.9, speed=55.0)
    store_export(ctx, train_id, tmp_path, "f16", "pass", speed=20.0, via_merge=True)
    store_export(ctx, train_id, tmp_path, "q8_0", "warn", speed=38.0)
    other = add_train_run(ctx, tmp_path)  # another run's export is not shown
    (tmp_path / "other").mkdir()
    store_export(ctx, other, tmp_path / "other", "q8_0", "pass")
    page = ExportPage(ctx, verifier=FakeVerifier())
    qtbot.addWidget(page)
    box = page.run_box
    box.setCurrentIndex(next(i for i in range(box.count()) if box.itemData(i)["id"] == train_id))
    # f16 first, then smaller types, whatever the export order.
    assert [(c.report["quant"], c.status) for c in page.cards] == [
        ("f16", "pass"), ("q8_0", "warn"), ("q4_k_m", "fail")]
    assert page.cards[0].header.text() == "✔ PASS — model-f16.gguf (f16, 300.0 MiB)"
    assert page.cards[1].header.text().startswith("⚠ WARN — model-q8_0.gguf")
    assert page.cards[2].header.text().startswith("✖ FAIL — model-q4_k_m.gguf")
    top1 = [cell.text() for cell in page.cards[2].rows[0]]
    assert top1 == ["✖ FAIL", "Top-1 next-token agreement", "0.25",
                    "threshold: >= 0.9 passes for q8_0, < 0.5 fails"]
    tip = page.cards[1].rows[1][2].toolTip()
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
    page = ExportPage(ctx, verifier=FakeVerifier())
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
    page = ExportPage(ctx, verifier=FakeVerifier())
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
