"""The macOS menu-bar icon is a template image: one colour with alpha, marked as a mask, so that AppKit
paints it in the menu bar's colour (light or dark); its states differ by shape.

No Mac here: the macOS branch is chosen the way the app chooses it (`wgdesk.platforms.system`, read by
`wgdesk.app.tray`), AppKit's template drawing (the alpha filled with the bar's colour) is done by the
test, and the real app with the branch forced docks its icon in a real X11 tray (trayer under Xvfb),
where Qt draws the pixmap as it is. How the menu bar really renders it has never been seen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QImage, QPainter

from tests.gui.conftest import ARTIFACTS
from tests.gui.test_tray_xvfb import ERROR_RED, _find, display, tray_app_env  # noqa: F401
from tests.gui.xdisplay import XDisplay
from tests.netns import wait_for
from wgdesk.app.icons import SIZES, state_icon, template_icon
from wgdesk.app.state import IconState
from wgdesk.app.tray import Tray, tray_icon

pytestmark = pytest.mark.gui

HOLLOW = {IconState.DISCONNECTED, IconState.CONNECTING}


def alpha(image: QImage) -> list[int]:
    return [image.pixelColor(x, y).alpha() for y in range(image.height()) for x in range(image.width())]


def image(state: IconState, size: int) -> QImage:
    return template_icon(state).pixmap(size, size).toImage()


def as_menu_bar_draws_it(state: IconState, background: str, foreground: str) -> QImage:
    """AppKit's template drawing: the icon's alpha filled with the bar's foreground, over its background."""
    icon = image(state, 22)
    tinted = QImage(icon)
    painter = QPainter(tinted)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
    painter.fillRect(tinted.rect(), QColor(foreground))
    painter.end()
    bar = QImage(icon.size(), QImage.Format.Format_ARGB32)
    bar.fill(QColor(background))
    painter = QPainter(bar)
    painter.drawImage(0, 0, tinted)
    painter.end()
    return bar


def test_the_tray_chooses_a_template_icon_on_macos_only(qtbot, controller, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("wgdesk.app.tray.system", lambda: "darwin")
    tray = Tray(controller)
    assert tray.icon.icon().isMask()
    assert tray.icon.icon().cacheKey() == template_icon(tray.state).cacheKey()
    for other in ("linux", "win32"):
        monkeypatch.setattr("wgdesk.app.tray.system", lambda other=other: other)
        tray.refresh()
        assert not tray.icon.icon().isMask()
        assert tray.icon.icon().cacheKey() == state_icon(tray.state).cacheKey()
        assert tray_icon(IconState.ERROR).cacheKey() == state_icon(IconState.ERROR).cacheKey()


@pytest.mark.parametrize("state", list(IconState))
def test_template_icons_are_one_colour_with_alpha_at_every_size(qapp, state: IconState) -> None:  # type: ignore[no-untyped-def]
    assert template_icon(state).isMask()
    for size in SIZES:
        picture = image(state, size)
        assert picture.size().width() == size
        colours = {
            (c.red(), c.green(), c.blue())
            for y in range(size)
            for x in range(size)
            if (c := picture.pixelColor(x, y)).alpha() > 0
        }
        assert colours == {(0, 0, 0)}, (size, colours)  # colour would be thrown away by AppKit
        assert sum(a > 128 for a in alpha(picture)) > size * size // 8  # not empty


def test_states_differ_by_shape_on_light_and_dark_menu_bars(qapp) -> None:  # type: ignore[no-untyped-def]
    for state in IconState:  # a ring around the glyph, or a disc with the glyph cut out
        between_ring_and_glyph = image(state, 64).pixelColor(20, 20).alpha()
        assert (between_ring_and_glyph == 0) == (state in HOLLOW), state
    for background, foreground in (("#ececec", "#000000"), ("#1e1e1e", "#ffffff")):
        drawn = {s: as_menu_bar_draws_it(s, background, foreground) for s in IconState}
        for s in IconState:
            ink = sum(drawn[s].pixelColor(x, y) != QColor(background) for y in range(22) for x in range(22))
            assert ink > 22 * 22 // 8, (background, s)  # visible on this bar
        for a in IconState:
            for b in IconState:
                if a is b:
                    continue
                differing = sum(
                    drawn[a].pixelColor(x, y) != drawn[b].pixelColor(x, y)
                    for y in range(22)
                    for x in range(22)
                )
                assert differing >= 20, (background, a, b, differing)


DARWIN_APP = """
import sys
import wgdesk.platforms
wgdesk.platforms.system = lambda: "darwin"  # before the app's modules read it
from wgdesk.app.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_app_on_the_macos_branch_docks_a_one_colour_icon(display: XDisplay, tmp_path: Path) -> None:  # noqa: F811
    env = tray_app_env(display, tmp_path)
    black = QColor("#000000")
    strip = display.width - 120  # trayer: right-aligned, 120 px wide, 32 px high

    def black_in_tray(shot: QImage) -> int:
        found = _find(shot.copy(strip, 0, 120, 32), black, 0, 32)
        return found[0] if found else 0

    before = QImage(str(display.screenshot(tmp_path / "before.png")))
    assert black_in_tray(before) == 0  # control: the strip itself has no black
    log = open(tmp_path / "wgdesk.log", "wb")  # noqa: SIM115
    app = subprocess.Popen(
        [sys.executable, "-c", DARWIN_APP, "--minimized"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # no helper: the error state, which on Linux is a red disc (test_tray_xvfb.py)
        assert wait_for(
            lambda: black_in_tray(QImage(str(display.screenshot(tmp_path / "poll.png")))) > 30, 30, 0.5
        ), (tmp_path / "wgdesk.log").read_text()
        shot = QImage(str(display.screenshot(ARTIFACTS / "tray-docked-template.png")))
        assert _find(shot, ERROR_RED, 0, 32) is None
    finally:
        app.terminate()
        app.wait(10)
        log.close()
