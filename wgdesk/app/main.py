"""``wgdesk [FILE…]``: the tray app.

With files (``.conf``/``.zip``) it imports them; when an instance already runs, it hands the files to it and
exits (what a double-click on a tunnel file does on Linux and Windows). On macOS a double-click sends the
files as events instead (`opened_files`): the app takes them whenever they come, and a second instance
first waits for its launch's events so that it can hand them on. Without a system tray the manager
window is the main window.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from wgdesk import platforms
from wgdesk.app import import_export
from wgdesk.app.collector import UiThreadCollector
from wgdesk.app.controller import TunnelController
from wgdesk.app.icons import app_icon
from wgdesk.app.manager import ManagerWindow
from wgdesk.app.opened_files import FileOpenReceiver
from wgdesk.app.settings import AppSettings
from wgdesk.app.settings_dialog import SettingsDialog
from wgdesk.app.single_instance import InstanceServer, hand_off
from wgdesk.app.tray import Tray
from wgdesk.client import HelperClient
from wgdesk.tunnels import TunnelStore

TRAY_WAIT_MS = 30_000  # a panel that starts after us (login) gets this long to offer a tray


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of ``wgdesk``."""
    parser = argparse.ArgumentParser(prog="wgdesk", description="WireGuard tunnels in the system tray.")
    parser.add_argument("files", nargs="*", type=Path, help="tunnel files (.conf or .zip) to import")
    parser.add_argument(
        "--socket", help="the helper control socket (default: $WGDESK_SOCKET, else the system one)"
    )
    parser.add_argument("--minimized", action="store_true", help="start in the tray, without the window")
    return parser.parse_args(argv)


class Application(QObject):
    """Wires the controller, the tray, the manager window and the single-instance server together."""

    def __init__(
        self,
        app: QApplication,
        args: argparse.Namespace,
        server: InstanceServer,
        receiver: FileOpenReceiver | None = None,
    ) -> None:
        super().__init__()
        self.app = app
        self.server = server
        self.collector = UiThreadCollector(self)  # Qt objects are never destroyed on a worker thread
        self.settings = AppSettings()
        socket_path = args.socket
        self.controller = TunnelController(TunnelStore(), lambda: HelperClient(socket_path), self.settings)
        if self.settings.restore_tunnels():
            self.controller.restore.reconnect_at_start()
        tray_ok = QSystemTrayIcon.isSystemTrayAvailable()
        self.manager = ManagerWindow(self.controller, main_window=not tray_ok)
        self.tray = Tray(self.controller, self)
        self.tray.manageRequested.connect(self.manager.bring_to_front)
        self.tray.importRequested.connect(self.import_dialog)
        self.tray.routeRequested.connect(self.manager.show_route)
        self.tray.splitRequested.connect(self.manager.show_split)
        self.tray.quitRequested.connect(self.quit)
        self.manager.quitRequested.connect(self.quit)
        self.manager.settingsRequested.connect(self.open_settings)
        server.filesReceived.connect(self.manager.import_paths)
        server.showRequested.connect(self.manager.bring_to_front)
        app.setQuitOnLastWindowClosed(not tray_ok)
        if tray_ok:
            self.tray.show()
        else:
            self._tray_timer = QTimer(self)
            self._tray_timer.setInterval(2000)
            self._tray_timer.timeout.connect(self._tray_appeared)
            self._tray_timer.start()
            QTimer.singleShot(TRAY_WAIT_MS, self._tray_timer.stop)
        if not (tray_ok and args.minimized):
            self.manager.show()
        self.controller.start()
        if args.files:
            self.manager.import_paths(args.files)
        if receiver is not None:
            receiver.deliver_to(self.open_files)

    @Slot(list)
    def open_files(self, paths: list[Path]) -> None:
        """Files the OS asked us to open (macOS: Finder's double-click): import them in the window."""
        self.manager.bring_to_front()
        self.manager.import_paths(paths)

    @Slot()
    def _tray_appeared(self) -> None:
        if QSystemTrayIcon.isSystemTrayAvailable():
            self._tray_timer.stop()
            self.tray.show()
            self.manager.main_window = False
            self.app.setQuitOnLastWindowClosed(False)

    @Slot()
    def import_dialog(self) -> None:
        """The tray's "Import tunnel(s) from file…"."""
        paths = import_export.ask_import_files(None)
        if paths:
            self.manager.bring_to_front()
            self.controller.library.import_files(paths)

    @Slot()
    def open_settings(self) -> None:
        """The settings dialog (modal to the manager window)."""
        SettingsDialog(self.settings, self.manager, self.controller).exec()

    @Slot()
    def quit(self) -> None:
        """Stop watching the helper and leave (tunnels stay up: the helper owns them)."""
        self.tray.hide()
        self.server.close()
        self.controller.stop()
        self.collector.stop()
        self.app.quit()


def has_display() -> bool:
    """Whether Qt can open a window here (otherwise it aborts the process with a core dump)."""
    if platforms.system() in ("win32", "darwin") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def opens_files_by_event() -> bool:
    """Whether the OS hands files to open as `QFileOpenEvent`s rather than arguments (macOS)."""
    return platforms.system() == "darwin"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wgdesk`` console script."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.socket:
        os.environ["WGDESK_SOCKET"] = args.socket
    by_event = opens_files_by_event()
    # a running instance takes the files; no display needed for this. Started by a macOS double-click
    # there are none yet: they come as events once the application runs.
    if (args.files or not by_event) and hand_off(list(args.files)):
        return 0
    if not has_display():
        print(
            "wgdesk: no graphical session (neither DISPLAY nor WAYLAND_DISPLAY is set); "
            "use wgdeskctl on the command line",
            file=sys.stderr,
        )
        return 1
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("wgdesk")
    app.setOrganizationName("wgdesk")
    app.setDesktopFileName("wgdesk")
    app.setWindowIcon(app_icon())
    receiver = FileOpenReceiver(app)
    server = InstanceServer()
    if not server.listen():
        files = list(args.files) + (receiver.wait() if by_event else [])
        receiver.close()
        if hand_off(files):
            return 0
        print("wgdesk: another instance is running but does not answer", file=sys.stderr)
        return 1
    application = Application(app, args, server, receiver)
    code = app.exec()
    receiver.close()
    del application
    return code


if __name__ == "__main__":
    sys.exit(main())
