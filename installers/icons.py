#!/usr/bin/env python3
"""Renders the SVG icon to PNG with Qt's SVG renderer (PySide6, already a dependency of the app).

    python installers/icons.py SVG SIZE:OUT.png [SIZE:OUT.png ...]

Rasterizing with the library the app itself draws its icons with means the PNG sizes in the packages do
not depend on which rasterizer (ImageMagick and its SVG delegate, rsvg-convert, Inkscape) a build
machine happens to have. `png()` is also used by `installers/macos/make-icns`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def png(svg: Path, size: int) -> bytes:
    """``svg`` rendered into a transparent ``size``×``size`` RGBA PNG."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg}: not an SVG image Qt can render")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise OSError(f"could not encode a {size}x{size} PNG")
    buffer.close()
    return bytes(data.data())


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any(":" not in a for a in argv[1:]):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    svg = Path(argv[0])
    for spec in argv[1:]:
        size, _, out = spec.partition(":")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_bytes(png(svg, int(size)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
