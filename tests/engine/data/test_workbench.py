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
    # 3 (test) is held back from both; 4 has no label (added after the split): trained on.
    assert [r["id"] for r in train] == [1, 4] and [r["id"] for r in val] == [2]
    rows = [_ex(i, f"q{i}") for i in range(1, 9)] + [_ex(50, "s", synthetic=True, origin_id=1)]
    train, val = train_validation_rows(rows, validation_fraction=0.25, seed=0)
    assert len(val) == 2 and all(not r.get("synthetic") for r in val)  # 8 originals * 0.25
    assert len(train) + len(val) == 9 - (0 if any(r["id"] == 50 for r in train) else 1)


def test_rows_added_after_a_split_follow_their_origin_or_train() -> None:
    rows = [_ex(1, "a", split="train"), _ex(2, "b", split="validation"),
            _ex(3, "new after split", split=None),
            _ex(4, "syn of 1", synthetic=True, origin_id=1, split=None),
            _ex(5, "syn of 2", synthetic=True, origin_id=2, split=None),
            _ex(6, "syn of syn of 2", synthetic=True, origin_id=5, split=None)]
    train, val = train_validation_rows(rows, validation_fraction=0.5, seed=0)
    # By hand: 1 train; 3 added later -> train; 4 follows 1 -> train; 5 and 6 trace back to 2
    # (validation) -> left out of both.
    assert [r["id"] for r in train] == [1, 3, 4] and [r["id"] for r in val] == [2]


def test_augment_change_labels_synthetic_of_train_origins_only() -> None:
    from engine.data.augment import AugmentPreview, ProposedExample
    from engine.data.workbench import augment_change

    preview = AugmentPreview(proposed=(
        ProposedExample(1, "synthetic:synonym", _ex(0, "x")),
        ProposedExample(2, "synthetic:synonym", _ex(0, "y"))), rejected=())
    change = augment_change(preview, {}, origin_splits={1: "train", 2: "validation"})
    assert [(e["origin_id"], e["split"]) for e in change.append] == [(1, "train"), (2, None)]
    assert all(e["synthetic"] and "id" not in e for e in change.append)
