"""Small widgets and formatting helpers shared by the pages."""

from __future__ import annotations

from typing import Iterable

import pyqtgraph as pg
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

# Colour-blind-safe pair (Okabe-Ito blue/orange) plus extras for comparisons.
CURVE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")


def label(text: str = "", role: str | None = None, *, wrap: bool = False) -> QLabel:
    """A QLabel with a style role: "title", "hint" or "error"."""
    widget = QLabel(text)
    if role:
        widget.setProperty("role", role)
    widget.setWordWrap(wrap)
    return widget


def card(*children: QWidget) -> QFrame:
    """A rounded panel holding ``children`` vertically."""
    frame = QFrame()
    frame.setProperty("card", True)
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(12, 10, 12, 10)
    for child in children:
        layout.addWidget(child)
    return frame


def column(*items: QWidget | str) -> QWidget:
    """A widget stacking ``items`` vertically; a str item becomes a page title label."""
    widget = QWidget()
    layout = QVBoxLayout(widget)
    for item in items:
        layout.addWidget(label(item, "title") if isinstance(item, str) else item)
    return widget


def fill_with_splitter(page: QWidget, *parts: QWidget, sizes: tuple[int, ...]) -> QSplitter:
    """Lay ``parts`` out side by side in a user-resizable splitter filling ``page``."""
    splitter = QSplitter()
    for part in parts:
        splitter.addWidget(part)
    splitter.setSizes(list(sizes))
    QHBoxLayout(page).addWidget(splitter)
    return splitter


class LossChart(pg.PlotWidget):
    """A line chart of named series (train loss, eval loss, ...) against the step."""

    def __init__(self, title: str = "Loss", parent: QWidget | None = None) -> None:
        super().__init__(parent=parent)
        self.setObjectName("lossChart")
        self.setMinimumHeight(180)
        self.showGrid(x=True, y=True, alpha=0.2)
        self.setLabel("bottom", "step")
        self.setLabel("left", title)
        self.addLegend(offset=(-10, 10))
        # Long runs have 10^4+ points: draw only what is in view, at most ~2 points per pixel.
        self.setClipToView(True)
        self.setDownsampling(auto=True, mode="peak")
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.points: dict[str, tuple[list[float], list[float]]] = {}

    def set_step_range(self, total: int | None) -> None:
        """Fix the x axis to ``0..total`` steps (``None``: follow the data).

        A fixed axis is not re-laid-out on every redraw; axis text layout is the costliest part
        of a pyqtgraph repaint, so a live chart with fixed axes keeps the GUI thread free.
        """
        if total:
            self.setXRange(0, total, padding=0.02)
        else:
            self.enableAutoRange(axis="x")

    def fit_y(self, *, live: bool = True) -> None:
        """Re-range y only when the data left the view or fills less than half of it.

        ``live`` leaves extra room below (a falling loss curve then moves the view rarely);
        ``live=False`` fits the data snugly, for a finished run.
        """
        values = [y for _, ys in self.points.values() for y in ys]
        if not values:
            return
        low, high = min(values), max(values)
        (view_low, view_high) = self.viewRange()[1]
        span = max(high - low, 1e-6)
        # While y auto-ranges, every new point moves the view and re-lays-out the axis text;
        # a fixed range (set here, which turns auto-range off) moves only when needed.
        auto = self.getViewBox().autoRangeEnabled()[1]
        below = 0.25 if live else 0.08
        if not live or auto or low < view_low or high > view_high \
                or span < 0.5 * (view_high - view_low):
            self.setYRange(low - below * span, high + 0.08 * span, padding=0)

    def set_series(self, name: str, points: Iterable[tuple[float, float]]) -> None:
        """Replace series ``name`` with ``points`` ``[(step, value), ...]``."""
        xs, ys = [], []
        for x, y in points:
            xs.append(float(x))
            ys.append(float(y))
        self.points[name] = (xs, ys)
        self._curve(name).setData(xs, ys)

    def append(self, name: str, step: float, value: float) -> None:
        """Add one point to series ``name``."""
        xs, ys = self.points.setdefault(name, ([], []))
        xs.append(float(step))
        ys.append(float(value))
        self._curve(name).setData(xs, ys)

    def clear_series(self) -> None:
        """Remove every series."""
        for curve in self.curves.values():
            self.removeItem(curve)
        self.plotItem.legend.clear()
        self.curves.clear()
        self.points.clear()

    def _curve(self, name: str) -> pg.PlotDataItem:
        if name not in self.curves:
            colour = CURVE_COLOURS[len(self.curves) % len(CURVE_COLOURS)]
            symbol = "o" if "eval" in name else None
            self.curves[name] = self.plot([], [], name=name, pen=pg.mkPen(colour, width=2),
                                          symbol=symbol, symbolSize=6, symbolBrush=colour)
        return self.curves[name]


def human_bytes(size: float | None) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    if size is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def human_duration(seconds: float | None) -> str:
    """``3725`` -> ``"1h 02m"``; ``None`` -> ``"—"``."""
    if seconds is None or seconds != seconds:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def human_count(value: float | None) -> str:
    """``270_000_000`` -> ``"270M"``."""
    if value is None:
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:g}"
