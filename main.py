"""Tunesmith: composition root and headless CLI.

``python main.py`` with no arguments opens the desktop app; with a subcommand it runs the same
engine headless (``python main.py --help``; README.md lists every command). This is the only
module that wires ``engine`` and ``storage`` together, and the CLI path never imports Qt.

Exit codes: 0 success, 1 a job failed, 2 bad input or configuration, 3 something named was
not found, 130 cancelled (Ctrl-C).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import storage
from engine import configs_cli
from engine.errors import Cancelled, ConfigError, DataError, EngineError
from engine.progress import CancelToken, Progress, Reporter

# Offline always: no library may reach a model hub at run time; progress is ours to show.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOT_FOUND, EXIT_CANCELLED = 0, 1, 2, 3, 130
BUILTIN_MODEL = "gemma-3-270m"
QUANTS = ("f16", "bf16", "q8_0", "q4_k_m", "q5_k_m", "q6_k")


# ----------------------------------------------------------------------------- output

class Console:
    """Prints results as text or JSON, and progress as bars (stderr) or JSON lines (stderr)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._bar: Any = None
        self._stage = ""

    def result(self, data: Any, text: str | None = None) -> None:
        """Print the command's result: ``data`` as JSON with ``--json``, else ``text``."""
        self.close_bar()
        if self.as_json:
            print(json.dumps(_jsonable(data), ensure_ascii=False, default=str, indent=2))
        elif text is not None:
            print(text)

    def info(self, message: str) -> None:
        """A human-readable status line on stderr (suppressed with ``--json``)."""
        if not self.as_json:
            self.close_bar()
            print(message, file=sys.stderr, flush=True)

    def progress(self, event: Progress) -> None:
        """The :data:`Reporter` for engine jobs."""
        if self.as_json:
            line = {"stage": event.stage, "step": event.step, "total": event.total,
                    "metrics": event.metrics, "message": event.message}
            print(json.dumps(line, ensure_ascii=False), file=sys.stderr, flush=True)
            return
        if event.total:
            self._update_bar(event)
        elif event.message:
            self.info(f"[{event.stage}] {event.message}")

    def _update_bar(self, event: Progress) -> None:
        from tqdm import tqdm

        if self._bar is None or event.stage != self._stage or self._bar.total != event.total:
            self.close_bar()
            self._bar = tqdm(total=event.total, desc=event.stage, file=sys.stderr,
                             dynamic_ncols=True, leave=True)
            self._stage = event.stage
        self._bar.n = min(event.step, event.total)
        shown = {k: f"{v:.4g}" for k, v in event.metrics.items()
                 if k in ("loss", "eval_loss", "learning_rate", "tokens_per_second")}
        self._bar.set_postfix(shown, refresh=False)
        self._bar.refresh()

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table of ``rows`` showing ``columns``."""
    if not rows:
        return "(none)"
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = "" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@contextlib.contextmanager
def cancel_on_sigint(console: Console) -> Iterator[CancelToken]:
    """A :class:`CancelToken` set by the first Ctrl-C; a second Ctrl-C aborts at once."""
    token = CancelToken()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        console.info("Cancelling after the current step (Ctrl-C again to abort)...")
        token.cancel()

    signal.signal(signal.SIGINT, handler)
    try:
        yield token
    finally:
        signal.signal(signal.SIGINT, previous)


# ----------------------------------------------------------------------------- context

class App:
    """What every command needs: the data dir, the database, output, cancellation."""

    def __init__(self, args: argparse.Namespace, console: Console, cancel: CancelToken) -> None:
        self.args = args
        self.console = console
        self.cancel = cancel
        self.root = storage.ensure_layout(storage.data_dir(args.data_dir))
        self.db = storage.open_database(self.root)
        storage.mark_interrupted_runs(self.db)

    @property
    def report(self) -> Reporter:
        return self.console.progress

    def path(self, name: str) -> Path:
        """A subfolder of the data dir (``models``, ``runs``, ``exports``, ``cache``)."""
        return storage.subdir(self.root, name)


# ----------------------------------------------------------------------------- datasets

def cmd_datasets_import(app: App) -> int:
    from engine.data.cleaning import unique_examples
    from engine.data.importer import ImportResult, stream_import

    a = app.args
    column_map = _parse_mapping(a.column_map) if a.column_map else None
    result, removed = ImportResult(format=""), [0]
    # Streamed from the file into one transaction: a bad row (under "refuse") or Ctrl-C rolls
    # the whole import back, and 100,000 conversations never sit in memory at once.
    examples = stream_import(a.file, result, format=a.format, policy=a.policy,
                             column_map=column_map, report=app.report, cancel=app.cancel)
    if a.dedupe:
        examples = unique_examples(examples, removed)
    name = a.name or Path(a.file).stem
    dataset = storage.create_dataset(
        app.db, name, examples, description=a.description or "",
        params={"file": str(Path(a.file).resolve()), "format": a.format, "policy": a.policy,
                "dedupe": bool(a.dedupe)})
    removed = removed[0]
    imported = dataset["example_count"]
    summary = {"dataset": dataset, "format": result.format, "imported": imported,
               "skipped": result.skipped, "duplicates": result.duplicates,
               "duplicates_removed": removed,
               "issues": [vars(i) if hasattr(i, "__dict__") else i for i in result.issues]}
    lines = [f"Imported {imported} examples into dataset '{dataset['name']}' "
             f"(format: {result.format}; skipped {result.skipped}, duplicates {result.duplicates}, "
             f"removed {removed})"]
    lines += [f"  line {i.line}: {i.reason}" for i in result.issues[:20]]
    app.console.result(summary, "\n".join(lines))
    return EXIT_OK


def _parse_mapping(text: str) -> dict[str, str]:
    mapping = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"--column-map: expected role=column pairs, got {part!r}")
        mapping[key.strip()] = value.strip()
    return mapping


def cmd_datasets_list(app: App) -> int:
    rows = storage.list_datasets(app.db)
    app.console.result(rows, table(rows, ["id", "name", "example_count", "created", "content_hash"]))
    return EXIT_OK


def cmd_datasets_show(app: App) -> int:
    dataset = find_dataset(app.db, app.args.dataset)
    examples = list(itertools.islice(_selected(app, dataset), app.args.limit))
    text = [f"{dataset['name']}: {dataset['example_count']} examples, hash {dataset['content_hash']}"]
    for ex in examples:
        text.append(f"--- #{ex['id']} {' '.join(ex.get('tags') or [])}")
        text += [f"{m['role']:>9}: {m['content']}" for m in ex["messages"]]
    app.console.result({"dataset": dataset, "examples": examples}, "\n".join(text))
    return EXIT_OK


def cmd_datasets_export(app: App) -> int:
    from engine.data import export_jsonl

    dataset = find_dataset(app.db, app.args.dataset)
    examples = list(_selected(app, dataset))
    export_jsonl(examples, app.args.out)
    app.console.result({"path": str(app.args.out), "examples": len(examples)},
                       f"Wrote {len(examples)} examples to {app.args.out}")
    return EXIT_OK


def _selected(app: App, dataset: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The examples of a version (--version N, default the head), optionally only one split
    (--split) and/or those carrying a tag (--tag)."""
    version_id = storage.resolve_version(app.db, dataset["id"], app.args.version)
    for example in storage.iter_examples(app.db, dataset["id"], version_id=version_id,
                                         split=app.args.split):
        if app.args.tag is None or app.args.tag in example["tags"]:
            yield example


def cmd_datasets_delete(app: App) -> int:
    dataset = find_dataset(app.db, app.args.dataset)
    storage.delete_dataset(app.db, dataset["id"])
    app.console.result({"deleted": dataset["name"], "id": dataset["id"]},
                       f"Deleted dataset '{dataset['name']}' (id {dataset['id']}, "
                       f"{dataset['example_count']} examples in its current version)")
    return EXIT_OK


def _id_or_name(text: str) -> int | str:
    return int(text) if str(text).isdigit() else text


def find_dataset(db: Any, ref: str | int) -> dict[str, Any]:
    """A dataset by name, else by id: a dataset *named* "2" wins over the one with id 2.

    Raises:
        NotFound: neither a name nor an id matches.
    """
    try:
        return storage.get_dataset(db, str(ref))
    except storage.NotFound:
        if str(ref).isdigit():
            return storage.get_dataset(db, int(ref))
        raise

# ----------------------------------------------------------------------------- dataset workbench
# Every operation previews by default and makes a new dataset version only with --apply.

def _head_rows(app: App) -> tuple[dict[str, Any], Callable[[], Iterator[dict[str, Any]]]]:
    """The dataset and a function that streams its head version's examples from SQLite (each
    call a fresh pass), so operations over 100,000 examples never hold them all at once."""
    dataset = find_dataset(app.db, app.args.dataset)
    return dataset, lambda: storage.iter_examples(app.db, dataset["id"])


def _config(cls: type, app: App, **extra: Any) -> Any:
    from engine.configs import from_dict

    return from_dict(cls, {**configs_cli.config_overrides(cls, app.args), **extra})


def _finish_operation(app: App, dataset: dict[str, Any], change: Any, preview: Any,
                      lines: list[str]) -> int:
    """Print the preview; with --apply (and something to change) store the new version."""
    version = None
    if change.is_empty:
        lines.append("Nothing to change.")
    elif app.args.apply:
        try:
            version = storage.create_version(app.db, dataset["id"], **change.as_kwargs())
        except storage.NothingChanged as nothing:
            lines.append(f"{nothing}.")
            return _print_operation(app, dataset, change, preview, lines, None)
        lines.append(f"Made version {version['number']} of '{dataset['name']}': "
                     f"{version['description']} ({version['example_count']} examples; "
                     f"undo with `main.py datasets undo {dataset['name']}`)")
    else:
        lines.append(f"Preview only; --apply would make a new version: {change.description}.")
    return _print_operation(app, dataset, change, preview, lines, version)


def _print_operation(app: App, dataset: dict[str, Any], change: Any, preview: Any,
                     lines: list[str], version: dict[str, Any] | None) -> int:
    app.console.result({"dataset": dataset["name"], "preview": _jsonable(preview),
                        "change": change.description, "version": version}, "\n".join(lines))
    return EXIT_OK


def _text_tools(app: App, model: str | None) -> Any:
    from engine.data.workbench import load_text_tools

    base = ensure_base_model(app, model)
    return load_text_tools(base["path"], template=getattr(app.args, "template", None))


def cmd_datasets_versions(app: App) -> int:
    dataset = find_dataset(app.db, app.args.dataset)
    rows = [{**v, "head": "*" if v["id"] == dataset["head_version_id"] else "",
             "hash": v["content_hash"][:12]} for v in storage.list_versions(app.db, dataset["id"])]
    app.console.result(rows, table(rows, ["head", "number", "operation", "example_count",
                                          "hash", "created", "description"]))
    return EXIT_OK


def cmd_datasets_diff(app: App) -> int:
    dataset = find_dataset(app.db, app.args.dataset)
    old, new = (storage.resolve_version(app.db, dataset["id"], n) for n in (app.args.old, app.args.new))
    diff = storage.diff_versions(app.db, old, new)
    lines = [f"version {app.args.old} -> {app.args.new}: " + ", ".join(
        f"{n} {kind}" for kind, n in diff["counts"].items())]
    for kind, ids in (("added", diff["added"]), ("removed", diff["removed"])):
        for example_id in ids[:app.args.limit]:
            lines.append(f"{'+' if kind == 'added' else '-'} #{example_id} "
                         f"{_first_user(storage.get_example(app.db, example_id))}")
    for old_id, new_id in diff["changed"][:app.args.limit]:
        lines.append(f"~ #{old_id} -> #{new_id} "
                     f"{_first_user(storage.get_example(app.db, new_id))}")
    app.console.result(diff, "\n".join(lines))
    return EXIT_OK


def _first_user(example: dict[str, Any]) -> str:
    text = next((m["content"] for m in example["messages"] if m["role"] == "user"), "")
    return text if len(text) <= 70 else text[:67] + "..."


def cmd_datasets_undo(app: App) -> int:
    dataset = find_dataset(app.db, app.args.dataset)
    version = storage.undo(app.db, dataset["id"])
    app.console.result(version, f"'{dataset['name']}' is back at version {version['number']} "
                                f"({version['example_count']} examples)")
    return EXIT_OK


def cmd_datasets_checkout(app: App) -> int:
    dataset = find_dataset(app.db, app.args.dataset)
    version = storage.checkout(app.db, dataset["id"], app.args.number)
    app.console.result(version, f"'{dataset['name']}' now uses version {version['number']} "
                                f"({version['example_count']} examples)")
    return EXIT_OK


def cmd_datasets_dedupe(app: App) -> int:
    from engine.configs import to_dict
    from engine.data.dedupe import DedupeConfig, describe, find_duplicates
    from engine.data.workbench import dedupe_change

    dataset, rows = _head_rows(app)
    config = _config(DedupeConfig, app)
    preview = find_duplicates(rows(), config, total=dataset["example_count"], report=app.report,
                              cancel=app.cancel)
    _check_keep(app.args.keep, {i for g in preview.groups for i in g.removals})
    change = dedupe_change(preview, to_dict(config), keep_anyway=app.args.keep or ())
    lines = [f"{len(preview.exact_groups)} exact and {len(preview.near_groups)} near-duplicate "
             f"groups in {preview.scanned} examples"]
    lines += [describe(g) for g in preview.groups[:app.args.limit]]
    return _finish_operation(app, dataset, change, preview, lines)


def cmd_datasets_filter(app: App) -> int:
    from engine.configs import to_dict
    from engine.data.filters import FilterConfig, preview_filters
    from engine.data.workbench import filter_change

    dataset, rows = _head_rows(app)
    config = _config(FilterConfig, app)
    tools = _text_tools(app, app.args.model) if config.needs_tokenizer else None
    preview = preview_filters(rows(), config, tokenizer=tools and tools.tokenizer,
                              template=tools and tools.template, special=tools and tools.special,
                              total=dataset["example_count"], report=app.report, cancel=app.cancel)
    _check_keep(app.args.keep, preview.dropped)
    change = filter_change(preview, to_dict(config), keep_anyway=app.args.keep or ())
    lines = [f"{len(preview.dropped)} of {dataset['example_count']} examples flagged"
             + (f"; {preview.truncated} would be truncated at {config.max_length} tokens"
                if config.max_length else "")]
    lines += [f"#{f.example_id} {f.rule}: {f.reason}" for f in preview.flags[:app.args.limit]]
    return _finish_operation(app, dataset, change, preview, lines)


def cmd_datasets_scrub(app: App) -> int:
    from engine.configs import to_dict
    from engine.data import pii
    from engine.data.workbench import scrub_change

    dataset, rows = _head_rows(app)
    names = (tuple(n.strip() for n in _read_text(app.args.names_file, "--names-file").splitlines()
                   if n.strip()) if app.args.names_file else None)
    config = _config(pii.PiiConfig, app, **({"names": names} if names else {}))
    preview = pii.preview(rows(), config, report=app.report, cancel=app.cancel)
    skip = _skip_keys(app.args.skip_file) if app.args.skip_file else []
    change = scrub_change(rows(), preview, to_dict(config), skip=skip)
    lines = [f"{len(preview.findings)} findings in {preview.examples_scanned} examples: "
             + ", ".join(f"{k} {n}" for k, n in preview.counts.items())]
    skipped = {tuple(k) for k in skip}
    lines += [f"[{f.example_id}, {f.message_index}, {f.start}] {f.kind}: {f.text!r} -> "
              + ("kept (skipped)" if f.key in skipped else f.placeholder)
              for f in preview.findings[:app.args.limit]]
    lines.append("To keep a finding's text, list its [example, message, start] key in a JSON "
                 "file and pass --skip-file FILE.")
    return _finish_operation(app, dataset, change, preview, lines)


def _check_keep(keep: list[int] | None, proposed: set[int]) -> None:
    unknown = sorted(set(keep or ()) - proposed)
    if unknown:
        raise DataError(f"--keep {' '.join(map(str, unknown))}: not among the examples this "
                        "preview would remove; run it without --keep to see their ids")


def _read_text(path: str, option: str) -> str:
    """A UTF-8 text file named on the command line; a clear error when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{option} {path}: cannot read it ({error})") from None


def _skip_keys(path: str) -> list[tuple[int, int, int]]:
    """The ``--skip-file``: a JSON list of ``[example_id, message_index, start]`` keys."""
    try:
        keys = json.loads(_read_text(path, "--skip-file"))
    except json.JSONDecodeError as error:
        raise DataError(f"--skip-file {path}: not JSON ({error})") from None
    if not isinstance(keys, list) or not all(
            isinstance(k, list) and len(k) == 3 and all(isinstance(n, int) for n in k)
            for k in keys):
        raise DataError(f"--skip-file {path}: expected a JSON list of [example_id, "
                        "message_index, start] keys, as listed by the preview, e.g. [[3, 0, 12]]")
    return [tuple(k) for k in keys]


def _augment(app: App, make: Callable[[list[dict], Iterator[dict]], Any], params: dict) -> int:
    from engine.data.workbench import augment_change

    dataset, rows = _head_rows(app)
    chosen = [r for r in rows() if not r["synthetic"]
              and (not app.args.tag or app.args.tag in r["tags"])][:app.args.count]
    preview = make(chosen, rows())
    change = augment_change(preview, params,
                            origin_splits={r["id"]: r["split"] for r in rows() if r["split"]})
    lines = [f"{len(preview.proposed)} new examples proposed from {len(chosen)}; "
             f"{len(preview.rejected)} variants rejected"]
    for p in preview.proposed[:app.args.limit]:
        lines.append(f"#{p.origin_id} {p.method}: {_first_user(p.example)}")
    return _finish_operation(app, dataset, change, preview, lines)


def cmd_datasets_paraphrase(app: App) -> int:
    from engine.configs import to_dict
    from engine.data.augment import ParaphraseConfig, paraphrase_examples

    config = _config(ParaphraseConfig, app)
    return _augment(app, lambda chosen, rows: paraphrase_examples(
        chosen, config, existing=rows, report=app.report, cancel=app.cancel), to_dict(config))


def cmd_datasets_backtranslate(app: App) -> int:
    from engine.configs import to_dict
    from engine.data.augment import BackTranslationConfig, back_translate_examples

    config = _config(BackTranslationConfig, app)
    return _augment(app, lambda chosen, rows: back_translate_examples(
        chosen, config, existing=rows, report=app.report, cancel=app.cancel), to_dict(config))


def cmd_datasets_synonyms(app: App) -> int:
    from engine.configs import to_dict
    from engine.data.augment import SynonymConfig, synonym_examples

    config = _config(SynonymConfig, app)
    return _augment(app, lambda chosen, rows: synonym_examples(
        chosen, config, existing=rows, report=app.report, cancel=app.cancel), to_dict(config))


def cmd_datasets_split(app: App) -> int:
    from engine.data.dedupe import DedupeConfig, describe, find_leakage
    from engine.data.splits import SplitConfig, split_dataset
    from engine.data.workbench import split_change

    dataset, rows = _head_rows(app)
    config = _config(SplitConfig, app)
    result = split_dataset(rows(), config, report=app.report, cancel=app.cancel)
    change = split_change(result, config)
    split_rows = ({**r, "split": result.assignment[r["id"]]} for r in rows()
                  if r["id"] in result.assignment)
    leaks = find_leakage(split_rows, DedupeConfig(), total=len(result.assignment),
                         cancel=app.cancel)
    lines = [change.description,
             f"leakage check: {len(leaks)} duplicate groups cross splits"
             + (" (run `datasets dedupe` first)" if leaks else "")]
    lines += [f"  {describe(g)} splits {', '.join(g.splits or ())}" for g in leaks[:app.args.limit]]
    return _finish_operation(app, dataset, change, {"split": result, "leaks": leaks}, lines)


def cmd_datasets_stats(app: App) -> int:
    from engine.data.stats import StatsConfig, dataset_stats

    dataset, rows = _head_rows(app)
    tools = _text_tools(app, app.args.model) if app.args.tokens else None
    stats = dataset_stats(rows(), tokenizer=tools and tools.tokenizer, template=tools and tools.template,
                          special=tools and tools.special, config=_config(StatsConfig, app),
                          report=app.report, cancel=app.cancel)
    splits = dict(collections.Counter(r["split"] or "none" for r in rows()))
    lines = [f"{stats.examples} examples, {stats.turns} turns; roles: "
             + ", ".join(f"{r} {n}" for r, n in stats.turns_by_role.items()),
             f"synthetic: {stats.synthetic} ({stats.synthetic_share:.1%}); untagged {stats.untagged}",
             "splits: " + ", ".join(f"{name} {n}" for name, n in splits.items()),
             "tags: " + (", ".join(f"{t} {n}" for t, n in stats.tags.items()) or "none")]
    if stats.tokens is not None:
        t = stats.tokens
        lines.append(f"tokens: min {t.lengths.min}, median {t.lengths.median:g}, "
                     f"max {t.lengths.max}; {t.too_long} longer than {t.max_length}")
        width = max((c for _, _, c in t.histogram), default=1)
        lines += [f"  {lo:>6}-{hi:<6} {c:>7} {'#' * round(40 * c / width)}"
                  for lo, hi, c in t.histogram]
    app.console.result({**_jsonable(stats), "splits": splits}, "\n".join(lines))
    return EXIT_OK


def cmd_datasets_template(app: App) -> int:
    from engine.data.preview import merge_spans, preview_example

    dataset = find_dataset(app.db, app.args.dataset)
    example = next(storage.iter_examples(app.db, dataset["id"], offset=app.args.example - 1,
                                         limit=1), None)
    if example is None:
        raise storage.NotFound(f"'{dataset['name']}' has no example {app.args.example}")
    tools = _text_tools(app, app.args.model)
    shown = preview_example(tools.tokenizer, example["messages"], template=tools.template,
                            special=tools.special)
    body = "".join(f"[[{text}]]" if trained else text for text, trained in merge_spans(shown.tokens))
    app.console.result(shown, f"template {shown.template.name}: {shown.n_trained} trained tokens "
                              f"[[in brackets]], {shown.n_masked} masked\n{body}")
    return EXIT_OK


def cmd_datasets_tag(app: App) -> int:
    dataset = find_dataset(app.db, app.args.dataset)
    ids = storage.search_ids(app.db, dataset["id"], app.args.search)
    if not ids:
        raise DataError(f"no example of '{dataset['name']}' matches {app.args.search!r}")
    try:
        version = storage.tag_examples(app.db, dataset["id"], ids, add=app.args.add or (),
                                       remove=app.args.remove or ())
    except storage.NothingChanged:
        app.console.result({"version": None}, f"Nothing to change: the {len(ids)} matching "
                           "examples already have these tags.")
        return EXIT_OK
    app.console.result(version, f"Made version {version['number']}: {version['description']}")
    return EXIT_OK


def cmd_datasets_tags(app: App) -> int:
    dataset = find_dataset(app.db, app.args.dataset)
    rows = [{"tag": t, "examples": n} for t, n in storage.tag_counts(app.db, dataset["id"]).items()]
    app.console.result(rows, table(rows, ["tag", "examples"]) if rows else "no tags")
    return EXIT_OK


# ----------------------------------------------------------------------------- models

def ensure_base_model(app: App, name: str | None) -> dict[str, Any]:
    """The base model record named ``name`` (default: the built-in Gemma 3 270M, imported once)."""
    name = name or BUILTIN_MODEL
    with contextlib.suppress(storage.NotFound):
        record = storage.get_base_model(app.db, _id_or_name(name))
        if Path(record["path"]).is_dir():
            return record
    if name != BUILTIN_MODEL:
        raise storage.NotFound(f"no base model named {name!r}; add it with `main.py models add PATH`")
    from engine.gguf_import import builtin_base_model

    app.console.info("Preparing the built-in base model Gemma 3 270M (first use only)...")
    path = builtin_base_model(app.path("models"), report=app.report, cancel=app.cancel)
    return _register_model(app, path, BUILTIN_MODEL, source="builtin")


def _register_model(app: App, path: Path, name: str, *, source: str,
                    allow_custom_code: bool = False) -> dict[str, Any]:
    from engine.models import inspect_model

    info = inspect_model(path, allow_custom_code=allow_custom_code)
    record = _jsonable(info)
    record["special_tokens"] = record.pop("special", {})
    record.update(name=name, path=str(path), source=source)
    return storage.register_base_model(app.db, record, replace=True)


def cmd_models_add(app: App) -> int:
    from engine.gguf_import import import_gguf_model

    src = Path(app.args.path).expanduser()
    name = app.args.name or src.stem
    if src.suffix.lower() == ".gguf":
        app.console.info(f"Importing {src.name} (dequantizing into a Hugging Face folder)...")
        folder = import_gguf_model(src, app.path("models") / name, report=app.report, cancel=app.cancel)
        record = _register_model(app, folder, name, source="gguf")
    else:
        record = _register_model(app, src, name, source="hf-folder",
                                 allow_custom_code=app.args.allow_custom_code)
    app.console.result(record, f"Added base model '{record['name']}' ({record['architecture']}, "
                               f"{record['parameter_count']:,} parameters)")
    return EXIT_OK


def cmd_models_list(app: App) -> int:
    rows = storage.list_base_models(app.db)
    app.console.result(rows, table(rows, ["id", "name", "architecture", "parameter_count",
                                          "dtype", "context_length", "path"]))
    return EXIT_OK


def cmd_models_show(app: App) -> int:
    record = (ensure_base_model(app, app.args.model) if app.args.model in (None, BUILTIN_MODEL)
              else storage.get_base_model(app.db, _id_or_name(app.args.model)))
    text = "\n".join(f"{k:>16}: {v}" for k, v in record.items())
    app.console.result(record, text)
    return EXIT_OK


def _jsonable(obj: Any) -> Any:
    """Dataclasses, paths and tuples as plain JSON values."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ----------------------------------------------------------------------------- jobs

class MetricRecorder:
    """A :data:`Reporter` that stores each event's metrics for a run, then forwards it."""

    STAGES = ("train", "eval")

    def __init__(self, app: App, run_id: int) -> None:
        self.app, self.run_id = app, run_id

    def __call__(self, event: Progress) -> None:
        if event.stage in self.STAGES and event.metrics:
            storage.add_metrics(self.app.db, self.run_id,
                                [(event.step, k, v) for k, v in event.metrics.items()])
        self.app.console.progress(event)


def run_job(app: App, run: dict[str, Any], job: Callable[[], Any]) -> Any:
    """Run ``job`` for the run record ``run``; finish the record as succeeded/failed/cancelled."""
    try:
        result = job()
    except Cancelled:
        storage.finish_run(app.db, run["id"], "cancelled")
        raise
    except BaseException as exc:
        storage.finish_run(app.db, run["id"], "failed", error=_message(exc))
        raise
    storage.finish_run(app.db, run["id"], "succeeded")
    return result


def unique_dir(parent: Path, prefix: str) -> Path:
    """A new, not yet existing folder ``parent/<prefix>-<UTC timestamp>[-n]``."""
    import datetime

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    candidate, n = parent / f"{prefix}-{stamp}", 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{prefix}-{stamp}-{n}"
    return candidate


def _add_file_artifact(app: App, run_id: int, kind: str, path: Path, meta: dict | None = None) -> None:
    sha = storage.file_sha256(path) if path.is_file() else None
    storage.add_artifact(app.db, run_id, kind, path, sha256=sha, meta=meta)


# ----------------------------------------------------------------------------- train

def train_config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Any:
    """A validated ``TrainConfig``: ``base`` values (a stored run's) overridden by CLI options."""
    from engine.configs import from_dict
    from engine.train_config import TrainConfig

    values = dict(base or {})
    values.update(configs_cli.config_overrides(TrainConfig, args))
    return from_dict(TrainConfig, values)


def do_train(app: App, dataset_ref: int | str, model: str | None, config: Any, *,
             validation_fraction: float, name: str | None = None,
             resume_from: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
    """Train a LoRA adapter on a stored dataset; returns (run record, ``TrainResult``)."""
    from engine.configs import to_dict
    from engine.train import train_lora

    dataset = storage.get_dataset(app.db, dataset_ref)
    base = ensure_base_model(app, model)
    version_id = (resume_from or {}).get("dataset_version_id") or dataset["head_version_id"]
    train_rows, val_rows = training_rows(app, dataset["id"], version_id,
                                         validation_fraction=validation_fraction, seed=config.seed)
    out = (Path(resume_from["config"]["output_dir"]) if resume_from
           else unique_dir(app.path("runs"), "train"))
    run_config = {"train": to_dict(config), "validation_fraction": validation_fraction,
                  "base_model": base["name"], "base_model_path": base["path"], "output_dir": str(out)}
    run = storage.start_run(app.db, "train", run_config, base_model_id=base["id"],
                            dataset_id=dataset["id"], dataset_version_id=version_id, name=name,
                            parent_run_id=resume_from and resume_from["id"])
    number = storage.get_version(app.db, version_id)["number"]
    app.console.info(f"Run {run['id']}: {len(train_rows)} training / {len(val_rows)} validation "
                     f"conversations from '{dataset['name']}' version {number} on {base['name']}"
                     f" -> {out}")
    try:
        result = run_job(app, run, lambda: train_lora(
            config, base["path"], train_rows, val_rows, out, resume=resume_from is not None,
            report=MetricRecorder(app, run["id"]), cancel=app.cancel))
    except Cancelled:
        if (out / "adapter").is_dir():  # cancel leaves a usable adapter: keep it findable
            _add_file_artifact(app, run["id"], "adapter", out / "adapter", meta={"partial": True})
        raise
    _add_file_artifact(app, run["id"], "adapter", Path(result.adapter_dir),
                       meta={"template": result.template.name,
                             "template_source": result.template.source})
    return storage.get_run(app.db, run["id"]), result


def cmd_train(app: App) -> int:
    a = app.args
    if a.resume:
        previous = storage.get_run(app.db, a.resume)
        if previous["kind"] != "train":
            raise ConfigError(f"--resume {a.resume}: run {a.resume} is a {previous['kind']} run, not train")
        config = train_config_from_args(a, previous["config"]["train"])
        run, result = do_train(app, previous["dataset_id"], previous["config"]["base_model"], config,
                               validation_fraction=previous["config"]["validation_fraction"],
                               name=a.name or previous["name"], resume_from=previous)
    else:
        if not a.dataset:
            raise ConfigError("train: --dataset NAME is required (or --resume RUN_ID)")
        config = train_config_from_args(a)
        run, result = do_train(app, find_dataset(app.db, a.dataset)["id"], a.model, config,
                               validation_fraction=a.validation_fraction, name=a.name)
    summary = {"run": run, "adapter_dir": str(result.adapter_dir), "steps": result.steps_done,
               "train_loss": result.final_train_loss, "eval_loss": result.final_eval_loss,
               "tokens_per_second": result.tokens_per_second, "precision": result.precision,
               "device": result.device}
    app.console.result(summary, f"Run {run['id']} finished: {result.steps_done} steps, "
                                f"train loss {result.final_train_loss}, eval loss "
                                f"{result.final_eval_loss}; adapter in {result.adapter_dir}")
    return EXIT_OK


# ----------------------------------------------------------------------------- merge / export

def _train_run(app: App, run_id: int) -> dict[str, Any]:
    run = storage.get_run(app.db, run_id)
    if run["kind"] != "train":
        raise ConfigError(f"run {run_id} is a {run['kind']} run; give a train run id")
    adapters = storage.list_artifacts(app.db, run_id, kind="adapter")
    if not adapters:
        raise storage.NotFound(f"train run {run_id} has no adapter (status {run['status']}); "
                               f"resume it with `main.py train --resume {run_id}`")
    run["adapter_dir"] = adapters[-1]["path"]
    return run


def do_merge(app: App, train_run_id: int) -> tuple[dict[str, Any], Any]:
    """Merge a train run's adapter into its base; returns (merge run record, ``MergeResult``)."""
    from engine.merge import merge_adapter

    train = _train_run(app, train_run_id)
    out = unique_dir(app.path("models"), f"merged-run{train_run_id}")
    run = storage.start_run(app.db, "merge", {"adapter_dir": train["adapter_dir"],
                                              "base_model_path": train["config"]["base_model_path"],
                                              "output_dir": str(out)},
                            base_model_id=train["base_model_id"], dataset_id=train["dataset_id"],
                            dataset_hash=train["dataset_hash"], parent_run_id=train_run_id)
    result = run_job(app, run, lambda: merge_adapter(
        train["config"]["base_model_path"], train["adapter_dir"], out,
        report=app.report, cancel=app.cancel))
    storage.add_metrics(app.db, run["id"], [(0, "max_logit_diff", result.max_logit_diff)])
    _add_file_artifact(app, run["id"], "merged", Path(result.path), meta={"dtype": result.dtype})
    artifact = storage.list_artifacts(app.db, run["id"], kind="merged")[0]
    if verify_settings(app) is not None:
        _verify_and_store(app, train, artifact, lambda ref, rows: _verify_merged(
            train, Path(result.path), result.dtype, ref, rows, app))
    return storage.get_run(app.db, run["id"]), result


def cmd_merge(app: App) -> int:
    run, result = do_merge(app, app.args.run)
    meta = storage.list_artifacts(app.db, run["id"], kind="merged")[0]["meta"] or {}
    report = meta.get("verification")
    app.console.result({"run": run, "path": str(result.path), "dtype": result.dtype,
                        "max_logit_diff": result.max_logit_diff, "verification": report},
                       f"Merged into {result.path} ({result.dtype}; max logit difference "
                       f"vs the adapter model {result.max_logit_diff:.3g})"
                       + ("\n" + check_lines(report) if report else ""))
    return EXIT_FAILED if report and report["overall"] == "fail" else EXIT_OK


def _merged_folder(app: App, run_id: int) -> tuple[dict[str, Any], Path]:
    """The merged folder for a merge run, or for a train run (merging it first if needed)."""
    run = storage.get_run(app.db, run_id)
    if run["kind"] == "train":
        merges = [r for r in storage.list_runs(app.db, kind="merge", status="succeeded")
                  if r["parent_run_id"] == run_id]
        run = merges[0] if merges else do_merge(app, run_id)[0]
    if run["kind"] != "merge":
        raise ConfigError(f"run {run_id} is a {run['kind']} run; give a train or merge run id")
    merged = storage.list_artifacts(app.db, run["id"], kind="merged")
    if not merged:
        raise storage.NotFound(f"merge run {run['id']} has no merged model")
    return run, Path(merged[-1]["path"])


def do_export(app: App, run_id: int, quant: str, out: Path | None = None, *,
              modelfile: bool = False) -> tuple[dict[str, Any], Any]:
    """Export the merged model of a train/merge run to GGUF, verify it against the adapter
    model (unless ``--no-verify``) and write the model card (and an Ollama Modelfile when
    ``modelfile``) beside it; returns (export run, ``ExportResult``)."""
    from engine.export import export_gguf

    merge_run, folder = _merged_folder(app, run_id)
    out = Path(out) if out else app.path("exports") / f"{folder.name}-{quant}.gguf"
    run = storage.start_run(app.db, "export", {"merged_dir": str(folder), "quant": quant,
                                               "output_path": str(out)},
                            base_model_id=merge_run["base_model_id"],
                            dataset_id=merge_run["dataset_id"],
                            dataset_hash=merge_run["dataset_hash"], parent_run_id=merge_run["id"])
    result = run_job(app, run, lambda: export_gguf(folder, out, quant, report=app.report,
                                                    cancel=app.cancel))
    artifact = storage.add_artifact(app.db, run["id"], "gguf", result.path, sha256=result.sha256,
                                    meta={"quant": quant, "fallbacks": list(result.fallbacks)})
    train = _train_run(app, merge_run["parent_run_id"])
    verification = None
    if verify_settings(app) is not None:
        merged = storage.list_artifacts(app.db, merge_run["id"], kind="merged")
        dtype = (merged[0].get("meta") or {}).get("dtype") if merged else None
        verification = _verify_and_store(app, train, artifact, lambda ref, rows: _verify_gguf(
            Path(result.path), quant, ref, rows, app, merged_dtype=dtype))
    _write_sharing_files(app, train, folder, Path(result.path), verification, modelfile)
    return storage.get_run(app.db, run["id"]), result


EXPORT_ALL = ("f16", "q8_0", "q4_k_m")  # what `export --quant all` writes and compares


def cmd_export(app: App) -> int:
    a = app.args
    quants = EXPORT_ALL if a.quant == "all" else (a.quant,)
    if len(quants) > 1 and a.out:
        raise ConfigError("export: --out names one file; leave it out with --quant all (the "
                          "files go to DATA_DIR/exports)")
    done = [do_export(app, a.run, quant, a.out, modelfile=a.modelfile) for quant in quants]
    results = []
    for run, result in done:
        meta = storage.list_artifacts(app.db, run["id"], kind="gguf")[0]["meta"] or {}
        results.append({"run": run, "path": str(result.path), "quant": result.quant,
                        "bytes": result.bytes, "sha256": result.sha256,
                        "fallbacks": list(result.fallbacks),
                        "verification": meta.get("verification")})
    text = [f"Wrote {r['path']}\n  {r['quant']}, {r['bytes'] / 2**20:.1f} MiB, sha256 {r['sha256']}"
            + (("\n" + check_lines(r["verification"])) if r["verification"] else "")
            for r in results]
    reports = [r["verification"] for r in results if r["verification"]]
    if reports:
        text.append("\n" + verdict_table(reports))
    app.console.result(results[0] if len(results) == 1 else results, "\n".join(text))
    return EXIT_FAILED if any(r.get("overall") == "fail" for r in reports) else EXIT_OK


# ----------------------------------------------------------------------------- verification

VERIFY_ROWS, VERIFY_TOKENS = 8, 32  # about 20 s per file for Gemma 3 270M on 2 CPU cores


def verify_settings(app: App) -> tuple[int, int] | None:
    """(validation rows, token budget) for export verification, or ``None`` with --no-verify.
    Commands without the options (the demo) verify with the defaults."""
    if getattr(app.args, "no_verify", False):
        return None
    rows = getattr(app.args, "verify_rows", VERIFY_ROWS)
    tokens = getattr(app.args, "verify_tokens", VERIFY_TOKENS)
    if rows < 1 or tokens < 1:
        raise ConfigError(f"--verify-rows ({rows}) and --verify-tokens ({tokens}) must be at "
                          "least 1; use --no-verify to skip the verification")
    return rows, tokens


def _reference(app: App, train: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """The adapter-on-base reference run on the first validation rows of ``train`` (computed
    once per train run and process: every export of one command shares it)."""
    from engine.verify import reference_run

    n_rows, budget = verify_settings(app) or (VERIFY_ROWS, VERIFY_TOKENS)
    cache = app.__dict__.setdefault("_references", {})
    key = (train["id"], n_rows, budget)
    if key not in cache:
        rows = _validation_rows(app, train)[:n_rows]
        if not rows:
            raise DataError(f"train run {train['id']} has no validation rows to verify with; "
                            "train with a validation fraction above 0")
        app.console.info(f"Verification: the fine-tuned model (adapter on base) answers "
                         f"{len(rows)} validation conversations (up to {budget} tokens each)...")
        cache[key] = (reference_run(
            train["config"]["base_model_path"], rows, adapter_dir=train["adapter_dir"],
            template=_run_template(app, train["id"]),
            max_length=train["config"]["train"]["max_length"], max_new_tokens=budget,
            report=app.report, cancel=app.cancel), rows)
    return cache[key]


def _verify_and_store(app: App, train: dict[str, Any], artifact: dict[str, Any],
                      verify: Callable[[Any, list[dict[str, Any]]], Any]) -> dict[str, Any]:
    """Run ``verify(reference, rows)``; store the report (or the reason it could not run) in
    the artifact's meta and as ``<file>.verify.json``; returns the stored dict."""
    import time

    from engine.verify_merged import save_report

    started = time.perf_counter()
    try:
        data = verify(*_reference(app, train)).to_dict()
    except Cancelled:
        raise
    except (EngineError, OSError) as exc:
        data = {"path": artifact["path"], "overall": "warn", "checks": [], "metrics": {},
                "error": f"Verification could not run: {_message(exc)}"}
    data["seconds_total"] = time.perf_counter() - started
    storage.artifacts.update_artifact_meta(app.db, artifact["id"], {"verification": data})
    save_report(data, artifact["path"])
    app.console.info(f"Verification of {Path(artifact['path']).name}: {data['overall'].upper()} "
                     f"({data['seconds_total']:.0f} s)")
    return data


def _verify_gguf(path: Path, quant: str, reference: Any, rows: list[dict[str, Any]],
                 app: App, *, merged_dtype: str | None = None) -> Any:
    """Verify a GGUF; its limits are no stricter than the merged folder's dtype allows."""
    from engine.verify import verify_export
    from engine.verify_checks import VerifyThresholds

    limits = VerifyThresholds.for_merged_dtype(merged_dtype)
    return verify_export(path, reference_dir=reference.model_dir, rows=rows, quant=quant,
                         reference=reference, max_new_tokens=reference.max_new_tokens,
                         thresholds=limits, report=app.report, cancel=app.cancel)


def _verify_merged(train: dict[str, Any], folder: Path, dtype: str, reference: Any,
                   rows: list[dict[str, Any]], app: App) -> Any:
    from engine.verify_merged import verify_merged

    return verify_merged(folder, reference, rows, dtype=dtype,
                         max_length=train["config"]["train"]["max_length"],
                         report=app.report, cancel=app.cancel)


def _write_sharing_files(app: App, train: dict[str, Any], merged: Path, gguf: Path,
                         verification: dict[str, Any] | None, modelfile: bool) -> None:
    """The model card ``<name>.md`` (always) and the Ollama ``<name>.Modelfile`` (on request)
    beside the GGUF."""
    from engine.model_card import licence_reminder, write_model_card

    name = train["config"]["base_model"]
    try:
        dataset = storage.get_dataset(app.db, train["dataset_id"])["name"]
    except storage.NotFound:
        dataset = f"dataset {train['dataset_id']} (deleted)"
    latest = {m["name"]: m["value"] for m in storage.get_metrics(app.db, train["id"])}
    card = gguf.with_suffix(".md")
    write_model_card(card, base_model=name, dataset_name=dataset,
                     dataset_hash=train.get("dataset_hash"),
                     dataset_version=_dataset_version(app, train),
                     train_config=train["config"]["train"], metrics=latest,
                     verification=verification,
                     licence_note=licence_reminder(name, train["config"]["base_model_path"]))
    app.console.info(f"Model card: {card}")
    if modelfile:
        from engine.model_card import modelfile_inputs, write_ollama_modelfile

        template, stops = modelfile_inputs(merged, _run_template(app, train["id"]))
        path = gguf.with_suffix(".Modelfile")
        write_ollama_modelfile(path, gguf.name, chat_template_source=template,
                               end_token_texts=stops)
        app.console.info(f"Ollama Modelfile: {path} (run `ollama create NAME -f {path.name}` there)")


def _dataset_version(app: App, train: dict[str, Any]) -> str | None:
    """The dataset version a run trained on, as ``"<number> (id <id>)"``, when recorded."""
    version_id = train.get("dataset_version_id")
    get_version = getattr(storage, "get_version", None)  # dataset versions (issue 4)
    if version_id is None:
        return None
    try:
        number = get_version(app.db, version_id)["number"] if get_version else None
    except storage.NotFound:
        number = None
    return f"{number} (id {version_id})" if number is not None else f"id {version_id}"


def check_lines(report: dict[str, Any]) -> str:
    """One line per check of a stored report: status, name, measured value, threshold."""
    if report.get("error"):
        return f"  verification: {report['error']}"
    lines = [f"  verification: {report['overall'].upper()}"]
    for c in report["checks"]:
        lines.append(f"    [{c['status'].upper():4}] {c['name']}: {_value(c['value'])} "
                     f"(threshold: {c['threshold']}) - {c['explanation']}")
    return "\n".join(lines)


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    return _cell(value) if not isinstance(value, str) else _cell(value.replace("\n", " "))


def verdict_table(reports: list[dict[str, Any]]) -> str:
    """The side-by-side quantization report of stored verification dicts (f16 / q8_0 / ...)."""
    from engine.verify import quantization_report
    from engine.verify_merged import report_from_dict

    rows = quantization_report([report_from_dict(r) for r in reports if not r.get("error")])
    for row in rows:
        row["MiB"] = row["bytes"] / 2**20
        row["failed"] = ",".join(row["failed"]) or "-"
    return table(rows, ["quant", "MiB", "tokens_per_second", "perplexity_gguf",
                        "perplexity_reference", "top1_agreement", "mean_kl", "stop_share",
                        "overall", "failed"])


# ----------------------------------------------------------------------------- chat

def _gguf_for(app: App, ref: str, kind: str = "gguf") -> Path:
    """A GGUF path from a file path or an export run id (``kind``: ``gguf`` or ``adapter_gguf``)."""
    if str(ref).isdigit() and not Path(ref).exists():
        ggufs = storage.list_artifacts(app.db, int(ref), kind=kind)
        if not ggufs:
            command = "export-adapter" if kind == "adapter_gguf" else "export"
            raise storage.NotFound(f"run {ref} has no {kind} file; export it with "
                                   f"`main.py {command} RUN_ID`")
        return Path(ggufs[-1]["path"])
    path = Path(ref).expanduser()
    if not path.is_file():
        raise storage.NotFound(f"no GGUF file at {path}")
    return path


def do_export_adapter(app: App, run_id: int, outtype: str = "f32",
                      out: Path | None = None) -> tuple[dict[str, Any], Any]:
    """Export a train run's adapter as a llama.cpp LoRA GGUF; returns (export run, result)."""
    from engine.adapter_gguf import export_adapter_gguf

    train = _train_run(app, run_id)
    base = train["config"]["base_model_path"]
    out = Path(out) if out else app.path("exports") / f"adapter-run{run_id}-{outtype}.gguf"
    run = storage.start_run(app.db, "export", {"adapter_dir": train["adapter_dir"], "quant": outtype,
                                               "kind": "adapter_gguf", "base_model_path": base,
                                               "output_path": str(out)},
                            base_model_id=train["base_model_id"], dataset_id=train["dataset_id"],
                            dataset_hash=train["dataset_hash"], parent_run_id=run_id)
    result = run_job(app, run, lambda: export_adapter_gguf(
        train["adapter_dir"], out, base_dir=base, outtype=outtype, report=app.report,
        cancel=app.cancel))
    storage.add_artifact(app.db, run["id"], "adapter_gguf", result.path, sha256=result.sha256,
                         meta={"outtype": outtype, "architecture": result.architecture,
                               "rank": result.rank, "alpha": result.alpha, "base_model_path": base})
    return storage.get_run(app.db, run["id"]), result


def cmd_export_adapter(app: App) -> int:
    run, result = do_export_adapter(app, app.args.run, app.args.outtype, app.args.out)
    summary = {"run": run, "path": str(result.path), "outtype": result.outtype,
               "bytes": result.bytes, "sha256": result.sha256, "rank": result.rank,
               "alpha": result.alpha, "architecture": result.architecture}
    text = (f"Wrote {result.path}\n  LoRA adapter for {result.architecture}, rank {result.rank}, "
            f"alpha {result.alpha:g}, {result.outtype}, {result.bytes / 2**20:.2f} MiB, "
            f"sha256 {result.sha256}\n  chat: main.py chat --model BASE.gguf --adapter {result.path}")
    if app.args.verify_base:
        from engine.adapter_verify import verify_adapter_gguf

        train = _train_run(app, app.args.run)
        report = verify_adapter_gguf(
            _gguf_for(app, app.args.verify_base), result.path,
            base_dir=train["config"]["base_model_path"], adapter_dir=train["adapter_dir"],
            rows=_validation_rows(app, train)[:VERIFY_ROWS], template=_run_template(app, train["id"]),
            report=app.report, cancel=app.cancel).to_dict()
        summary["verification"] = report
        text += "\n" + "\n".join(f"  [{c['status'].upper():4}] {c['name']}: {c['explanation']}"
                                  for c in report["checks"])
    app.console.result(summary, text)
    return EXIT_OK


def sampling_from_args(args: argparse.Namespace) -> Any:
    from engine.chat import SamplingConfig
    from engine.configs import from_dict

    return from_dict(SamplingConfig, configs_cli.config_overrides(SamplingConfig, args))


def cmd_chat(app: App) -> int:
    from engine.chat import ChatDelta, ChatModel

    a = app.args
    if not (a.model or a.model_option):
        raise ConfigError("chat needs a model: a .gguf file or an export run id (MODEL or --model)")
    gguf = _gguf_for(app, a.model or a.model_option)
    adapter = _gguf_for(app, a.adapter, kind="adapter_gguf") if a.adapter else None
    sampling = sampling_from_args(a)
    chat = storage.create_chat(app.db, a.prompt[:40] if a.prompt else gguf.stem,
                               model_path=gguf, system_prompt=a.system or "")
    history = [{"role": "system", "content": a.system}] if a.system else []
    with ChatModel(gguf, chat_template=a.template, n_ctx=a.n_ctx, adapter=adapter) as model:
        prompts = [a.prompt] if a.prompt else _interactive_prompts(app)
        for prompt in prompts:
            history.append({"role": "user", "content": prompt})
            storage.add_chat_message(app.db, chat["id"], "user", prompt)
            pieces, finished = [], None
            for event in model.stream(history, sampling, cancel=app.cancel):
                if isinstance(event, ChatDelta):
                    pieces.append(event.text)
                    if not app.console.as_json:
                        print(event.text, end="", flush=True)
                else:
                    finished = event
            reply = "".join(pieces)
            history.append({"role": "assistant", "content": reply})
            storage.add_chat_message(app.db, chat["id"], "assistant", reply)
            _chat_footer(app, finished)
            app.console.result({"reply": reply, "finish_reason": finished.finish_reason,
                                "tokens_per_second": finished.tokens_per_second,
                                "trimmed": finished.trimmed, "chat_id": chat["id"]}, None)
    return EXIT_OK


def _interactive_prompts(app: App) -> Iterator[str]:
    app.console.info("Chat started. Empty line or Ctrl-D to quit.")
    while not app.cancel.cancelled:
        try:
            line = input("\nyou> ")
        except EOFError:
            return
        if not line.strip():
            return
        print("bot> ", end="", flush=True)
        yield line


def _chat_footer(app: App, finished: Any) -> None:
    if app.console.as_json or finished is None:
        return
    print()
    notes = [f"{finished.completion_tokens} tokens, {finished.tokens_per_second:.1f} tokens/s",
             f"stop: {finished.finish_reason}"]
    if finished.trimmed:
        notes.append(f"{finished.trimmed} oldest messages dropped to fit the context")
    print(f"[{'; '.join(notes)}]", file=sys.stderr)


# ----------------------------------------------------------------------------- runs

def cmd_runs_list(app: App) -> int:
    rows = storage.list_runs(app.db, kind=app.args.kind)
    app.console.result(rows, table(rows, ["id", "kind", "name", "status", "started", "ended",
                                          "parent_run_id", "error"]))
    return EXIT_OK


def cmd_runs_show(app: App) -> int:
    run = storage.get_run(app.db, app.args.run)
    metrics = storage.get_metrics(app.db, run["id"])
    artifacts = storage.list_artifacts(app.db, run["id"])
    latest: dict[str, Any] = {}
    for m in metrics:
        latest[m["name"]] = m["value"]
    text = [f"run {run['id']} ({run['kind']}, {run['status']}): {run['name']}",
            f"  config: {json.dumps(run['config'], ensure_ascii=False)}"]
    text += [f"  {k}: {_cell(v)}" for k, v in sorted(latest.items())]
    for a in artifacts:
        text.append(f"  artifact {a['kind']}: {a['path']} ({a['bytes']} bytes)")
        if (a.get("meta") or {}).get("verification"):
            text.append(check_lines(a["meta"]["verification"]))
    if run["error"]:
        text.append(f"  error: {run['error']}")
    app.console.result({"run": run, "metrics": metrics, "artifacts": artifacts}, "\n".join(text))
    return EXIT_OK


# ----------------------------------------------------------------------------- eval

def training_rows(app: App, dataset_id: int, version_id: int | None, *,
                  validation_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """The (train, validation) rows of a dataset version (see
    :func:`engine.data.workbench.train_validation_rows`)."""
    from engine.data.workbench import train_validation_rows

    rows = list(storage.iter_examples(app.db, dataset_id, version_id=version_id))
    return train_validation_rows(rows, validation_fraction=validation_fraction, seed=seed)


def _validation_rows(app: App, train: dict[str, Any]) -> list[dict[str, Any]]:
    """The held-out rows of a train run: the same version and split training used."""
    _, val = training_rows(app, train["dataset_id"], train.get("dataset_version_id"),
                           validation_fraction=train["config"]["validation_fraction"],
                           seed=train["config"]["train"]["seed"])
    return val


def do_eval(app: App, train_run_id: int, *, gguf: Path | None = None, generate: int = 16,
            max_new_tokens: int = 32) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Base vs fine-tuned on a train run's validation split: perplexity, BLEU, ROUGE-L.

    Returns (eval run record, ``{"before": {...}, "after": {...}, ["gguf": {...}]}``).
    """
    train = _train_run(app, train_run_id)
    val = _validation_rows(app, train)
    template = _run_template(app, train_run_id)
    config = {"train_run": train_run_id, "validation_rows": len(val), "generated": generate,
              "max_new_tokens": max_new_tokens, "gguf": str(gguf) if gguf else None,
              "template": template}
    run = storage.start_run(app.db, "eval", config, base_model_id=train["base_model_id"],
                            dataset_id=train["dataset_id"], dataset_hash=train["dataset_hash"],
                            parent_run_id=train_run_id)
    return storage.get_run(app.db, run["id"]), run_job(app, run, lambda: _evaluate(
        app, run["id"], train, val, template, gguf, generate, max_new_tokens))


def _run_template(app: App, train_run_id: int) -> str | None:
    """The Jinja source of the chat template a train run used (as recorded with its adapter)."""
    adapters = storage.list_artifacts(app.db, train_run_id, kind="adapter")
    return (adapters[-1].get("meta") or {}).get("template_source") if adapters else None


def _evaluate(app: App, run_id: int, train: dict[str, Any], val: list[dict[str, Any]],
              template: str | None, gguf: Path | None, generate: int,
              max_new_tokens: int) -> dict[str, dict[str, Any]]:
    from engine.replies import evaluate_hf

    max_length = train["config"]["train"]["max_length"]
    base_path = train["config"]["base_model_path"]
    results = {}
    for label, adapter in (("before", None), ("after", train["adapter_dir"])):
        app.console.info(f"Evaluating {'the base model' if adapter is None else 'the fine-tuned model'} "
                         f"on {len(val)} held-out conversations...")
        results[label] = evaluate_hf(base_path, val, adapter_dir=adapter, template=template,
                                     max_length=max_length, generate=generate,
                                     max_new_tokens=max_new_tokens, report=app.report,
                                     cancel=app.cancel)
    if gguf is not None:
        from engine.evaluate import perplexity_gguf

        ppl = perplexity_gguf(gguf, val, template=template, max_length=max_length,
                              tokenizer_dir=base_path, report=app.report, cancel=app.cancel)
        results["gguf"] = {"perplexity": ppl.perplexity}
    for label, values in results.items():
        storage.add_metrics(app.db, run_id, [(0, f"{name}_{label}", value)
                                             for name, value in values.items()
                                             if isinstance(value, (int, float))])
    return results


def cmd_eval(app: App) -> int:
    gguf = _gguf_for(app, app.args.gguf) if app.args.gguf else None
    run, results = do_eval(app, app.args.run, gguf=gguf, generate=app.args.generate)
    names = sorted({k for r in results.values() for k, v in r.items() if isinstance(v, (int, float))})
    rows = [{"metric": n, **{label: r.get(n) for label, r in results.items()}} for n in names]
    app.console.result({"run": run, "results": results},
                       table(rows, ["metric", *results.keys()]))
    return EXIT_OK


# ----------------------------------------------------------------------------- demo

DEMO_DATASET = "chatterbot-english"


def demo_config(args: argparse.Namespace) -> Any:
    """The demo's training settings, sized so the whole demo finishes in about 20 minutes on
    2 CPU cores (60 steps of 8 conversations: about 60% of one epoch of the de-duplicated
    English corpus). The validation loss is computed once, at the end, to save time."""
    base = {"learning_rate": 5e-4, "max_steps": 60, "batch_size": 8, "max_length": 128,
            "lora_rank": 16, "lora_alpha": 32.0, "eval_every": 1000, "save_every": 20,
            "warmup_steps": 5, "lr_scheduler": "cosine", "seed": 42}
    return train_config_from_args(args, base)


def demo_dataset(app: App) -> dict[str, Any]:
    """The English ChatterBot corpus, imported and de-duplicated (reused if already there)."""
    from engine.data import load_chatterbot_corpus, remove_duplicates

    with contextlib.suppress(storage.NotFound):
        return storage.get_dataset(app.db, DEMO_DATASET)
    result = load_chatterbot_corpus("english")
    unique, removed = remove_duplicates(result.examples)
    app.console.info(f"ChatterBot English: {len(result.examples)} conversations, {removed} exact "
                     f"duplicates removed, {len(unique)} kept")
    return storage.create_dataset(app.db, DEMO_DATASET, unique, description=(
        f"English ChatterBot corpus ({len(result.examples)} conversations, {removed} duplicates "
        f"removed)"))


def cmd_demo(app: App) -> int:
    """Import -> dedupe -> split -> LoRA -> evaluate before/after -> merge -> q8_0 GGUF -> chat."""
    import time

    started = time.perf_counter()
    dataset = demo_dataset(app)
    config = demo_config(app.args)
    train_run, result = do_train(app, dataset["id"], app.args.model, config,
                                 validation_fraction=app.args.validation_fraction, name="demo")
    export_run, export = do_export(app, train_run["id"], app.args.quant)
    verification = (storage.list_artifacts(app.db, export_run["id"], kind="gguf")[0]["meta"]
                    or {}).get("verification")
    _, scores = do_eval(app, train_run["id"], gguf=export.path, generate=app.args.generate)
    answers = demo_answers(app, train_run, export.path)
    summary = {"train_run": train_run["id"], "steps": result.steps_done,
               "train_loss": result.final_train_loss, "eval_loss": result.final_eval_loss,
               "training_tokens_per_second": result.tokens_per_second, "scores": scores,
               "gguf": str(export.path), "gguf_bytes": export.bytes, "quant": export.quant,
               "answers": answers, "verification": verification,
               "seconds": time.perf_counter() - started}
    app.console.result(_jsonable(summary), demo_summary_text(summary))
    return EXIT_OK


def demo_answers(app: App, train_run: dict[str, Any], gguf: Path, count: int = 5) -> list[dict]:
    """Held-out questions answered by the exported GGUF through llama.cpp (greedy)."""
    from engine.chat import ChatModel, SamplingConfig

    val = _validation_rows(app, train_run)[:count]
    sampling = SamplingConfig(temperature=0.0, max_tokens=48)
    answers = []
    with ChatModel(gguf) as model:
        for row in val:
            prompt = _prompt_and_reference(row["messages"])
            reply = model.reply(prompt[0], sampling, cancel=app.cancel)
            answers.append({"question": prompt[0][-1]["content"], "reference": prompt[1],
                            "answer": reply.text, "tokens_per_second": reply.finished.tokens_per_second})
    return answers


def _prompt_and_reference(messages: list[dict]) -> tuple[list[dict], str]:
    """The conversation up to its last assistant turn, and that turn's text."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


def demo_summary_text(s: dict[str, Any]) -> str:
    scores = s["scores"]
    rows = []
    for metric in ("perplexity", "bleu", "rouge_l"):
        rows.append({"metric": metric, "before": scores["before"].get(metric),
                     "after": scores["after"].get(metric),
                     "gguf": scores.get("gguf", {}).get(metric)})
    speed = [a["tokens_per_second"] for a in s["answers"]]
    lines = ["", "=== Tunesmith demo summary ===",
             f"train run {s['train_run']}: {s['steps']} steps, train loss {s['train_loss']:.3f}, "
             f"eval loss {s['eval_loss']:.3f}, {s['training_tokens_per_second']:.0f} trained tokens/s",
             table(rows, ["metric", "before", "after", "gguf"]),
             f"GGUF: {s['gguf']} ({s['quant']}, {s['gguf_bytes'] / 2**20:.1f} MiB), "
             f"generation {sum(speed) / max(len(speed), 1):.1f} tokens/s"]
    if s.get("verification"):
        lines.append(check_lines(s["verification"]))
    lines += ["", "Held-out questions answered through llama.cpp:"]
    for a in s["answers"]:
        lines += [f"  Q: {a['question']}", f"     reference: {a['reference']}",
                  f"     answer:    {a['answer'].strip()}"]
    lines.append(f"\nTotal time: {s['seconds'] / 60:.1f} minutes")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (documented in README.md)."""
    parser = argparse.ArgumentParser(
        prog="main.py", description="Tunesmith: fine-tune a small language model on your own "
        "conversations, export it to GGUF and chat with it, offline. Without a command the "
        "desktop app opens.")
    parser.add_argument("--data-dir", help="Where Tunesmith keeps its database, models and "
                        "exports (default: $TUNESMITH_DATA_DIR, else the per-user data folder).")
    parser.add_argument("--json", action="store_true", help="Print results as JSON and "
                        "progress as JSON lines on stderr.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _datasets_parser(commands)
    _models_parser(commands)
    _train_parser(commands)
    _runs_parser(commands)
    _merge_export_parsers(commands)
    _export_adapter_parser(commands)
    _chat_parser(commands)
    _eval_parser(commands)
    _demo_parser(commands)
    return parser


def _group(commands: Any, name: str, help_text: str) -> Any:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest="action", metavar="ACTION", required=True)


def _datasets_parser(commands: Any) -> None:
    sub = _group(commands, "datasets", "Import, list, show, export and delete datasets; clean, "
                 "scrub, augment, tag and split them into new versions.")
    p = sub.add_parser("import", help="Import a JSONL/JSON/CSV/YAML file as a new dataset.")
    p.add_argument("file", help="The file to import (Alpaca, ShareGPT, OpenAI chat, "
                   "prompt/completion, CSV, ChatterBot YAML).")
    p.add_argument("--name", help="Dataset name (default: the file name).")
    p.add_argument("--description", help="A note stored with the dataset.")
    p.add_argument("--format", help="Force a format instead of detecting it.")
    p.add_argument("--policy", choices=("refuse", "skip"), default="refuse",
                   help="Invalid rows: refuse the import (default) or skip them and count.")
    p.add_argument("--column-map", help="CSV columns, e.g. user=question,assistant=answer,system=sys.")
    p.add_argument("--dedupe", action="store_true", help="Remove exact duplicate conversations.")
    p.set_defaults(handler=cmd_datasets_import)
    sub.add_parser("list", help="List datasets.").set_defaults(handler=cmd_datasets_list)
    p = sub.add_parser("show", help="Show a dataset's examples.")
    p.add_argument("dataset", help="Dataset name or id.")
    p.add_argument("--limit", type=positive_int, default=10, help="How many examples (default 10).")
    _selection_options(p)
    p.set_defaults(handler=cmd_datasets_show)
    p = sub.add_parser("export", help="Export a dataset to JSONL (OpenAI chat shape).")
    p.add_argument("dataset", help="Dataset name or id.")
    p.add_argument("out", type=Path, help="The .jsonl file to write.")
    _selection_options(p)
    p.set_defaults(handler=cmd_datasets_export)
    p = sub.add_parser("delete", help="Delete a dataset and its examples.")
    p.add_argument("dataset", help="Dataset name or id.")
    p.set_defaults(handler=cmd_datasets_delete)
    _workbench_parsers(sub)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", type=int, help="Version number (default: the current one).")
    p.add_argument("--split", choices=storage.SPLITS, help="Only this split.")
    p.add_argument("--tag", help="Only examples with this tag.")


def _workbench_parsers(sub: Any) -> None:
    """History, diff, undo, and the preview-then-apply operations of the dataset workbench."""
    p = _dataset_command(sub, "versions", "List a dataset's versions (* marks the head).",
                         cmd_datasets_versions)
    p = _dataset_command(sub, "diff", "Examples added, removed and changed between two versions.",
                         cmd_datasets_diff, listed=True)
    p.add_argument("old", type=int, help="Version number compared from.")
    p.add_argument("new", type=int, help="Version number compared to.")
    _dataset_command(sub, "undo", "Go back to the parent of the current version.", cmd_datasets_undo)
    p = _dataset_command(sub, "checkout", "Use another version (later ones stay available).",
                         cmd_datasets_checkout)
    p.add_argument("number", type=int, help="Version number.")
    from engine.data.augment import BackTranslationConfig, ParaphraseConfig, SynonymConfig
    from engine.data.dedupe import DedupeConfig
    from engine.data.filters import FilterConfig
    from engine.data.pii import PiiConfig
    from engine.data.splits import SplitConfig
    from engine.data.stats import StatsConfig

    p = _operation(sub, "dedupe", "Exact (normalised) and near (MinHash/LSH) duplicates.",
                   cmd_datasets_dedupe, DedupeConfig)
    p.add_argument("--keep", type=int, nargs="*", help="Example ids to keep although proposed.")
    p = _operation(sub, "filter", "Empty turns, token length, role order, language, regex.",
                   cmd_datasets_filter, FilterConfig)
    p.add_argument("--keep", type=int, nargs="*", help="Example ids to keep although flagged.")
    p.add_argument("--model", help="Base model whose tokenizer counts tokens (default: built-in).")
    p = _operation(sub, "scrub", "Replace personal data with consistent placeholders.",
                   cmd_datasets_scrub, PiiConfig)
    p.add_argument("--names-file", help="A text file with one person name per line to find.")
    p.add_argument("--skip-file", help="A JSON list of [example_id, message_index, start] "
                   "findings to leave as they are.")
    for name, text, handler, cls in (
            ("paraphrase", "Paraphrase user turns with a local GGUF chat model.",
             cmd_datasets_paraphrase, ParaphraseConfig),
            ("backtranslate", "Back-translate user turns through a pivot language.",
             cmd_datasets_backtranslate, BackTranslationConfig),
            ("synonyms", "Replace words of user turns with WordNet synonyms (offline).",
             cmd_datasets_synonyms, SynonymConfig)):
        p = _operation(sub, name, text + " New examples are marked synthetic.", handler, cls)
        p.add_argument("--count", type=positive_int, default=20, help="Augment at most this many "
                       "examples (default 20).")
        p.add_argument("--tag", help="Only examples with this tag.")
    p = _operation(sub, "split", "Seeded train/validation/test split, optionally stratified by "
                   "tag, with a leakage check.", cmd_datasets_split, SplitConfig)
    p = _dataset_command(sub, "stats", "Counts, role balance, tags, synthetic share and a "
                         "token-length histogram.", cmd_datasets_stats)
    configs_cli.add_config_arguments(p, StatsConfig, title="statistics")
    p.add_argument("--tokens", action="store_true", help="Count tokens with --model's tokenizer.")
    p.add_argument("--model", help="Base model (default: built-in).")
    p.add_argument("--template", help="Chat template name (default: the model's).")
    p = _dataset_command(sub, "template", "Render one example with the chat template and mark "
                         "the trained tokens.", cmd_datasets_template)
    p.add_argument("--example", type=positive_int, default=1, help="1-based example number (default 1).")
    p.add_argument("--model", help="Base model (default: built-in).")
    p.add_argument("--template", help="Chat template name (default: the model's).")
    p = _dataset_command(sub, "tag", "Add or remove tags on every example matching a search.",
                         cmd_datasets_tag)
    p.add_argument("--search", required=True, help="Full-text search; every word must occur.")
    p.add_argument("--add", nargs="*", help="Tags to add.")
    p.add_argument("--remove", nargs="*", help="Tags to remove.")
    _dataset_command(sub, "tags", "Label counts of the current version.", cmd_datasets_tags)


def _dataset_command(sub: Any, name: str, text: str, handler: Callable[[App], int], *,
                     listed: bool = False) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=text, description=text)
    p.add_argument("dataset", help="Dataset name or id.")
    if listed:
        p.add_argument("--limit", type=positive_int, default=20, help="Items listed (default 20).")
    p.set_defaults(handler=handler)
    return p


def _operation(sub: Any, name: str, text: str, handler: Callable[[App], int],
               cls: type) -> argparse.ArgumentParser:
    p = _dataset_command(sub, name, text + " Previews; --apply makes a new version.", handler,
                         listed=True)
    configs_cli.add_config_arguments(p, cls, title=f"{name} settings")
    p.add_argument("--apply", action="store_true", help="Make a new dataset version.")
    return p


def _models_parser(commands: Any) -> None:
    sub = _group(commands, "models", "Register and inspect base models.")
    p = sub.add_parser("add", help="Add a local Hugging Face folder or a .gguf file.")
    p.add_argument("path", help="A model folder (safetensors) or a .gguf file (dequantized once).")
    p.add_argument("--name", help="Name to register it under (default: folder/file name).")
    p.add_argument("--allow-custom-code", action="store_true", help="Allow a model folder "
                   "that ships its own Python code (runs that code: only for folders you trust).")
    p.set_defaults(handler=cmd_models_add)
    sub.add_parser("list", help="List base models.").set_defaults(handler=cmd_models_list)
    p = sub.add_parser("show", help="Show a base model (default: the built-in Gemma 3 270M).")
    p.add_argument("model", nargs="?", default=BUILTIN_MODEL, help="Model name or id.")
    p.set_defaults(handler=cmd_models_show)


def _train_parser(commands: Any) -> None:
    from engine.train_config import TrainConfig

    p = commands.add_parser("train", help="LoRA-fine-tune a base model on a dataset.",
                            description="LoRA-fine-tune a base model on a dataset. Ctrl-C "
                            "cancels cleanly and keeps a usable adapter and a resumable checkpoint.")
    p.add_argument("--dataset", help="Dataset name or id.")
    p.add_argument("--model", help=f"Base model name (default: {BUILTIN_MODEL}).")
    p.add_argument("--name", help="A name for the run.")
    p.add_argument("--validation-fraction", type=float, default=0.1,
                   help="Share of conversations held out for evaluation (seeded split; default 0.1).")
    p.add_argument("--resume", type=int, metavar="RUN_ID",
                   help="Continue an interrupted or cancelled train run from its last checkpoint.")
    configs_cli.add_config_arguments(p, TrainConfig, title="training settings")
    p.set_defaults(handler=cmd_train)


def _runs_parser(commands: Any) -> None:
    sub = _group(commands, "runs", "List and inspect runs (train, merge, export, eval).")
    p = sub.add_parser("list", help="List runs, newest first.")
    p.add_argument("--kind", choices=("train", "merge", "export", "eval"), help="Only this kind.")
    p.set_defaults(handler=cmd_runs_list)
    p = sub.add_parser("show", help="Show a run's config, latest metrics and files.")
    p.add_argument("run", type=int, help="Run id.")
    p.set_defaults(handler=cmd_runs_show)


def _merge_export_parsers(commands: Any) -> None:
    p = commands.add_parser("merge", help="Merge a train run's LoRA adapter into its base model.")
    p.add_argument("run", type=int, help="Train run id.")
    _verify_arguments(p)
    p.set_defaults(handler=cmd_merge)
    p = commands.add_parser("export", help="Export a train or merge run to a GGUF file "
                            "(merging first when needed), verify it against the fine-tuned "
                            "model and write a model card beside it; exits 1 when a "
                            "verification check fails.")
    p.add_argument("run", type=int, help="Train or merge run id.")
    p.add_argument("--quant", choices=(*QUANTS, "all"), default="q8_0",
                   help="GGUF type (default q8_0); 'all' writes f16, q8_0 and q4_k_m and prints "
                   "their quantization report side by side.")
    p.add_argument("--out", type=Path, help="Output file (default: DATA_DIR/exports/...).")
    p.add_argument("--modelfile", action="store_true", help="Also write an Ollama Modelfile "
                   "(chat template and stop parameters) beside the GGUF.")
    _verify_arguments(p)
    p.set_defaults(handler=cmd_export)


def _verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-verify", action="store_true", help="Skip the verification of the "
                   "file against the fine-tuned model (top-1 agreement, KL, perplexity, "
                   "stopping, special tokens, chat template).")
    p.add_argument("--verify-rows", type=int, default=VERIFY_ROWS, metavar="N",
                   help=f"Validation conversations the verification runs through both models "
                   f"(default {VERIFY_ROWS}; each costs a few seconds).")
    p.add_argument("--verify-tokens", type=int, default=VERIFY_TOKENS, metavar="N",
                   help=f"Token budget of each greedy answer when checking that the model stops "
                   f"by itself (default {VERIFY_TOKENS}).")


def _export_adapter_parser(commands: Any) -> None:
    p = commands.add_parser("export-adapter", help="Export a train run's LoRA adapter alone as "
                            "a llama.cpp adapter GGUF (applied on the base GGUF at load time).")
    p.add_argument("run", type=int, help="Train run id.")
    p.add_argument("--outtype", choices=("f32", "f16"), default="f32",
                   help="Adapter tensor type (default f32; f16 is half the size).")
    p.add_argument("--out", type=Path, help="Output file (default: DATA_DIR/exports/...).")
    p.add_argument("--verify-base", metavar="BASE_GGUF",
                   help="Verify base GGUF + adapter (llama.cpp) against base + adapter "
                   "(transformers) on the run's validation rows (file or export run id).")
    p.set_defaults(handler=cmd_export_adapter)


def _chat_parser(commands: Any) -> None:
    from engine.chat import SamplingConfig

    p = commands.add_parser("chat", help="Chat with a GGUF model through llama.cpp "
                            "(one-shot with --prompt, else interactive).")
    p.add_argument("model", nargs="?", help="A .gguf file or an export run id.")
    p.add_argument("--model", dest="model_option", metavar="MODEL",
                   help="The same as MODEL (e.g. the base GGUF when giving --adapter).")
    p.add_argument("--adapter", help="A LoRA adapter GGUF (file or export-adapter run id) "
                   "applied on top of MODEL without merging.")
    p.add_argument("--prompt", help="Ask one question and exit.")
    p.add_argument("--system", help="System prompt.")
    p.add_argument("--template", help="Chat template name or Jinja text (default: the one "
                   "embedded in the GGUF).")
    p.add_argument("--n-ctx", type=int, help="Context size in tokens (default: the model's).")
    configs_cli.add_config_arguments(p, SamplingConfig, title="sampling")
    p.set_defaults(handler=cmd_chat)


def _eval_parser(commands: Any) -> None:
    p = commands.add_parser("eval", help="Evaluate a train run: base vs fine-tuned perplexity, "
                            "BLEU and ROUGE-L on its validation split.")
    p.add_argument("run", type=int, help="Train run id.")
    p.add_argument("--gguf", help="Also measure perplexity of this GGUF (file or export run id).")
    p.add_argument("--generate", type=int, default=16,
                   help="Held-out conversations to answer for BLEU/ROUGE-L (default 16).")
    p.set_defaults(handler=cmd_eval)


def _demo_parser(commands: Any) -> None:
    from engine.train_config import TrainConfig

    p = commands.add_parser("demo", help="The main job on real data: ChatterBot English -> "
                            "LoRA on Gemma 3 270M -> evaluate -> merge -> q8_0 GGUF -> chat.")
    p.add_argument("--model", help=f"Base model name (default: {BUILTIN_MODEL}).")
    p.add_argument("--validation-fraction", type=float, default=0.1,
                   help="Share of conversations held out (default 0.1).")
    p.add_argument("--quant", choices=QUANTS, default="q8_0", help="GGUF type (default q8_0).")
    p.add_argument("--generate", type=int, default=12,
                   help="Held-out conversations answered for BLEU/ROUGE-L (default 12).")
    configs_cli.add_config_arguments(p, TrainConfig, title="training settings (override the demo's)")
    p.set_defaults(handler=cmd_demo)


# ----------------------------------------------------------------------------- running

def _message(exc: BaseException) -> str:
    """One readable line for an exception (the CLI's single error handler uses it)."""
    return str(exc) or exc.__class__.__name__


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an exception."""
    if isinstance(exc, (Cancelled, KeyboardInterrupt)):
        return EXIT_CANCELLED
    if isinstance(exc, storage.NotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, (ConfigError, DataError, storage.StorageError)):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def run_command(args: argparse.Namespace) -> int:
    """Run one subcommand; turn every expected error into a message and an exit code."""
    console = Console(args.json)
    with cancel_on_sigint(console) as cancel:
        try:
            return args.handler(App(args, console, cancel))
        except (Cancelled, KeyboardInterrupt):
            console.close_bar()
            print("Cancelled.", file=sys.stderr)
            return EXIT_CANCELLED
        except (EngineError, storage.StorageError) as exc:
            console.close_bar()
            kind = "error" if not isinstance(exc, storage.NotFound) else "not found"
            print(f"{kind}: {_message(exc)}", file=sys.stderr)
            if args.json:
                print(json.dumps({"error": _message(exc), "type": type(exc).__name__}))
            return exit_code_for(exc)


def main(argv: list[str] | None = None) -> int:
    """Run Tunesmith with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        from gui.app import run_app  # Qt is imported on this path only

        return run_app(args.data_dir)
    return run_command(args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. `main.py datasets versions NAME | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_OK)
