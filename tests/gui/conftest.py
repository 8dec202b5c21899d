"""GUI test setup: Qt renders offscreen (set before Qt is imported, or Qt aborts without a display), every
test gets its own tunnel directory, settings file, instance name and a real Secret Service (gnome-keyring on a
private D-Bus session), and no helper unless the test starts one.

A modal dialog nobody answers would block its test forever (``exec()`` runs Qt's own loop, where the per-test
timeout's signal cannot stop it): while a test runs, one left open for `MODAL_PATIENCE` seconds is closed and
the test fails naming it.

Qt objects a test leaves in reference cycles (a stopped `TunnelController` is one) are collected on the UI
thread before the next test starts. Left to Python's cycle collector, which runs on whichever thread
allocates at that moment, one was destroyed on a keyring worker thread during a later test and deadlocked
it: the worker held Qt's signal-slot lock in ~QObject and waited for the GIL, the UI thread held the GIL and
waited for that lock."""

from __future__ import annotations

import gc
import os
import time

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("XDG_SESSION_TYPE", "x11")

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

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


MODAL_PATIENCE = 20.0


class ModalWatch:
    """Closes a modal dialog that stays open `patience` seconds and remembers what it said."""

    def __init__(self, patience: float | None = None) -> None:
        self.patience = MODAL_PATIENCE if patience is None else patience
        self.closed: list[str] = []
        self._since: tuple[object, float] | None = None
        self._timer = QTimer()
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._check)
        self._timer.start()

    def _check(self) -> None:
        widget = QApplication.activeModalWidget()
        if widget is None:
            self._since = None
            return
        if self._since is None or self._since[0] is not widget:
            self._since = (widget, time.monotonic())
            return
        if time.monotonic() - self._since[1] < self.patience:
            return
        text = widget.text() if isinstance(widget, QMessageBox) else ""
        self.closed.append(f"{type(widget).__name__} {widget.windowTitle()!r}: {text!r}")
        self._since = None
        if isinstance(widget, QDialog):
            widget.reject()
        else:
            widget.close()

    def stop(self) -> None:
        self._timer.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    watch = ModalWatch() if QApplication.instance() is not None else None
    outcome = yield
    if watch is not None:
        watch.stop()
        if watch.closed:
            outcome.force_exception(
                AssertionError(
                    f"a modal dialog nobody answered stayed open {watch.patience:g} s and was closed: "
                    + "; ".join(watch.closed)
                )
            )


@pytest.fixture(autouse=True)
def collect_garbage_on_the_ui_thread() -> Iterator[None]:
    """What earlier tests left in cycles is destroyed now, on this thread, before this test's workers start
    (at teardown pytest itself still holds the test's fixture values, so that collection comes here)."""
    gc.collect()
    yield
    gc.collect()


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
        if controller.live.status(name) is not None:
            with HelperClient(socket) as c:
                c.down(name)
        wait_idle(qtbot, controller, 30000)
        controller.stop()


def close_application(application, server, app) -> None:  # type: ignore[no-untyped-def]
    """Tear down a `wgdesk.app.main.Application` a test built, leaving the shared QApplication as the
    next test expects it."""
    application.controller.stop()
    server.close()
    application.collector.stop()  # automatic collection back for later tests
    application.manager.main_window = False
    application.manager.close()
    app.setQuitOnLastWindowClosed(True)
