"""Evaluate tab (fake scorer), the real scoring wiring on the tiny model, the Settings dialog."""

from __future__ import annotations

import math
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtWidgets import QApplication

from engine.data import split_examples
from gui.pages.evaluate import EvaluatePanel
from gui.scoring import run_settings, score_model
from gui.settings_dialog import SettingsDialog
from gui.theme import apply_theme
from tests.gui.conftest import wait_idle
from tests.gui.helpers import add_train_run, conversations


def test_evaluate_scores_base_and_tuned_on_the_runs_validation_split(qtbot, ctx, tmp_path):
    run_id = add_train_run(ctx, tmp_path, template="{{ messages }}",
                           config={"seed": 7, "validation_fraction": 0.25, "max_length": 99})
    panel = EvaluatePanel(ctx)
    qtbot.addWidget(panel)
    assert not panel.button.isEnabled()
    panel.set_run(ctx.store.run(run_id))
    panel.generate.setValue(3)
    job = panel.start()
    with qtbot.waitSignal(job.done, timeout=10_000):
        pass
    calls = ctx.engine.score_model.calls
    _, expected_val = split_examples(conversations(20), validation_fraction=0.25, seed=7)
    assert [c["adapter_dir"] for c in calls] == [
        None, ctx.store.root / "runs" / f"run-{run_id}" / "adapter"]
    for call in calls:
        assert [r["messages"] for r in call["rows"]] == [r["messages"] for r in expected_val]
        assert (call["template"], call["max_length"], call["generate"]) == ("{{ messages }}", 99, 3)
    table = [[panel.table.item(r, c).text() for c in range(4)] for r in range(3)]
    assert table == [["Perplexity", "20.000", "8.000", "fine-tuned"],
                     ["BLEU (0-100)", "10.000", "30.000", "fine-tuned"],
                     ["ROUGE-L F1 (0-1)", "0.250", "0.500", "fine-tuned"]]
    for key, (base, tuned) in (("perplexity", (20, 8)), ("bleu", (10, 30)),
                               ("rouge_l", (0.25, 0.5))):
        bars = [i for i in panel.charts[key].plotItem.items if isinstance(i, pg.BarGraphItem)]
        assert list(bars[0].opts["height"]) == [base, tuned]
    assert "BLEU 10.0 → 30.0" in panel.note.text() and panel.button.isEnabled()
    wait_idle(qtbot, ctx.runner)


def test_run_settings_reads_gui_and_cli_run_configs():
    gui_run = {"config": {"seed": 3, "max_length": 256, "validation_fraction": 0.2}}
    cli_run = {"config": {"train": {"seed": 5, "max_length": 128}, "validation_fraction": 0.1}}
    assert run_settings(gui_run) == {"validation_fraction": 0.2, "seed": 3, "max_length": 256}
    assert run_settings(cli_run) == {"validation_fraction": 0.1, "seed": 5, "max_length": 128}


def test_score_model_matches_sacrebleu_and_the_eval_perplexity(tiny_model_dir):
    from sacrebleu.metrics import BLEU

    from engine.evaluate import perplexity_hf

    rows = conversations(3)
    result = score_model(tiny_model_dir, None, rows, template=None, max_length=64, generate=2,
                         max_new_tokens=4, report=lambda event: None, cancel=None)
    references = ["answer 0", "answer 1"]
    expected = BLEU(tokenize="13a", effective_order=True).corpus_score(result["replies"],
                                                                       [references])
    assert len(result["replies"]) == 2
    assert math.isclose(result["bleu"], expected.score, abs_tol=1e-9)
    assert 0.0 <= result["rouge_l"] <= 1.0
    separate = perplexity_hf(tiny_model_dir, rows, max_length=64)
    assert math.isclose(result["perplexity"], separate.perplexity, rel_tol=1e-5)


def test_settings_dialog_saves_data_dir_device_and_theme(qtbot, ctx, tmp_path):
    dialog = SettingsDialog(ctx)
    qtbot.addWidget(dialog)
    assert dialog.data_dir.text() == str(ctx.store.root)
    assert dialog.theme.currentText() == "system"
    dialog.data_dir.setText(str(tmp_path / "elsewhere"))
    dialog.device.setCurrentText("cpu")
    dialog.theme.setCurrentText("dark")
    try:
        dialog.accept()
        assert ctx.setting("data_dir") == str(tmp_path / "elsewhere")
        assert (ctx.setting("device"), ctx.setting("theme")) == ("cpu", "dark")
        assert QApplication.palette().window().color().name() == "#1f2227"  # the dark palette
    finally:
        apply_theme(QApplication.instance(), "light")


def test_settings_dialog_cancel_changes_nothing(qtbot, ctx, tmp_path):
    ctx.settings.setValue("device", "auto")
    dialog = SettingsDialog(ctx)
    qtbot.addWidget(dialog)
    dialog.device.setCurrentText("cuda")
    dialog.data_dir.setText(str(Path(tmp_path) / "other"))
    dialog.reject()
    assert ctx.setting("device") == "auto" and ctx.setting("data_dir") == ""
