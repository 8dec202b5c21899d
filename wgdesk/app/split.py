"""The "Run an app outside the tunnel…" dialog (Linux split tunnelling).

The user picks an installed application (from the ``.desktop`` files of the XDG data directories) or
browses for an executable, and chooses "Run outside the tunnel" or "Run only through the tunnel"; it
is started, detached, as ``wgdeskctl exclude -- COMMAND`` (or ``include``) on the socket the app
itself uses, so the helper moves that process into its bypass (or include) cgroup before the
application opens a single socket. Below, the processes of both cgroups now (the helper's
``split_list``, on the controller's worker, refreshed every few seconds).
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QProcess, Qt, QTimer
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from wgdesk.app.controller import TunnelController

REFRESH_MS = 3000
_FIELD_CODES = {"%f", "%F", "%u", "%U", "%d", "%D", "%n", "%N", "%i", "%c", "%k", "%v", "%m"}


@dataclass(frozen=True)
class Application:
    """One launchable application of a ``.desktop`` file."""

    desktop_id: str
    name: str
    argv: tuple[str, ...]
    """The Exec line split into words, without field codes (%f, %U, …)."""


def data_dirs(env: dict[str, str] | None = None) -> list[Path]:
    """XDG_DATA_HOME then XDG_DATA_DIRS (with the specification's defaults), most important first."""
    env = dict(os.environ) if env is None else env
    home = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    dirs = env.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    return [Path(home), *(Path(d) for d in dirs.split(":") if d)]


def exec_argv(line: str) -> tuple[str, ...] | None:
    """An Exec value as argv: quoting removed, field codes dropped, ``%%`` kept as ``%``; None when
    it cannot be split."""
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    argv = [w.replace("%%", "%") for w in words if w not in _FIELD_CODES]
    return tuple(argv) or None


def read_desktop_file(path: Path, desktop_id: str) -> Application | None:
    """The application of one ``.desktop`` file, or None when it is not one to offer (hidden,
    NoDisplay, not an Application, no Exec, TryExec missing, unreadable)."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    if not parser.has_section("Desktop Entry"):
        return None
    entry = parser["Desktop Entry"]
    if entry.get("Type") != "Application":
        return None
    if entry.get("Hidden", "false") == "true" or entry.get("NoDisplay", "false") == "true":
        return None
    try_exec = entry.get("TryExec")
    if try_exec and shutil.which(try_exec) is None:
        return None
    argv = exec_argv(entry.get("Exec", ""))
    if argv is None:
        return None
    return Application(desktop_id, entry.get("Name", desktop_id).strip() or desktop_id, argv)


def installed_applications(dirs: Sequence[Path] | None = None) -> list[Application]:
    """Applications of every ``applications/**/*.desktop`` in ``dirs``, a desktop file ID found in
    an earlier directory hiding later ones (the XDG rule), sorted by name."""
    seen: set[str] = set()
    apps: list[Application] = []
    for base in data_dirs() if dirs is None else dirs:
        root = base / "applications"
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.desktop")):
            desktop_id = "-".join(path.relative_to(root).parts)
            if desktop_id in seen:
                continue
            seen.add(desktop_id)
            app = read_desktop_file(path, desktop_id)
            if app is not None:
                apps.append(app)
    return sorted(apps, key=lambda a: (a.name.casefold(), a.desktop_id))


def wgdeskctl_command() -> list[str]:
    """How to run wgdeskctl: the console script beside this Python, else on PATH, else ``-m``."""
    beside = Path(sys.executable).parent / "wgdeskctl"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("wgdeskctl")
    return [found] if found else [sys.executable, "-m", "wgdesk.cli"]


def launch_excluded(socket_path: str, argv: Sequence[str], mode: str = "exclude") -> bool:
    """Start ``wgdeskctl --socket SOCKET exclude -- ARGV…`` (``mode`` "include": ``include``)
    detached (its own session, standard streams on /dev/null); False when it could not be started."""
    if mode not in ("exclude", "include"):
        raise ValueError(f"mode must be 'exclude' or 'include', not {mode!r}")
    command = wgdeskctl_command()
    process = QProcess()
    process.setProgram(command[0])
    process.setArguments([*command[1:], "--socket", socket_path, mode, "--", *argv])
    process.setStandardInputFile(QProcess.nullDevice())
    process.setStandardOutputFile(QProcess.nullDevice())
    process.setStandardErrorFile(QProcess.nullDevice())
    result = process.startDetached()  # PySide6 answers bool (some versions a (bool, pid) pair)
    return bool(result[0] if isinstance(result, tuple) else result)


class SplitDialog(QDialog):
    """Pick an application, run it outside the tunnel or only through it; see what runs so now."""

    def __init__(
        self,
        controller: TunnelController,
        parent: QWidget | None = None,
        applications: Callable[[], list[Application]] = installed_applications,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Run an app outside the tunnel"))
        self.setObjectName("split-dialog")
        self._controller = controller
        self._available = False
        self._closed = False  # answers still on their way find their labels deleted (WA_DeleteOnClose)
        self._answer: dict[str, Any] = {}
        layout = QVBoxLayout(self)
        modes = QHBoxLayout()
        self.exclude_choice = QRadioButton(self.tr("Run &outside the tunnel"))
        self.exclude_choice.setObjectName("split-mode-exclude")
        self.include_choice = QRadioButton(self.tr("Run &only through the tunnel"))
        self.include_choice.setObjectName("split-mode-include")
        self.exclude_choice.setChecked(True)
        for choice in (self.exclude_choice, self.include_choice):
            choice.toggled.connect(lambda *_: self._mode_changed())
            modes.addWidget(choice)
        modes.addStretch(1)
        layout.addLayout(modes)
        intro = QLabel()
        intro.setWordWrap(True)
        intro.setObjectName("split-intro")
        layout.addWidget(intro)
        self.intro = intro
        self.filter = QLineEdit()
        self.filter.setObjectName("split-filter")
        self.filter.setPlaceholderText(self.tr("Search installed applications"))
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._filter)
        layout.addWidget(self.filter)
        self.apps = QListWidget()
        self.apps.setObjectName("split-apps")
        self.apps.itemDoubleClicked.connect(lambda _: self.run_selected())
        self.apps.currentItemChanged.connect(lambda *_: self._update_buttons())
        for app in applications():
            item = QListWidgetItem(app.name)
            item.setData(Qt.ItemDataRole.UserRole, app)
            item.setToolTip(shlex.join(app.argv))
            self.apps.addItem(item)
        layout.addWidget(self.apps, 1)
        row = QHBoxLayout()
        self.browse_button = QPushButton(self.tr("&Browse…"))
        self.browse_button.clicked.connect(self.browse)
        row.addWidget(self.browse_button)
        row.addStretch(1)
        self.run_button = QPushButton()
        self.run_button.setObjectName("split-run")
        self.run_button.clicked.connect(self.run_selected)
        row.addWidget(self.run_button)
        layout.addLayout(row)
        self.state = QLabel()
        self.state.setObjectName("split-state")
        self.state.setWordWrap(True)
        self.state.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.state)
        self.running = QTreeWidget()
        self.running.setObjectName("split-running")
        self.running.setHeaderLabels([self.tr("Process"), self.tr("PID"), self.tr("Runs")])
        self.running.setRootIsDecorated(False)
        layout.addWidget(self.running, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self._mode_changed()
        self.state.setText(self.tr("Asking the helper…"))
        self._update_buttons()
        self.refresh()

    @property
    def mode(self) -> str:
        """The chosen way: "exclude" (run outside the tunnel) or "include" (only through it)."""
        return "include" if self.include_choice.isChecked() else "exclude"

    def _mode_changed(self) -> None:
        if self.mode == "exclude":
            self.intro.setText(
                self.tr(
                    "An app started here connects directly, not through the full tunnel, and the kill "
                    "switch lets it through: you choose to exempt it. It still looks names up through "
                    "the tunnel's DNS servers. Tunnels that carry only some networks are not affected. "
                    "Apps that are already running must be closed first."
                )
            )
            self.run_button.setText(self.tr("&Run outside the tunnel"))
        else:
            self.intro.setText(
                self.tr(
                    "An app started here sends everything through the tunnel that is connected with "
                    "Full tunnel off and whose peer allows all addresses (0.0.0.0/0 or ::/0); other apps "
                    "keep the normal route. If that tunnel fails, the app gets nothing out rather than "
                    "going around it. It looks names up through the system's DNS unless the tunnel sets "
                    "DNS. Apps that are already running must be closed first."
                )
            )
            self.run_button.setText(self.tr("&Run only through the tunnel"))
        if self._answer:
            self._show_state(self._answer)

    # -- helper -------

    def _socket_path(self) -> str:
        client = self._controller.calls.client()
        path = client.socket_path
        client.close()
        return path

    def refresh(self) -> None:
        """Ask the helper (on the controller's worker) which processes run outside the tunnel."""
        if self._closed:
            return

        self._controller.calls.submit(lambda c: c.split_list(), self._show, self._failed)

    def _show(self, answer: dict[str, Any]) -> None:
        if self._closed:
            return
        self._available = bool(answer.get("available"))
        self._answer = answer
        self._show_state(answer)
        self.running.clear()
        for p in answer.get("processes") or []:
            runs = self.tr("only through") if p.get("mode") == "include" else self.tr("outside")
            item = QTreeWidgetItem([str(p.get("command", "?")), str(p.get("pid", "")), runs])
            item.setData(0, Qt.ItemDataRole.UserRole, p.get("pid"))
            self.running.addTopLevelItem(item)
        self._update_buttons()

    def _show_state(self, answer: dict[str, Any]) -> None:
        include = answer.get("include") or {}
        if not self._available:
            where = self.tr("outside the tunnel") if self.mode == "exclude" else self.tr("only through it")
            text = self.tr("Apps cannot run {where} here: {reason}").format(
                where=where, reason=answer.get("reason") or self.tr("the helper refuses")
            )
        elif self.mode == "exclude" and answer.get("active"):
            text = self.tr("Apps below bypass the full tunnel {name}.").format(name=answer.get("tunnel"))
        elif self.mode == "exclude":
            text = self.tr(
                "No full tunnel is up: apps below use the normal route now, and bypass a full tunnel "
                "once one is up."
            )
        elif include.get("active"):
            text = self.tr("Apps run only through the tunnel go through {name}.").format(
                name=include.get("tunnel")
            )
        else:
            text = self.tr(
                "No tunnel takes them now (one must be connected with Full tunnel off and a peer "
                "allowing 0.0.0.0/0 or ::/0): apps run only through the tunnel get nothing out "
                "until one is."
            )
        self.state.setText(text)

    def _failed(self, error: Exception) -> None:
        if self._closed:
            return
        self._available = False
        self._answer = {}
        message = getattr(error, "message", None) or str(error)
        self.state.setText(self.tr("The helper cannot be asked: {error}").format(error=message))
        self.running.clear()
        self._update_buttons()

    # -- picking and launching -------

    def _filter(self, text: str) -> None:
        needle = text.strip().casefold()
        for i in range(self.apps.count()):
            item = self.apps.item(i)
            item.setHidden(bool(needle) and needle not in item.text().casefold())

    def _update_buttons(self) -> None:
        self.run_button.setEnabled(self._available and self.apps.currentItem() is not None)
        self.browse_button.setEnabled(self._available)

    def run_selected(self) -> None:
        item = self.apps.currentItem()
        if item is None or not self._available:
            return
        app: Application = item.data(Qt.ItemDataRole.UserRole)
        self.launch(app.argv)

    def browse(self) -> None:
        title = (
            self.tr("Run a program outside the tunnel")
            if self.mode == "exclude"
            else self.tr("Run a program only through the tunnel")
        )
        path, _ = QFileDialog.getOpenFileName(self, title, "/usr/bin")
        if path:
            self.launch((path,))

    def launch(self, argv: Sequence[str]) -> None:
        """Start ``argv`` outside the tunnel or only through it (`mode`, detached) and refresh the
        list soon after."""
        if not launch_excluded(self._socket_path(), argv, self.mode):
            self.state.setText(self.tr("Could not start {program}.").format(program=argv[0]))
            return
        QTimer.singleShot(500, self.refresh)

    def done(self, result: int) -> None:
        self._closed = True
        self._timer.stop()
        super().done(result)


def show_split_dialog(parent: QWidget | None, controller: TunnelController) -> SplitDialog:
    """Open the dialog (non-blocking; returned so tests can drive it)."""
    dialog = SplitDialog(controller, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
