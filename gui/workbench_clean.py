"""Workbench cleaning panels: duplicates, filters, personal data and the train/validation split."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QWidget

from gui.workbench_ops import ModelPicker, OperationPanel, ReviewRow, first_text


class DedupePanel(OperationPanel):
    """Exact and near duplicates as groups; the first of each group is kept."""

    operation, title = "dedupe", "Duplicates"
    columns = ("Group", "Kind", "Similarity", "Example", "User turn")

    def job_fn(self, config: Any, rows: list[dict]) -> Callable[..., Any]:
        find = self.ctx.engine.find_duplicates
        return lambda report, cancel: find(rows, config, total=len(rows), report=report,
                                           cancel=cancel)

    def review_rows(self, result: Any) -> list[ReviewRow]:
        out = []
        for n, group in enumerate(result.groups, start=1):
            for i, (example_id, similarity) in enumerate(zip(group.ids, group.similarities)):
                checked = None if i == 0 else False  # the kept one needs no "keep anyway"
                kind = group.kind if i else f"{group.kind} (kept)"
                out.append(ReviewRow(example_id, (
                    str(n), kind, f"{similarity:.2f}", self.example_label(example_id),
                    first_text(self.by_id().get(example_id))), checked))
        return out

    def summary(self, result: Any) -> str:
        removals = sum(len(g.removals) for g in result.groups)
        return (f"{len(result.exact_groups):,} exact and {len(result.near_groups):,} near "
                f"duplicate groups in {result.scanned:,} examples: {removals:,} would be removed. "
                "Check “Keep anyway” to keep one.")

    def make_change(self, result: Any, checked: list[Any]) -> Any:
        return self.ctx.engine.version_change("dedupe", result, self.params(),
                                              keep_anyway=checked)


class FilterPanel(OperationPanel):
    """Empty turns, role order, token lengths, language and regex rules."""

    operation, title = "filter", "Filters"
    columns = ("Example", "Rule", "Reason", "User turn")

    def extra_widgets(self) -> list[QWidget]:
        self.model = ModelPicker(self.ctx.store, "(none: no token rules)")
        box = QWidget()
        QFormLayout(box).addRow("Tokenizer of", self.model)
        return [box]

    def job_fn(self, config: Any, rows: list[dict]) -> Callable[..., Any]:
        preview, tokenizers = self.ctx.engine.preview_filters, self.page.tokenizers
        path = self.model.model_path() if config.needs_tokenizer else None

        def run(report: Any, cancel: Any) -> Any:
            tools = tokenizers.get(path)
            return preview(rows, config, tokenizer=tools and tools.tokenizer,
                           template=tools and tools.template, special=tools and tools.special,
                           total=len(rows), report=report, cancel=cancel)
        return run

    def review_rows(self, result: Any) -> list[ReviewRow]:
        return [ReviewRow(flag.example_id, (
            self.example_label(flag.example_id), flag.rule, flag.reason,
            first_text(self.by_id().get(flag.example_id)))) for flag in result.flags]

    def summary(self, result: Any) -> str:
        rules = Counter(flag.rule for flag in result.flags)
        parts = ", ".join(f"{rule} {n:,}" for rule, n in rules.most_common())
        text = (f"{len(result.dropped):,} of {len(result.ids):,} examples would be dropped"
                + (f" ({parts})" if parts else "") + ".")
        if self.config is not None and self.config.max_length:
            text += f" {result.truncated:,} are longer than max_length and would be truncated."
        return text

    def make_change(self, result: Any, checked: list[Any]) -> Any:
        return self.ctx.engine.version_change("filter", result, self.params(),
                                              keep_anyway=checked)


class PiiPanel(OperationPanel):
    """Personal data with its placeholder; uncheck a finding to leave its text as it is."""

    operation, title = "scrub", "Personal data"
    check_header = "Replace"
    columns = ("Example", "Role", "Kind", "Text", "Placeholder")

    def job_fn(self, config: Any, rows: list[dict]) -> Callable[..., Any]:
        preview = self.ctx.engine.preview_pii
        return lambda report, cancel: preview(rows, config, report=report, cancel=cancel)

    def review_rows(self, result: Any) -> list[ReviewRow]:
        return [ReviewRow(f.key, (self.example_label(f.example_id), f.role, f.kind, f.text,
                                  f.placeholder), True) for f in result.findings]

    def summary(self, result: Any) -> str:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(result.counts.items()))
        return (f"{len(result.findings):,} findings in {len(result.example_ids):,} of "
                f"{result.examples_scanned:,} examples" + (f" ({kinds})" if kinds else "")
                + ". Uncheck a finding to keep its text.")

    def make_change(self, result: Any, checked: list[Any]) -> Any:
        # Only findings the user unchecked are skipped; any past the review cap are replaced.
        skip = self.checked_keys(Qt.CheckState.Unchecked)
        return self.ctx.engine.version_change("scrub", self.rows, result, self.params(),
                                              skip=skip)


class SplitPanel(OperationPanel):
    """A seeded train/validation/test split (synthetic examples follow their origin)."""

    operation, title = "split", "Split"
    check_header = ""
    columns = ("Group", "Train", "Validation", "Test")

    def job_fn(self, config: Any, rows: list[dict]) -> Callable[..., Any]:
        split = self.ctx.engine.split_dataset
        return lambda report, cancel: split(rows, config, report=report, cancel=cancel)

    def review_rows(self, result: Any) -> list[ReviewRow]:
        def cells(name: str, counts: dict[str, int]) -> tuple[str, ...]:
            return (name, *(f"{counts.get(s, 0):,}" for s in ("train", "validation", "test")))
        rows = [ReviewRow("all", cells("all examples", result.counts), None)]
        rows += [ReviewRow(key, cells(key or "(untagged)", counts), None)
                 for key, counts in result.group_counts.items()]
        return rows

    def summary(self, result: Any) -> str:
        counts = ", ".join(f"{s} {result.counts.get(s, 0):,}"
                           for s in ("train", "validation", "test"))
        text = f"Split: {counts}."
        if result.excluded_synthetic:
            text += (f" {len(result.excluded_synthetic):,} synthetic examples made from held-out "
                     "ones are left out of every split.")
        return text

    def make_change(self, result: Any, checked: list[Any]) -> Any:
        return self.ctx.engine.version_change("split", result, self.config)
