"""GUI test setup: Qt renders offscreen (set before Qt is imported, or Qt aborts without a display), every
test gets its own tunnel directory, settings file, instance name and a real Secret Service (gnome-keyring on a
private D-Bus session), and no helper unless the test starts one."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("XDG_SESSION_TYPE", "x11")

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from tests.secret_service import SecretService, keyring_session, secret_service  # noqa: F401
from wgdesk.app.controller import TunnelController
from wgdesk.app.manager import ManagerWindow
from wgdesk.app.settings import AppSettings
from wgdesk.client import HelperClient
from wgdesk.keystore import KeyStore
from wgdesk.tunnels import TunnelStore

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

PRIVATE_KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
PUBLIC_KEY = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="  # `wg pubkey` of PRIVATE_KEY
PEER_KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="

OFFICE = f"""[Interface]
PrivateKey = {PRIVATE_KEY}
Address = 10.0.0.2/32, fd00::2/128
DNS = 10.0.0.1

[Peer]
PublicKey = {PEER_KEY}
Endpoint = 192.0.2.1:51820
AllowedIPs = 10.0.0.0/24
"""


@pytest.fixture
def gui_env(keyring_session: SecretService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SecretService:  # noqa: F811
    """The keyring session plus a per-test instance name and a helper socket nobody listens on."""
    monkeypatch.setenv("WGDESK_INSTANCE", f"wgdesk-test-{os.getpid()}-{tmp_path.name}")
    monkeypatch.setenv("WGDESK_SOCKET", str(tmp_path / "no-helper.sock"))
    return keyring_session


@pytest.fixture
def store(gui_env: SecretService, tmp_path: Path) -> TunnelStore:
    return TunnelStore(directory=tmp_path / "tunnels", keystore=KeyStore(gui_env.backend()))


@pytest.fixture
def controller(qtbot, store: TunnelStore, tmp_path: Path) -> Iterator[TunnelController]:  # type: ignore[no-untyped-def]
    socket = os.environ["WGDESK_SOCKET"]
    settings = AppSettings(QSettings(str(tmp_path / "wgdesk.conf"), QSettings.Format.IniFormat))
    c = TunnelController(store, lambda: HelperClient(socket, timeout=10), settings, poll_interval=0.2)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def manager(qtbot, controller: TunnelController) -> ManagerWindow:  # type: ignore[no-untyped-def]
    window = ManagerWindow(controller, main_window=True)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def wait_idle(qtbot, controller: TunnelController, timeout: int = 10000) -> None:  # type: ignore[no-untyped-def]
    """Wait until every worker task has called back."""
    qtbot.waitUntil(lambda: not controller.runner.busy, timeout=timeout)


@contextmanager
def app_on_helper(  # type: ignore[no-untyped-def]
    qtbot, store: TunnelStore, tmp_path: Path, socket: Path, name: str, poll_interval: float = 0.5
) -> Iterator[tuple[TunnelController, ManagerWindow]]:
    """A started controller and its manager window talking to the real helper at ``socket``; on exit the
    tunnel ``name`` is taken down if it is still up and the controller is stopped."""
    settings = AppSettings(QSettings(str(tmp_path / "wgdesk.conf"), QSettings.Format.IniFormat))
    controller = TunnelController(
        store, lambda: HelperClient(socket, timeout=60), settings, poll_interval=poll_interval
    )
    controller.start()
    manager = ManagerWindow(controller)
    qtbot.addWidget(manager)
    try:
        yield controller, manager
    finally:
        if controller.status(name) is not None:
            with HelperClient(socket) as c:
                c.down(name)
        wait_idle(qtbot, controller, 30000)
        controller.stop()
