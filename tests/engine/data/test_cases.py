"""CASES.md K1 (C01-C03) and K2 (C04-C05) as tests, with hand-counted expectations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.data import RowIssue, import_file
from engine.errors import DataError

REPO = Path(__file__).resolve().parents[3]

C01 = ('{"prompt": "What is 2+2?", "response": "4"}\n'
       '{"prompt": "Name a colour.", "response": ""}\n'
       '{"prompt": "Say hi.", "response": "Hi!"}\n')

C02 = """[
  {"instruction": "Translate to French", "input": "cat", "output": "chat"},
  {"instruction": "Translate to French", "input": "dog"},
  {"instruction": "Add the numbers", "input": "2 and 3", "output": "5"}
]
"""

C03 = """[
  {"instruction": "Say hello", "input": "", "output": "Hello!"},
  {"instruction": "Summarise", "input": "A long text.", "output": ""},
  {"instruction,output": "Count to three,1 2 3"},
  {"instruction": "Translate", "input": "Hund", "output": "dog"}
]
"""


def test_c01_empty_response_refused_with_line(write_file) -> None:
    path = write_file("c01.jsonl", C01)
    with pytest.raises(DataError) as err:
        import_file(path)
    assert "line 2: empty assistant reply (field response)" in str(err.value)
    assert "1 invalid row(s)" in str(err.value)


def test_c01_skip_counts_the_line(write_file) -> None:
    result = import_file(write_file("c01.jsonl", C01), policy="skip")
    assert result.format == "prompt_response"
    assert (result.imported, result.skipped) == (2, 1)
    assert result.issues == [RowIssue(2, "empty assistant reply", "response", None)]
    assert [e["source_line"] for e in result.examples] == [1, 3]


def test_c02_missing_output_names_row_and_field(write_file) -> None:
    path = write_file("c02.json", C02)
    with pytest.raises(DataError) as err:
        import_file(path)
    assert "row 2: missing required field output (line 3)" in str(err.value)
    result = import_file(path, policy="skip")
    assert result.format == "alpaca"
    assert (result.imported, result.skipped) == (2, 1)
    assert [e["source_line"] for e in result.examples] == [2, 4]


def test_c03_empty_input_has_no_input_section_and_bad_rows_reported(write_file) -> None:
    result = import_file(write_file("c03.json", C03), policy="skip")
    assert result.format == "alpaca"
    assert (result.imported, result.skipped) == (2, 2)
    first, last = (e["messages"] for e in result.examples)
    assert first == [{"role": "user", "content": "Say hello"}, {"role": "assistant", "content": "Hello!"}]
    assert last[0] == {"role": "user", "content": "Translate\n\nHund"}
    by_row = {(i.row, i.field): i.reason for i in result.issues}
    assert by_row[(2, "output")] == "empty assistant reply"
    assert by_row[(3, "instruction")] == "missing required field instruction"
    assert by_row[(3, "output")] == "missing required field output"
    assert by_row[(3, "instruction,output")].startswith("unexpected field 'instruction,output'")
    assert len(result.issues) == 4


C04_ROWS = [
    {"prompt": "你好，世界", "response": "你好！🙂"},
    {"prompt": "机器学习是什么？", "response": "一种让计算机从数据中学习的方法。"},
    {"prompt": "Emoji test 🎉", "response": "Done ✅"},
]


def test_c04_same_rows_under_c_locale(tmp_path: Path) -> None:
    path = tmp_path / "c04.jsonl"
    path.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in C04_ROWS).encode("utf-8"))
    code = ("import json, locale, sys; from engine.data import import_file; "
            "r = import_file(sys.argv[1]); "
            "print(json.dumps({'encoding': locale.getpreferredencoding(False), 'examples': r.examples}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIOENCODING"))}
    env.update(LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, cwd=REPO,
                         capture_output=True, text=True, encoding="ascii", check=True).stdout
    child = json.loads(out)
    assert child["encoding"].lower().replace("-", "") not in ("utf8",)  # the locale really is not UTF-8
    expected = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
                for r in C04_ROWS]
    assert [e["messages"] for e in child["examples"]] == expected
    assert child["examples"] == import_file(path).examples


def test_c05_crlf_csv_with_multiline_cell(write_file) -> None:
    data = (b'instruction,output\r\n'
            b'"Write two lines","Line one\r\nline two"\r\n'
            b'Say hi,Hi!\r\n')
    result = import_file(write_file("c05.csv", data))
    assert result.format == "csv"
    assert result.imported == 2  # two logical records, though the file has four lines
    assert result.examples[0]["messages"][1]["content"] == "Line one\nline two"
    assert [e["source_line"] for e in result.examples] == [2, 4]
    assert not any("\r" in m["content"] for e in result.examples for m in e["messages"])


def test_c05_cr_only_files(write_file) -> None:
    csv_result = import_file(write_file("cr.csv", b'instruction,output\r"a\rb",c\rd,e\r'))
    assert [[m["content"] for m in e["messages"]] for e in csv_result.examples] == [["a\nb", "c"], ["d", "e"]]
    assert [e["source_line"] for e in csv_result.examples] == [2, 4]
    jsonl = b'{"prompt": "p1", "completion": "c1"}\r{"prompt": "p2", "completion": "c2"}\r'
    result = import_file(write_file("cr.jsonl", jsonl))
    assert [e["source_line"] for e in result.examples] == [1, 2]
    assert result.examples[1]["messages"][1]["content"] == "c2"
