"""The reconciled special-token table (CASES K3: C06 pad, C07 end ids)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.errors import ModelLoadError
from engine.templates import TEMPLATES, ChatTemplate
from engine.tokens import end_of_turn_id, prepare_tokenizer, special_tokens_for, tokenizer_adds_bos
from tests.tiny_models import build_tokenizer

CHATML = ChatTemplate("chatml", TEMPLATES["chatml"])
ZEPHYR = ChatTemplate("zephyr", TEMPLATES["zephyr"])


def word_level_tokenizer(tokens: list[str], **specials: str):
    """A fast tokenizer over exactly ``tokens`` (ids in list order)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token=tokens[0]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, **specials)


def test_chatml_table_of_the_tiny_tokenizer() -> None:
    tokenizer = build_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    special = special_tokens_for(None, tokenizer, CHATML)
    assert (special.bos_id, special.eos_id, special.eot_id, special.pad_id) == (
        ids("<s>"), ids("</s>"), ids("<|im_end|>"), ids("<pad>"))
    assert special.end_ids == tuple(sorted({ids("</s>"), ids("<|im_end|>")}))
    # The tiny tokenizer adds no BOS and ChatML does not start with one: no BOS at all.
    assert special.add_bos is False


def test_disagreeing_eos_ids_are_all_end_ids(tmp_path: Path, tiny_model_dir: Path) -> None:
    # C07: config.json says <|im_end|>, generation_config.json says [</s>, <other>], the
    # tokenizer says </s>; with Zephyr the end-of-turn is EOS itself.
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    tokenizer = build_tokenizer()
    im_end, eos = tokenizer.convert_tokens_to_ids(["<|im_end|>", "</s>"])
    other = len(tokenizer) - 1
    config = json.loads((model / "config.json").read_text())
    config["eos_token_id"] = im_end
    (model / "config.json").write_text(json.dumps(config))
    generation = json.loads((model / "generation_config.json").read_text())
    generation["eos_token_id"] = [eos, other]
    (model / "generation_config.json").write_text(json.dumps(generation))

    special = special_tokens_for(model, tokenizer, ZEPHYR)

    assert special.end_ids == tuple(sorted({eos, im_end, other}))
    assert special.eos_id == eos and special.eot_id == eos
    assert special.pad_id not in special.end_ids


def test_single_int_eos_in_generation_config(tmp_path: Path) -> None:
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 7}))
    special = special_tokens_for(tmp_path, build_tokenizer(), CHATML)
    assert 7 in special.end_ids


def test_pad_equal_to_eos_is_replaced_by_an_unused_token() -> None:
    # CASES C06: PAD is never EOS.
    tokenizer = build_tokenizer(pad_is_eos=True)
    assert tokenizer.pad_token == "</s>"
    pad_id = prepare_tokenizer(tokenizer)
    assert (pad_id, tokenizer.pad_token, tokenizer.pad_token_id) == (2, "<pad>", 2)
    assert special_tokens_for(None, build_tokenizer(pad_is_eos=True), CHATML).pad_id == 2


def test_a_reserved_token_pads_when_there_is_no_pad_or_unk() -> None:
    tokenizer = word_level_tokenizer(["a", "</s>", "<|im_end|>", "<unused0>", "<unused1>"],
                                     eos_token="</s>", pad_token="</s>")
    assert prepare_tokenizer(tokenizer) == 3
    assert tokenizer.pad_token == "<unused0>"


def test_no_pad_without_resizing_is_a_clear_error() -> None:
    tokenizer = word_level_tokenizer(["a", "</s>", "<|im_end|>"], eos_token="</s>", pad_token="</s>")
    with pytest.raises(ModelLoadError, match="resiz"):
        prepare_tokenizer(tokenizer)


def test_end_of_turn_id_is_none_when_the_template_emits_no_single_token() -> None:
    plain = ChatTemplate("custom", "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}"
                                   "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")
    tokenizer = build_tokenizer()
    assert end_of_turn_id(tokenizer, plain) is None
    assert end_of_turn_id(tokenizer, ZEPHYR) == tokenizer.convert_tokens_to_ids("</s>")


def test_tokenizer_adds_bos_is_read_from_encoding() -> None:
    from tokenizers import processors

    tokenizer = build_tokenizer()
    assert tokenizer_adds_bos(tokenizer) is False
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)])
    assert tokenizer_adds_bos(tokenizer) is True
