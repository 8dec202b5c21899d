#!/usr/bin/env python3
"""Renders the SVG icon to PNG with Qt's SVG renderer (PySide6, already a dependency of the app).

    python installers/icons.py SVG SIZE:OUT.png [SIZE:OUT.png ...]
    python installers/icons.py SVG 16,32,48,64,256:OUT.ico

Rasterizing with the library the app itself draws its icons with means the PNG sizes in the packages do
not depend on which rasterizer (ImageMagick and its SVG delegate, rsvg-convert, Inkscape) a build
machine happens to have. `png()` is also used by `installers/macos/make-icns`; `ico()` makes the Windows
icon (``wgdesk.ico``, for the executables and the setup) from the same renderings.
"""

from __future__ import annotations

import os
import struct
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
    if not image.save(buffer, "PNG"):  # type: ignore[call-overload]  # the stubs want bytes, the binding a str
        raise OSError(f"could not encode a {size}x{size} PNG")
    buffer.close()
    return bytes(data.data())


def ico(svg: Path, sizes: list[int]) -> bytes:
    """A Windows icon holding ``svg`` at each size, each image a PNG (the ICO layout since Windows Vista).

    The container is ``ICONDIR`` (reserved 0, type 1, count), one 16-byte ``ICONDIRENTRY`` per image
    (width and height, 0 meaning 256; colour count 0; reserved 0; planes 1; 32 bits per pixel; byte size;
    offset), then the PNGs. Qt's own ICO writer stores one image per file, Windows picks the size it needs
    from several.
    """
    if not sizes or any(not 1 <= size <= 256 for size in sizes):
        raise ValueError(f"icon sizes must be 1..256 pixels, not {sizes}")
    images = [png(svg, size) for size in sizes]
    offset = 6 + 16 * len(images)
    header = struct.pack("<HHH", 0, 1, len(images))
    entries = b""
    for size, image in zip(sizes, images, strict=True):
        side = 0 if size == 256 else size
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(image), offset)
        offset += len(image)
    return header + entries + b"".join(images)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any(":" not in a for a in argv[1:]):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    svg = Path(argv[0])
    for spec in argv[1:]:
        size, _, out = spec.partition(":")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        if out.endswith(".ico"):
            Path(out).write_bytes(ico(svg, [int(s) for s in size.split(",")]))
        else:
            Path(out).write_bytes(png(svg, int(size)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
