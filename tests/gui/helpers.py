"""Records the GUI tests share: a dataset, a base model and finished training runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QMessageBox, QWidget

from tests.gui.fakes import fake_model_dir


def conversations(n: int) -> list[dict[str, Any]]:
    """``n`` distinct two-turn conversations."""
    return [{"messages": [{"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i}"}]} for i in range(n)]


def add_train_run(ctx: Any, tmp_path: Path, *, status: str = "succeeded",
                  losses: tuple[float, ...] = (3.0, 2.0, 1.5), config: dict | None = None,
                  template: str | None = None) -> int:
    """A finished train run with ``loss`` metrics and an adapter folder inside the data dir."""
    datasets = ctx.store.datasets()
    dataset = datasets[0]["id"] if datasets else ctx.store.create_dataset("chats", conversations(20))
    models = ctx.store.base_models()
    model = models[0]["id"] if models else ctx.store.register_model(
        {"name": "tiny", "path": str(fake_model_dir(tmp_path))})
    run_id = ctx.store.start_run("train", config or {"seed": 42, "validation_fraction": 0.1,
                                                     "max_length": 128},
                                 base_model_id=model, dataset_id=dataset)
    ctx.store.add_metric_rows(run_id, [(step, "loss", loss) for step, loss in
                                       enumerate(losses, start=1)])
    adapter = ctx.store.folder("runs") / f"run-{run_id}" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    ctx.store.add_artifact(run_id, "adapter", adapter, meta={"template_source": template})
    ctx.store.finish_run(run_id, status)
    return run_id


def error_box(parent: QWidget) -> QMessageBox | None:
    """The message box :func:`gui.errors.show_error` opened over ``parent``, if any."""
    return parent.findChild(QMessageBox, "errorBox")
