"""Filter rules on small hand-made conversations, with hand-counted expectations."""

from __future__ import annotations

from typing import Any

import pytest

from engine.data.filters import FilterConfig, FilterPreview, apply_filters, preview_filters
from engine.errors import Cancelled, ConfigError
from engine.progress import CancelToken

ONLY = dict(drop_empty_turns=False, check_role_order=False)  # switch the default rules off


def ex(i: int, *turns: tuple[str, str]) -> dict:
    return {"id": i, "messages": [{"role": r, "content": c} for r, c in turns], "tags": []}


def flagged(preview: FilterPreview) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for flag in preview.flags:
        out.setdefault(flag.example_id, []).append(flag.rule)
    return out


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from tests.tiny_models import build_tokenizer

    return build_tokenizer()


def test_empty_and_whitespace_only_turns() -> None:
    # 2 has a blank assistant reply, 3 a tab/newline-only user turn; 1 is fine. Kept: [1].
    examples = [ex(1, ("user", "hi"), ("assistant", "hello")),
                ex(2, ("user", "hi"), ("assistant", "   ")),
                ex(3, ("system", "Be brief."), ("user", "\t\n"), ("assistant", "ok"))]
    preview = preview_filters(iter(examples), FilterConfig(check_role_order=False))
    assert flagged(preview) == {2: ["empty_turn"], 3: ["empty_turn"]}
    assert "turn 2 (assistant)" in preview.flags[0].reason
    assert "turn 2 (user)" in preview.flags[1].reason
    assert apply_filters(preview) == [1]


def test_role_order() -> None:
    # Good: 1 (user, assistant), 2 (system, user, assistant, user, assistant).
    # Bad: 3 starts with the assistant, 4 has two user turns in a row, 5 ends with the user,
    # 6 has a system prompt in the middle, 7 has no assistant reply. Kept: [1, 2].
    examples = [ex(1, ("user", "q"), ("assistant", "a")),
                ex(2, ("system", "s"), ("user", "q"), ("assistant", "a"), ("user", "q"),
                   ("assistant", "a")),
                ex(3, ("assistant", "a"), ("user", "q"), ("assistant", "a")),
                ex(4, ("user", "q"), ("user", "q"), ("assistant", "a")),
                ex(5, ("user", "q"), ("assistant", "a"), ("user", "q")),
                ex(6, ("user", "q"), ("system", "s"), ("assistant", "a")),
                ex(7, ("user", "q"))]
    preview = preview_filters(examples, FilterConfig(drop_empty_turns=False))
    assert sorted(flagged(preview)) == [3, 4, 5, 6, 7]
    reasons = {f.example_id: f.reason for f in preview.flags}
    assert "alternate" in reasons[4] and "last turn must be the assistant" in reasons[5]
    assert apply_filters(preview) == [1, 2]
    assert apply_filters(preview, keep_anyway=[5]) == [1, 2, 5]


def test_token_length_rules_and_truncation_count(tokenizer: Any) -> None:
    texts = ["hi", "Hello, how are you today?", "The quick brown fox jumps over the lazy dog.",
             "你好，世界！我们今天学习机器学习。", "Please reset my password. " * 6]
    examples = [ex(i, ("user", t), ("assistant", "ok")) for i, t in enumerate(texts)]
    # Independent count: the tokenizer called directly on each content.
    counts = [sum(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in (t, "ok"))
              for t in texts]
    low, high = sorted(counts)[1], sorted(counts)[3]
    config = FilterConfig(min_tokens=low, max_tokens=high, max_length=high - 1, **ONLY)
    preview = preview_filters(examples, config, tokenizer=tokenizer)
    expected = {i: ["too_short"] for i, n in enumerate(counts) if n < low}
    expected |= {i: ["too_long"] for i, n in enumerate(counts) if n > high}
    assert flagged(preview) == expected and len(expected) == 2  # the shortest and the longest
    assert preview.truncated == sum(n > high - 1 for n in counts) == 2
    assert f"{min(counts)} tokens" in next(f.reason for f in preview.flags if f.rule == "too_short")


def test_token_rules_need_a_tokenizer() -> None:
    with pytest.raises(ConfigError, match="tokenizer"):
        preview_filters([ex(1, ("user", "q"), ("assistant", "a"))], FilterConfig(max_length=8))


def test_language_keeps_only_the_chosen_languages() -> None:
    # Hand-labelled: 1 English, 2 French, 3 German. Keeping en and de drops only 2.
    examples = [
        ex(1, ("user", "Could you tell me how the weather will be tomorrow in London?"),
           ("assistant", "Tomorrow it will be cloudy with some rain in the afternoon.")),
        ex(2, ("user", "Pouvez-vous me dire quel temps il fera demain à Paris ?"),
           ("assistant", "Demain, il fera nuageux avec de la pluie dans l'après-midi.")),
        ex(3, ("user", "Kannst du mir sagen, wie das Wetter morgen in Berlin wird?"),
           ("assistant", "Morgen wird es bewölkt, am Nachmittag regnet es ein wenig.")),
    ]
    preview = preview_filters(examples, FilterConfig(languages=("en", "de"), **ONLY))
    assert flagged(preview) == {2: ["language"]}
    assert "detected language fr" in preview.flags[0].reason
    assert preview.languages == {"en": 1, "fr": 1, "de": 1}


def test_unsure_language_is_not_dropped() -> None:
    # "ok" alone carries too little text for a sure guess; at min confidence 1.0 nothing drops.
    examples = [ex(1, ("user", "Pouvez-vous m'aider, s'il vous plaît ?"), ("assistant", "Oui."))]
    config = FilterConfig(languages=("en",), language_min_confidence=1.0, **ONLY)
    assert preview_filters(examples, config).flags == ()


def test_regex_drop_on_chosen_roles_and_keep_mode() -> None:
    # "password" is in 2's user turn and in 3's assistant turn; 1 has none.
    examples = [ex(1, ("user", "hello"), ("assistant", "hi")),
                ex(2, ("user", "my Password is x"), ("assistant", "noted")),
                ex(3, ("user", "hi"), ("assistant", "your password is y"))]
    users = FilterConfig(regex=r"(?i)password", regex_roles=("user",), **ONLY)
    assert flagged(preview_filters(examples, users)) == {2: ["regex"]}
    everyone = FilterConfig(regex=r"(?i)password", **ONLY)
    assert apply_filters(preview_filters(examples, everyone)) == [1]
    keep = FilterConfig(regex=r"(?i)password", regex_action="keep", **ONLY)
    assert apply_filters(preview_filters(examples, keep)) == [2, 3]


def test_invalid_regex_names_the_field_and_the_error() -> None:
    with pytest.raises(ConfigError, match=r"regex: '\(unclosed' .*missing \)"):
        FilterConfig(regex="(unclosed")


@pytest.mark.parametrize("kwargs, field", [({"regex_action": "delete"}, "regex_action"),
                                           ({"regex_roles": ("bot",)}, "regex_roles"),
                                           ({"min_tokens": 10, "max_tokens": 5}, "max_tokens"),
                                           ({"language_min_confidence": 2}, "confidence")])
def test_bad_config_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        FilterConfig(**kwargs)


def test_cancel_stops_the_scan() -> None:
    token = CancelToken()
    token.cancel()
    examples = (ex(i, ("user", "q"), ("assistant", "a")) for i in range(600))
    with pytest.raises(Cancelled):
        preview_filters(examples, cancel=token)


def test_rendered_lengths_match_the_chat_template_of_the_model(tiny_model_dir) -> None:
    """With the model's template, lengths and the truncation count are what training sees;
    the independent count is transformers' own apply_chat_template on the same messages."""
    from transformers import AutoTokenizer

    from engine.templates import resolve_template
    from engine.tokens import special_tokens_for

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    template = resolve_template(tokenizer)
    special = special_tokens_for(tiny_model_dir, tokenizer, template)
    rows = [{"id": i, "messages": [{"role": "user", "content": "word " * (3 * i + 1)},
                                   {"role": "assistant", "content": "ok " * i}]} for i in range(1, 5)]
    lengths = [len(tokenizer.apply_chat_template(r["messages"], tokenize=True)["input_ids"])
               for r in rows]
    limit = sorted(lengths)[1]
    preview = preview_filters(rows, FilterConfig(max_length=limit, max_tokens=limit),
                              tokenizer=tokenizer, template=template, special=special)
    assert preview.truncated == sum(n > limit for n in lengths) == 2
    assert {f.example_id for f in preview.flags if f.rule == "too_long"} == {3, 4}


def test_tag_rules_keep_and_drop_by_label() -> None:
    rows = [{"id": 1, "tags": ["billing"], "messages": _pair("a")},
            {"id": 2, "tags": ["greeting"], "messages": _pair("b")},
            {"id": 3, "tags": ["billing", "synthetic:synonym"], "messages": _pair("c")},
            {"id": 4, "tags": [], "messages": _pair("d")}]
    keep = preview_filters(rows, FilterConfig(keep_tags=("billing",)))
    assert apply_filters(keep) == [1, 3]  # by hand: 2 and 4 lack billing
    drop = preview_filters(rows, FilterConfig(drop_tags=("synthetic:synonym",)))
    assert apply_filters(drop) == [1, 2, 4]
    assert {f.rule for f in drop.flags} == {"tag"}


def _pair(text: str) -> list[dict]:
    return [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
