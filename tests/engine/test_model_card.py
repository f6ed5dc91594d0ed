"""Model card and Ollama Modelfile: hand-written expected text."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.model_card import ollama_format, write_model_card, write_ollama_modelfile
from engine.templates import TEMPLATES

GEMMA_MODELFILE = '''# Ollama Modelfile written by Tunesmith (gemma chat format)
FROM ./model-q8_0.gguf
TEMPLATE """{{- $system := "" }}
{{- $first := true }}
{{- range .Messages }}
{{- if eq .Role "system" }}{{ $system = .Content }}
{{- else if eq .Role "user" }}<start_of_turn>user
{{ if and $first $system }}{{ $system }}

{{ end }}{{ .Content }}<end_of_turn>
{{ $first = false }}
{{- else }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- end }}<start_of_turn>model
"""
SYSTEM """Be brief."""
PARAMETER stop "<end_of_turn>"
PARAMETER stop "<eos>"
'''

CHATML_MODELFILE = '''# Ollama Modelfile written by Tunesmith (chatml chat format)
FROM ./m.gguf
TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
PARAMETER stop "<|im_end|>"
PARAMETER stop "</s>"
'''


def test_gemma_modelfile(tmp_path: Path) -> None:
    """CASES C13: explicit TEMPLATE and every end token as a stop parameter."""
    path = tmp_path / "Modelfile"
    # "<end_of_turn>" given twice (format + caller): one stop line (C13: every end token once).
    write_ollama_modelfile(path, "model-q8_0.gguf", chat_template_source=TEMPLATES["gemma"],
                           end_token_texts=["<eos>", "<end_of_turn>"], system_prompt="Be brief.")
    assert path.read_text(encoding="utf-8") == GEMMA_MODELFILE


def test_chatml_modelfile_without_system(tmp_path: Path) -> None:
    path = tmp_path / "Modelfile"
    write_ollama_modelfile(path, "m.gguf", chat_template_source=TEMPLATES["chatml"],
                           end_token_texts=["</s>"])
    assert path.read_text(encoding="utf-8") == CHATML_MODELFILE


def test_formats_detected_and_untranslatable_refused() -> None:
    assert [ollama_format(TEMPLATES[n]) for n in ("gemma", "chatml", "llama3")] == [
        "gemma", "chatml", "llama3"]
    with pytest.raises(ConfigError, match="Go templates"):
        ollama_format(TEMPLATES["zephyr"])


def test_stop_text_with_quote_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="end_token_texts"):
        write_ollama_modelfile(tmp_path / "Modelfile", "m.gguf", chat_template_source=TEMPLATES["llama3"],
                               end_token_texts=['<"x">'])
    assert not (tmp_path / "Modelfile").exists()


EXPECTED_CARD = """# Fine-tune of google/gemma-3-270m

Made with Tunesmith: a LoRA fine-tune, merged and exported to GGUF.

## Base model

- google/gemma-3-270m

## Dataset

- Name: support-chats v2
- SHA-256: `ab12`

## Training settings

| Setting | Value |
|---|---|
| lora_rank | 8 |
| learning_rate | 0.0002 |

## Metrics

| Metric | Value |
|---|---|
| eval_loss | 1.235 |

## Verification

Overall: **FAIL** (q8_0, 1000 bytes)

| Check | Result | Value | Threshold | Meaning |
|---|---|---|---|---|
| eos_id | FAIL | 3 | == 1 (reference tokenizer) | a \\| b |

## Licence

Gemma Terms of Use apply.
"""


def test_model_card(tmp_path: Path) -> None:
    verification = {"quant": "q8_0", "bytes": 1000, "overall": "fail", "checks": [
        {"name": "eos_id", "status": "fail", "value": 3, "threshold": "== 1 (reference tokenizer)",
         "explanation": "a | b"}]}
    path = tmp_path / "README.md"
    write_model_card(path, base_model="google/gemma-3-270m", dataset_name="support-chats v2",
                     dataset_hash="ab12", train_config={"lora_rank": 8, "learning_rate": 2e-4},
                     metrics={"eval_loss": 1.23456}, verification=verification,
                     licence_note="Gemma Terms of Use apply.\n")
    assert path.read_text(encoding="utf-8") == EXPECTED_CARD


def test_model_card_unverified(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    write_model_card(path, base_model="b", dataset_name="d", dataset_hash="h", train_config={},
                     metrics={}, verification=None, licence_note="L")
    assert "## Verification\n\nNot verified.\n" in path.read_text(encoding="utf-8")


def test_model_card_dataset_version_and_missing_hash(tmp_path: Path) -> None:
    path = tmp_path / "m.md"
    write_model_card(path, base_model="b", dataset_name="chats", dataset_hash=None,
                     dataset_version=3, train_config={}, metrics={},
                     verification={"path": "m.gguf", "overall": "warn", "checks": [],
                                   "error": "Verification could not run: no rows"},
                     licence_note="L")
    text = path.read_text(encoding="utf-8")
    assert "- Name: chats\n- Version: 3\n- SHA-256: `not recorded`\n" in text
    assert "## Verification\n\nVerification could not run: no rows\n" in text


def test_licence_reminder_reads_front_matter_and_names_gemma_terms(tmp_path: Path) -> None:
    from engine.model_card import licence_reminder

    (tmp_path / "README.md").write_text("---\nlibrary_name: transformers\nlicense: apache-2.0\n"
                                        "---\n# Model\n", encoding="utf-8")
    apache = licence_reminder("my-llama", tmp_path)
    assert "`apache-2.0`" in apache and "Gemma" not in apache
    gemma = licence_reminder("gemma-3-270m", tmp_path / "missing")
    assert "https://ai.google.dev/gemma/terms" in gemma
    assert "Check the base model's licence" in licence_reminder("other", None)
