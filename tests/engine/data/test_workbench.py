"""From reviewed previews to version changes, and the train/validation rows of a version."""

from __future__ import annotations

from engine.data.dedupe import find_duplicates
from engine.data.pii import preview as pii_preview
from engine.data.splits import SplitConfig, split_dataset
from engine.data.workbench import (dedupe_change, scrub_change, split_change,
                                   train_validation_rows)


def _ex(i: int, user: str, **extra: object) -> dict:
    return {"id": i, "messages": [{"role": "user", "content": user},
                                  {"role": "assistant", "content": "ok"}], "tags": [], **extra}


def test_dedupe_change_removes_copies_except_kept_anyway() -> None:
    rows = [_ex(1, "Hello"), _ex(2, "hello"), _ex(3, "HELLO "), _ex(4, "Bye")]
    preview = find_duplicates(rows)
    assert dedupe_change(preview, {}).remove == (2, 3)
    change = dedupe_change(preview, {"threshold": 0.8}, keep_anyway=[3])
    assert change.remove == (2,) and change.operation == "dedupe"
    assert change.description == "removed 1 exact duplicate and 0 near duplicates"
    assert change.as_kwargs()["params"] == {"threshold": 0.8}


def test_scrub_change_replaces_only_changed_examples_and_honours_skips() -> None:
    rows = [_ex(1, "mail bob@example.org or call +1 202-555-0143"), _ex(2, "nothing here")]
    preview = pii_preview(rows)
    assert len(preview.findings) == 2
    change = scrub_change(rows, preview, {})
    assert list(change.replace) == [1]
    assert change.replace[1]["messages"][0]["content"] == "mail <EMAIL_1> or call <PHONE_1>"
    assert "id" not in change.replace[1]
    phone = next(f for f in preview.findings if f.kind == "phone")
    kept = scrub_change(rows, preview, {}, skip=[phone.key])
    assert kept.replace[1]["messages"][0]["content"] == "mail <EMAIL_1> or call +1 202-555-0143"


def test_split_change_leaves_synthetic_of_held_out_origins_unlabelled() -> None:
    rows = [_ex(i, f"question {i}") for i in range(1, 11)]
    rows += [_ex(100 + i, f"synthetic {i}", synthetic=True, origin_id=i) for i in range(1, 11)]
    config = SplitConfig(validation_fraction=0.3, seed=3)
    result = split_dataset(rows, config)
    change = split_change(result, config)
    validation = {i for i, s in change.splits.items() if s == "validation"}
    assert len(validation) == 3 and validation <= set(range(1, 11))  # 10 originals * 0.3
    for i in range(1, 11):
        assert change.splits[100 + i] == ("train" if change.splits[i] == "train" else None)


def test_train_validation_rows() -> None:
    labelled = [_ex(1, "a", split="train"), _ex(2, "b", split="validation"),
                _ex(3, "c", split="test"), _ex(4, "d", split=None)]
    train, val = train_validation_rows(labelled, validation_fraction=0.5, seed=0)
    assert [r["id"] for r in train] == [1] and [r["id"] for r in val] == [2]
    rows = [_ex(i, f"q{i}") for i in range(1, 9)] + [_ex(50, "s", synthetic=True, origin_id=1)]
    train, val = train_validation_rows(rows, validation_fraction=0.25, seed=0)
    assert len(val) == 2 and all(not r.get("synthetic") for r in val)  # 8 originals * 0.25
    assert len(train) + len(val) == 9 - (0 if any(r["id"] == 50 for r in train) else 1)
