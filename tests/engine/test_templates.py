"""Chat template table, resolution (CASES C11) and rendering parity with transformers."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError, DataError
from engine.templates import TEMPLATES, ChatTemplate, render, resolve_template
from tests.tiny_models import CHATML, build_tokenizer

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "name?"},
    {"role": "assistant", "content": "Tunesmith"},
]


class FakeVocabTokenizer:
    """Only what resolution reads: a vocabulary and no chat template."""

    chat_template = None

    def __init__(self, *tokens: str) -> None:
        self._vocab = {token: i for i, token in enumerate(("a", "b", *tokens))}

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)


def test_gemma_renders_the_official_format_with_system_in_first_user_turn() -> None:
    text = render(ChatTemplate("gemma", TEMPLATES["gemma"]), CONVERSATION, bos_token="<bos>",
                  eos_token="<eos>", add_generation_prompt=False)
    assert text == ("<bos><start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n"
                    "<start_of_turn>model\nhello<end_of_turn>\n"
                    "<start_of_turn>user\nname?<end_of_turn>\n"
                    "<start_of_turn>model\nTunesmith<end_of_turn>\n")


def test_generation_prompt_opens_an_assistant_turn() -> None:
    gemma = render(ChatTemplate("gemma", TEMPLATES["gemma"]), CONVERSATION[:2], bos_token="<bos>",
                   eos_token="<eos>", add_generation_prompt=True)
    chatml = render(ChatTemplate("chatml", TEMPLATES["chatml"]), CONVERSATION[1:2], bos_token="<s>",
                    eos_token="</s>", add_generation_prompt=True)
    assert gemma == "<bos><start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n<start_of_turn>model\n"
    assert chatml == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
@pytest.mark.parametrize("generation_prompt", [False, True])
def test_rendering_matches_transformers_apply_chat_template(name: str, generation_prompt: bool) -> None:
    tokenizer = build_tokenizer(chat_template=None)
    messages = CONVERSATION[:4] if generation_prompt else CONVERSATION
    expected = tokenizer.apply_chat_template(messages, chat_template=TEMPLATES[name], tokenize=False,
                                             add_generation_prompt=generation_prompt)
    ours = render(ChatTemplate(name, TEMPLATES[name]), messages, bos_token=tokenizer.bos_token,
                  eos_token=tokenizer.eos_token, add_generation_prompt=generation_prompt)
    assert ours == expected


@pytest.mark.parametrize("name, starts_with_bos", [("gemma", True), ("llama3", True), ("llama2", True),
                                                   ("chatml", False), ("zephyr", False)])
def test_templates_start_with_bos_where_the_format_does(name: str, starts_with_bos: bool) -> None:
    text = render(ChatTemplate(name, TEMPLATES[name]), CONVERSATION, bos_token="<B>", eos_token="<E>")
    assert text.startswith("<B>") is starts_with_bos
    assert "hello" in text and "Tunesmith" in text


def test_tokenizer_without_template_resolves_a_recorded_default() -> None:
    # C11: the tiny tokenizer has ChatML tokens but no template of its own.
    template = resolve_template(build_tokenizer(chat_template=None))
    assert template == ChatTemplate("chatml", TEMPLATES["chatml"])


@pytest.mark.parametrize("tokens, expected", [
    (("<start_of_turn>", "<end_of_turn>"), "gemma"),
    (("<|im_start|>", "<|im_end|>"), "chatml"),
    (("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), "llama3"),
    (("<s>", "</s>"), "chatml"),
])
def test_default_is_chosen_from_the_vocabulary(tokens: tuple[str, ...], expected: str) -> None:
    template = resolve_template(FakeVocabTokenizer(*tokens))
    assert (template.name, template.source) == (expected, TEMPLATES[expected])


def test_the_tokenizers_own_template_wins_unless_another_is_requested() -> None:
    tokenizer = build_tokenizer()
    assert resolve_template(tokenizer) == ChatTemplate("model", CHATML)
    assert resolve_template(tokenizer, "model") == ChatTemplate("model", CHATML)
    assert resolve_template(tokenizer, "gemma") == ChatTemplate("gemma", TEMPLATES["gemma"])
    custom = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert resolve_template(tokenizer, custom) == ChatTemplate("custom", custom)


def test_unknown_template_name_lists_the_allowed_names() -> None:
    with pytest.raises(ConfigError, match="chatml.*gemma.*llama3.*zephyr"):
        resolve_template(build_tokenizer(), "vicuna")
    with pytest.raises(ConfigError, match="no chat template"):
        resolve_template(build_tokenizer(chat_template=None), "model")


def test_template_errors_become_engine_errors() -> None:
    gemma = ChatTemplate("gemma", TEMPLATES["gemma"])
    two_users = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(DataError, match="alternate"):
        render(gemma, two_users, bos_token="<bos>", eos_token="<eos>")
    with pytest.raises(ConfigError, match="not valid Jinja"):
        render(ChatTemplate("custom", "{% for m in messages %}"), two_users, bos_token=None,
               eos_token=None)


def test_generation_tags_and_strftime_of_hub_templates_are_accepted() -> None:
    source = ("{% for m in messages %}{% if m['role'] == 'assistant' %}{% generation %}"
              "{{ m['content'] }}{% endgeneration %}{% endif %}{% endfor %}{{ strftime_now('%Y')[:0] }}")
    text = render(ChatTemplate("custom", source), CONVERSATION, bos_token=None, eos_token=None)
    assert text == "helloTunesmith"
