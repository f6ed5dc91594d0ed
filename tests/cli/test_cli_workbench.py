"""The dataset workbench from the command line: each operation previews, --apply makes a
version, undo goes back; expected counts are hand-counted from the six conversations below."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import storage
from tests.cli.test_cli import run

ROWS = [
    ("How do I reset my password?", "Use the reset link."),              # 1
    ("how do i  reset my password?", "use the reset link."),             # 2: exact copy of 1
    ("Email me at alice@example.com please", "Sure."),                   # 3: one e-mail
    ("My invoice is wrong", "Sorry, let me check."),                     # 4: "invoice"
    ("Hello there", "Hi! How can I help?"),                              # 5
    ("Bonjour, je voudrais réserver une table pour deux personnes ce soir.", "Bien sûr."),  # 6
]


@pytest.fixture()
def data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": u}, {"role": "assistant", "content": a}]}) + "\n"
        for u, a in ROWS), encoding="utf-8")
    data_dir = tmp_path / "data"
    assert run(capsys, data_dir, "datasets", "import", str(path), "--name", "d")[0] == 0
    return data_dir


def _versions(capsys: pytest.CaptureFixture[str], data: Path) -> list[tuple[int, str, int]]:
    _, rows = run(capsys, data, "datasets", "versions", "d")
    return [(v["number"], v["operation"], v["example_count"]) for v in rows]


def test_preview_changes_nothing_and_apply_makes_versions(capsys, data) -> None:
    code, shown = run(capsys, data, "datasets", "dedupe", "d")
    assert code == 0 and shown["version"] is None
    assert [g["ids"] for g in shown["preview"]["groups"]] == [[1, 2]]
    assert _versions(capsys, data) == [(1, "import", 6)]
    run(capsys, data, "datasets", "dedupe", "d", "--apply")
    run(capsys, data, "datasets", "filter", "d", "--languages", "en", "--apply")
    code, scrub = run(capsys, data, "datasets", "scrub", "d", "--apply")
    assert scrub["preview"]["counts"] == {"email": 1}
    code, tagged = run(capsys, data, "datasets", "tag", "d", "--search", "invoice", "--add",
                       "billing")
    assert code == 0 and tagged["operation"] == "tag"
    # Hand count: 6 -> dedupe 5 -> French dropped 4 -> scrub 4 -> tag 4.
    assert _versions(capsys, data) == [(1, "import", 6), (2, "dedupe", 5), (3, "filter", 4),
                                       (4, "scrub", 4), (5, "tag", 4)]
    _, shown = run(capsys, data, "datasets", "show", "d")
    assert [e["messages"][0]["content"] for e in shown["examples"]] == [
        ROWS[0][0], "Email me at <EMAIL_1> please", ROWS[3][0], ROWS[4][0]]
    _, diff = run(capsys, data, "datasets", "diff", "d", "1", "5")
    # removed: #2 (copy) and #6 (French); changed: #3 (scrubbed) and #4 (tagged).
    assert diff["counts"] == {"added": 0, "removed": 2, "changed": 2, "resplit": 0}
    assert diff["removed"] == [2, 6]
    _, tags = run(capsys, data, "datasets", "tags", "d")
    assert tags == [{"tag": "billing", "examples": 1}]


def test_undo_and_checkout(capsys, data) -> None:
    run(capsys, data, "datasets", "dedupe", "d", "--apply")
    code, back = run(capsys, data, "datasets", "undo", "d")
    assert code == 0 and back["number"] == 1 and back["example_count"] == 6
    code, _ = run(capsys, data, "datasets", "undo", "d")
    assert code != 0  # nothing before version 1
    assert run(capsys, data, "datasets", "checkout", "d", "2")[1]["example_count"] == 5


def test_synonyms_split_and_training_rows_keep_synthetic_out_of_validation(capsys, data) -> None:
    run(capsys, data, "datasets", "dedupe", "d", "--apply")
    code, aug = run(capsys, data, "datasets", "synonyms", "d", "--count", "5", "--apply")
    assert code == 0
    made = len(aug["preview"]["proposed"])
    assert made >= 1 and aug["version"]["example_count"] == 5 + made
    code, split = run(capsys, data, "datasets", "split", "d", "--validation-fraction", "0.4",
                      "--apply")
    assert code == 0
    db = storage.open_database(data)
    dataset = storage.get_dataset(db, "d")
    rows = list(storage.iter_examples(db, dataset["id"]))
    by_id = {r["id"]: r for r in rows}
    for row in rows:
        if row["synthetic"]:
            # A synthetic example is trained on only if its origin is; never validated on.
            assert row["split"] == ("train" if by_id[row["origin_id"]]["split"] == "train"
                                    else None)
    # 5 originals at 0.4 -> round(2.0) = 2 validation, 3 train.
    assert sum(1 for r in rows if r["split"] == "validation") == 2
    db.close()


def test_streamed_import_refusing_a_bad_last_row_writes_nothing(capsys, tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "hi"},
                                    {"role": "assistant", "content": "hello"}]})
    path.write_text(good + "\n" + good + "\n" + '{"messages": [{"role": "user", "content": ""}]}\n',
                    encoding="utf-8")
    data_dir = tmp_path / "data"
    code, _ = run(capsys, data_dir, "datasets", "import", str(path), "--name", "bad")
    assert code == 2  # bad input; the two good rows were already streamed into the transaction
    assert run(capsys, data_dir, "datasets", "list")[1] == []
    code, done = run(capsys, data_dir, "datasets", "import", str(path), "--policy", "skip",
                     "--dedupe")
    assert (code, done["imported"], done["skipped"], done["duplicates_removed"]) == (0, 1, 1, 1)


def test_show_and_export_select_by_version_split_and_tag(capsys, data, tmp_path) -> None:
    run(capsys, data, "datasets", "tag", "d", "--search", "password", "--add", "account")
    _, shown = run(capsys, data, "datasets", "show", "d", "--tag", "account")
    assert len(shown["examples"]) == 2  # rows 1 and 2 mention "password"
    _, old = run(capsys, data, "datasets", "show", "d", "--version", "1", "--tag", "account")
    assert old["examples"] == []
    run(capsys, data, "datasets", "split", "d", "--validation-fraction", "0.5", "--apply")
    out = tmp_path / "val.jsonl"
    code, done = run(capsys, data, "datasets", "export", "d", str(out), "--split", "validation")
    assert code == 0 and done["examples"] == 3  # round(6 * 0.5)
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3


def test_bad_inputs_get_clear_errors_and_change_nothing(capsys, data, tmp_path) -> None:
    bad_json = tmp_path / "skip.json"
    bad_json.write_text("{garbage", encoding="utf-8")
    wrong_shape = tmp_path / "shape.json"
    wrong_shape.write_text("[1, 2, 3]", encoding="utf-8")
    for argv in (["scrub", "d", "--names-file", str(tmp_path / "missing.txt")],
                 ["scrub", "d", "--skip-file", str(bad_json)],
                 ["scrub", "d", "--skip-file", str(wrong_shape)],
                 ["filter", "d", "--languages", "english"],
                 ["dedupe", "d", "--keep", "9999"],
                 ["export", "d", str(tmp_path)]):
        code, _ = run(capsys, data, "datasets", *argv)
        assert code == 2, argv
    with pytest.raises(SystemExit):
        run(capsys, data, "datasets", "show", "d", "--limit", "-1")
    assert _versions(capsys, data) == [(1, "import", 6)]


def test_a_dataset_named_like_an_id_is_found_by_name(capsys, data, tmp_path) -> None:
    path = tmp_path / "two.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "x"},
                                             {"role": "assistant", "content": "y"}]}) + "\n",
                    encoding="utf-8")
    _, made = run(capsys, data, "datasets", "import", str(path), "--name", "1")
    assert made["dataset"]["id"] == 2
    code, deleted = run(capsys, data, "datasets", "delete", "1")
    assert code == 0 and deleted == {"deleted": "1", "id": 2}
    assert [d["name"] for d in run(capsys, data, "datasets", "list")[1]] == ["d"]


def test_repeating_an_operation_makes_no_empty_version(capsys, data) -> None:
    run(capsys, data, "datasets", "tag", "d", "--search", "invoice", "--add", "billing")
    code, again = run(capsys, data, "datasets", "tag", "d", "--search", "invoice", "--add",
                      "billing")
    assert code == 0 and again["version"] is None
    run(capsys, data, "datasets", "split", "d", "--apply")
    code, split_again = run(capsys, data, "datasets", "split", "d", "--apply")
    assert code == 0 and split_again["version"] is None
    assert [v[1] for v in _versions(capsys, data)] == ["import", "tag", "split"]
    code, stats = run(capsys, data, "datasets", "stats", "d")
    assert stats["examples"] == 6 and stats["turns_by_role"] == {"user": 6, "assistant": 6}
    assert stats["splits"] == {"train": 5, "validation": 1}  # default 0.1 of 6 -> at least 1
