"""The manager window: tunnel list, details (status, editor, log, doctor), toggles and import/export."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from wgdesk.app import dialogs, import_export
from wgdesk.app.controller import TunnelController
from wgdesk.app.doctor import DoctorPanel
from wgdesk.app.editor import ConfigEditor
from wgdesk.app.icons import app_icon, state_icon
from wgdesk.app.keys import generate_private_key
from wgdesk.app.labels import health_text
from wgdesk.app.logview import LogView
from wgdesk.app.route_dialog import show_route_dialog
from wgdesk.app.settings import FULL_TUNNEL, KILL_SWITCH
from wgdesk.app.split import show_split_dialog
from wgdesk.app.state import Health, is_active, tunnel_icon
from wgdesk.app.status import StatusPane
from wgdesk.app.warning_list import WarningList
from wgdesk.platforms import system


class ManagerWindow(QMainWindow):
    """Lists the tunnels and shows one in detail. Files dropped on it are imported."""

    quitRequested = Signal()
    settingsRequested = Signal()

    def __init__(self, controller: TunnelController, main_window: bool = False) -> None:
        super().__init__()
        self.controller = controller
        self.main_window = main_window  # no tray: closing the window quits
        self.setWindowTitle(self.tr("wgdesk — WireGuard tunnels"))
        self.setWindowIcon(app_icon())
        self.setObjectName("manager")
        self.setAcceptDrops(True)
        self.resize(960, 640)
        self.setMinimumSize(QSize(720, 480))
        self.last_summary: QMessageBox | None = None
        self.last_diagnostics: QMessageBox | None = None

        self._build_banner()
        splitter = QSplitter()
        splitter.addWidget(self._build_list())
        splitter.addWidget(self._build_details())
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([200, 760])
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.addWidget(self.banner)
        central_layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self._build_menu()
        self._connect()
        self._clock = QTimer(self)  # "N seconds ago" moves on even without new status
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self.status_pane.refresh)
        self._clock.start()
        self.reload()
        self._show_helper_problem(controller.live.helper_problem)

    # -- structure -------

    def _build_banner(self) -> None:
        self.banner = QLabel()
        self.banner.setObjectName("helper-problem")
        self.banner.setTextFormat(Qt.TextFormat.PlainText)  # texts from the helper and the client
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setStyleSheet(
            "QLabel { background: #fef2f2; color: #7f1d1d; border: 1px solid #fca5a5; padding: 6px; }"
        )
        self.banner.hide()

    def _build_list(self) -> QWidget:
        """The left side: the tunnel list with "Add empty tunnel" and "Import…"."""
        self.list = QListWidget()
        self.list.setObjectName("tunnel-list")
        self.list.setAccessibleName(self.tr("Tunnels"))
        self.list.setIconSize(QSize(22, 22))
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.list, 1)
        left_buttons = QHBoxLayout()
        self.add_button = QPushButton(self.tr("&Add empty tunnel"))
        self.add_button.setObjectName("add-tunnel")
        self.import_button = QPushButton(self.tr("&Import…"))
        self.import_button.setObjectName("import-tunnel")
        left_buttons.addWidget(self.add_button)
        left_buttons.addWidget(self.import_button)
        left_layout.addLayout(left_buttons)
        return left

    def _build_details(self) -> QWidget:
        """The right side: header, toggles, warnings, the tabs, "Export…" and "Delete"."""
        c = self.controller
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(self._build_header())
        right_layout.addLayout(self._build_toggles())
        self.warnings = WarningList(c.library)
        right_layout.addWidget(self.warnings)
        self.tabs = QTabWidget()
        self.status_pane = StatusPane(c)
        self.editor = ConfigEditor(c)
        self.log_view = LogView(c)
        self.doctor = DoctorPanel(c)
        self.tabs.addTab(self.status_pane, self.tr("&Status"))
        self.tabs.addTab(self.editor, self.tr("&Edit"))
        self.tabs.addTab(self.log_view, self.tr("&Log"))
        self.tabs.addTab(self.doctor, self.tr("&Doctor"))
        right_layout.addWidget(self.tabs, 1)
        bottom = QHBoxLayout()
        self.export_button = QPushButton(self.tr("E&xport…"))
        self.export_button.setObjectName("export")
        self.delete_button = QPushButton(self.tr("De&lete"))
        self.delete_button.setObjectName("delete")
        bottom.addStretch(1)
        bottom.addWidget(self.export_button)
        bottom.addWidget(self.delete_button)
        right_layout.addLayout(bottom)
        self.details = right
        return right

    def _build_header(self) -> QHBoxLayout:
        header = QHBoxLayout()
        self.title = QLabel()
        self.title.setObjectName("tunnel-title")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.title.setFont(font)
        self.state_label = QLabel()
        self.state_label.setObjectName("tunnel-state")
        self.state_label.setTextFormat(Qt.TextFormat.PlainText)
        self.activate_button = QPushButton(self.tr("&Activate"))
        self.activate_button.setObjectName("activate")
        header.addWidget(self.title)
        header.addWidget(self.state_label, 1)
        header.addWidget(self.activate_button)
        return header

    def _build_toggles(self) -> QHBoxLayout:
        toggles = QHBoxLayout()
        self.full_tunnel = QCheckBox(self.tr("&Full tunnel"))
        self.full_tunnel.setObjectName("full-tunnel")
        self.full_tunnel.setToolTip(
            self.tr("Send all traffic through the tunnel (needs a peer with 0.0.0.0/0 or ::/0)")
        )
        self.kill_switch = QCheckBox(self.tr("&Kill switch"))
        self.kill_switch.setObjectName("kill-switch")
        self.kill_switch.setToolTip(
            self.tr("Block all traffic outside the tunnel while it is up, even if it fails")
        )
        self.auto_connect = QCheckBox(self.tr("Connect automatically on &untrusted networks"))
        self.auto_connect.setObjectName("auto-connect")
        self.auto_connect.setToolTip(
            self.tr(
                "Connect when the computer joins a network that is not trusted (Settings), and disconnect "
                "again on a trusted one"
            )
        )
        toggles.addWidget(self.full_tunnel)
        toggles.addWidget(self.kill_switch)
        toggles.addWidget(self.auto_connect)
        toggles.addStretch(1)
        return toggles

    def _connect(self) -> None:
        """Wire the widgets to their handlers and the model's signals to the refreshes."""
        c = self.controller
        self.list.currentItemChanged.connect(self._selection_changed)
        self.list.itemActivated.connect(lambda item: c.switch.toggle(item.data(Qt.ItemDataRole.UserRole)))
        self.doctor.diagnosed.connect(
            lambda n: self.tabs.setTabText(
                self.tabs.indexOf(self.doctor), self.tr("&Doctor ⚠") if n else self.tr("&Doctor")
            )
        )
        self.add_button.clicked.connect(self.add_empty_tunnel)
        self.import_button.clicked.connect(self.import_from_file)
        self.activate_button.clicked.connect(self._toggle_selected)
        self.full_tunnel.toggled.connect(lambda on: self._set_option(FULL_TUNNEL, on))
        self.kill_switch.toggled.connect(lambda on: self._set_option(KILL_SWITCH, on))
        self.auto_connect.toggled.connect(self._set_auto_connect)
        self.export_button.clicked.connect(self._export_selected)
        self.delete_button.clicked.connect(self._delete_selected)
        self.editor.saved.connect(lambda _name: self._refresh_details())
        c.library.tunnelsChanged.connect(self.reload)
        c.library.importFinished.connect(self._import_finished)
        c.live.statusChanged.connect(self.refresh)
        c.live.helperProblemChanged.connect(self._show_helper_problem)
        c.notices.failed.connect(self._failed)
        c.notices.notify.connect(self._notice)

    def _build_menu(self) -> None:
        bar = self.menuBar()
        tunnels = bar.addMenu(self.tr("&Tunnels"))
        self.import_action = self._action(
            tunnels,
            self.tr("&Import tunnel(s) from file…"),
            QKeySequence.StandardKey.Open,
            self.import_from_file,
        )
        self.paste_action = self._action(
            tunnels,
            self.tr("Import from &clipboard"),
            QKeySequence("Ctrl+Shift+V"),
            self.import_from_clipboard,
        )
        self.new_action = self._action(
            tunnels, self.tr("&Add empty tunnel"), QKeySequence.StandardKey.New, self.add_empty_tunnel
        )
        tunnels.addSeparator()
        self.toggle_action = self._action(
            tunnels, self.tr("Activate / &deactivate"), QKeySequence("Ctrl+T"), self._toggle_selected
        )
        self._action(tunnels, self.tr("E&xport…"), QKeySequence("Ctrl+E"), self._export_selected)
        self.qr_action = self._action(
            tunnels, self.tr("Show &QR code…"), QKeySequence(), self.show_qr_selected
        )
        self.route_action = self._action(
            tunnels,
            self.tr("&Where does this go?…"),
            QKeySequence(),
            self.show_route,
        )
        self.split_action = self._action(
            tunnels,
            self.tr("Run an app &outside the tunnel…"),
            QKeySequence(),
            self.show_split,
        )
        self.split_action.setVisible(system() == "linux")
        self._action(tunnels, self.tr("&Rename…"), QKeySequence("F2"), self.rename_selected)
        self._action(tunnels, self.tr("De&lete"), QKeySequence.StandardKey.Delete, self._delete_selected)
        tunnels.addSeparator()
        self.diagnostics_action = self._action(
            tunnels, self.tr("Save dia&gnostics…"), QKeySequence(), self.save_diagnostics
        )
        self._action(
            tunnels, self.tr("&Settings…"), QKeySequence.StandardKey.Preferences, self.settingsRequested.emit
        )
        self._action(tunnels, self.tr("&Quit"), QKeySequence.StandardKey.Quit, self.quitRequested.emit)

    def show_route(self) -> None:
        """Open "Where does this go?" (also from the tray)."""
        show_route_dialog(self, self.controller)

    def show_split(self) -> None:
        """Open "Run an app outside the tunnel" (Linux; also from the tray)."""
        show_split_dialog(self, self.controller)

    def _action(self, menu, text: str, shortcut, slot) -> QAction:  # type: ignore[no-untyped-def]
        action = QAction(text, self)
        action.setShortcut(shortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    # -- state -------

    def selected(self) -> str | None:
        """The selected tunnel's name."""
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def select(self, name: str) -> None:
        """Select *name* in the list."""
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == name:
                self.list.setCurrentRow(i)
                return

    @Slot()
    def reload(self) -> None:
        """Rebuild the list from the store, keeping the selection."""
        current = self.selected()
        self.list.blockSignals(True)
        self.list.clear()
        names = self.controller.library.names()
        for name in names:
            item = QListWidgetItem(name)
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.list.addItem(item)
        self.list.blockSignals(False)
        if current in names:
            self.select(current)
            self._refresh_details()
        elif names:
            self.list.setCurrentRow(0)
        else:
            self._selection_changed(None, None)
        self.refresh()

    @Slot()
    def refresh(self) -> None:
        """Update list icons and the header from the live status."""
        for i in range(self.list.count()):
            item = self.list.item(i)
            name = item.data(Qt.ItemDataRole.UserRole)
            h = self.controller.live.health(name)
            item.setIcon(state_icon(tunnel_icon(h)))
            item.setText(name)
            item.setToolTip(health_text(h))  # the state, also for screen readers:
            item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{name}, {health_text(h)}")
        name = self.selected()
        if name is None:
            return
        h = self.controller.live.health(name)
        live = self.controller.live.status(name)
        text = health_text(h)
        if h == Health.ERROR and live is not None and live.message:
            text = self.tr("{state}: {message}").format(state=text, message=live.message)
        self.state_label.setText(text)
        self.activate_button.setText(self.tr("&Deactivate") if is_active(h) else self.tr("&Activate"))
        if live is not None:
            for box, applied in ((self.full_tunnel, live.full_tunnel), (self.kill_switch, live.kill_switch)):
                if box.isChecked() != applied:
                    box.blockSignals(True)  # what the helper actually applied
                    box.setChecked(applied)
                    box.blockSignals(False)
        self._show_warnings(name, list(live.warnings) if live is not None else [])
        if h == Health.WAITING:
            self.doctor.maybe_run(h, self.controller.live.waiting_since(name), time.time())

    def _refresh_details(self) -> None:
        name = self.selected()
        self.details.setEnabled(name is not None)
        self.title.setText(name or self.tr("No tunnel selected"))
        if name is None:
            self.warnings.show_warnings(None, [], [])
            return
        for box, option in ((self.full_tunnel, FULL_TUNNEL), (self.kill_switch, KILL_SWITCH)):
            box.blockSignals(True)
            box.setChecked(self.controller.switch.option(name, option))
            box.blockSignals(False)
        self.auto_connect.blockSignals(True)
        self.auto_connect.setChecked(self.controller.networks.auto_connect(name))
        self.auto_connect.blockSignals(False)
        self._show_warnings(name, [])

    def _show_warnings(self, name: str, helper_warnings: list[str]) -> None:
        self.warnings.show_warnings(name, self.controller.library.warnings(name), helper_warnings)

    @Slot(QListWidgetItem, QListWidgetItem)
    def _selection_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        name = current.data(Qt.ItemDataRole.UserRole) if current else None
        self._offer_to_save_edits(name)
        self._refresh_details()
        self.status_pane.show_tunnel(name)
        if name != self.editor.name or not self.editor.modified:
            self.editor.open_tunnel(name)
        self.log_view.show_tunnel(name)
        self.doctor.show_tunnel(name)
        self.refresh()

    def _offer_to_save_edits(self, next_name: str | None) -> None:
        editor = self.editor
        if editor.name is None or editor.name == next_name or not editor.modified:
            return
        if editor.name not in self.controller.library.names():  # deleted or renamed meanwhile
            return
        answer = dialogs.ask(
            self,
            self.tr("Unsaved changes"),
            self.tr("Save your changes to {name}?").format(name=editor.name),
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard,
            QMessageBox.StandardButton.Save,
        )
        if answer == dialogs.Button.Save and not editor.save():
            dialogs.warn(self, self.tr("Not saved"), editor.message.text())

    @Slot(str)
    def _show_helper_problem(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.setVisible(bool(text))

    # -- verbs -------

    def _toggle_selected(self) -> None:
        name = self.selected()
        if name is not None:
            self.controller.switch.toggle(name)

    def _set_option(self, option: str, value: bool) -> None:
        name = self.selected()
        if name is not None:
            self.controller.switch.set_option(name, option, value)

    def _set_auto_connect(self, enabled: bool) -> None:
        name = self.selected()
        if name is not None:
            self.controller.networks.set_auto_connect(name, enabled)

    def import_from_file(self) -> None:
        """The file dialog, then import."""
        paths = import_export.ask_import_files(self)
        if paths:
            self.controller.library.import_files(paths)

    def import_from_clipboard(self) -> None:
        """Import ``.conf`` text from the clipboard as a new tunnel."""
        import_export.import_clipboard(self, self.controller)

    def add_empty_tunnel(self, name: str | None = None) -> None:
        """A new tunnel with a fresh key pair and nothing else; opens it in the editor."""
        name = name or import_export.ask_tunnel_name(self, self.controller, self.tr("Add empty tunnel"))
        if not name:
            return
        text = f"[Interface]\nPrivateKey = {generate_private_key()}\n"

        def saved() -> None:
            self.select(name)
            self.tabs.setCurrentWidget(self.editor)

        self.controller.library.save(name, text, saved)

    def _export_selected(self) -> None:
        name = self.selected()
        if name is not None:
            import_export.export_tunnel(self, self.controller, name)

    def show_qr_selected(self) -> QWidget | None:
        """Show the selected tunnel as a QR code for the WireGuard mobile apps (returns the dialog)."""
        name = self.selected()
        return None if name is None else import_export.show_qr(self, self.controller, name)

    def rename_selected(self, new: str | None = None) -> None:
        """Rename the selected tunnel (only while it is down: the name is its interface name)."""
        name = self.selected()
        if name is None:
            return
        if self.controller.live.is_up(name):
            self._failed(
                self.tr("Rename {name}").format(name=name),
                self.tr("Disconnect {name} first: its name is the name of its network interface.").format(
                    name=name
                ),
            )
            return
        new = new or import_export.ask_tunnel_name(
            self, self.controller, self.tr("Rename {name}").format(name=name)
        )
        if new:
            self.controller.library.rename(name, new, lambda: self.select(new))

    def _delete_selected(self) -> None:
        name = self.selected()
        if name is None:
            return
        answer = dialogs.ask(
            self,
            self.tr("Delete tunnel"),
            self.tr("Delete {name} and its keys? This cannot be undone.").format(name=name),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer == dialogs.Button.Yes:
            self.controller.library.delete(name, disconnect_first=self.controller.live.is_up(name))

    def save_diagnostics(self) -> None:
        """Ask where to save the redacted diagnostics bundle, collect it on a worker, then say where it
        went (or why it failed)."""
        from wgdesk import diagnostics

        suggested = str(Path.home() / diagnostics.default_filename())
        path, _filter = QFileDialog.getSaveFileName(
            self, self.tr("Save diagnostics"), suggested, self.tr("Zip archives (*.zip)")
        )
        if not path:
            return
        store, factory = self.controller.library.store, self.controller.calls.client
        self.diagnostics_action.setEnabled(False)
        self.statusBar().showMessage(self.tr("Collecting diagnostics…"))

        def done(bundle: Any) -> None:
            self.diagnostics_action.setEnabled(True)
            self.statusBar().clearMessage()
            text = self.tr(
                "Diagnostics saved to {path}.\n\nThe file holds no private or preshared key; public "
                "addresses and host names are replaced by aliases. Attach it to your bug report."
            ).format(path=path)
            box = QMessageBox(
                QMessageBox.Icon.Information,
                self.tr("Diagnostics saved"),
                text,
                QMessageBox.StandardButton.Ok,
                self,
            )
            box.setObjectName("diagnostics-saved")
            box.setTextFormat(Qt.TextFormat.PlainText)
            box.setInformativeText(bundle.summary)
            box.setModal(False)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.show()
            self.last_diagnostics = box

        def failed(exc: BaseException) -> None:
            self.diagnostics_action.setEnabled(True)
            self.statusBar().clearMessage()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._failed(self.tr("Diagnostics not saved"), f"{path}: {reason}")

        self.controller.runner.submit(
            lambda: diagnostics.write_bundle(path, store=store, client_factory=factory), done, failed
        )

    @Slot(object)
    def _import_finished(self, report: object) -> None:
        imported = list(getattr(report, "imported", ()) or ())
        if imported:
            self.select(imported[0].name)
        self.last_summary = import_export.show_summary(self, report)

    @Slot(str, str)
    def _failed(self, title: str, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("failure")
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setModal(False)  # do not block the tray menu
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()

    @Slot(str, str, int)
    def _notice(self, title: str, message: str, _kind: int) -> None:
        self.statusBar().showMessage(f"{title}: {message}", 8000)

    # -- drag and drop -------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if import_export.dropped_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = import_export.dropped_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.controller.library.import_files(paths)

    def import_paths(self, paths: list[Path]) -> None:
        """Import files handed over on the command line or by another instance."""
        paths = [p for p in paths if p.exists()]
        if paths:
            self.controller.library.import_files(paths)

    def bring_to_front(self) -> None:
        """Show, un-minimise and raise the window."""
        self.show()
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.main_window:
            event.accept()
            self.quitRequested.emit()
        else:  # the tray keeps running
            event.accept()
