"""Files shared beside an exported GGUF: a Markdown model card and an Ollama ``Modelfile``.

The model card says what the file is (base model, dataset version and hash, training settings,
metrics, the verification report and the base model's licence). The ``Modelfile`` gives Ollama
an explicit chat format (CASES C13): Ollama does not run Jinja chat templates, so each format
Tunesmith ships has a hand-translated Go template in :data:`OLLAMA_TEMPLATES` (adding a format
means adding a row), and every end-of-generation token becomes a ``PARAMETER stop`` line.
Ollama adds BOS itself when the GGUF says ``add_bos_token``, so the Go templates omit it.
Go template syntax: https://pkg.go.dev/text/template; Ollama's variables (``.Messages``,
``.Role``, ``.Content``): https://github.com/ollama/ollama/blob/main/docs/template.md.
"""

from __future__ import annotations

import json
import os
from typing import Any

from engine.errors import ConfigError
from engine.fileio import atomic_write

_GEMMA_GO = (
    '{{- $system := "" }}\n'
    "{{- $first := true }}\n"
    "{{- range .Messages }}\n"
    '{{- if eq .Role "system" }}{{ $system = .Content }}\n'
    '{{- else if eq .Role "user" }}<start_of_turn>user\n'
    "{{ if and $first $system }}{{ $system }}\n\n{{ end }}{{ .Content }}<end_of_turn>\n"
    "{{ $first = false }}\n"
    "{{- else }}<start_of_turn>model\n"
    "{{ .Content }}<end_of_turn>\n"
    "{{ end }}\n"
    "{{- end }}<start_of_turn>model\n"
)
_CHATML_GO = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
_LLAMA3_GO = (
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>\n"
    "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
# Format name -> (markers the Jinja template must contain, Go template, its end-of-turn text).
OLLAMA_TEMPLATES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "gemma": (("<start_of_turn>", "<end_of_turn>"), _GEMMA_GO, "<end_of_turn>"),
    "chatml": (("<|im_start|>", "<|im_end|>"), _CHATML_GO, "<|im_end|>"),
    "llama3": (("<|start_header_id|>", "<|eot_id|>"), _LLAMA3_GO, "<|eot_id|>"),
}


def ollama_format(chat_template_source: str) -> str:
    """The :data:`OLLAMA_TEMPLATES` format a Jinja chat template is written in.

    Raises:
        ConfigError: the template is none of the formats with an Ollama translation.
    """
    for name, (markers, _, _) in OLLAMA_TEMPLATES.items():
        if all(marker in chat_template_source for marker in markers):
            return name
    raise ConfigError("chat_template: Tunesmith can write an Ollama Modelfile only for the "
                      f"{', '.join(OLLAMA_TEMPLATES)} chat formats, and this template is none of "
                      "them. Train with one of those templates, or write the Modelfile's TEMPLATE "
                      "by hand (Ollama uses Go templates, not Jinja).")


def modelfile_text(gguf_name: str, *, chat_template_source: str, end_token_texts: list[str],
                   system_prompt: str | None = None) -> str:
    """The text of an Ollama ``Modelfile`` (see :func:`write_ollama_modelfile`)."""
    name = ollama_format(chat_template_source)
    _, go_template, end_text = OLLAMA_TEMPLATES[name]
    stops = list(dict.fromkeys([end_text, *end_token_texts]))
    for text in stops:
        if not text or '"' in text or "\n" in text:
            raise ConfigError(f"end_token_texts: {text!r} cannot be an Ollama stop parameter "
                              "(empty, or contains a quote or newline)")
    if system_prompt is not None and '"""' in system_prompt:
        raise ConfigError('system_prompt: may not contain """ (it ends the Modelfile block)')
    lines = [f"# Ollama Modelfile written by Tunesmith ({name} chat format)",
             f"FROM ./{gguf_name}", f'TEMPLATE """{go_template}"""']
    if system_prompt:
        lines.append(f'SYSTEM """{system_prompt}"""')
    lines += [f'PARAMETER stop "{text}"' for text in stops]
    return "\n".join(lines) + "\n"


def write_ollama_modelfile(path: str | os.PathLike[str], gguf_name: str, *,
                           chat_template_source: str, end_token_texts: list[str],
                           system_prompt: str | None = None) -> None:
    """Write an Ollama ``Modelfile`` next to a GGUF (atomically).

    Args:
        path: the file to write (usually ``<export folder>/Modelfile``).
        gguf_name: the GGUF's file name; ``FROM ./<gguf_name>`` is relative to the Modelfile.
        chat_template_source: the Jinja template the model was trained with; translated to a
            Go template for the formats in :data:`OLLAMA_TEMPLATES`.
        end_token_texts: the text of every end-of-generation token (EOS, end-of-turn...); each
            becomes a ``PARAMETER stop`` line (CASES C13), after the format's own end-of-turn.
        system_prompt: a default system prompt (``SYSTEM``), or ``None``.

    Raises:
        ConfigError: the template has no Ollama translation, or a stop text or the system prompt
            cannot be written into a Modelfile.
    """
    text = modelfile_text(gguf_name, chat_template_source=chat_template_source,
                          end_token_texts=end_token_texts, system_prompt=system_prompt)
    with atomic_write(path) as handle:
        handle.write(text)


def model_card_text(*, base_model: str, dataset_name: str, dataset_hash: str | None,
                    train_config: dict[str, Any], metrics: dict[str, Any],
                    verification: dict[str, Any] | None, licence_note: str,
                    dataset_version: str | int | None = None) -> str:
    """The Markdown of a model card (see :func:`write_model_card`)."""
    version = [] if dataset_version is None else [f"- Version: {dataset_version}"]
    parts = [f"# Fine-tune of {base_model}", "",
             "Made with Tunesmith: a LoRA fine-tune, merged and exported to GGUF.", "",
             "## Base model", "", f"- {base_model}", "",
             "## Dataset", "", f"- Name: {dataset_name}", *version,
             f"- SHA-256: `{dataset_hash or 'not recorded'}`", "",
             "## Training settings", "", *_table(("Setting", "Value"), train_config.items()), "",
             "## Metrics", "", *_table(("Metric", "Value"), metrics.items()), "",
             *_verification(verification),
             "## Licence", "", licence_note.strip(), ""]
    return "\n".join(parts)


def write_model_card(path: str | os.PathLike[str], *, base_model: str, dataset_name: str,
                     dataset_hash: str | None, train_config: dict[str, Any],
                     metrics: dict[str, Any], verification: dict[str, Any] | None,
                     licence_note: str, dataset_version: str | int | None = None) -> None:
    """Write a Markdown model card beside an export (atomically).

    Args:
        path: the file to write (e.g. ``<export folder>/README.md``).
        base_model: the base model's name or path.
        dataset_name: the dataset name.
        dataset_hash: the dataset's content hash (hex SHA-256), ``None`` if not recorded.
        train_config: training settings (``TrainConfig`` as a dict), one table row each.
        metrics: final metrics (eval loss, perplexity, BLEU ...), one table row each.
        verification: :meth:`engine.verify.VerificationReport.to_dict`, or ``None`` when the
            export was not verified (the card says so).
        licence_note: the base model's licence reminder, shown as given
            (:func:`licence_reminder` writes one).
        dataset_version: the dataset version (number or id), when versions are recorded.
    """
    text = model_card_text(base_model=base_model, dataset_name=dataset_name,
                           dataset_hash=dataset_hash, train_config=train_config, metrics=metrics,
                           verification=verification, licence_note=licence_note,
                           dataset_version=dataset_version)
    with atomic_write(path) as handle:
        handle.write(text)


def modelfile_inputs(model_dir: str | os.PathLike[str],
                     chat_template: str | None) -> tuple[str, list[str]]:
    """The chat template source and the text of every end-of-generation token (EOS,
    end-of-turn...) of a model folder, for :func:`write_ollama_modelfile`.

    Args:
        model_dir: the merged Hugging Face folder (its tokenizer).
        chat_template: the run's template (name or Jinja text), ``None`` for the folder's own.
    """
    from transformers import AutoTokenizer

    from engine.templates import resolve_template
    from engine.tokens import special_tokens_for

    tokenizer = AutoTokenizer.from_pretrained(os.fspath(model_dir))
    template = resolve_template(tokenizer, chat_template)
    special = special_tokens_for(model_dir, tokenizer, template)
    return template.source, [str(t) for t in tokenizer.convert_ids_to_tokens(list(special.end_ids))]


def licence_reminder(base_model: str, model_dir: str | os.PathLike[str] | None = None) -> str:
    """A reminder of the base model's licence for the model card.

    Reads the ``license:`` field of the model folder's ``README.md`` front matter (the Hugging
    Face model card convention) when there is one; Gemma models name the Gemma Terms of Use.
    """
    found = _front_matter_licence(model_dir) if model_dir else None
    lines = ["This is a derivative of the base model and is bound by its licence."]
    if found:
        lines.append(f"The base model's card names the licence `{found}`.")
    if "gemma" in base_model.lower() or (found or "").lower() == "gemma":
        lines.append("Gemma models are provided under the Gemma Terms of Use "
                     "(https://ai.google.dev/gemma/terms) and its prohibited use policy; "
                     "share this file only under those terms.")
    elif not found:
        lines.append("Check the base model's licence before sharing this file.")
    return " ".join(lines)


def _front_matter_licence(model_dir: str | os.PathLike[str]) -> str | None:
    readme = os.path.join(os.fspath(model_dir), "README.md")
    if not os.path.isfile(readme):
        return None
    with open(readme, encoding="utf-8", errors="replace") as handle:
        text = handle.read(20_000)
    if not text.startswith("---"):
        return None
    for line in text.split("---", 2)[1].splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("license", "licence") and value.strip():
            return value.strip().strip("'\"")
    return None


def _verification(report: dict[str, Any] | None) -> list[str]:
    if report is None:
        return ["## Verification", "", "Not verified.", ""]
    if report.get("error"):
        return ["## Verification", "", str(report["error"]), ""]
    rows = [(c["name"], c["status"].upper(), _cell(c["value"]), c["threshold"], c["explanation"])
            for c in report["checks"]]
    return ["## Verification", "",
            f"Overall: **{report['overall'].upper()}** ({report['quant']}, "
            f"{report['bytes']} bytes)", "",
            *_table(("Check", "Result", "Value", "Threshold", "Meaning"), rows), ""]


def _table(header: tuple[str, ...], rows: Any) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_escape(_cell(v)) for v in row) + " |" for row in rows]


def _cell(value: Any) -> str:
    """A short one-line rendering: floats to 4 significant digits, long text cut at 160 chars."""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.replace("\n", " ")
    return text if len(text) <= 160 else text[:157] + "..."


def _escape(text: str) -> str:
    return text.replace("|", "\\|")
