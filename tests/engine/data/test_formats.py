"""Format detection, explicit override, and each format's mapping onto messages."""

from __future__ import annotations

import pytest

from engine.data import FORMATS, detect_format, import_file
from engine.errors import ConfigError, DataError

SAMPLES = {
    "alpaca": ("a.jsonl", '{"instruction": "Hi", "input": "", "output": "Hello", "system": "Be brief."}\n'),
    "sharegpt": ("s.json", '[{"conversations": [{"from": "system", "value": "Be kind."}, '
                           '{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}]'),
    "openai": ("o.jsonl", '{"messages": [{"role": "user", "content": "Hi"}, '
                          '{"role": "assistant", "content": "Hello"}], "tags": ["t"]}\n'),
    "prompt_completion": ("p.jsonl", '{"prompt": "Hi", "completion": "Hello"}\n'),
    "prompt_response": ("r.json", '[{"prompt": "Hi", "response": "Hello"}]'),
    "csv": ("c.csv", "question,answer\nHi,Hello\n"),
    "chatterbot": ("b.yml", "categories:\n- greetings\nconversations:\n- - Hi\n  - Hello\n"),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_format_detected_and_mapped(write_file, name: str) -> None:
    path = write_file(*SAMPLES[name])
    assert detect_format(path) == name
    result = import_file(path)
    assert result.format == name
    dialogue = [m for m in result.examples[0]["messages"] if m["role"] != "system"]
    assert dialogue == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def test_table_covers_every_sample() -> None:
    assert set(FORMATS) == set(SAMPLES)


def test_system_prompts_and_tags_mapped(write_file) -> None:
    alpaca = import_file(write_file(*SAMPLES["alpaca"])).examples[0]
    assert alpaca["messages"][0] == {"role": "system", "content": "Be brief."}
    sharegpt = import_file(write_file(*SAMPLES["sharegpt"])).examples[0]
    assert [m["role"] for m in sharegpt["messages"]] == ["system", "user", "assistant"]
    assert import_file(write_file(*SAMPLES["openai"])).examples[0]["tags"] == ["t"]
    assert import_file(write_file(*SAMPLES["chatterbot"])).examples[0]["tags"] == ["greetings"]


def test_csv_column_map_guessed_and_reported(write_file) -> None:
    result = import_file(write_file("g.csv", "id,Instruction,input,output\n1,Add,2 and 3,5\n"))
    assert result.column_map == {"user": "Instruction", "assistant": "output", "input": "input"}
    assert result.examples[0]["messages"][0]["content"] == "Add\n\n2 and 3"


def test_csv_explicit_column_map_and_issue_names_column(write_file) -> None:
    path = write_file("m.tsv", "q\ta\tsys\nHi\tHello\tBe kind.\nYo\t\t\n")
    result = import_file(path, column_map={"user": "q", "assistant": "a", "system": "sys"}, policy="skip")
    assert result.examples[0]["messages"][0] == {"role": "system", "content": "Be kind."}
    assert [(i.row, i.line, i.field, i.reason) for i in result.issues] == [(2, 3, "a", "empty assistant reply")]


def test_csv_unguessable_header_asks_for_column_map(write_file) -> None:
    with pytest.raises(DataError, match=r"column map.*'foo', 'bar'|'foo', 'bar'.*column map"):
        import_file(write_file("u.csv", "foo,bar\n1,2\n"))
    with pytest.raises(DataError, match="not in the header"):
        import_file(write_file("v.csv", "foo,bar\n1,2\n"), column_map={"user": "foo", "assistant": "baz"})
    with pytest.raises(ConfigError, match="allowed keys"):
        import_file(write_file("w.csv", "foo,bar\n1,2\n"), column_map={"human": "foo"})


def test_override_reads_undetectable_file(write_file) -> None:
    path = write_file("data.txt", "instruction,output\nHi,Hello\n")
    with pytest.raises(DataError, match="Formats tried: alpaca"):
        detect_format(path)
    assert import_file(path, format="csv").imported == 1


def test_ambiguous_detection_lists_candidates_and_override_resolves(write_file) -> None:
    path = write_file("mix.jsonl", '{"prompt": "Hi", "completion": "Hello"}\n'
                                   '{"prompt": "Hi", "response": "Hello"}\n')
    with pytest.raises(DataError, match=r"several formats \(prompt_completion, prompt_response\)"):
        import_file(path)
    result = import_file(path, format="prompt_completion", policy="skip")
    assert (result.imported, result.skipped) == (1, 1)
    assert result.issues[0].reason == "missing required field completion"


def test_unknown_keys_fail_detection(write_file) -> None:
    with pytest.raises(DataError, match="keys seen: a, b.*Formats tried"):
        detect_format(write_file("k.jsonl", '{"a": 1, "b": 2}\n'))
    with pytest.raises(DataError, match="the file is empty"):
        import_file(write_file("empty.jsonl", b""))
    with pytest.raises(DataError, match="no records found"):
        import_file(write_file("blank.jsonl", "\n\n"), format="openai")
    with pytest.raises(ConfigError, match="format must be one of"):
        import_file(write_file("k2.jsonl", '{"a": 1}\n'), format="llama")


TURN_RULES = [
    ('[{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]', "unknown role 'tool'"),
    ('[{"role": "user", "content": " \\n "}, {"role": "assistant", "content": "b"}]', "empty user turn"),
    ('[{"role": "user", "content": "a"}]', "no assistant reply"),
    ('[{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]', "must start with a user turn"),
    ('[{"role": "user", "content": "a"}, {"role": "system", "content": "s"}, '
     '{"role": "assistant", "content": "b"}]', "system prompt is only allowed as the first turn"),
    ('[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, '
     '{"role": "assistant", "content": "c"}]', "two user turns in a row"),
    ('[{"role": "user", "content": 3}, {"role": "assistant", "content": "b"}]', "messages[0].content must be text"),
]


@pytest.mark.parametrize(("messages", "reason"), TURN_RULES)
def test_turn_rules(write_file, messages: str, reason: str) -> None:
    good = '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}\n'
    path = write_file("t.jsonl", good + '{"messages": %s}\n' % messages)
    result = import_file(path, policy="skip")
    assert (result.imported, result.skipped) == (1, 1)
    assert reason in result.issues[0].reason and result.issues[0].line == 2


def test_chatterbot_bad_conversations_reported_with_line(write_file) -> None:
    text = ("categories:\n- greetings\n- small talk\nconversations:\n"
            "- - Hi\n  - Hello\n"                          # line 5: good
            "- - How are you?\n  - Fine.\n  - And you?\n"   # line 7: odd length, last dropped
            "- - 1\n  - 2\n"                               # line 10: not text
            "- just a string\n")                           # line 12: not a list
    result = import_file(write_file("corpus.yaml", text), policy="skip")
    assert result.format == "chatterbot"
    assert [e["source_line"] for e in result.examples] == [5, 7]
    assert [m["content"] for m in result.examples[1]["messages"]] == ["How are you?", "Fine."]
    assert result.examples[0]["tags"] == ["greetings", "small talk"]
    assert [(i.row, i.line) for i in result.issues] == [(3, 10), (4, 12)]
    assert "entries must all be text" in result.issues[0].reason
