"""Render every page of the desktop app to PNG files: ``python docs/screenshots.py OUTDIR``.

The data is realistic but cheap to make: the demo's dataset (the English ChatterBot corpus,
imported with the real importer), the built-in Gemma 3 270M model record, two training runs
whose loss curves follow the shape of the demo run (a decaying curve with noise, written as
metrics; no model is trained here, so the curves are illustrative), an export result and a
saved chat whose replies are real answers of the demo's fine-tuned model. Engine work that would
need a model is replaced by the fakes the GUI tests use, so the script runs in seconds offscreen.
"""

from __future__ import annotations

import math
import os
import random
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.progress import Progress  # noqa: E402

GEMMA_TEMPLATE = ("{{ bos_token }}{% for message in messages %}<start_of_turn>"
                  "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
                  "{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
                  "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
# Real exchanges: held-out ChatterBot questions and what the demo's fine-tuned Gemma 3 270M
# (q8_0 GGUF, llama.cpp, greedy) answered when `main.py demo` ran on 2 CPU cores.
CHAT = [("user", "You are immortal"), ("assistant", "I am immortal."),
        ("user", "You can not clone"), ("assistant", "I am not a clone."),
        ("user", "When will you fight"), ("assistant", "I'm not sure.")]


def loss_curve(steps: int, seed: int, floor: float) -> list[tuple[int, float]]:
    """A noisy exponentially decaying loss, the shape of the demo run's curve."""
    rng = random.Random(seed)
    return [(s, floor + 2.2 * math.exp(-s / 30) + rng.gauss(0, 0.06)) for s in range(1, steps + 1)]


def populate(store, data_dir: Path) -> dict[str, int]:
    """Fill a fresh store with the demo dataset, the model, two runs, an export and a chat."""
    from engine.data import load_chatterbot_corpus, remove_duplicates

    unique, _ = remove_duplicates(load_chatterbot_corpus("english").examples)
    dataset = store.create_dataset("chatterbot-english", unique)
    model = store.register_model({
        "name": "Gemma 3 270M (built-in)", "path": str(data_dir / "models" / "gemma-3-270m"),
        "architecture": "Gemma3ForCausalLM", "parameter_count": 268_098_176,
        "context_length": 32_768, "dtype": "bfloat16", "chat_template": GEMMA_TEMPLATE,
        "special_tokens": {"bos": "<bos>", "eos": ["<eos>", "<end_of_turn>"], "pad": "<pad>"},
        "source": "builtin"})
    config = {"learning_rate": 2e-4, "num_epochs": 1.0, "batch_size": 8, "max_length": 128,
              "lora_rank": 16, "lora_alpha": 32.0, "seed": 42, "validation_fraction": 0.1}
    runs = {}
    for name, steps, floor, status in (("cancelled", 60, 1.35, "cancelled"),
                                       ("finished", 120, 1.05, "succeeded")):
        run_id = store.start_run("train", config, base_model_id=model, dataset_id=dataset)
        for step, loss in loss_curve(steps, run_id, floor):
            store.add_metrics(run_id, step, {"loss": loss})
            if step % 25 == 0:
                store.add_metrics(run_id, step, {"eval_loss": loss + 0.12})
        store.finish_run(run_id, status)
        store.add_artifact(run_id, "adapter", data_dir / "runs" / f"run-{run_id}" / "adapter")
        runs[name] = run_id
    chat = store.create_chat(CHAT[0][1][:48], str(data_dir / "exports" / "model-q8_0.gguf"),
                             "You are a helpful assistant.")
    for role, content in CHAT:
        store.add_chat_message(chat, role, content)
    return {"dataset": dataset, "chat": chat, **runs}


def screenshot_engine(data_dir: Path):
    """The GUI tests' fake engine with a realistic estimate line (no torch import)."""
    import dataclasses

    from tests.gui.fakes import fake_engine

    return dataclasses.replace(
        fake_engine(data_dir), device_summary=lambda: "CPU · 2 threads · bf16 (AMX)",
        estimate_training=lambda *a, **k: ("cpu · bf16 · 160 steps · memory ≈ 1.21 GiB of 9.8 "
                                           "GiB free · time ≈ 19m 40s (rough)"))


def replay_training(page, store, run_id: int) -> None:
    """Feed a stored run's metrics into the Train page's live view, as the job would."""
    metrics = store.metrics(run_id)
    evals = dict(metrics.get("eval_loss", []))
    total = 160
    page.monitor.reset("run 2: 1,421 training / 158 validation conversations")
    page.monitor.append_log("training on cpu in bf16: CPU has native bf16 (AMX)")
    for step, loss in metrics["loss"]:
        page.monitor.on_progress(Progress("train", step, total, {
            "loss": loss, "tokens_per_second": 412.0, "eta_seconds": (total - step) * 2.4}))
        if step in evals:
            page.monitor.on_progress(Progress("eval", step, total, {"eval_loss": evals[step]}))
    page.monitor.flush()
    page._set_state("running")


def main(outdir: str) -> int:
    """Render each page (light theme, then the Chat and Train pages in dark) into ``outdir``."""
    from PySide6.QtWidgets import QApplication

    from gui.app import create_window
    from gui.store import Store
    from gui.theme import apply_theme

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="tunesmith-shots-"))
    store = Store.open(data_dir)
    ids = populate(store, data_dir)
    store.close()
    window = create_window(data_dir, engine=screenshot_engine(data_dir))
    app = QApplication.instance()
    apply_theme(app, "light")
    window.resize(1280, 800)
    window.show()
    _settle(app, window)
    _stage_pages(window, ids, data_dir)
    written = []
    for index, name in enumerate(window.pages):
        window.sidebar.setCurrentRow(index)
        _settle(app, window)
        path = out / f"{index + 1:02d}-{name.lower()}.png"
        window.grab().save(str(path))
        written.append(path)
    path = out / f"{list(window.pages).index('Workbench') + 1:02d}b-workbench-statistics.png"
    _stage_statistics(app, window)
    window.grab().save(str(path))
    written.append(path)
    runs = window.pages["Runs"]
    _stage_evaluation(runs, ids)
    runs.tabs.setCurrentWidget(runs.evaluate)
    window.sidebar.setCurrentRow(list(window.pages).index("Runs"))
    _settle(app, window)
    path = out / f"{list(window.pages).index('Runs') + 1:02d}b-runs-evaluate.png"
    window.grab().save(str(path))
    written.append(path)
    runs.tabs.setCurrentIndex(0)
    apply_theme(app, "dark")
    for name in ("Train", "Chat"):
        window.sidebar.setCurrentRow(list(window.pages).index(name))
        _settle(app, window)
        path = out / f"dark-{name.lower()}.png"
        window.grab().save(str(path))
        written.append(path)
    window.close()  # runs the normal shutdown: stops jobs, frees chat models
    window.ctx.store.close()
    print("\n".join(str(p) for p in written))
    return 0


def _stage_pages(window, ids: dict[str, int], data_dir: Path) -> None:
    pages = window.pages
    pages["Datasets"].table.selectRow(2)
    runs = pages["Runs"]
    from PySide6.QtCore import QItemSelectionModel

    selection = runs.table.selectionModel()
    for row in (0, 1):
        selection.select(runs.table.model().index(row, 0), QItemSelectionModel.SelectionFlag.Select
                         | QItemSelectionModel.SelectionFlag.Rows)
    pages["Train"].load_run(ids["finished"])
    replay_training(pages["Train"], window.ctx.store, ids["finished"])
    window.job_label.setText("Training run 2: train")
    pages["Export"].show_result({"path": data_dir / "exports" / "run-2" / "model-q8_0.gguf",
                                 "bytes": 291_796_992, "sha256": "9f2c4e1b7a0d3c58e6f1a2b4c7d8e9f0"
                                 "a1b2c3d4e5f60718293a4b5c6d7e8f90"})
    pages["Export"].bar.setRange(0, 100)
    pages["Export"].bar.setValue(100)
    pages["Export"].stage.setText("Done.")
    pages["Chat"].open_chat(ids["chat"])
    workbench = pages["Workbench"]  # the real near-duplicate preview of the corpus (seconds)
    workbench.tabs.setCurrentWidget(workbench.dedupe)
    workbench.dedupe.preview()


def _stage_statistics(app, window) -> None:
    """The Workbench's Statistics tab, computed for the demo dataset (no tokenizer)."""
    workbench = window.pages["Workbench"]
    window.sidebar.setCurrentRow(list(window.pages).index("Workbench"))
    workbench.tabs.setCurrentWidget(workbench.stats)
    workbench.stats.compute()
    _settle(app, window)


def _stage_evaluation(runs, ids: dict[str, int]) -> None:
    """Select the finished run and show before/after scores of the size the demo reports."""
    runs.table.clearSelection()
    runs.table.selectRow([r["id"] for r in runs.rows].index(ids["finished"]))
    runs.evaluate.show_results({
        "before": {"perplexity": 41.7, "bleu": 3.2, "bleu_tokenize": "13a", "rouge_l": 0.118,
                   "replies": ["…"] * 16},
        "after": {"perplexity": 3.38, "bleu": 14.9, "bleu_tokenize": "13a", "rouge_l": 0.297,
                  "replies": ["…"] * 16}})


def _settle(app, window) -> None:
    for _ in range(5):
        app.processEvents()
        window.ctx.runner.wait(2000)
        app.processEvents()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python docs/screenshots.py OUTDIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
