"""K2 beyond C04/C05: BOM, CRLF JSON, bad UTF-8 location, JSON/YAML syntax locations."""

from __future__ import annotations

import pytest

from engine.data import import_file
from engine.errors import DataError

ROW = '{"prompt": "Hi", "completion": "Hello\\r\\nthere"}'


def test_bom_is_dropped(write_file) -> None:
    plain = import_file(write_file("plain.jsonl", ROW + "\n"))
    bom = import_file(write_file("bom.jsonl", b"\xef\xbb\xbf" + (ROW + "\n").encode()))
    assert bom.examples[0]["messages"] == plain.examples[0]["messages"]
    csv = import_file(write_file("bom.csv", b"\xef\xbb\xbfinstruction,output\nHi,Hello\n"))
    assert csv.column_map == {"user": "instruction", "assistant": "output"}


def test_crlf_json_array_and_escaped_cr_normalised(write_file) -> None:
    text = '[\r\n  {"instruction": "a", "output": "b"},\r\n  {"instruction": "c", "output": "d"}\r\n]\r\n'
    result = import_file(write_file("crlf.json", text.encode()))
    assert [e["source_line"] for e in result.examples] == [2, 3]
    escaped = import_file(write_file("esc.jsonl", ROW + "\n"))
    assert escaped.examples[0]["messages"][1]["content"] == "Hello\nthere"


def test_bad_utf8_names_line_and_byte_offset(write_file) -> None:
    data = b'{"prompt": "a", "completion": "b"}\n{"prompt": "caf\xe9", "completion": "x"}\n'
    # Hand count: line 1 is 34 bytes + "\n" = 35; then '{"prompt": "caf' is 15 bytes -> offset 50.
    assert data.index(b"\xe9") == 50
    path = write_file("latin1.jsonl", data)
    with pytest.raises(DataError, match=r"latin1\.jsonl: not valid UTF-8 at line 2, byte offset 50 \(byte 0xe9\)"):
        import_file(path, format="prompt_completion")
    with pytest.raises(DataError, match="line 2, byte offset 50"):
        import_file(path)  # detection reads the same bytes


def test_bad_utf8_in_csv_after_cr_only_lines(write_file) -> None:
    data = b"instruction,output\ra,b\rc,\xff\r"
    # Hand count: "instruction,output\r" is 19 bytes, "a,b\r" 4 more, "c," 2 more -> offset 25.
    with pytest.raises(DataError, match=r"line 3, byte offset 25 \(byte 0xff\)"):
        import_file(write_file("bad.csv", data))


def test_json_array_syntax_error_line_and_column(write_file) -> None:
    text = '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]\n'
    with pytest.raises(DataError, match=r"bad\.json: invalid JSON at line 3, column 23"):
        import_file(write_file("bad.json", text))
    with pytest.raises(DataError, match=r"line 2, column 3: expected ',' or '\]'"):
        import_file(write_file("bad2.json", '[{"instruction": "a", "output": "b"}\n  x]'), format="alpaca")


def test_jsonl_syntax_error_is_a_row_issue(write_file) -> None:
    path = write_file("bad.jsonl", ROW + "\n" + '{"prompt": "x", "completion": }\n')
    with pytest.raises(DataError, match="line 2: invalid JSON at column 31"):
        import_file(path)
    assert import_file(path, policy="skip").skipped == 1


def test_yaml_syntax_error_line(write_file) -> None:
    text = "categories:\n- a\nconversations:\n- - Hi\n  - Hello: there: x\n"
    with pytest.raises(DataError, match="invalid YAML at line 5, column 17"):
        import_file(write_file("bad.yml", text))
