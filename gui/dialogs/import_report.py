"""The import report: detected format, counts and every bad row with its line and reason."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from gui.widgets import label


def _issue_fields(issue: Any) -> tuple[str, str, str]:
    """``(line, reason, field)`` of an issue given as a tuple, dict or object."""
    if isinstance(issue, (tuple, list)):
        parts = list(issue) + [None] * 3
        return tuple("" if v is None else str(v) for v in parts[:3])  # type: ignore[return-value]
    get = issue.get if isinstance(issue, dict) else lambda k: getattr(issue, k, None)
    return tuple("" if get(k) is None else str(get(k)) for k in ("line", "reason", "field"))  # type: ignore[return-value]


class ImportReportDialog(QDialog):
    """Shows an ``ImportResult``-like object (format, imported, skipped, duplicates, issues)."""

    def __init__(self, source: str, result: Any, dataset_name: str | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import report")
        self.resize(720, 460)
        issues = list(getattr(result, "issues", []) or [])
        where = f" into dataset “{dataset_name}”" if dataset_name else " (nothing was saved)"
        summary = (f"<b>{source}</b>{where}<br>Format detected: <b>{getattr(result, 'format', '?')}"
                   f"</b> · imported <b>{getattr(result, 'imported', 0)}</b> · skipped "
                   f"<b>{getattr(result, 'skipped', 0)}</b> · duplicates "
                   f"<b>{getattr(result, 'duplicates', 0)}</b>")
        self.summary = label(summary, wrap=True)
        self.table = QTableWidget(len(issues), 3)
        self.table.setObjectName("issuesTable")
        self.table.setHorizontalHeaderLabels(["Line", "Reason", "Field"])
        self.table.horizontalHeader().setStretchLastSection(False)
        for row, issue in enumerate(issues):
            for column, text in enumerate(_issue_fields(issue)):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(1, self.table.horizontalHeader()
                                                           .ResizeMode.Stretch)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(label(f"{len(issues)} row(s) with problems" if issues
                               else "No problems found.", "hint"))
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
