"""Finder's double-click on macOS: the file comes as a `QFileOpenEvent` on the application (never in argv),
at launch and while the app runs, and a second instance hands it to the first.

No Mac here: the event AppKit would cause (``application:openFiles:`` → Qt's file-open event) is posted to
the real `QApplication` by the test, in this process and in a real second ``wgdesk`` process whose
platform choice (`wgdesk.platforms.system`) is forced to ``darwin``. Everything after the event is real:
the app's import path, the tunnel store on disk and gnome-keyring on a private D-Bus session. Whether
AppKit delivers the event within `LAUNCH_WAIT_MS` of a second instance's start is not known (never run
on a Mac)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QUrl
from PySide6.QtGui import QFileOpenEvent
from PySide6.QtWidgets import QApplication

from tests.gui.conftest import OFFICE, PRIVATE_KEY, close_application
from tests.gui.test_instances import app_env, first_instance  # noqa: F401
from tests.netns import wait_for
from tests.secret_service import SecretService
from wgdesk.app.main import Application, opens_files_by_event, parse_args
from wgdesk.app.opened_files import FileOpenReceiver
from wgdesk.app.single_instance import InstanceServer

pytestmark = pytest.mark.gui


@pytest.fixture
def app(qtbot, gui_env: SecretService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> QApplication:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the app's default store and settings
    instance = QApplication.instance()
    assert isinstance(instance, QApplication)
    return instance


@pytest.fixture
def receiver(app: QApplication) -> Iterator[FileOpenReceiver]:
    r = FileOpenReceiver(app)
    yield r
    r.close()


@pytest.fixture
def running(app: QApplication, receiver: FileOpenReceiver) -> Iterator[Application]:
    """The real app, wired as `main` wires it, started with no files (Finder passes none)."""
    server = InstanceServer()
    assert server.listen()
    application = Application(app, parse_args(["--minimized"]), server, receiver)
    try:
        yield application
    finally:
        close_application(application, server, app)


def conf(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "Downloads" / f"{name}.conf"
    path.parent.mkdir(exist_ok=True)
    path.write_text(OFFICE)
    return path


def post_open(app: QApplication, target: Path | QUrl) -> None:
    """What Qt's cocoa plugin does for each file of ``application:openFiles:``."""
    event = QFileOpenEvent(target) if isinstance(target, QUrl) else QFileOpenEvent(str(target))
    QCoreApplication.postEvent(app, event)


def stored(tmp_path: Path) -> list[str]:
    tunnels = tmp_path / "config" / "wgdesk" / "tunnels"
    return sorted(p.name for p in tunnels.glob("*.conf")) if tunnels.is_dir() else []


def test_only_macos_delivers_files_by_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("wgdesk.platforms.system", lambda: "darwin")
    assert opens_files_by_event()
    for other in ("linux", "win32"):
        monkeypatch.setattr("wgdesk.platforms.system", lambda other=other: other)
        assert not opens_files_by_event()


def test_files_opened_while_running_are_imported_together(  # type: ignore[no-untyped-def]
    qtbot, app: QApplication, running: Application, tmp_path: Path, gui_env: SecretService
) -> None:
    manager = running.manager
    manager.hide()  # in the menu bar only
    first, second = conf(tmp_path, "office"), conf(tmp_path, "home")
    with qtbot.waitSignal(running.controller.library.importFinished, timeout=20000) as imported:
        post_open(app, first)  # Finder: one event per selected file
        post_open(app, second)
    assert sorted(t.name for t in imported.args[0].imported) == ["home", "office"]  # one import, both
    assert stored(tmp_path) == ["home.conf", "office.conf"]
    assert manager.isVisible()
    backend = gui_env.backend()
    assert backend.get_password("wgdesk", "office:private-key") == PRIVATE_KEY
    assert PRIVATE_KEY not in (tmp_path / "config" / "wgdesk" / "tunnels" / "office.conf").read_text()


def test_a_file_opened_at_launch_waits_for_the_app(  # type: ignore[no-untyped-def]
    qtbot, app: QApplication, receiver: FileOpenReceiver, tmp_path: Path, gui_env: SecretService
) -> None:
    post_open(app, conf(tmp_path, "early"))
    qtbot.wait(3 * 100)  # delivered and batched before anything consumes it: kept, not lost
    assert stored(tmp_path) == []
    server = InstanceServer()
    assert server.listen()
    application = Application(app, parse_args([]), server, receiver)
    try:
        qtbot.waitUntil(lambda: stored(tmp_path) == ["early.conf"], timeout=20000)
        assert gui_env.backend().get_password("wgdesk", "early:private-key") == PRIVATE_KEY
    finally:
        close_application(application, server, app)


def test_an_url_that_is_no_file_is_ignored(  # type: ignore[no-untyped-def]
    qtbot, app: QApplication, receiver: FileOpenReceiver, tmp_path: Path
) -> None:
    post_open(app, QUrl("https://example.org/office.conf"))
    assert receiver.wait(500) == []
    file_url = QUrl.fromLocalFile(str(conf(tmp_path, "byurl")))
    post_open(app, file_url)
    assert receiver.wait(2000) == [tmp_path / "Downloads" / "byurl.conf"]


SECOND = """
import sys
from pathlib import Path
from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QFileOpenEvent
from PySide6.QtWidgets import QApplication
import wgdesk.platforms
from wgdesk.app.main import main

if sys.argv[2] == "darwin":
    wgdesk.platforms.system = lambda: "darwin"  # the platform choice main() makes
app = QApplication([sys.argv[0]])
QCoreApplication.postEvent(app, QFileOpenEvent(sys.argv[1]))  # AppKit's, once the loop runs
sys.exit(main([]))
"""


@pytest.mark.parametrize("system", ["darwin", "linux"])
def test_a_second_instance_hands_its_opened_file_to_the_first(
    first_instance: subprocess.Popen[bytes],  # noqa: F811
    app_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
    system: str,
) -> None:
    assert wait_for(lambda: stored(tmp_path) == ["first.conf"], 30), (tmp_path / "first.log").read_text()
    opened = conf(tmp_path, "second")
    second = subprocess.run(
        [sys.executable, "-c", SECOND, str(opened), system],
        env=app_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 0, second.stderr
    if system == "darwin":
        assert wait_for(lambda: stored(tmp_path) == ["first.conf", "second.conf"], 20), (
            tmp_path / "first.log"
        ).read_text()
    else:  # control: where files come in argv the event is never read, so this test can fail
        assert not wait_for(lambda: "second.conf" in stored(tmp_path), 3)
    assert first_instance.poll() is None
