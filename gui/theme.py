"""Light/dark theme that follows the system colour scheme (Fusion style plus a palette).

Qt >= 6.5 reports the system scheme through ``QStyleHints.colorScheme``; we repaint on
``colorSchemeChanged`` so the app follows the desktop when the user switches mode.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")
ACCENT = "#3b82f6"

_DARK = {
    QPalette.ColorRole.Window: "#1f2227", QPalette.ColorRole.WindowText: "#e6e6e6",
    QPalette.ColorRole.Base: "#16181c", QPalette.ColorRole.AlternateBase: "#1c1f24",
    QPalette.ColorRole.Text: "#e6e6e6", QPalette.ColorRole.Button: "#2a2e35",
    QPalette.ColorRole.ButtonText: "#e6e6e6", QPalette.ColorRole.ToolTipBase: "#2a2e35",
    QPalette.ColorRole.ToolTipText: "#e6e6e6", QPalette.ColorRole.PlaceholderText: "#8a8f98",
    QPalette.ColorRole.Highlight: ACCENT, QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#7aa7ff", QPalette.ColorRole.Mid: "#3a3f47",
}
_LIGHT = {
    QPalette.ColorRole.Window: "#f4f5f7", QPalette.ColorRole.WindowText: "#1d1f23",
    QPalette.ColorRole.Base: "#ffffff", QPalette.ColorRole.AlternateBase: "#f7f8fa",
    QPalette.ColorRole.Text: "#1d1f23", QPalette.ColorRole.Button: "#ffffff",
    QPalette.ColorRole.ButtonText: "#1d1f23", QPalette.ColorRole.ToolTipBase: "#ffffff",
    QPalette.ColorRole.ToolTipText: "#1d1f23", QPalette.ColorRole.PlaceholderText: "#8a8f98",
    QPalette.ColorRole.Highlight: ACCENT, QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#2563eb", QPalette.ColorRole.Mid: "#d5d8de",
}

_STYLE = """
QListWidget#sidebar { border: none; font-size: 10.5pt; padding-top: 8px; outline: 0;
    background: palette(base); }
QListWidget#sidebar::item { padding: 9px 14px; border-radius: 6px; margin: 1px 8px; border: none; }
QListWidget#sidebar::item:selected { background: %(accent)s; color: white; border: none; }
QListWidget#sidebar::item:hover:!selected { background: palette(alternate-base); }
QLabel[role="title"] { font-size: 15pt; font-weight: 600; }
QLabel[role="hint"] { color: palette(placeholder-text); }
QLabel[role="error"] { color: #dc2626; }
QPushButton[primary="true"] { background: %(accent)s; color: white; border: none;
    padding: 6px 16px; border-radius: 5px; font-weight: 600; }
QPushButton[primary="true"]:disabled { background: palette(mid); color: palette(window); }
QStatusBar QLabel { padding: 0 10px; }
QStatusBar::item { border: none; }
QFrame[card="true"] { background: palette(base); border: 1px solid palette(mid); border-radius: 8px; }
"""


def is_dark(mode: str) -> bool:
    """Whether ``mode`` ("system", "light", "dark") resolves to dark right now."""
    if mode == "system":
        return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark
    return mode == "dark"


def apply_theme(app: QApplication, mode: str = "system") -> bool:
    """Apply the Fusion style with a light or dark palette; return whether it is dark."""
    dark = is_dark(mode)
    app.setStyle("Fusion")
    palette = QPalette()
    for role, colour in (_DARK if dark else _LIGHT).items():
        palette.setColor(role, QColor(colour))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#8a8f98"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#8a8f98"))
    app.setPalette(palette)
    app.setStyleSheet(_STYLE % {"accent": ACCENT})
    _theme_plots(dark)
    return dark


def _theme_plots(dark: bool) -> None:
    """Set pyqtgraph's defaults and recolour charts that already exist."""
    import pyqtgraph as pg

    background, foreground = ("#16181c", "#c8ccd2") if dark else ("#ffffff", "#3a3f47")
    pg.setConfigOptions(antialias=True, background=background, foreground=foreground)
    for widget in QApplication.allWidgets():
        if isinstance(widget, pg.PlotWidget):
            widget.setBackground(background)
            legend = widget.plotItem.legend
            if legend is not None:
                legend.setLabelTextColor(foreground)
                # pyqtgraph stores the new colour but re-renders a label only on setText.
                for _, text in legend.items:
                    text.setText(text.text)
            for name in ("left", "bottom"):
                axis = widget.getAxis(name)
                axis.setPen(foreground)
                axis.setTextPen(foreground)
