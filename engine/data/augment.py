"""Synthetic examples: paraphrase, back-translation (with a local GGUF chat model) and synonyms.

Each operation rewrites the *user* turns of selected examples (assistant turns are kept as
they are, they are what the model learns to say) and returns an :class:`AugmentPreview` to
review; :func:`apply_augmentation` turns the accepted proposals into new example dicts for the
caller to store. New examples carry ``synthetic: True``, ``origin_id`` (the source example's
id) and the source's tags plus one method tag (``synthetic:paraphrase``,
``synthetic:backtranslation:fr``, ``synthetic:synonym``). Proposals equal to an original or to
an earlier proposal (:func:`engine.data.cleaning.content_key`) are rejected.

Synthetic data must never reach validation: :func:`check_synthetic_leaks` finds synthetic
examples in a held-out split or made from a held-out example (a paraphrase of a validation
example in training would leak the validation set into training).
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol

from engine.chat import SamplingConfig
from engine.configs import check_choices, check_range, option
from engine.data.cleaning import content_key
from engine.data.thesaurus import replace_synonyms
from engine.errors import ConfigError, DataError
from engine.progress import CancelToken, Progress, Reporter, ignore_progress

# Pivot languages offered for back-translation (ISO 639-1 code -> the name used in prompts).
LANGUAGES: dict[str, str] = {
    "en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "pl": "Polish", "sv": "Swedish", "ru": "Russian",
    "tr": "Turkish", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "hi": "Hindi",
}
PARAPHRASE_PROMPT = ("Paraphrase the following message. Keep its meaning, its language and any "
                     "placeholders like <EMAIL_1> unchanged. Reply with the paraphrase only, on "
                     "one line.\n\nMessage: {text}")
TRANSLATE_PROMPT = ("Translate the following {source} text into {target}. Keep any placeholders "
                    "like <EMAIL_1> unchanged. Reply with the translation only, on one line.\n\n"
                    "Text: {text}")
MAX_LENGTH_RATIO = 3  # a rewrite over 3x the input's length is rambling, not a paraphrase
_LABELS = ("paraphrase:", "translation:", "message:", "text:")
_QUOTES = "\"'“”‘’«»`"


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer; got {value!r}")
    check_range(name, value, low=low, high=high)


@dataclass(frozen=True)
class ParaphraseConfig:
    """Settings of :func:`paraphrase_examples` (and the model part of back-translation)."""

    model_path: str = option("", "The GGUF chat model that writes the new text (.gguf file).")
    chat_template: str | None = option(None, "The model's chat template: a name (gemma, chatml, "
                                             "llama3...) or Jinja text; empty uses the GGUF's own.")
    variants: int = option(1, "New versions made per example, 1-10.")
    temperature: float = option(0.7, "Randomness, 0-2; 0 is greedy, so every variant comes out "
                                     "the same and only one is kept.")
    seed: int = option(0, "Random seed; the same seed, model and data give the same text.")
    max_new_tokens: int = option(128, "The most tokens generated per user turn, 1-4096.")
    n_ctx: int = option(2048, "The model's context size in tokens, 256-131072.")

    def __post_init__(self) -> None:
        if not isinstance(self.model_path, str) or not self.model_path.strip():
            raise ConfigError("model_path must name a GGUF chat model file; got "
                              f"{self.model_path!r}")
        _check_int("variants", self.variants, 1, 10)
        check_range("temperature", self.temperature, low=0.0, high=2.0)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        _check_int("max_new_tokens", self.max_new_tokens, 1, 4096)
        _check_int("n_ctx", self.n_ctx, 256, 131072)
        check_choices(self)


@dataclass(frozen=True)
class BackTranslationConfig(ParaphraseConfig):
    """Settings of :func:`back_translate_examples`: the model settings plus the languages."""

    pivot_language: str = option("fr", "The language translated to and back from.",
                                 choices=LANGUAGES)
    source_language: str = option("en", "The language of the examples.", choices=LANGUAGES)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pivot_language == self.source_language:
            raise ConfigError("pivot_language must differ from source_language; both are "
                              f"{self.pivot_language!r}")


@dataclass(frozen=True)
class SynonymConfig:
    """Settings of :func:`synonym_examples`."""

    variants: int = option(1, "New versions made per example, 1-10.")
    max_replacements: int = option(3, "The most words replaced per user turn, 1-20.")
    seed: int = option(0, "Random seed; the same seed and data give the same text.")

    def __post_init__(self) -> None:
        _check_int("variants", self.variants, 1, 10)
        _check_int("max_replacements", self.max_replacements, 1, 20)
        _check_int("seed", self.seed, 0, 2**31 - 1)


@dataclass(frozen=True)
class ProposedExample:
    """A new example to review: ``example`` is the dict to store, made from ``origin_id``."""

    origin_id: int
    method: str
    example: dict
    note: str = ""


@dataclass(frozen=True)
class Rejection:
    """A variant not proposed: why, and the model's raw output (empty for synonyms)."""

    origin_id: int
    method: str
    reason: str
    output: str = ""


@dataclass(frozen=True)
class AugmentPreview:
    """What an augmentation would add: proposals in input order, and the rejected variants."""

    proposed: tuple[ProposedExample, ...]
    rejected: tuple[Rejection, ...]


class TextModel(Protocol):
    """What the operations need of a chat model (:class:`engine.chat.ChatModel` fits)."""

    def reply(self, messages: list[dict], sampling: SamplingConfig | None = None) -> Any:
        """A reply object with the generated ``text``."""


@dataclass(frozen=True)
class _Outcome:
    text: str | None  # the rewrite, None when rejected
    reason: str = ""
    output: str = ""  # raw model output, for review


Rewrite = Callable[[str, int, int], _Outcome]  # (user text, variant, origin id) -> outcome


def paraphrase_examples(examples: Iterable[dict], config: ParaphraseConfig, *,
                        existing: Iterable[dict] = (), model: TextModel | None = None,
                        report: Reporter = ignore_progress,
                        cancel: CancelToken | None = None) -> AugmentPreview:
    """Propose paraphrases of the user turns of ``examples``, ``config.variants`` per example.

    Args:
        examples: the selected examples (dicts with ``id``, ``messages``, ``tags``); streamed.
        config: model and sampling settings; variant ``i`` samples with seed ``seed + i``.
        existing: the rest of the dataset, so proposals equal to any example are rejected.
        model: an open chat model to use; ``None`` loads ``config.model_path`` (closed after).

    Returns:
        The preview. Rewrites that are empty, equal to the input (after normalisation), over
        :data:`MAX_LENGTH_RATIO` times longer or a copy of the instruction are rejected; a
        variant is proposed when at least one user turn was rewritten.

    Raises:
        ModelLoadError: the GGUF is missing, unreadable or has no chat template to use.
        DataError: an example has no integer ``id``.
        Cancelled: ``cancel`` was cancelled.
    """
    with _open_model(config, model) as chat:
        def rewrite(text: str, variant: int, origin: int) -> _Outcome:
            prompt = PARAPHRASE_PROMPT.format(text=text)
            return _clean(_ask(chat, prompt, config, variant), text, prompt)

        return _augment(examples, rewrite, "synthetic:paraphrase", config.variants, existing,
                        report, cancel)


def back_translate_examples(examples: Iterable[dict], config: BackTranslationConfig, *,
                            existing: Iterable[dict] = (), model: TextModel | None = None,
                            report: Reporter = ignore_progress,
                            cancel: CancelToken | None = None) -> AugmentPreview:
    """Propose back-translations (source -> pivot -> source language) of the user turns.

    Same arguments, checks and errors as :func:`paraphrase_examples`; the pivot text passes
    the same checks (a "translation" equal to the input was not translated).
    """
    source, pivot = LANGUAGES[config.source_language], LANGUAGES[config.pivot_language]
    with _open_model(config, model) as chat:
        def rewrite(text: str, variant: int, origin: int) -> _Outcome:
            there_prompt = TRANSLATE_PROMPT.format(source=source, target=pivot, text=text)
            there = _clean(_ask(chat, there_prompt, config, variant), text, there_prompt)
            if there.text is None:
                return _Outcome(None, f"translation to {pivot}: {there.reason}", there.output)
            back_prompt = TRANSLATE_PROMPT.format(source=pivot, target=source, text=there.text)
            return _clean(_ask(chat, back_prompt, config, variant), text, back_prompt)

        tag = f"synthetic:backtranslation:{config.pivot_language}"
        return _augment(examples, rewrite, tag, config.variants, existing, report, cancel)


def synonym_examples(examples: Iterable[dict], config: SynonymConfig, *,
                     existing: Iterable[dict] = (), report: Reporter = ignore_progress,
                     cancel: CancelToken | None = None) -> AugmentPreview:
    """Propose copies whose user turns have WordNet synonyms for a few content words.

    Seeded per (seed, example id, variant, turn text), so results do not depend on the order
    or the selection of examples. See :func:`engine.data.thesaurus.replace_synonyms`.

    Raises:
        DataError: an example has no integer ``id``.
        EngineError: the WordNet data files are missing.
        Cancelled: ``cancel`` was cancelled.
    """
    def rewrite(text: str, variant: int, origin: int) -> _Outcome:
        rng = random.Random(f"{config.seed}:{origin}:{variant}:{text}")
        new, pairs = replace_synonyms(text, rng, max_replacements=config.max_replacements)
        if not pairs:
            return _Outcome(None, "no word with a synonym")
        return _Outcome(new, ", ".join(f"{a} -> {b}" for a, b in pairs))

    return _augment(examples, rewrite, "synthetic:synonym", config.variants, existing,
                    report, cancel)


@dataclass(frozen=True)
class SyntheticLeak:
    """A synthetic example that must not be used: it is held out, or made from a held-out one."""

    id: int
    origin_id: int | None
    split: str
    reason: str


@dataclass(frozen=True)
class LeakCheck:
    """Result of :func:`check_synthetic_leaks`: the leaks, and the ids safe to keep."""

    leaks: tuple[SyntheticLeak, ...]
    kept_ids: tuple[int, ...]


def check_synthetic_leaks(examples: Iterable[dict], *, split_key: str = "split",
                          held_out: Iterable[str] = ("validation", "test")) -> LeakCheck:
    """Find synthetic examples that would leak held-out data (validation/test) into training.

    A synthetic example leaks when it is itself in a held-out split, or when its origin,
    followed through ``origin_id`` links to the first non-synthetic ancestor, is in one.
    Origins that are not among ``examples`` (deleted) do not count as leaks.

    Args:
        examples: dicts with ``id``, ``split_key`` (e.g. ``"train"``) and, for synthetic
            ones, ``synthetic: True`` and ``origin_id``; read once into memory (an origin
            may come after its copies).
        split_key: the key holding the split label.
        held_out: the split labels that training must never see.

    Returns:
        The leaks in input order, and the ids of every other example (drop the leaks by
        keeping only ``kept_ids``).
    """
    rows = list(examples)
    by_id = {row.get("id"): row for row in rows}
    held = frozenset(held_out)
    leaks = []
    for row in rows:
        if not row.get("synthetic"):
            continue
        if row.get(split_key) in held:
            leaks.append(SyntheticLeak(row["id"], row.get("origin_id"), row[split_key],
                                       f"synthetic example in the {row[split_key]} split"))
            continue
        root = _root_origin(row, by_id)
        if root is not None and root.get(split_key) in held:
            leaks.append(SyntheticLeak(row["id"], row.get("origin_id"), str(row.get(split_key)),
                                       f"made from example {root['id']} in the "
                                       f"{root[split_key]} split"))
    leaked = {leak.id for leak in leaks}
    return LeakCheck(tuple(leaks), tuple(r["id"] for r in rows if r["id"] not in leaked))


def _root_origin(row: dict, by_id: dict[Any, dict]) -> dict | None:
    """The first non-synthetic ancestor of ``row`` (``None`` if deleted or a cycle)."""
    seen = {row.get("id")}
    current = by_id.get(row.get("origin_id"))
    while current is not None and current.get("synthetic"):
        if current.get("id") in seen:
            return None
        seen.add(current.get("id"))
        current = by_id.get(current.get("origin_id"))
    return current


def apply_augmentation(preview: AugmentPreview,
                       accepted: Iterable[int] | None = None) -> list[dict]:
    """The new examples to store: all proposals, or those at the indices in ``accepted``.

    Returns:
        Copies of the proposed example dicts (no ``id``: storage assigns one), in order.
    """
    indices = range(len(preview.proposed)) if accepted is None else sorted(set(accepted))
    return [_copy(preview.proposed[i].example) for i in indices]


@contextlib.contextmanager
def _open_model(config: ParaphraseConfig, model: TextModel | None) -> Iterator[TextModel]:
    if model is not None:
        yield model
        return
    from engine.chat import ChatModel

    with ChatModel(config.model_path, chat_template=config.chat_template or None,
                   n_ctx=config.n_ctx) as chat:
        yield chat


def _ask(model: TextModel, prompt: str, config: ParaphraseConfig, variant: int) -> str:
    sampling = SamplingConfig(temperature=config.temperature, max_tokens=config.max_new_tokens,
                              seed=config.seed + variant)
    return str(model.reply([{"role": "user", "content": prompt}], sampling).text)


def _normal(text: str) -> str:
    return content_key({"messages": [{"role": "user", "content": text}]})[0][1]


def _clean(output: str, source: str, prompt: str) -> _Outcome:
    """The first non-empty line of ``output`` without a label or quotes, if it passes."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    text = lines[0] if lines else ""
    for label in _LABELS:
        if text.lower().startswith(label):
            text = text[len(label):].strip()
    text = text.strip(_QUOTES).strip()
    if not text:
        return _Outcome(None, "empty output", output)
    if _normal(text) == _normal(source):
        return _Outcome(None, "same as the input", output)
    head = _normal(text)[:30]
    if len(head) >= 12 and head in _normal(prompt.replace(source, "")):
        return _Outcome(None, "repeated the instruction", output)
    if len(text) > MAX_LENGTH_RATIO * len(source):
        return _Outcome(None, f"more than {MAX_LENGTH_RATIO}x longer than the input", output)
    return _Outcome(text, "", output)


def _augment(examples: Iterable[dict], rewrite: Rewrite, method: str, variants: int,
             existing: Iterable[dict], report: Reporter,
             cancel: CancelToken | None) -> AugmentPreview:
    originals = {content_key(e) for e in existing}
    proposed: list[ProposedExample] = []
    rejected: list[Rejection] = []
    total = len(examples) if hasattr(examples, "__len__") else None
    for step, example in enumerate(examples, start=1):
        origin = _origin_id(example, step)
        originals.add(content_key(example))
        for variant in range(variants):
            if cancel is not None:
                cancel.check()
            messages, outcome = _rewrite_turns(example["messages"], rewrite, variant, origin)
            if messages is None:
                rejected.append(Rejection(origin, method, outcome.reason, outcome.output))
            else:
                proposed.append(ProposedExample(origin, method, _new_example(example, messages, method),
                                                outcome.reason))
        report(Progress("augment", step, total, {"proposed": float(len(proposed))},
                        f"{method}: {len(proposed)} new from {step} examples"))
    return _dedupe(proposed, rejected, originals)


def _rewrite_turns(messages: list[dict], rewrite: Rewrite, variant: int,
                   origin: int) -> tuple[list[dict] | None, _Outcome]:
    """New messages with rewritten user turns, or ``None`` and the first failure."""
    new, failed, notes = [], None, []
    for message in messages:
        outcome = rewrite(message["content"], variant, origin) if message["role"] == "user" else None
        if outcome is not None and outcome.text is None:
            failed = failed or outcome
        elif outcome is not None:
            notes.append(outcome.reason)
            message = {**message, "content": outcome.text}
        new.append(dict(message))
    if not notes:
        return None, failed or _Outcome(None, "no user turn")
    return new, _Outcome("", "; ".join(n for n in notes if n))


def _origin_id(example: dict, position: int) -> int:
    origin = example.get("id")
    if not isinstance(origin, int) or isinstance(origin, bool):
        raise DataError(f"example {position} of the selection has no integer 'id' (got "
                        f"{origin!r}); augment examples loaded from a stored dataset")
    return origin


def _new_example(source: dict, messages: list[dict], method: str) -> dict:
    tags = list(source.get("tags") or [])
    return {"messages": messages, "tags": tags + ([method] if method not in tags else []),
            "source_file": source.get("source_file"), "source_line": source.get("source_line"),
            "synthetic": True, "origin_id": source["id"]}


def _dedupe(proposed: list[ProposedExample], rejected: list[Rejection],
            originals: set[tuple]) -> AugmentPreview:
    kept, seen = [], set(originals)
    for item in proposed:
        key = content_key(item.example)
        if key in seen:
            why = "same as an original example" if key in originals else "same as another proposal"
            rejected.append(Rejection(item.origin_id, item.method, why))
        else:
            seen.add(key)
            kept.append(item)
    return AugmentPreview(tuple(kept), tuple(rejected))


def _copy(example: dict) -> dict:
    return {**example, "messages": [dict(m) for m in example["messages"]],
            "tags": list(example["tags"])}
