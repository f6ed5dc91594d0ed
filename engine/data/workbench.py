"""From a reviewed preview to a dataset version change (the dataset workbench's last step).

Every workbench operation (de-duplication, filters, personal-data scrubbing, augmentation,
splitting) first makes a preview that the user reviews; approving it turns the preview into a
:class:`VersionChange`: plain data saying which examples to leave out, which to replace, which
to add and which split labels to set. The caller (CLI or GUI) hands it to storage, which writes
a new immutable version in one transaction (``storage.create_version(db, dataset_id,
**change.as_kwargs())``), so the engine never touches the database and both front ends make
exactly the same versions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from engine.data.augment import AugmentPreview
from engine.data.dedupe import DedupePreview, ids_to_remove
from engine.data.filters import FilterPreview, apply_filters
from engine.data.pii import FindingKey, PiiPreview
from engine.data.pii import apply as apply_pii
from engine.data.splits import SplitConfig, SplitResult

#: Keys of an example dict that describe its place, not its content (dropped when an example is
#: replaced, so the stored copy gets fresh ones).
_PLACE_KEYS = ("id", "dataset_id", "position", "previous_id")


@dataclass(frozen=True)
class VersionChange:
    """A new dataset version, relative to its parent.

    Attributes:
        operation: the storage operation name (``dedupe``, ``filter``, ``scrub``, ``augment``,
            ``split``, ``tag``, ``edit``).
        description: one line for the version history, with counts.
        params: the operation's settings (JSON-able), so the step can be repeated.
        remove: ids of parent examples left out.
        replace: parent example id -> the new example dict that takes its place.
        append: new example dicts (with ``synthetic`` / ``origin_id`` / ``split`` as needed).
        splits: parent example id -> split label (``train``/``validation``/``test`` or ``None``).
    """

    operation: str
    description: str
    params: Mapping[str, Any] = field(default_factory=dict)
    remove: tuple[int, ...] = ()
    replace: Mapping[int, dict] = field(default_factory=dict)
    append: tuple[dict, ...] = ()
    splits: Mapping[int, str | None] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        """Whether the change would make a version identical to its parent."""
        return not (self.remove or self.replace or self.append or self.splits)

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``storage.create_version``."""
        return {"operation": self.operation, "description": self.description,
                "params": dict(self.params), "remove": list(self.remove),
                "replace": dict(self.replace), "append": list(self.append),
                "splits": dict(self.splits)}


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def dedupe_change(preview: DedupePreview, params: Mapping[str, Any], *,
                  keep_anyway: Iterable[int] = ()) -> VersionChange:
    """Leave out every duplicate the preview proposed, except ``keep_anyway``."""
    remove = ids_to_remove(preview, keep_anyway)
    exact = sum(1 for g in preview.exact_groups for i in g.removals if i in remove)
    text = (f"removed {_plural(exact, 'exact duplicate')} and "
            f"{_plural(len(remove) - exact, 'near duplicate')}")
    return VersionChange("dedupe", text, params, remove=tuple(sorted(remove)))


def filter_change(preview: FilterPreview, params: Mapping[str, Any], *,
                  keep_anyway: Iterable[int] = ()) -> VersionChange:
    """Leave out every example a filter rule flagged, except ``keep_anyway``."""
    kept = set(apply_filters(preview, keep_anyway))
    remove = tuple(i for i in preview.ids if i not in kept)
    rules = sorted({f.rule for f in preview.flags if f.example_id in set(remove)})
    text = f"filtered out {_plural(len(remove), 'example')}" + (
        f" ({', '.join(rules)})" if rules else "")
    return VersionChange("filter", text, params, remove=remove)


def scrub_change(examples: Iterable[dict], preview: PiiPreview, params: Mapping[str, Any], *,
                 skip: Iterable[FindingKey] = ()) -> VersionChange:
    """Replace personal data as previewed (less the ``skip``ped findings).

    Args:
        examples: the same examples (ids included) the preview was made from; streamed.
        preview: from :func:`engine.data.pii.preview`.
        params: the scrub settings.
        skip: finding keys the user rejected.

    Raises:
        DataError: an example changed since the preview (run the preview again).
    """
    skip = [tuple(k) for k in skip]
    replace = {e["id"]: _content(e) for e in apply_pii(examples, preview, skip=skip)}
    replaced = len(preview.findings) - len(skip)
    text = (f"replaced {_plural(replaced, 'personal-data finding')} in "
            f"{_plural(len(replace), 'example')} with placeholders")
    return VersionChange("scrub", text, params, replace=replace)


def augment_change(preview: AugmentPreview, params: Mapping[str, Any], *,
                   reject: Iterable[int] = (),
                   origin_splits: Mapping[int, str | None] | None = None) -> VersionChange:
    """Add the proposed synthetic examples, less those at the indexes in ``reject``.

    New examples are marked ``synthetic`` with their ``origin_id``. In a version that is
    already split (``origin_splits``: example id -> split label), a new example whose origin is
    in train is labelled train; any other gets no label, so it is never evaluated on and never
    trained on while its origin is held out (:mod:`engine.data.splits`).
    """
    rejected, origin_splits = set(reject), origin_splits or {}
    append = tuple({**_content(p.example), "synthetic": True, "origin_id": p.origin_id,
                    "split": "train" if origin_splits.get(p.origin_id) == "train" else None}
                   for i, p in enumerate(preview.proposed) if i not in rejected)
    methods = sorted({p.method for i, p in enumerate(preview.proposed) if i not in rejected})
    text = f"added {_plural(len(append), 'synthetic example')}" + (
        f" ({', '.join(methods)})" if methods else "")
    return VersionChange("augment", text, params, append=append)


def split_change(result: SplitResult, config: SplitConfig) -> VersionChange:
    """Set every example's split label as ``result`` assigns it.

    Synthetic examples whose origin went to validation or test get no label: they are neither
    trained on nor evaluated.
    """
    splits: dict[int, str | None] = dict(result.assignment)
    splits.update({i: None for i in result.excluded_synthetic})
    counts = ", ".join(f"{name} {result.counts.get(name, 0):,}"
                       for name in ("train", "validation", "test"))
    text = f"split: {counts}" + (
        f"; {len(result.excluded_synthetic)} synthetic left out" if result.excluded_synthetic
        else "")
    params = {"validation_fraction": config.validation_fraction,
              "test_fraction": config.test_fraction, "seed": config.seed,
              "stratify": config.stratify, "tag_prefix": config.tag_prefix}
    return VersionChange("split", text, params, splits=splits)


def _content(example: dict) -> dict:
    return {k: v for k, v in example.items() if k not in _PLACE_KEYS}


@dataclass(frozen=True)
class TextTools:
    """What token counts, statistics and the template preview need from a base model."""

    tokenizer: Any
    template: Any
    special: Any


def load_text_tools(model_dir: str | Path, *, template: str | None = None,
                    allow_custom_code: bool = False) -> TextTools:
    """Load a base model's tokenizer (local files only) and resolve its chat template and
    special tokens exactly as training does.

    Raises:
        ModelLoadError: the tokenizer files are missing or unreadable.
        ConfigError: an unknown template name.
    """
    from engine.templates import resolve_template
    from engine.tokens import prepare_tokenizer, special_tokens_for
    from engine.train_model import load_tokenizer

    tokenizer = load_tokenizer(Path(model_dir), allow_custom_code)
    prepare_tokenizer(tokenizer)
    chosen = resolve_template(tokenizer, template)
    return TextTools(tokenizer, chosen, special_tokens_for(model_dir, tokenizer, chosen))


def train_validation_rows(rows: list[dict], *, validation_fraction: float,
                          seed: int) -> tuple[list[dict], list[dict]]:
    """The (train, validation) examples of one dataset version, as training uses them.

    A version with split labels (made by a split operation) is used as labelled; test rows are
    held back from both. Rows without a label in such a version were added after the split:
    a synthetic one follows its origin (trained on only if the origin is in train), any other
    is trained on. Otherwise the seeded split of ``validation_fraction`` is drawn here
    (:func:`engine.data.cleaning.split_examples`, the split every run before versions used);
    when the version has synthetic examples, :func:`engine.data.splits.split_dataset` is used
    instead, so they follow their origin and never reach validation.

    Args:
        rows: the version's examples in order, with ``id``, ``split`` and ``synthetic``.
        validation_fraction: share held out when the version has no split labels.
        seed: the split's seed (training uses its own seed).

    Returns:
        ``(train, validation)`` lists in the version's order.
    """
    from engine.data.cleaning import split_examples
    from engine.data.splits import partition, split_dataset

    if any(r.get("split") for r in rows):
        by_id = {r.get("id"): r for r in rows}
        labels = [r.get("split") or _late_split(r, by_id) for r in rows]
        return ([r for r, s in zip(rows, labels) if s == "train"],
                [r for r, s in zip(rows, labels) if s == "validation"])
    if not any(r.get("synthetic") for r in rows):
        return split_examples(rows, validation_fraction=validation_fraction, seed=seed)
    config = SplitConfig(validation_fraction=validation_fraction, seed=seed)
    parts = partition(rows, split_dataset(rows, config))
    return parts["train"], parts["validation"]


def _late_split(row: dict, by_id: Mapping[Any, dict]) -> str | None:
    """The split of a row added to an already split version (see
    :func:`train_validation_rows`): ``"train"``, or ``None`` when it must be left out."""
    seen = set()
    while row.get("synthetic") and row.get("origin_id") in by_id and row["id"] not in seen:
        seen.add(row["id"])
        row = by_id[row["origin_id"]]
    if row.get("synthetic"):
        return "train"  # its origin is gone: nothing it could leak into
    return "train" if row.get("split") in (None, "train") else None
