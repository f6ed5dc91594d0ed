"""Verification report widgets: a pass/warn/fail card per exported file, the side-by-side
quantization report, and the warning shown before a failing file is shared.

Reports are the plain dicts :meth:`engine.verify.VerificationReport.to_dict` writes (stored in
the artifact's ``meta["verification"]`` and as ``<file>.verify.json``); nothing here imports
the engine's heavy modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtWidgets import (QAbstractItemView, QFrame, QGridLayout, QHBoxLayout, QLabel,
                               QMessageBox, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from gui.widgets import human_bytes, label

# Status -> (icon, word, colour). Colour is never the only cue: icon and word say it too.
STATUS_STYLE = {"pass": ("✔", "PASS", "#15803d"), "warn": ("⚠", "WARN", "#b45309"),
                "fail": ("✖", "FAIL", "#b91c1c")}
QUANT_COLUMNS = ("File", "Type", "Size", "Tokens/s", "Perplexity (GGUF / model)", "Top-1",
                 "KL (nats)", "Verdict")
# Readable names of the checks engine.verify makes.
CHECK_TITLES = {"top1_agreement": "Top-1 next-token agreement", "mean_kl": "Mean KL divergence",
                "perplexity": "Perplexity", "stops": "Answers stop by themselves",
                "chat_template": "Chat template embedded", "eos_id": "EOS id", "bos_id": "BOS id",
                "end_ids": "End-of-generation ids", "bos_count": "BOS per prompt",
                "prompt_tokens": "Prompt tokenization", "file_size": "File size",
                "tokens_per_second": "Generation speed",
                "adapter_effect": "The adapter changes the model"}
QUANT_ORDER = ("f32", "bf16", "f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m")  # report order


def status_style(status: str) -> tuple[str, str, str]:
    """(icon, word, colour) of ``pass`` / ``warn`` / ``fail`` (unknown statuses as warn)."""
    return STATUS_STYLE.get(status, STATUS_STYLE["warn"])


def stored_reports(store: Any, train_run_id: int, kind: str = "gguf") -> list[dict[str, Any]]:
    """Verification reports of a train run's exports of ``kind`` (``merged``, ``gguf``,
    ``adapter_gguf``) made by its child runs or, as the CLI does, through its merge run;
    newest per path; wider types first (f16 before q8_0 before q4_k_m).

    Args:
        store: a :class:`gui.store.Store`.
    """
    seen, reports = set(), []
    for artifact in store.artifacts(kind=kind):  # newest first
        report = (artifact.get("meta") or {}).get("verification")
        if not report or artifact["path"] in seen or artifact["run_id"] is None:
            continue
        parent = store.run(artifact["run_id"]).get("parent_run_id")
        if parent != train_run_id and (parent is None or
                                       store.run(parent).get("parent_run_id") != train_run_id):
            continue
        seen.add(artifact["path"])
        reports.append(report)
    rank = {q: i for i, q in enumerate(QUANT_ORDER)}
    return sorted(reports, key=lambda r: rank.get(r.get("quant"), len(rank)))


def verdict_text(result: dict[str, Any]) -> str:
    """One line for an export job's result: the verdict of the file (and of the merged folder
    when there is one), or why it was not verified (``result["note"]``)."""
    parts = []
    for what, report in (("merged model", result.get("merged_verification")),
                         ("file", result.get("verification"))):
        if report:
            icon, word, _ = status_style(report.get("overall", "warn"))
            parts.append(f"{what} {icon} {word}")
    if parts:
        return ", ".join(parts) + " — details in the cards below."
    return result.get("note") or "Not verified (switched off)."


def value_text(value: Any) -> str:
    """A short rendering of a measured value (numbers to 4 significant digits)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict) and {"reference", "gguf", "ratio"} <= set(value):
        return (f"{value_text(value['gguf'])} vs {value_text(value['reference'])} "
                f"(ratio {value_text(value['ratio'])})")
    if isinstance(value, dict):
        return ", ".join(f"{k} {value_text(v)}" for k, v in value.items())
    if isinstance(value, str):
        line = value.replace("\n", " ")
        return line if len(line) <= 60 else line[:57] + "..."
    return "—" if value is None else str(value)


class VerifyCard(QFrame):
    """One file's verification: overall verdict in colour, icon and word, then each check with
    its measured value and threshold (the explanation in the row's tooltip). ``title`` names
    what was checked before the file name (e.g. "Merged model"); ``on_open`` adds an "Open
    folder" button."""

    def __init__(self, report: dict[str, Any], *, title: str | None = None,
                 on_open: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__(objectName="verifyCard")
        self.report = report
        self.status = report.get("overall", "warn")
        icon, word, colour = status_style(self.status)
        self.setProperty("status", self.status)
        self.setStyleSheet(f"QFrame#verifyCard {{ border: 2px solid {colour}; border-radius: 8px; }}")
        layout = QVBoxLayout(self)
        name = Path(report.get("path", "?")).name
        name = f"{title}: {name}" if title else name
        size = human_bytes(report["bytes"]) if report.get("bytes") else ""
        self.header = QLabel(f"{icon} {word} — {name} ({report.get('quant', '?')}"
                             f"{', ' + size if size else ''})", objectName="verifyVerdict")
        self.header.setStyleSheet(f"color: {colour}; font-weight: 600; font-size: 11.5pt;")
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        if on_open is not None:
            button = QPushButton("Open folder", objectName="cardOpen")
            button.clicked.connect(lambda: on_open(report))
            top.addWidget(button)
        layout.addLayout(top)
        if report.get("error"):
            layout.addWidget(label(report["error"], "hint", wrap=True))
        self.rows = self._checks(layout, report.get("checks", []))

    def _checks(self, layout: QVBoxLayout, checks: list[dict[str, Any]]) -> list[list[QLabel]]:
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        rows = []
        for r, check in enumerate(checks):
            icon, word, colour = status_style(check["status"])
            cells = [QLabel(f"{icon} {word}"),
                     QLabel(CHECK_TITLES.get(check["name"], check["name"])),
                     QLabel(value_text(check.get("value"))),
                     label(f"threshold: {check.get('threshold', '')}", "hint")]
            cells[0].setStyleSheet(f"color: {colour}; font-weight: 600;")
            tip = f"{check.get('explanation', '')}\nThreshold: {check.get('threshold', '')}"
            for c, cell in enumerate(cells):
                cell.setToolTip(tip)
                grid.addWidget(cell, r, c)
            rows.append(cells)
        grid.setColumnStretch(3, 1)
        layout.addLayout(grid)
        return rows


def quant_table(reports: list[dict[str, Any]]) -> QTableWidget:
    """The quantization report: one row per file (f16 / q8_0 / q4_k_m ...) side by side."""
    table = QTableWidget(0, len(QUANT_COLUMNS), objectName="quantTable")
    table.setHorizontalHeaderLabels(QUANT_COLUMNS)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    fill_quant_table(table, reports)
    return table


def fill_quant_table(table: QTableWidget, reports: list[dict[str, Any]]) -> None:
    """Replace ``table``'s rows with ``reports``, smallest export type last (f16 first)."""
    table.setRowCount(len(reports))
    for r, report in enumerate(reports):
        m = report.get("metrics") or {}
        icon, word, _ = status_style(report.get("overall", "warn"))
        ppl = (f"{value_text(m.get('perplexity_gguf'))} / "
               f"{value_text(m.get('perplexity_reference'))}")
        cells = (Path(report.get("path", "?")).name, report.get("quant", "?"),
                 human_bytes(report.get("bytes")), value_text(m.get("tokens_per_second")), ppl,
                 value_text(m.get("top1_agreement")), value_text(m.get("mean_kl")),
                 f"{icon} {word}")
        for c, text in enumerate(cells):
            table.setItem(r, c, QTableWidgetItem(text))
    table.resizeColumnsToContents()
    rows_height = sum(table.rowHeight(r) for r in range(table.rowCount()))
    table.setFixedHeight(table.horizontalHeader().height() + rows_height + 2 * table.frameWidth())


def confirm_share(parent: QWidget, report: dict[str, Any] | None,
                  proceed: Callable[[], None]) -> QMessageBox | None:
    """Call ``proceed`` at once, or first warn (window-modal, non-blocking) when the file's
    report failed; ``proceed`` then runs only if the user chooses "Open anyway".

    Returns:
        The warning box when one was shown (``objectName`` ``shareWarning``), else ``None``.
    """
    if not report or report.get("overall") != "fail":
        proceed()
        return None
    failed = [c for c in report.get("checks", []) if c["status"] == "fail"]
    box = QMessageBox(QMessageBox.Icon.Warning, "This file failed verification",
                      f"{Path(report.get('path', '')).name} does not behave like the model you "
                      "trained. Shared as it is, it may answer badly, never stop or speak "
                      "gibberish in other apps.", parent=parent, objectName="shareWarning")
    box.setInformativeText("\n".join(f"✖ {CHECK_TITLES.get(c['name'], c['name'])}: "
                                     f"{c['explanation']}" for c in failed))
    anyway = box.addButton("Open anyway", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.buttonClicked.connect(lambda button: button is anyway and proceed())
    box.open()
    return box
