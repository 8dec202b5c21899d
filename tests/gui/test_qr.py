"""QR export to a phone: a real QR reader (zbarimg) decodes the code shown back to the exported config."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QWidget

from tests.gui.conftest import PEER_KEY, PRIVATE_KEY, wait_idle
from wgdesk.app import import_export, qr
from wgdesk.app.controller import TunnelController
from wgdesk.config import parse

pytestmark = pytest.mark.gui

PRESHARED_KEY = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="
# A typical one-peer tunnel from a VPN provider: full tunnel, DNS, keepalive, preshared key.
PHONE = f"""[Interface]
PrivateKey = {PRIVATE_KEY}
Address = 10.64.12.7/32, fd7d:76ee:e68f:a993::7/128
DNS = 10.64.0.1, fd7d:76ee:e68f:a993::1
MTU = 1380

[Peer]
PublicKey = {PEER_KEY}
PresharedKey = {PRESHARED_KEY}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = vpn.example.net:51820
PersistentKeepalive = 25
"""

WARNING = "This code contains the tunnel's private key. Anyone who scans it can use the tunnel as you."


def _import(qtbot, controller: TunnelController, tmp_path: Path, name: str, text: str) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / f"{name}.conf"
    source.write_text(text)
    with qtbot.waitSignal(controller.library.importFinished, timeout=15000) as done:
        controller.library.import_files([source])
    assert [t.name for t in done.args[0].imported] == [name]


def _exported(qtbot, controller: TunnelController, tmp_path: Path, name: str) -> bytes:  # type: ignore[no-untyped-def]
    """What "Export… with keys" writes to a file."""
    target = tmp_path / f"exported-{name}.conf"
    with qtbot.waitSignal(controller.notices.notify, timeout=15000):
        controller.library.export(name, target, True)
    return target.read_bytes()


@pytest.fixture
def window(qtbot) -> QWidget:  # type: ignore[no-untyped-def]
    """The window the dialog is opened from (the manager, in the app)."""
    parent = QWidget()
    qtbot.addWidget(parent)
    return parent


def _open(qtbot, controller: TunnelController, window: QWidget, name: str) -> qr.QrDialog:  # type: ignore[no-untyped-def]
    dialog = import_export.show_qr(window, controller, name)
    wait_idle(qtbot, controller)
    return dialog


def _decode(image: QImage, path: Path) -> bytes:
    """The payload of the one QR code in *image*, read by zbar (a reader independent of the encoder)."""
    zbarimg = shutil.which("zbarimg")
    assert zbarimg, "zbarimg is missing: scripts/install-test-deps installs zbar-tools"
    assert image.save(str(path), "PNG")
    out = subprocess.run(
        [zbarimg, "--quiet", "--raw", "-Sbinary", str(path)], capture_output=True, timeout=60, check=True
    ).stdout
    return out


def _colours(image: QImage) -> set[int]:
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    return {image.pixel(x, y) & 0xFFFFFF for y in range(image.height()) for x in range(image.width())}


def test_the_code_decodes_to_the_exported_config_with_its_keys(
    qtbot, controller: TunnelController, window: QWidget, tmp_path: Path
) -> None:
    _import(qtbot, controller, tmp_path, "phone", PHONE)
    exported = _exported(qtbot, controller, tmp_path, "phone")
    dialog = _open(qtbot, controller, window, "phone")
    qtbot.waitExposed(dialog)
    assert dialog.windowTitle() == "QR code for phone"
    assert dialog.warning.isVisible() and dialog.warning.text() == WARNING
    assert dialog.warning.textFormat() == Qt.TextFormat.PlainText
    assert dialog.view.isVisible() and not dialog.message.isVisible()
    assert dialog.view.module_px() >= qr.MIN_MODULE_PX

    shown = dialog.view.grab().toImage()
    decoded = _decode(shown, tmp_path / "shown.png")
    assert decoded == exported  # byte for byte what the file export writes
    cfg = parse(decoded.decode("utf-8"), filename="scanned.conf")
    assert cfg.interface.private_key == PRIVATE_KEY
    assert cfg.peers[0].public_key == PEER_KEY
    assert cfg.peers[0].preshared_key == PRESHARED_KEY
    # crisp: every pixel is pure black or pure white (no smoothing at module edges)
    assert _colours(shown) == {0x000000, 0xFFFFFF}

    # scales: a larger dialog draws larger modules, still whole pixels each, still readable
    before = dialog.view.module_px()
    dialog.resize(dialog.size() + QSize(400, 400))
    qtbot.waitUntil(lambda: dialog.view.module_px() > before, timeout=5000)
    larger = dialog.view.grab().toImage()
    assert _decode(larger, tmp_path / "larger.png") == exported
    assert _colours(larger) == {0x000000, 0xFFFFFF}


def test_hide_takes_the_code_off_the_screen_and_show_brings_it_back(
    qtbot, controller: TunnelController, window: QWidget, tmp_path: Path
) -> None:
    _import(qtbot, controller, tmp_path, "phone", PHONE)
    dialog = _open(qtbot, controller, window, "phone")
    qtbot.waitExposed(dialog)
    assert dialog.view.isVisible()
    qtbot.mouseClick(dialog.hide_button, Qt.MouseButton.LeftButton)
    assert not dialog.view.isVisible()
    assert dialog.hide_button.text() == "&Show code"
    assert dialog.warning.isVisible()
    qtbot.mouseClick(dialog.hide_button, Qt.MouseButton.LeftButton)
    assert dialog.view.isVisible()
    assert dialog.hide_button.text() == "&Hide code"


def _holds_secret(obj: object, secret: str, depth: int = 0) -> bool:
    """Whether *obj*'s Python-side state (attributes, containers) mentions *secret* or holds a code."""
    if depth > 3:
        return False
    if isinstance(obj, str):
        return secret in obj
    if isinstance(obj, (bytes, bytearray)):
        return secret.encode() in obj or (depth > 0 and isinstance(obj, bytearray))
    if isinstance(obj, QImage):
        return not obj.isNull()
    if isinstance(obj, (list, tuple, set)):
        return any(_holds_secret(o, secret, depth + 1) for o in obj)
    if isinstance(obj, dict):
        return any(_holds_secret(o, secret, depth + 1) for o in obj.values())
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return any(_holds_secret(o, secret, depth + 1) for o in vars(obj).values())
    return False


def test_closing_forgets_the_code(
    qtbot, controller: TunnelController, window: QWidget, tmp_path: Path
) -> None:
    _import(qtbot, controller, tmp_path, "phone", PHONE)
    dialog = _open(qtbot, controller, window, "phone")
    view = dialog.view
    assert view.has_code()
    assert _holds_secret(view, PRIVATE_KEY)  # the check below can see a code when there is one
    qtbot.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)
    assert not view.has_code()
    assert not _holds_secret(dialog, PRIVATE_KEY)
    assert not _holds_secret(view, PRIVATE_KEY)
    qtbot.waitUntil(lambda: not shiboken6.isValid(dialog), timeout=5000)  # deleted on close


def test_a_code_that_arrives_after_closing_is_dropped(
    qtbot, controller: TunnelController, window: QWidget, tmp_path: Path
) -> None:
    _import(qtbot, controller, tmp_path, "phone", PHONE)
    dialog = import_export.show_qr(window, controller, "phone")
    view = dialog.view
    dialog.close()  # before the keyring answered
    wait_idle(qtbot, controller)
    assert not view.has_code()
    assert not _holds_secret(dialog, PRIVATE_KEY)


def test_a_config_too_large_for_a_code_says_so_and_shows_no_code(
    qtbot, controller: TunnelController, window: QWidget, tmp_path: Path
) -> None:
    peers = "".join(
        f"\n[Peer]\nPublicKey = {base64.b64encode(bytes([i + 1]) * 32).decode()}\n"
        f"AllowedIPs = 10.{i}.0.0/16\n"
        for i in range(60)
    )
    _import(qtbot, controller, tmp_path, "site", PHONE.split("[Peer]")[0] + peers)
    size = len(_exported(qtbot, controller, tmp_path, "site"))
    assert size > qr.MAX_QR_BYTES
    dialog = _open(qtbot, controller, window, "site")
    qtbot.waitExposed(dialog)
    assert dialog.message.isVisible()
    assert dialog.message.text() == (
        f"This tunnel's configuration is too large for a QR code ({size} bytes; a QR code holds at "
        f"most {qr.MAX_QR_BYTES}). Export it to a file instead."
    )
    assert not dialog.view.isVisible() and not dialog.view.has_code()
    assert not dialog.hide_button.isEnabled()
    assert dialog.warning.isVisible()


def test_the_size_limit_is_the_largest_code_at_the_chosen_level() -> None:
    largest = qr.qr_matrix("x" * qr.MAX_QR_BYTES)
    assert len(largest) == 177  # version 40
    with pytest.raises(qr.CodeTooLarge) as exc:
        qr.qr_matrix("x" * (qr.MAX_QR_BYTES + 1))
    assert exc.value.size == qr.MAX_QR_BYTES + 1
    # the limit counts UTF-8 bytes, not characters
    with pytest.raises(qr.CodeTooLarge):
        qr.qr_matrix("é" * (qr.MAX_QR_BYTES // 2 + 1))


def test_a_tunnel_that_cannot_be_read_says_why(qtbot, controller: TunnelController, window: QWidget) -> None:
    dialog = _open(qtbot, controller, window, "missing")
    qtbot.waitExposed(dialog)
    assert dialog.message.text().startswith("Could not read the tunnel: ")
    assert not dialog.view.has_code()


def test_the_manager_menu_opens_the_code_of_the_selected_tunnel(qtbot, manager, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _import(qtbot, manager.controller, tmp_path, "phone", PHONE)
    manager.select("phone")
    with qtbot.waitSignal(manager.controller.runner.idle, timeout=15000):
        manager.qr_action.trigger()
    dialogs = manager.findChildren(qr.QrDialog)
    assert len(dialogs) == 1 and dialogs[0].isVisible()
    assert dialogs[0].windowTitle() == "QR code for phone"
