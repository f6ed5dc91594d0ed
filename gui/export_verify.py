"""Job-side steps of the Export page after the GGUF is written: verify it against the adapter
model, store the report beside it, write the model card and (on request) the Ollama Modelfile.

These run on the job thread; the engine modules are imported on first call so opening the
window never imports torch or llama.cpp (as in :mod:`gui.services`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import Cancelled, EngineError

VERIFY_ROWS, VERIFY_TOKENS = 8, 32  # the CLI's defaults (main.py --verify-rows/--verify-tokens)


def verify_gguf(gguf_path: Path, quant: str, *, model_dir: Path, adapter_dir: Path,
                rows: list[dict[str, Any]], template: str | None, max_length: int,
                report: Any, cancel: Any, merged_dtype: str | None = None) -> dict[str, Any]:
    """Verify ``gguf_path`` against the base model + adapter on up to :data:`VERIFY_ROWS`
    validation rows; store the report as ``<file>.verify.json``; return it as a dict.

    A verification that cannot run (no validation rows, a model that does not load) returns a
    ``warn`` report holding the reason in ``error`` instead of failing the export.

    ``merged_dtype`` (the merged folder's dtype, e.g. ``bfloat16``) sets the limits' floor
    (:meth:`engine.verify_checks.VerifyThresholds.with_floor`).

    Raises:
        Cancelled: the user cancelled the job.
    """
    from engine.verify import reference_run, verify_export
    from engine.verify_checks import VerifyThresholds
    from engine.verify_merged import DTYPE_QUANT, save_report

    rows = rows[:VERIFY_ROWS]
    try:
        if not rows:
            raise EngineError("the run has no validation rows; train with a validation share "
                              "above 0 to verify its exports")
        reference = reference_run(model_dir, rows, adapter_dir=adapter_dir, template=template,
                                  max_length=max_length, max_new_tokens=VERIFY_TOKENS,
                                  report=report, cancel=cancel)
        data = verify_export(gguf_path, reference_dir=model_dir, rows=rows, quant=quant,
                             reference=reference, max_new_tokens=VERIFY_TOKENS, report=report,
                             cancel=cancel, thresholds=VerifyThresholds().with_floor(
                                 DTYPE_QUANT.get(merged_dtype or ""))).to_dict()
    except Cancelled:
        raise
    except (EngineError, OSError) as exc:
        data = {"path": str(gguf_path), "quant": quant, "bytes": Path(gguf_path).stat().st_size,
                "overall": "warn", "checks": [], "metrics": {},
                "error": f"Verification could not run: {exc}"}
    save_report(data, gguf_path)
    return data


def write_sharing_files(gguf_path: Path, card: dict[str, Any], verification: dict[str, Any] | None,
                        *, merged_dir: Path, template: str | None, modelfile: bool) -> list[Path]:
    """The model card ``<name>.md`` and, when ``modelfile``, ``<name>.Modelfile`` beside the
    GGUF; returns the files written.

    Args:
        card: :func:`engine.model_card.write_model_card` arguments except ``verification`` and
            ``licence_note`` (``base_model``, ``base_model_path``, ``dataset_name``,
            ``dataset_hash``, ``dataset_version``, ``train_config``, ``metrics``).

    Raises:
        ConfigError: the Modelfile was requested for a chat format Ollama cannot express.
    """
    from engine.model_card import licence_reminder, write_model_card

    card = dict(card)
    path = Path(gguf_path).with_suffix(".md")
    licence = licence_reminder(card["base_model"], card.pop("base_model_path", None))
    write_model_card(path, verification=verification, licence_note=licence, **card)
    written = [path]
    if modelfile:
        from engine.model_card import modelfile_inputs, write_ollama_modelfile

        source, stops = modelfile_inputs(merged_dir, template)
        written.append(Path(gguf_path).with_suffix(".Modelfile"))
        write_ollama_modelfile(written[-1], Path(gguf_path).name, chat_template_source=source,
                               end_token_texts=stops)
    return written
