"""Job bodies of the Export page and their steps: merge, verify the merged folder, convert to
GGUF, verify the GGUF, write the model card and (on request) the Ollama Modelfile; or export
the LoRA adapter alone as a GGUF and verify it on the base model's GGUF (issue 5).

These run on the job thread and call the engine through :class:`gui.services.Engine` (so tests
inject fakes); the verification steps, also reached through it, import the engine modules on
first call so opening the window never imports torch or llama.cpp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.errors import Cancelled, EngineError
from engine.fileio import sha256_file
from engine.progress import Progress

VERIFY_ROWS, VERIFY_TOKENS = 8, 32  # the CLI's defaults (main.py --verify-rows/--verify-tokens)


@dataclass
class VerifyInputs:
    """What every check of one export job compares with: the base model + LoRA adapter
    (transformers, fp32) on up to :data:`VERIFY_ROWS` validation rows. The reference run is
    made on first use and shared by the merged folder's, the GGUF's and the adapter's checks.

    Attributes:
        model_dir: the base model's Hugging Face folder.
        adapter_dir: the PEFT adapter folder.
        rows: the run's validation conversations.
        template: the run's chat template (Jinja), ``None`` = the tokenizer's own.
        max_length: the run's ``max_length`` (tokens per row for perplexity).
    """

    model_dir: Path
    adapter_dir: Path
    rows: list[dict[str, Any]]
    template: str | None
    max_length: int
    _reference: Any = field(default=None, repr=False)

    def reference(self, report: Any, cancel: Any) -> Any:
        """The :class:`engine.verify.ReferenceRun` (computed once).

        Raises:
            EngineError: no validation rows, or the model or adapter does not load.
            Cancelled: the user cancelled the job.
        """
        if isinstance(self._reference, EngineError):
            raise self._reference  # a failed reference fails every check the same way, at once
        if self._reference is None:
            self._reference = self._run(report, cancel)
        return self._reference

    def _run(self, report: Any, cancel: Any) -> Any:
        from engine.verify import reference_run

        try:
            if not self.rows:
                raise EngineError("the run has no validation rows; train with a validation "
                                  "share above 0 to verify its exports")
            return reference_run(self.model_dir, self.rows[:VERIFY_ROWS],
                                 adapter_dir=self.adapter_dir, template=self.template,
                                 max_length=self.max_length, max_new_tokens=VERIFY_TOKENS,
                                 report=report, cancel=cancel)
        except Cancelled:
            raise
        except EngineError as exc:
            self._reference = exc
            raise


def verify_merged_folder(merged_dir: Path, dtype: str | None, *, inputs: VerifyInputs,
                         report: Any, cancel: Any) -> dict[str, Any]:
    """Verify the merged Hugging Face folder against the adapter model
    (:func:`engine.verify_merged.verify_merged`); the report is stored as
    ``<folder>.verify.json`` beside it and returned as a dict (``warn`` with ``error`` when it
    could not run, see :func:`guarded`).

    Raises:
        Cancelled: the user cancelled the job.
    """
    from engine.verify_checks import DTYPE_QUANT
    from engine.verify_merged import verify_merged

    quant = DTYPE_QUANT.get(dtype or "", dtype or "merged")  # the name the report gives it
    return guarded(merged_dir, quant, lambda: verify_merged(
        merged_dir, inputs.reference(report, cancel), inputs.rows[:VERIFY_ROWS],
        dtype=dtype or "bfloat16", max_length=inputs.max_length, report=report, cancel=cancel))


def verify_gguf(gguf_path: Path, quant: str, *, inputs: VerifyInputs, report: Any, cancel: Any,
                merged_dtype: str | None = None) -> dict[str, Any]:
    """Verify ``gguf_path`` against the adapter model (:func:`engine.verify.verify_export`);
    stored as ``<file>.verify.json``, returned as a dict (see :func:`guarded`).

    ``merged_dtype`` (the merged folder's dtype, e.g. ``bfloat16``) sets the limits' floor
    (:meth:`engine.verify_checks.VerifyThresholds.with_floor`).

    Raises:
        Cancelled: the user cancelled the job.
    """
    from engine.verify import verify_export
    from engine.verify_checks import VerifyThresholds

    limits = VerifyThresholds.for_merged_dtype(merged_dtype)
    return guarded(gguf_path, quant, lambda: verify_export(
        gguf_path, reference_dir=inputs.model_dir, rows=inputs.rows[:VERIFY_ROWS], quant=quant,
        reference=inputs.reference(report, cancel), max_new_tokens=VERIFY_TOKENS,
        report=report, cancel=cancel, thresholds=limits))


def verify_adapter(adapter_gguf: Path, base_gguf: Path, *, inputs: VerifyInputs, report: Any,
                   cancel: Any) -> dict[str, Any]:
    """Verify base GGUF + adapter GGUF in llama.cpp against base + PEFT adapter
    (:func:`engine.adapter_verify.verify_adapter_gguf`); stored as ``<file>.verify.json``,
    returned as a dict (see :func:`guarded`).

    Raises:
        Cancelled: the user cancelled the job.
    """
    from engine.adapter_verify import verify_adapter_gguf

    return guarded(adapter_gguf, "lora", lambda: verify_adapter_gguf(
        base_gguf, adapter_gguf, base_dir=inputs.model_dir, adapter_dir=inputs.adapter_dir,
        rows=inputs.rows[:VERIFY_ROWS], template=inputs.template,
        reference=inputs.reference(report, cancel), report=report, cancel=cancel))


def guarded(path: Path, quant: str, verify: Callable[[], Any]) -> dict[str, Any]:
    """Run ``verify()`` (a :class:`engine.verify.VerificationReport`), store its dict beside
    ``path`` and return it. A verification that cannot run (no validation rows, a model that
    does not load) gives a ``warn`` report holding the reason in ``error`` instead of failing
    the export.

    Raises:
        Cancelled: the user cancelled the job.
    """
    from engine.verify_merged import folder_bytes, save_report

    try:
        data = verify().to_dict()
    except Cancelled:
        raise
    except (EngineError, OSError) as exc:
        data = {"path": str(path), "quant": quant, "bytes": folder_bytes(path),
                "overall": "warn", "checks": [], "metrics": {},
                "error": f"Verification could not run: {exc}"}
    save_report(data, path)
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


NO_BASE_GGUF = ("Not verified: the base model was not imported from a GGUF file that is still "
                "on disk, so there is no base GGUF to apply the adapter to. Add the base model "
                "from its GGUF file (Models page) to verify adapters, or check one by hand with "
                "`main.py export-adapter RUN --verify-base BASE.gguf`.")


def export_merged(engine: Any, paths: dict[str, Path], quant: str, inputs: VerifyInputs | None,
                  share: dict[str, Any], report: Any, cancel: Any) -> dict[str, Any]:
    """Job body of "Merge and export": merge the adapter, verify the merged folder, convert it
    to a GGUF, verify that, then write the model card (and Modelfile) beside it.

    Args:
        engine: a :class:`gui.services.Engine`.
        paths: ``model`` (base folder), ``adapter``, ``merged`` (folder to write), ``gguf``.
        quant: ``f16``, ``q8_0`` or ``q4_k_m``.
        inputs: what to verify against, or ``None`` to skip verification.
        share: ``card`` (:func:`write_sharing_files` inputs), ``template``, ``modelfile``.

    Returns:
        ``path``, ``bytes``, ``sha256``, ``quant``, ``kind`` (``gguf``), ``merged_dir``,
        ``merged_dtype``, ``merged_verification`` and ``verification`` (report dicts or
        ``None``).
    """
    merged = engine.merge_adapter(paths["model"], paths["adapter"], paths["merged"],
                                  report=report, cancel=cancel)
    dtype = getattr(merged, "dtype", None)
    result = {"kind": "gguf", "quant": quant, "merged_dir": paths["merged"],
              "merged_dtype": dtype, "merged_verification": None, "verification": None}
    if inputs is not None:
        report(Progress("verify", message="verifying the merged model against the trained model"))
        result["merged_verification"] = engine.verify_merged(
            paths["merged"], dtype, inputs=inputs, report=report, cancel=cancel)
    exported = engine.export_gguf(paths["merged"], paths["gguf"], quant, report=report,
                                  cancel=cancel)
    result.update(measure(exported, paths["gguf"], report))
    if inputs is not None:
        report(Progress("verify", message=f"verifying {result['path'].name} against the trained model"))
        result["verification"] = engine.verify_gguf(result["path"], quant, inputs=inputs,
                                                    report=report, cancel=cancel,
                                                    merged_dtype=dtype)
    engine.write_sharing_files(result["path"], share["card"], result["verification"],
                               merged_dir=paths["merged"], template=share["template"],
                               modelfile=share["modelfile"])
    return result


def export_adapter(engine: Any, paths: dict[str, Path], outtype: str,
                   inputs: VerifyInputs | None, report: Any, cancel: Any) -> dict[str, Any]:
    """Job body of "Export LoRA adapter (GGUF)": write the adapter alone as a llama.cpp LoRA
    GGUF, then verify base GGUF + adapter when the base model's GGUF is on disk
    (:func:`engine.base_gguf.find_base_gguf`), else say why not in ``note``.

    Args:
        engine: a :class:`gui.services.Engine`.
        paths: ``model`` (base folder), ``adapter``, ``adapter_gguf`` (file to write).
        outtype: ``f32`` or ``f16``.
        inputs: what to verify against, or ``None`` to skip verification.

    Returns:
        ``path``, ``bytes``, ``sha256``, ``quant`` (the outtype), ``kind`` (``adapter_gguf``),
        ``meta`` (for the artifact: outtype, architecture, rank, alpha, base model and GGUF),
        ``verification`` (a report dict or ``None``) and ``note`` (why not verified, or ``None``).
    """
    exported = engine.export_adapter_gguf(paths["adapter"], paths["adapter_gguf"],
                                          base_dir=paths["model"], outtype=outtype,
                                          report=report, cancel=cancel)
    meta = {"outtype": outtype, "base_model_path": str(paths["model"]), "base_gguf": None,
            **{key: getattr(exported, key, None) for key in ("architecture", "rank", "alpha")}}
    result = {"kind": "adapter_gguf", "quant": outtype, "meta": meta, "verification": None,
              "note": "Not verified (switched off)." if inputs is None else None,
              **measure(exported, paths["adapter_gguf"], report)}
    if inputs is None:
        return result
    report(Progress("verify", message="looking for the base model's GGUF"))
    base = engine.find_base_gguf(paths["model"])
    if base is None:
        result["note"] = NO_BASE_GGUF
        return result
    meta["base_gguf"] = str(base)
    report(Progress("verify", message=f"verifying {Path(base).name} + {result['path'].name} "
                                      "against the trained model"))
    result["verification"] = engine.verify_adapter(result["path"], Path(base), inputs=inputs,
                                                   report=report, cancel=cancel)
    return result


def measure(exported: Any, default_path: Path, report: Any) -> dict[str, Any]:
    """``path``, ``bytes`` and ``sha256`` (hex) of an engine export result; the checksum is the
    engine's when it measured one, else computed here."""
    path = Path(getattr(exported, "path", None) or default_path)
    digest = getattr(exported, "sha256", None)
    if not digest:
        report(Progress("checksum", message=f"computing SHA-256 of {path.name}"))
        digest = sha256_file(path)
    return {"path": path, "bytes": path.stat().st_size, "sha256": digest}
