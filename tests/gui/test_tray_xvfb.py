"""The tray icon docks in a real X11 tray host (trayer under Xvfb) and its menu opens and works.

Screenshots go to tests/artifacts/ (not committed)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QImage

from tests.gui.conftest import ARTIFACTS, OFFICE
from tests.gui.test_instances import _argv
from tests.gui.xdisplay import XDisplay, x_display
from tests.netns import wait_for
from tests.secret_service import SecretService

pytestmark = pytest.mark.gui

ERROR_RED = QColor("#dc2626")


def _close(a: QColor, b: QColor, tolerance: int = 24) -> bool:
    return abs(a.red() - b.red()) + abs(a.green() - b.green()) + abs(a.blue() - b.blue()) <= tolerance


def _find(image: QImage, colour: QColor, top: int, bottom: int) -> tuple[int, int, int] | None:
    """(count, centre x, centre y) of pixels close to *colour* in rows top..bottom."""
    xs, ys = [], []
    for y in range(top, bottom):
        for x in range(image.width()):
            if _close(image.pixelColor(x, y), colour):
                xs.append(x)
                ys.append(y)
    if not xs:
        return None
    return len(xs), (min(xs) + max(xs)) // 2, (min(ys) + max(ys)) // 2


def _changed(a: QImage, b: QImage, x0: int, y0: int, x1: int, y1: int) -> int:
    return sum(a.pixel(x, y) != b.pixel(x, y) for y in range(y0, y1, 2) for x in range(x0, x1, 2))


def tray_app_env(display: XDisplay, tmp_path: Path) -> dict[str, str]:
    """The environment of a wgdesk process on ``display``'s X server, with no helper."""
    return dict(
        display.env,
        QT_QPA_PLATFORM="xcb",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        WGDESK_INSTANCE=f"wgdesk-tray-{os.getpid()}-{tmp_path.name}",
        WGDESK_SOCKET=str(tmp_path / "no-helper.sock"),
    )


@pytest.fixture
def display(keyring_session: SecretService) -> Iterator[XDisplay]:
    with x_display(keyring_session.env) as d:
        yield d


def test_tray_icon_docks_in_trayer_and_its_menu_opens_and_quits(display: XDisplay, tmp_path: Path) -> None:
    source = tmp_path / "office.conf"
    source.write_text(OFFICE)
    env = tray_app_env(display, tmp_path)
    before = QImage(str(display.screenshot(tmp_path / "before.png")))
    assert _find(before, ERROR_RED, 0, 40) is None
    log = open(tmp_path / "wgdesk.log", "wb")  # noqa: SIM115
    app = subprocess.Popen(_argv("--minimized", str(source)), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # no helper runs, so the icon shows the error state (red disc) — docked inside trayer's strip
        found: list[tuple[int, int, int] | None] = [None]

        def docked() -> bool:
            shot = QImage(str(display.screenshot(tmp_path / "poll.png")))
            found[0] = _find(shot, ERROR_RED, 0, 32)
            return found[0] is not None and found[0][0] > 30

        assert wait_for(docked, 30, 0.5), (tmp_path / "wgdesk.log").read_text()
        docked_shot = display.screenshot(ARTIFACTS / "tray-docked.png")
        _, x, y = found[0]  # type: ignore[misc]
        assert x > display.width - 120  # inside trayer (right-aligned, 120 px wide)
        closed = QImage(str(docked_shot))
        menu_open: list[QImage] = []

        def menu_shown() -> bool:
            display.xdotool("mousemove", str(x), str(y), "click", "3")
            time.sleep(0.5)
            shot = QImage(str(display.screenshot(tmp_path / "menu-poll.png")))
            if _changed(closed, shot, display.width - 320, 32, display.width, 200) > 500:
                menu_open.append(shot)
                return True
            return False

        assert wait_for(menu_shown, 15, 0.5), "the tray menu did not open"
        time.sleep(0.3)
        display.screenshot(ARTIFACTS / "tray-menu.png")
        # the last entry is "Quit": choosing it must end the app cleanly
        display.xdotool("key", "Up", "Return")
        assert app.wait(15) == 0
    finally:
        if app.poll() is None:
            app.terminate()
            app.wait(10)
        log.close()
