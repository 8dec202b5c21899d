"""The system tray icon: state icon, tooltip, a menu rebuilt each time it opens, and notifications."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from wgdesk.app.controller import TunnelController
from wgdesk.app.icons import state_icon, template_icon
from wgdesk.app.labels import duration_text, health_text, network_text, pause_explanation
from wgdesk.app.library import TunnelLibrary
from wgdesk.app.notices import Notice
from wgdesk.app.state import IconState, is_active
from wgdesk.client import minutes_seconds
from wgdesk.platforms import system

_NOTICE_ICON: dict[int, QSystemTrayIcon.MessageIcon] = {
    Notice.INFO: QSystemTrayIcon.MessageIcon.Information,
    Notice.WARNING: QSystemTrayIcon.MessageIcon.Warning,
    Notice.ERROR: QSystemTrayIcon.MessageIcon.Critical,
}


class Tray(QObject):
    """Owns the QSystemTrayIcon and its menu."""

    manageRequested = Signal()
    importRequested = Signal()
    routeRequested = Signal()
    splitRequested = Signal()
    quitRequested = Signal()

    def __init__(self, controller: TunnelController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._controller = controller
        self.icon = QSystemTrayIcon(self)
        self.menu = QMenu()
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        controller.live.statusChanged.connect(self.refresh)
        controller.live.helperProblemChanged.connect(self.refresh)
        controller.library.tunnelsChanged.connect(self.refresh)
        controller.notices.notify.connect(self.show_notice)
        controller.networks.changed.connect(self.refresh)
        controller.lockdown.changed.connect(self.refresh)
        self.state = IconState.DISCONNECTED
        self.refresh()
        self.rebuild_menu()

    def show(self) -> None:
        """Put the icon in the tray."""
        self.icon.show()

    def hide(self) -> None:
        """Take the icon out of the tray."""
        self.icon.hide()

    @Slot()
    def refresh(self) -> None:
        """Update icon and tooltip from the model."""
        c = self._controller
        live, lockdown, networks = c.live, c.lockdown, c.networks
        self.state = live.icon_state()
        self.icon.setIcon(tray_icon(self.state))
        lines = ["wgdesk"]
        if live.helper_problem:
            lines.append(live.helper_headline)
        active = live.active()
        if active:
            for name in active:
                lines.append(f"{name}: {health_text(live.health(name))}")
        else:
            lines.append(self.tr("No active tunnel"))
        if lockdown.blocking():
            lines.append(self.tr("Lockdown: traffic blocked"))
        left = lockdown.pause_left()
        if left is not None:
            lines.append(self.tr("Lockdown paused — {left} left").format(left=minutes_seconds(left)))
        if networks.watching:
            lines.append(network_text(networks.current(), networks.current_trusted()))
        self.icon.setToolTip("\n".join(lines))

    @Slot()
    def rebuild_menu(self) -> None:
        """Rebuild the menu from the current state (called on ``aboutToShow``)."""
        self.menu.clear()
        self._add_helper_problem()
        self._add_lockdown()
        self._add_network()
        self._add_tunnels()
        self._add_windows()

    def _add_helper_problem(self) -> None:
        live, menu = self._controller.live, self.menu
        if not live.helper_problem:
            return
        problem = menu.addAction(
            self.tr("⚠ {headline} — see Manage tunnels…").format(headline=live.helper_headline)
        )
        problem.setObjectName("helper-problem")
        problem.setEnabled(False)
        menu.addSeparator()

    def _add_lockdown(self) -> None:
        lockdown, menu = self._controller.lockdown, self.menu
        if lockdown.blocking():
            # so that a user who sees "no internet" knows why
            line = menu.addAction(self.tr("Lockdown: traffic blocked"))
            line.setObjectName("lockdown")
            line.setToolTip(
                self.tr(
                    "Lockdown is on and no tunnel is connected: nothing leaves this computer until a "
                    "tunnel is up. Turn it off in Settings."
                )
            )
            line.setEnabled(False)
            if lockdown.pausable():
                seconds = lockdown.pause_seconds()
                pause = menu.addAction(
                    self.tr("Pause lockdown for {duration} (Wi-Fi login)").format(
                        duration=duration_text(seconds)
                    )
                )
                pause.setObjectName("lockdown-pause")
                pause.setToolTip(pause_explanation(self, seconds))
                pause.triggered.connect(lambda _checked=False: lockdown.pause())
            menu.addSeparator()
        left = lockdown.pause_left()
        if left is not None:
            resume = menu.addAction(
                self.tr("Lockdown paused — {left} left (resume now)").format(left=minutes_seconds(left))
            )
            resume.setObjectName("lockdown-resume")
            resume.setToolTip(
                self.tr(
                    "Lockdown is paused so you can sign in to a Wi-Fi login page: traffic flows without a "
                    "tunnel until the pause ends. Tunnels with their own kill switch still block. Click to "
                    "block again now."
                )
            )
            resume.triggered.connect(lambda _checked=False: lockdown.resume())
            menu.addSeparator()

    def _add_network(self) -> None:
        networks, menu = self._controller.networks, self.menu
        if not networks.watching:
            return
        network, trusted = networks.current(), networks.current_trusted()
        text = self.tr("Network: {network}").format(network=network_text(network, trusted))
        line = menu.addAction(text.replace("&", "&&"))  # an SSID's "&" is no shortcut
        line.setObjectName("network")
        line.setEnabled(False)
        if network is not None and not trusted:
            trust = menu.addAction(self.tr("Trust this network"))
            trust.setObjectName("trust-network")
            trust.triggered.connect(lambda _checked=False, n=network: networks.trust(n))
        menu.addSeparator()

    def _add_tunnels(self) -> None:
        c, menu = self._controller, self.menu
        names = c.library.names()
        if not names:
            empty = menu.addAction(self.tr("No tunnels yet"))
            empty.setEnabled(False)
        for name in names:
            h = c.live.health(name)
            action = QAction(name, menu)
            action.setCheckable(True)
            action.setChecked(is_active(h))
            action.setObjectName(f"tunnel:{name}")
            action.setToolTip(health_text(h))
            action.triggered.connect(lambda _checked=False, n=name: c.switch.toggle(n))
            menu.addAction(action)
            if is_active(h):
                addresses = _addresses(c.library, name)
                if addresses:
                    info = menu.addAction(self.tr("    Addresses: {addresses}").format(addresses=addresses))
                    info.setEnabled(False)
        menu.addSeparator()

    def _add_windows(self) -> None:
        menu = self.menu
        manage = menu.addAction(self.tr("&Manage tunnels…"))
        manage.setObjectName("manage")
        manage.triggered.connect(self.manageRequested)
        imp = menu.addAction(self.tr("&Import tunnel(s) from file…"))
        imp.setObjectName("import")
        imp.triggered.connect(self.importRequested)
        route = menu.addAction(self.tr("&Where does this go?…"))
        route.setObjectName("route")
        route.triggered.connect(self.routeRequested)
        if system() == "linux":
            split = menu.addAction(self.tr("Run an app &outside the tunnel…"))
            split.setObjectName("split")
            split.triggered.connect(self.splitRequested)
        menu.addSeparator()
        quit_action = menu.addAction(self.tr("&Quit"))
        quit_action.setObjectName("quit")
        quit_action.triggered.connect(self.quitRequested)

    def action(self, object_name: str) -> QAction | None:
        """The menu action with *object_name* (``tunnel:NAME``, ``lockdown``, ``lockdown-pause``,
        ``lockdown-resume``, ``network``, ``trust-network``, ``manage``, ``import``, ``route``, ``split``,
        ``quit``)."""
        for a in self.menu.actions():
            if a.objectName() == object_name:
                return a
        return None

    @Slot(str, str, int)
    def show_notice(self, title: str, message: str, kind: int) -> None:
        """A desktop notification (when the tray supports balloons)."""
        if self.icon.isVisible() and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(title, message, _NOTICE_ICON.get(kind, _NOTICE_ICON[Notice.INFO]), 5000)

    @Slot(QSystemTrayIcon.ActivationReason)
    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.manageRequested.emit()


def tray_icon(state: IconState) -> QIcon:
    """The icon for *state* in this OS's tray: a template image in the macOS menu bar (it takes the
    bar's colour, light or dark), the coloured disc elsewhere."""
    return template_icon(state) if system() == "darwin" else state_icon(state)


def _addresses(library: TunnelLibrary, name: str) -> str:
    cfg = library.config(name)
    iface = getattr(cfg, "interface", None)
    return ", ".join(str(a) for a in getattr(iface, "addresses", ()) or ())
