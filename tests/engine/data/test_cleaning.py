"""Policies and counts, duplicates, the seeded split, progress/cancel and export round-trip."""

from __future__ import annotations

import json

import pytest

from engine.data import export_jsonl, import_file, remove_duplicates, split_examples
from engine.errors import Cancelled, ConfigError, DataError
from engine.progress import CancelToken, Progress


def _pairs(rows: list[tuple[str, str]]) -> str:
    return "".join(json.dumps({"prompt": p, "completion": c}, ensure_ascii=False) + "\n" for p, c in rows)


def test_refuse_lists_twenty_issues_and_total_skip_counts(write_file) -> None:
    rows = [("q", "a")] * 5 + [("q", "")] * 25
    path = write_file("many.jsonl", _pairs(rows))
    with pytest.raises(DataError) as err:
        import_file(path)
    message = str(err.value)
    assert "25 invalid row(s), 25 issue(s) in all" in message
    assert message.count("empty assistant reply") == 20 and "... and 5 more" in message
    assert "line 6:" in message and "line 26:" not in message  # rows 6..25 listed, 26..30 not
    result = import_file(path, policy="skip")
    assert (result.imported, result.skipped, len(result.issues)) == (5, 25, 25)
    with pytest.raises(ConfigError, match="policy must be one of refuse, skip"):
        import_file(path, policy="fix")


def test_exact_duplicates_counted_and_kept_normalised_ones_removed(write_file) -> None:
    rows = [("Hi", "Hello"), ("Bye", "Ciao"), ("Hi", "Hello"), ("  hi ", "HELLO"),
            ("café", "ok"), ("cafe\u0301", "ok")]
    result = import_file(write_file("dups.jsonl", _pairs(rows)))
    assert (result.imported, result.duplicates) == (6, 1)  # only row 3 is an exact copy
    kept, removed = remove_duplicates(result.examples)
    assert removed == 3  # row 3 (exact), row 4 (case/space), row 6 (decomposed é)
    assert [e["source_line"] for e in kept] == [1, 2, 5]
    assert len(result.examples) == 6  # the input list is untouched


def _examples(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": str(i)}, {"role": "assistant", "content": "x"}],
             "tags": [], "source_file": None, "source_line": i} for i in range(n)]


def test_split_is_seeded_disjoint_and_complete() -> None:
    examples = _examples(20)
    train, val = split_examples(examples, validation_fraction=0.2, seed=7)
    assert (len(train), len(val)) == (16, 4)
    again = split_examples(examples, validation_fraction=0.2, seed=7)
    assert again == (train, val)
    lines = sorted(e["source_line"] for e in train + val)
    assert lines == list(range(20)) and not {id(e) for e in train} & {id(e) for e in val}
    others = {tuple(e["source_line"] for e in split_examples(examples, validation_fraction=0.2, seed=s)[1])
              for s in range(5)}
    assert len(others) > 1  # the seed matters


def test_split_sizes_at_the_edges() -> None:
    assert [len(p) for p in split_examples(_examples(2), validation_fraction=0.1, seed=0)] == [1, 1]
    assert [len(p) for p in split_examples(_examples(1), validation_fraction=0.5, seed=0)] == [1, 0]
    assert [len(p) for p in split_examples(_examples(3), validation_fraction=0.9, seed=0)] == [1, 2]
    assert [len(p) for p in split_examples(_examples(5), validation_fraction=0.0, seed=0)] == [5, 0]
    with pytest.raises(ConfigError, match="validation_fraction"):
        split_examples(_examples(5), validation_fraction=1.0, seed=0)


def test_export_round_trip(write_file, tmp_path) -> None:
    source = write_file("s.jsonl", json.dumps({
        "conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "你好\nthere"},
                          {"from": "gpt", "value": "Hello 🙂"}, {"from": "human", "value": "More?"},
                          {"from": "gpt", "value": "Sure."}], "tags": ["greet"]}, ensure_ascii=False) + "\n"
        + json.dumps({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}) + "\n")
    original = import_file(source).examples
    target = tmp_path / "out" / "export.jsonl"
    assert export_jsonl(original, target) == 2
    lines = target.read_bytes().split(b"\n")
    assert lines[-1] == b"" and json.loads(lines[1]) == {"messages": [{"role": "user", "content": "a"},
                                                                      {"role": "assistant", "content": "b"}]}
    back = import_file(target)
    assert back.format == "openai"
    assert [(e["messages"], e["tags"]) for e in back.examples] == [(e["messages"], e["tags"]) for e in original]
    assert sorted(p.name for p in target.parent.iterdir()) == ["export.jsonl"]  # no temp file left


def test_progress_events_and_cancel(write_file) -> None:
    path = write_file("big.jsonl", _pairs([(f"q{i}", "a") for i in range(1200)]))
    events: list[Progress] = []
    import_file(path, report=events.append)
    assert [(e.step, e.total) for e in events] == [(500, None), (1000, None), (1200, 1200)]
    assert events[-1].metrics["imported"] == 1200
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        import_file(path, cancel=token)
