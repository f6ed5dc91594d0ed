"""Template preview: trained tokens are exactly the answers plus end-of-turn, never user text."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.data.preview import TokenSegment, merge_spans, preview_example
from engine.errors import ConfigError, DataError
from tests.engine.test_encode import sentencepiece_like_tokenizer, with_bos_post_processor
from tests.tiny_models import build_tokenizer

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is your name?"},
    {"role": "assistant", "content": "My name is Tunesmith."},
    {"role": "user", "content": "你好，世界！"},
    {"role": "assistant", "content": "我们今天学习 🙂"},
]
ANSWERS = [CONVERSATION[2]["content"], CONVERSATION[4]["content"]]
USER_TEXTS = [m["content"] for m in CONVERSATION if m["role"] != "assistant"]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_trained_tokens_decode_to_the_answers_and_end_of_turn(tokenizer) -> None:
    preview = preview_example(tokenizer, CONVERSATION)
    trained = [t.token_id for t in preview.tokens if t.trained]
    assert tokenizer.decode(trained) == "".join(a + "<|im_end|>" for a in ANSWERS)
    spans = [text for text, is_trained in merge_spans(preview.tokens) if is_trained]
    assert spans == [a + "<|im_end|>" for a in ANSWERS]
    masked = "".join(text for text, is_trained in merge_spans(preview.tokens) if not is_trained)
    assert all(text in masked for text in USER_TEXTS)
    assert not any(text in span for text in USER_TEXTS for span in spans)


def test_tokens_and_text_match_transformers_rendering(tokenizer) -> None:
    preview = preview_example(tokenizer, CONVERSATION)
    expected_text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    expected_ids = tokenizer(expected_text, add_special_tokens=False)["input_ids"]
    assert preview.text == expected_text
    assert [t.token_id for t in preview.tokens] == expected_ids
    assert "".join(t.text for t in preview.tokens) == expected_text
    # Hand count of the trained side: each answer's tokens plus one <|im_end|> each.
    answer_tokens = sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in ANSWERS)
    assert preview.n_trained == answer_tokens + 2
    assert preview.n_masked == len(expected_ids) - preview.n_trained
    assert preview.template.name == "model"


def test_prepended_bos_is_shown_and_masked() -> None:
    tokenizer = with_bos_post_processor(build_tokenizer())
    preview = preview_example(tokenizer, CONVERSATION[1:3], template="chatml")
    assert preview.tokens[0] == TokenSegment(tokenizer.bos_token_id, "<s>", False)
    assert preview.template.name == "chatml"
    assert [s for s, trained in merge_spans(preview.tokens) if trained] == [ANSWERS[0] + "<|im_end|>"]


def test_sentencepiece_style_tokenizer_keeps_the_spaces() -> None:
    tokenizer = sentencepiece_like_tokenizer()
    messages = [{"role": "user", "content": "What is your name?"},
                {"role": "assistant", "content": "My name is Tunesmith."}]
    preview = preview_example(tokenizer, messages, template="zephyr")
    trained = [t.token_id for t in preview.tokens if t.trained]
    assert tokenizer.decode(trained).strip() == "My name is Tunesmith.</s>"
    assert preview.tokens[0].token_id == tokenizer.bos_token_id
    assert "".join(t.text for t in preview.tokens[1:]) == preview.text


def test_merge_spans_joins_runs_with_the_same_flag() -> None:
    tokens = [TokenSegment(1, "a", False), TokenSegment(2, "b", False), TokenSegment(3, "c", True),
              TokenSegment(4, "", True), TokenSegment(5, "d", False)]
    assert merge_spans(tokens) == [("ab", False), ("c", True), ("d", False)]
    assert merge_spans([]) == []


def test_errors_name_the_problem(tokenizer) -> None:
    with pytest.raises(ConfigError, match="chat_template"):
        preview_example(tokenizer, CONVERSATION, template="no-such-format")
    with pytest.raises(DataError, match="no assistant turn"):
        preview_example(tokenizer, CONVERSATION[:2])
