"""Encoding conversations with loss masks from rendering (CASES K4 C09/C10, K3 C06, K6 C14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.encode import collate, encode_conversation, encode_rows, length_report, prompt_ids
from engine.errors import ConfigError, DataError
from engine.templates import TEMPLATES, ChatTemplate, resolve_template
from engine.tokens import special_tokens_for
from tests.tiny_models import CORPUS, build_tokenizer

CHATML = ChatTemplate("chatml", TEMPLATES["chatml"])
# "User: ...\n### Assistant: ..." with EOS closing each answer (C09).
ASSISTANT_MARKER = ChatTemplate("custom", (
    "{% for m in messages %}{% if m['role'] == 'user' %}{{ 'User: ' + m['content'] + '\n' }}"
    "{% else %}{{ '### Assistant: ' + m['content'] + eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant: ' }}{% endif %}"))
# A format whose conversation ends exactly with EOS (C06).
ENDS_WITH_EOS = ChatTemplate("custom", (
    "{% for m in messages %}{{ m['role'] + ': ' + m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"))
CHATML_WITH_BOS = ChatTemplate("custom", "{{ bos_token }}" + TEMPLATES["chatml"])
MULTI_TURN = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is your name?"},
    {"role": "assistant", "content": "My name is Tunesmith."},
    {"role": "user", "content": "Hello, how are you today?"},
    {"role": "assistant", "content": "I am fine, thank you."},
]


def with_bos_post_processor(tokenizer):
    """Make ``tokenizer(text)`` prepend BOS, as Llama/Gemma tokenizers do."""
    from tokenizers import processors

    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{tokenizer.bos_token} $A", special_tokens=[(tokenizer.bos_token, tokenizer.bos_token_id)])
    return tokenizer


def sentencepiece_like_tokenizer():
    """A Llama-style tokenizer: Metaspace BPE with byte fallback that adds BOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    tok.train_from_iterator(CORPUS * 5, trainer=trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")
    return with_bos_post_processor(fast)


def trained_runs(tokenizer, example) -> list[str]:
    """Decode each maximal run of trained positions separately."""
    runs, current = [], []
    for label in [*example.labels, -100]:
        if label != -100:
            current.append(label)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    return runs


def encode(tokenizer, messages, template=CHATML, max_length=512, truncation="left"):
    special = special_tokens_for(None, tokenizer, template)
    return encode_conversation(tokenizer, messages, template, special, max_length=max_length,
                               truncation=truncation)


def test_every_assistant_turn_and_its_end_of_turn_is_trained_and_nothing_else() -> None:
    tokenizer = build_tokenizer()
    example = encode(tokenizer, MULTI_TURN)
    assert trained_runs(tokenizer, example) == ["My name is Tunesmith.<|im_end|>",
                                                "I am fine, thank you.<|im_end|>"]
    assert all(label in (-100, token) for token, label in zip(example.input_ids, example.labels))
    untrained = tokenizer.decode([t for t, l in zip(example.input_ids, example.labels) if l == -100])
    assert untrained == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is your name?"
                         "<|im_end|>\n<|im_start|>assistant\n\n<|im_start|>user\nHello, how are you today?"
                         "<|im_end|>\n<|im_start|>assistant\n\n")
    assert example.n_trained == sum(l != -100 for l in example.labels) and not example.truncated


def test_gemma_template_trains_model_turns_with_system_folded_into_the_user_turn() -> None:
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    gemma = resolve_template(tokenizer, "gemma")
    example = encode(tokenizer, MULTI_TURN, gemma)
    assert trained_runs(tokenizer, example) == ["My name is Tunesmith.<end_of_turn>",
                                                "I am fine, thank you.<end_of_turn>"]
    assert tokenizer.decode(example.input_ids).startswith("<s><start_of_turn>user\nBe brief.\n\nWhat")


@pytest.mark.parametrize("make_tokenizer", [sentencepiece_like_tokenizer, build_tokenizer])
def test_marker_that_tokenizes_differently_in_context_does_not_lose_the_answer(make_tokenizer) -> None:
    # C09: "### Assistant:" alone is not a token subsequence of the rendered conversation.
    tokenizer = make_tokenizer()
    alone = tokenizer("### Assistant:", add_special_tokens=False)["input_ids"]
    full = tokenizer("User: hi\n### Assistant: hello", add_special_tokens=False)["input_ids"]
    if make_tokenizer is sentencepiece_like_tokenizer:
        assert not any(full[i:i + len(alone)] == alone for i in range(len(full)))
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}] * 3

    special = special_tokens_for(None, tokenizer, ASSISTANT_MARKER)
    encoded, problems = encode_rows(tokenizer, rows, ASSISTANT_MARKER, special, max_length=64)

    assert problems == [] and len(encoded) == 3
    assert [run.strip() for run in trained_runs(tokenizer, encoded[0])] == ["hello</s>"]


def test_pad_equal_to_eos_keeps_each_final_eos_label() -> None:
    # C06: two examples of different lengths, each ending in EOS; pad id == EOS id.
    tokenizer = build_tokenizer(pad_is_eos=True)
    eos = tokenizer.eos_token_id
    assert tokenizer.pad_token_id == eos
    short = encode(tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                   ENDS_WITH_EOS)
    long = encode(tokenizer, MULTI_TURN[1:], ENDS_WITH_EOS)
    assert short.input_ids[-1] == eos and long.input_ids[-1] == eos

    batch = collate([short, long], pad_id=eos)

    n_short, n_long = len(short.input_ids), len(long.input_ids)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, n_long)
    assert batch["attention_mask"].sum(dim=1).tolist() == [n_short, n_long]
    assert batch["labels"][0, n_short - 1].item() == eos and batch["labels"][1, n_long - 1].item() == eos
    assert batch["labels"][0, n_short:].tolist() == [-100] * (n_long - n_short)
    assert batch["input_ids"][0, n_short:].tolist() == [eos] * (n_long - n_short)
    assert batch["labels"][0, :n_short].tolist() == short.labels
    assert str(batch["input_ids"].dtype) == "torch.int64"


def c10_rows(tokenizer) -> tuple[list[dict], str]:
    prompt = " ".join(["The quick brown fox jumps over the lazy dog."] * 3)
    answer = "Sure, thank you."
    assert 55 <= len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) <= 65
    assert len(tokenizer(answer, add_special_tokens=False)["input_ids"]) == 6
    rows = [{"messages": [{"role": "user", "content": f"{prompt} ({i})"},
                          {"role": "assistant", "content": answer}]} for i in range(3)]
    return rows, answer


def test_length_report_says_right_truncation_would_cut_every_answer() -> None:
    tokenizer = build_tokenizer()
    rows, _ = c10_rows(tokenizer)
    special = special_tokens_for(None, tokenizer, CHATML)
    report = length_report(tokenizer, rows, CHATML, special, max_length=32)
    assert (report["rows"], report["too_long"], report["answer_cut_right"]) == (3, 3, 3)
    assert (report["answer_cut_left"], report["trained_tokens_right"], report["invalid"]) == (0, 0, 0)
    assert report["trained_tokens"] == report["trained_tokens_left"] == 3 * 7  # 6 answer + <|im_end|>
    assert report["longest"] > 60


def test_left_truncation_keeps_the_answer_right_truncation_refuses_the_row() -> None:
    tokenizer = build_tokenizer()
    rows, answer = c10_rows(tokenizer)
    special = special_tokens_for(None, tokenizer, CHATML)

    left, left_problems = encode_rows(tokenizer, rows, CHATML, special, max_length=32)
    right, right_problems = encode_rows(tokenizer, rows, CHATML, special, max_length=32,
                                        truncation="right")

    assert left_problems == [] and all(len(e.input_ids) == 32 and e.truncated for e in left)
    assert [trained_runs(tokenizer, e) for e in left] == [[answer + "<|im_end|>"]] * 3
    assert right == [] and [index for index, _ in right_problems] == [0, 1, 2]
    assert all("no trained token" in reason for _, reason in right_problems)
    with pytest.raises(DataError, match="no trained token"):
        encode_conversation(tokenizer, rows[0]["messages"], CHATML, special, max_length=32,
                            truncation="right")
    with pytest.raises(DataError, match="longer than max_length 32"):
        encode_conversation(tokenizer, rows[0]["messages"], CHATML, special, max_length=32,
                            truncation="drop")


@pytest.mark.parametrize("template, adds_bos", [(CHATML_WITH_BOS, True), (CHATML, True),
                                                (CHATML_WITH_BOS, False), (CHATML, False)])
def test_exactly_one_bos_whoever_supplies_it(template: ChatTemplate, adds_bos: bool) -> None:
    # C14: template starting with bos_token + tokenizer adding BOS -> still one BOS.
    tokenizer = build_tokenizer()
    if adds_bos:
        with_bos_post_processor(tokenizer)
    bos = tokenizer.bos_token_id
    special = special_tokens_for(None, tokenizer, template)
    example = encode_conversation(tokenizer, MULTI_TURN, template, special, max_length=512)
    prompt = prompt_ids(tokenizer, MULTI_TURN[:2], template, special)
    expected = 1 if adds_bos or template is CHATML_WITH_BOS else 0
    assert example.input_ids.count(bos) == prompt.count(bos) == expected
    assert (example.input_ids[0] == bos) == (expected == 1)


def test_left_truncation_keeps_bos_first() -> None:
    tokenizer = with_bos_post_processor(build_tokenizer())
    rows, answer = c10_rows(tokenizer)
    example = encode(tokenizer, rows[0]["messages"], max_length=32)
    assert example.input_ids[0] == tokenizer.bos_token_id and example.input_ids.count(0) == 1
    assert len(example.input_ids) == 32 and trained_runs(tokenizer, example) == [answer + "<|im_end|>"]


def test_prompt_ids_are_the_training_prefix_before_the_answer() -> None:
    tokenizer = sentencepiece_like_tokenizer()
    template = ChatTemplate("llama2", TEMPLATES["llama2"])
    special = special_tokens_for(None, tokenizer, template)
    example = encode_conversation(tokenizer, MULTI_TURN[:3], template, special, max_length=512)
    prompt = prompt_ids(tokenizer, MULTI_TURN[:2], template, special)
    first_trained = next(i for i, label in enumerate(example.labels) if label != -100)
    assert prompt == example.input_ids[:first_trained]
    assert example.input_ids.count(tokenizer.bos_token_id) == 1


def test_template_that_is_not_incremental_falls_back_to_locating_answers() -> None:
    # Qwen3 with thinking off: the generation prompt carries an empty think block that history
    # does not, so a prefix rendered with it is not a prefix of the conversation.
    qwen3_like = ChatTemplate("custom", TEMPLATES["chatml"].replace(
        "'<|im_start|>assistant\n'", "'<|im_start|>assistant\n<think>\n\n</think>\n\n'"))
    assert "<think>" in qwen3_like.source
    tokenizer = build_tokenizer()
    example = encode(tokenizer, MULTI_TURN, qwen3_like)
    assert trained_runs(tokenizer, example) == ["My name is Tunesmith.<|im_end|>",
                                                "I am fine, thank you.<|im_end|>"]


def test_empty_answer_still_trains_the_end_of_turn() -> None:
    tokenizer = build_tokenizer()
    example = encode(tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}])
    assert example.n_trained == 1 and trained_runs(tokenizer, example) == ["<|im_end|>"]


def test_rows_that_cannot_train_are_reported_with_their_index() -> None:
    tokenizer = build_tokenizer()
    good = {"messages": MULTI_TURN}
    rows = [good, {"messages": MULTI_TURN[:2]}, {"messages": [{"role": "bot", "content": "x"}]}, {}, good]
    special = special_tokens_for(None, tokenizer, CHATML)
    encoded, problems = encode_rows(tokenizer, rows, CHATML, special, max_length=512)
    assert len(encoded) == 2 and [index for index, _ in problems] == [1, 2, 3]
    assert "no assistant turn" in problems[0][1] and "role must be one of" in problems[1][1]


def test_bad_options_are_config_errors() -> None:
    tokenizer = build_tokenizer()
    with pytest.raises(ConfigError, match="truncation must be one of left, right, drop"):
        encode(tokenizer, MULTI_TURN, truncation="middle")
    with pytest.raises(ConfigError, match="max_length"):
        encode(tokenizer, MULTI_TURN, max_length=0)


class SlowView:
    """A tokenizer seen as slow (no offset mapping), to exercise piecewise tokenization."""

    is_fast = False

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer

    def __getattr__(self, name: str):
        return getattr(self._tokenizer, name)

    def __call__(self, text: str, **kwargs):
        assert "return_offsets_mapping" not in kwargs
        return self._tokenizer(text, **kwargs)


def test_slow_tokenizers_are_labelled_piecewise() -> None:
    tokenizer = build_tokenizer()
    example = encode(SlowView(tokenizer), MULTI_TURN)
    assert trained_runs(tokenizer, example) == ["My name is Tunesmith.<|im_end|>",
                                                "I am fine, thank you.<|im_end|>"]


@pytest.fixture(scope="session")
def gemma_tokenizer(gemma_hf_dir: Path):
    """The real Gemma 3 270M tokenizer (transformers' conversion of the packaged GGUF's
    vocabulary, as saved by the product's one-time import)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gemma_hf_dir))


@pytest.mark.integration
def test_real_gemma_tokenizer_defaults_to_the_gemma_format(gemma_tokenizer) -> None:
    template = resolve_template(gemma_tokenizer)
    special = special_tokens_for(None, gemma_tokenizer, template)
    example = encode_conversation(gemma_tokenizer, MULTI_TURN, template, special, max_length=256)

    assert gemma_tokenizer.chat_template is None and template.name == "gemma"
    assert (special.eot_id, special.eos_id, special.bos_id, special.pad_id) == (106, 1, 2, 0)
    assert {1, 106} <= set(special.end_ids) and 0 not in special.end_ids
    assert example.input_ids.count(2) == 1 and example.input_ids[0] == 2
    assert trained_runs(gemma_tokenizer, example) == ["My name is Tunesmith.<end_of_turn>",
                                                      "I am fine, thank you.<end_of_turn>"]
    assert prompt_ids(gemma_tokenizer, MULTI_TURN[:2], template, special).count(2) == 1
