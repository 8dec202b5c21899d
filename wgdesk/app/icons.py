"""Tray and window icons, drawn as SVG.

The four state icons share one shape so that only colour and glyph change: a disc with a dark outer rim
(visible on light panels) and a white inner ring and glyph (visible on dark panels). Strokes are multiples of
4 units on a 64-unit grid, so they land on whole pixels at 16, 32, 48 and 64 px. Each state also differs by
glyph (dash, dots, check mark, exclamation mark), not by colour alone.

On macOS the menu-bar icon is a *template* image instead (`template_icon`, `QIcon.setIsMask`): AppKit uses
only its alpha and paints it in the menu bar's own colour, so it follows light and dark menu bars and
the wallpaper tint. Colour cannot tell the states apart there, so shape does: off and connecting are a
ring with the glyph inside, connected and error a solid disc with the glyph cut out.

``python -m wgdesk.app.icons DIR`` writes the same SVGs as files (``resources/icons`` is generated this way
and a test checks that it is current).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QIcon, QPainter, QPixmap

from wgdesk.app.state import IconState

_FILL = {
    IconState.DISCONNECTED: "#6b7280",
    IconState.CONNECTING: "#d97706",
    IconState.CONNECTED: "#15803d",
    IconState.ERROR: "#dc2626",
}

_GLYPH = {
    # a horizontal bar: "off"
    IconState.DISCONNECTED: '<path d="M20 32 H44" stroke="#ffffff" stroke-width="8" stroke-linecap="round"/>',
    # three dots: "working"
    IconState.CONNECTING: (
        '<circle cx="20" cy="32" r="5" fill="#ffffff"/>'
        '<circle cx="32" cy="32" r="5" fill="#ffffff"/>'
        '<circle cx="44" cy="32" r="5" fill="#ffffff"/>'
    ),
    # a check mark: "connected"
    IconState.CONNECTED: (
        '<path d="M18 33 L28 43 L46 23" fill="none" stroke="#ffffff" stroke-width="8" '
        'stroke-linecap="round" stroke-linejoin="round"/>'
    ),
    # an exclamation mark: "error"
    IconState.ERROR: (
        '<path d="M32 16 V36" stroke="#ffffff" stroke-width="8" stroke-linecap="round"/>'
        '<circle cx="32" cy="46" r="5" fill="#ffffff"/>'
    ),
}

_APP_ICON = """<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">
  <rect x="2" y="2" width="60" height="60" rx="14" fill="#1e3a8a" stroke="#0b1220" stroke-width="4"/>
  <circle cx="24" cy="32" r="10" fill="none" stroke="#ffffff" stroke-width="6"/>
  <path d="M34 32 H52 M46 32 V42 M52 32 V40" fill="none" stroke="#ffffff" stroke-width="6"
        stroke-linecap="round" stroke-linejoin="round"/>
</svg>
"""

SIZES = (16, 22, 24, 32, 48, 64)


def state_svg(state: IconState) -> str:
    """The SVG source of the icon for *state*."""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">\n'
        f'  <circle cx="32" cy="32" r="29" fill="{_FILL[state]}" stroke="#111827" stroke-width="4"/>\n'
        '  <circle cx="32" cy="32" r="24" fill="none" stroke="#ffffff" stroke-opacity="0.85"'
        ' stroke-width="2"/>\n'
        f"  {_GLYPH[state]}\n"
        "</svg>\n"
    )


def app_svg() -> str:
    """The SVG source of the application icon."""
    return _APP_ICON


def _paint(draw: Callable[[QPainter, QRectF], None]) -> QIcon:
    """An icon with one pixmap per tray size, each drawn by ``draw(painter, rectangle)``."""
    icon = QIcon()
    for size in SIZES:
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        draw(painter, QRectF(0, 0, size, size))
        painter.end()
        icon.addPixmap(pixmap)
    return icon


def _render(svg: str) -> QIcon:
    from PySide6.QtSvg import QSvgRenderer

    return _paint(QSvgRenderer(QByteArray(svg.encode())).render)


_SOLID = frozenset({IconState.CONNECTED, IconState.ERROR})
"""Template states drawn as a solid disc with the glyph cut out (the others: a ring around the glyph)."""


def _svg(body: str) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">{body}</svg>'


def _render_template(state: IconState) -> QIcon:
    from PySide6.QtSvg import QSvgRenderer

    glyph = QSvgRenderer(QByteArray(_svg(_GLYPH[state]).encode()))
    if state in _SOLID:
        shape = QSvgRenderer(QByteArray(_svg('<circle cx="32" cy="32" r="30" fill="#000000"/>').encode()))
    else:
        black = _GLYPH[state].replace("#ffffff", "#000000")
        ring = '<circle cx="32" cy="32" r="27" fill="none" stroke="#000000" stroke-width="6"/>'
        shape = QSvgRenderer(QByteArray(_svg(ring + black).encode()))

    def draw(painter: QPainter, rect: QRectF) -> None:
        shape.render(painter, rect)
        if state in _SOLID:  # the glyph's pixels become transparent
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationOut)
            glyph.render(painter, rect)

    icon = _paint(draw)
    icon.setIsMask(True)  # Qt's cocoa tray makes it an NSImage template
    return icon


@cache
def template_icon(state: IconState) -> QIcon:
    """The macOS menu-bar icon for *state*: black with alpha, marked as a mask (a template image)."""
    return _render_template(state)


@cache
def state_icon(state: IconState) -> QIcon:
    """A multi-size icon for *state*, pre-rendered at every tray size so nothing is scaled blurrily."""
    return _render(state_svg(state))


@cache
def app_icon() -> QIcon:
    """The application icon."""
    return _render(app_svg())


def write_svgs(directory: Path) -> list[Path]:
    """Write ``wgdesk.svg`` and ``wgdesk-STATE.svg`` into *directory*; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "wgdesk.svg"]
    written[0].write_text(app_svg())
    for state in IconState:
        path = directory / f"wgdesk-{state.value}.svg"
        path.write_text(state_svg(state))
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_svgs(Path(sys.argv[1] if len(sys.argv) > 1 else "resources/icons")):
        print(p)
