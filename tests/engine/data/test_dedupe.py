"""Exact/near duplicate detection and leakage checks on small hand-counted inputs."""

from __future__ import annotations

import pytest

from engine.data.dedupe import (DedupeConfig, DedupePreview, DuplicateGroup, find_duplicates,
                                find_leakage, ids_to_remove, shingles)
from engine.errors import Cancelled, ConfigError, DataError
from engine.progress import CancelToken, Progress

# 20 distinct words: every word 3-gram of a turn made of them is distinct.
WORDS = [f"word{k}" for k in range(20)]
REPLY = [f"reply{k}" for k in range(20)]
# 40 and 20 distinct CJK ideographs: every character 5-gram is distinct.
HAN = "".join(chr(0x4E00 + 7 * k) for k in range(40))
HAN_REPLY = "".join(chr(0x6000 + 7 * k) for k in range(20))


def conv(i: int, user: str, reply: str, split: str | None = None) -> dict:
    example = {"id": i, "messages": [{"role": "user", "content": user},
                                     {"role": "assistant", "content": reply}], "tags": []}
    if split:
        example["split"] = split
    return example


def one_word_changed(words: list[str], at: int, new: str) -> str:
    return " ".join(words[:at] + [new] + words[at + 1:])


def test_whitespace_case_and_nfc_copies_are_one_exact_group() -> None:
    # 1 (composed é), 2 (e + combining acute, upper case, double spaces), 3 (padded, newline)
    # are the same after NFC + whitespace collapse + casefold; 4 differs in one letter.
    examples = [conv(1, "Caf\u00e9 au lait?", "Yes."),
                conv(2, "CAFE\u0301  au   LAIT?", "yes."),
                conv(3, "  café au lait?\n", " Yes. "),
                conv(4, "Café au lait!", "Yes.")]
    preview = find_duplicates(iter(examples))
    assert preview.scanned == 4
    assert [(g.kind, g.ids) for g in preview.groups] == [("exact", (1, 2, 3))]
    assert preview.groups[0].kept == 1 and preview.groups[0].similarity == 1.0
    assert ids_to_remove(preview) == {2, 3}


def test_word_shingles_hand_count() -> None:
    # Two turns of 20 distinct words: 20 - 3 + 1 = 18 word 3-grams each -> 36 shingles.
    assert len(shingles(conv(1, " ".join(WORDS), " ".join(REPLY)), DedupeConfig())) == 36
    # The same words from the other role are different shingles (role markers): 18 + 18.
    swapped = conv(2, " ".join(REPLY), " ".join(WORDS))
    assert shingles(swapped, DedupeConfig()).isdisjoint(
        shingles(conv(1, " ".join(WORDS), " ".join(REPLY)), DedupeConfig()))


def test_one_word_change_is_a_near_duplicate_but_another_question_is_not() -> None:
    # Hand count: 36 shingles each (see above). Changing word 10 of the user turn replaces the
    # 3-grams starting at words 8, 9, 10: shared 33, union 36 + 3 = 39, Jaccard 33/39 = 0.85.
    # Example 3 asks 20 other words with the same reply: shared 18 (the reply's), union
    # 36 + 18 = 54, Jaccard 0.33 -> not a duplicate at 0.7.
    examples = [conv(1, " ".join(WORDS), " ".join(REPLY)),
                conv(2, one_word_changed(WORDS, 10, "changed"), " ".join(REPLY)),
                conv(3, " ".join(f"other{k}" for k in range(20)), " ".join(REPLY))]
    preview = find_duplicates(examples, DedupeConfig(threshold=0.7))
    assert [(g.kind, g.ids) for g in preview.groups] == [("near", (1, 2))]
    assert preview.groups[0].similarity == pytest.approx(33 / 39, abs=0.12)
    # At 0.95 the 0.85 pair is no longer a duplicate.
    assert find_duplicates(examples, DedupeConfig(threshold=0.95)).groups == ()


def test_cjk_uses_character_shingles_and_finds_a_one_character_change() -> None:
    # 40 + 20 characters without spaces: (40-5+1) + (20-5+1) = 36 + 16 = 52 character 5-grams.
    # (Word 3-grams would give 1 + 1 shingles: each turn is a single "word".)
    original = conv(1, HAN, HAN_REPLY)
    assert len(shingles(original, DedupeConfig())) == 52
    # Changing character 20 replaces the 5-grams starting at 16..20: shared 47, union 57,
    # Jaccard 47/57 = 0.82.
    changed = conv(2, HAN[:20] + "\u9f00" + HAN[21:], HAN_REPLY)
    other = conv(3, "".join(chr(0x7000 + 7 * k) for k in range(40)), HAN_REPLY)  # 16/88 = 0.18
    groups = find_duplicates([original, changed, other], DedupeConfig(threshold=0.7)).groups
    assert [(g.kind, g.ids) for g in groups] == [("near", (1, 2))]
    assert groups[0].similarity == pytest.approx(47 / 57, abs=0.12)


def test_groups_join_transitively_and_keep_the_first() -> None:
    # 1 -> 2 changes word 5, 2 -> 3 changes word 14: each neighbour pair 33/39 = 0.85; 1 and 3
    # share 36 - 6 = 30 of 42: 0.71. Union-find joins all three; the first (id 1) is kept.
    # 4 is an exact copy of 2 (case only): an exact group, not a member of the near group.
    second = one_word_changed(WORDS, 5, "five")
    third = one_word_changed(second.split(), 14, "fourteen")
    examples = [conv(1, " ".join(WORDS), " ".join(REPLY)), conv(2, second, " ".join(REPLY)),
                conv(3, third, " ".join(REPLY)), conv(4, second.upper(), " ".join(REPLY))]
    preview = find_duplicates(examples, DedupeConfig(threshold=0.75))
    assert [(g.kind, g.ids) for g in preview.groups] == [("exact", (2, 4)), ("near", (1, 2, 3))]
    assert preview.groups[1].similarities[2] == pytest.approx(30 / 42, abs=0.12)
    assert ids_to_remove(preview) == {2, 3, 4}
    assert ids_to_remove(preview, keep_anyway=[3]) == {2, 4}


def test_leakage_reports_only_groups_that_cross_splits() -> None:
    # 1 (train) / 2 (test): exact copies (case) -> leak. 3 (train) / 4 (validation): one word
    # changed (0.85) -> near leak. 5 / 6: exact copies both in train -> not leakage.
    q = " ".join(WORDS)
    examples = [conv(1, "What is LoRA?", "A low-rank adapter.", "train"),
                conv(2, "what is lora?", "a low-rank adapter.", "test"),
                conv(3, q, " ".join(REPLY), "train"),
                conv(4, one_word_changed(WORDS, 3, "x"), " ".join(REPLY), "validation"),
                conv(5, "hi", "hello", "train"), conv(6, "hi", "hello", "train")]
    leaks = find_leakage(iter(examples), DedupeConfig(threshold=0.7))
    assert [(g.kind, g.ids, g.splits) for g in leaks] == [
        ("exact", (1, 2), ("train", "test")), ("near", (3, 4), ("train", "validation"))]


def test_leakage_needs_a_split() -> None:
    with pytest.raises(DataError, match="split"):
        find_leakage([conv(1, "a", "b", "dev")])


def test_streams_reports_progress_and_cancels() -> None:
    events: list[Progress] = []
    examples = (conv(i, f"question {i}", f"answer {i}") for i in range(2500))
    preview = find_duplicates(examples, total=2500, report=events.append)
    # Events after 1000 and 2000 examples, then the final one: hand count 3.
    assert [(e.step, e.total) for e in events] == [(1000, 2500), (2000, 2500), (2500, 2500)]
    assert preview.scanned == 2500
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        find_duplicates((conv(i, f"q {i}", "a") for i in range(1500)), cancel=token)


def test_empty_conversations_are_not_near_duplicates_of_each_other() -> None:
    # No text means no shingles; the two differ in roles, so they are not exact copies either.
    examples = [conv(1, "", ""), {"id": 2, "messages": [{"role": "user", "content": " "}]}]
    assert find_duplicates(examples, DedupeConfig(threshold=0.5)).groups == ()


@pytest.mark.parametrize("field, value", [("threshold", 0.0), ("threshold", 1.5),
                                          ("num_perm", 8), ("word_ngram", 0)])
def test_bad_config_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        DedupeConfig(**{field: value})


def test_ids_to_remove_from_a_hand_built_preview() -> None:
    preview = DedupePreview((DuplicateGroup("exact", (1, 5), (1.0, 1.0)),
                             DuplicateGroup("near", (2, 7, 9), (1.0, 0.9, 0.8))), 10)
    assert ids_to_remove(preview) == {5, 7, 9}
    assert ids_to_remove(preview, keep_anyway={9, 2}) == {5, 7}
    assert preview.near_groups[0].similarity == 0.8
