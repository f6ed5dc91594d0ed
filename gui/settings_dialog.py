"""Settings: data directory (applies on restart), default device, theme."""

from __future__ import annotations

from PySide6.QtWidgets import (QApplication, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QWidget)

from gui.context import AppContext
from gui.theme import THEMES, apply_theme
from gui.widgets import label

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


class SettingsDialog(QDialog):
    """Edits the QSettings keys ``data_dir``, ``device`` and ``theme``."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)
        self.data_dir = QLineEdit(ctx.setting("data_dir", str(ctx.store.root)))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse)
        row = QHBoxLayout()
        row.addWidget(self.data_dir, 1)
        row.addWidget(browse)
        self.device = QComboBox()
        self.device.addItems(DEVICE_CHOICES)
        self.device.setCurrentText(ctx.setting("device", "auto"))
        self.theme = QComboBox()
        self.theme.addItems(THEMES)
        self.theme.setCurrentText(ctx.setting("theme", "system"))
        form = QFormLayout(self)
        form.addRow("Data directory", row)
        form.addRow("", label("A new data directory is used after a restart.", "hint"))
        form.addRow("Default device", self.device)
        form.addRow("Theme", self.theme)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _on_browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Data directory", self.data_dir.text())
        if path:
            self.data_dir.setText(path)

    def accept(self) -> None:  # noqa: D102 - Qt override
        settings = self.ctx.settings
        settings.setValue("data_dir", self.data_dir.text().strip())
        settings.setValue("device", self.device.currentText())
        settings.setValue("theme", self.theme.currentText())
        apply_theme(QApplication.instance(), self.theme.currentText())
        super().accept()
