"""Render ``tunesmith.svg`` to the PNG sizes desktops use: ``python packaging/icons/render_icons.py``.

Qt's own SVG renderer draws it (no download, no extra tool); the PNGs are committed so that
building the app needs nothing but PyInstaller.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).resolve().parent
SIZES = (512, 256, 128, 64, 48, 32, 16)


def render(size: int, out: Path) -> None:
    """Draw the SVG into a transparent ``size`` x ``size`` PNG at ``out``."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(HERE / "tunesmith.svg")).render(painter)
    painter.end()
    if not image.save(str(out)):
        raise OSError(f"could not write {out}")


def main() -> int:
    """Write ``tunesmith.png`` (256 px) and ``hicolor/<n>x<n>/apps/tunesmith.png``."""
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - needed by QImage text/SVG
    render(256, HERE / "tunesmith.png")
    for size in SIZES:
        folder = HERE / "hicolor" / f"{size}x{size}" / "apps"
        folder.mkdir(parents=True, exist_ok=True)
        render(size, folder / "tunesmith.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
