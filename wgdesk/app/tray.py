"""The system tray icon: state icon, tooltip, a menu rebuilt each time it opens, and notifications."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from wgdesk.app.controller import Notice, TunnelController
from wgdesk.app.icons import IconState, state_icon
from wgdesk.app.networks import network_text
from wgdesk.app.state import Health, is_active
from wgdesk.client import minutes_seconds
from wgdesk.platforms import system

_NOTICE_ICON = {
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
        controller.statusChanged.connect(self.refresh)
        controller.helperProblemChanged.connect(self.refresh)
        controller.tunnelsChanged.connect(self.refresh)
        controller.notify.connect(self.show_notice)
        controller.networkChanged.connect(self.refresh)
        controller.lockdownChanged.connect(self.refresh)
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
        """Update icon and tooltip from the controller."""
        c = self._controller
        self.state = c.icon_state()
        self.icon.setIcon(state_icon(self.state))
        lines = ["wgdesk"]
        if c.helper_problem:
            lines.append(c.helper_headline)
        active = c.active()
        if active:
            for name in active:
                lines.append(f"{name}: {health_text(c.health(name))}")
        else:
            lines.append(self.tr("No active tunnel"))
        if c.lockdown_blocking():
            lines.append(self.tr("Lockdown: traffic blocked"))
        left = c.lockdown_pause_left()
        if left is not None:
            lines.append(self.tr("Lockdown paused — {left} left").format(left=minutes_seconds(left)))
        if c.watches_network:
            lines.append(network_text(c.network(), c.network_trusted()))
        self.icon.setToolTip("\n".join(lines))

    @Slot()
    def rebuild_menu(self) -> None:
        """Rebuild the menu from the current state (called on ``aboutToShow``)."""
        c = self._controller
        menu = self.menu
        menu.clear()
        if c.helper_problem:
            problem = menu.addAction(
                self.tr("⚠ {headline} — see Manage tunnels…").format(headline=c.helper_headline)
            )
            problem.setObjectName("helper-problem")
            problem.setEnabled(False)
            menu.addSeparator()
        if c.lockdown_blocking():
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
            if c.lockdown_pausable():
                seconds = c.lockdown_pause_seconds()
                pause = menu.addAction(
                    self.tr("Pause lockdown for {duration} (Wi-Fi login)").format(
                        duration=duration_text(seconds)
                    )
                )
                pause.setObjectName("lockdown-pause")
                pause.setToolTip(pause_explanation(self, seconds))
                pause.triggered.connect(lambda _checked=False: c.pause_lockdown())
            menu.addSeparator()
        left = c.lockdown_pause_left()
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
            resume.triggered.connect(lambda _checked=False: c.resume_lockdown())
            menu.addSeparator()
        if c.watches_network:
            network, trusted = c.network(), c.network_trusted()
            text = self.tr("Network: {network}").format(network=network_text(network, trusted))
            line = menu.addAction(text.replace("&", "&&"))  # an SSID's "&" is no shortcut
            line.setObjectName("network")
            line.setEnabled(False)
            if network is not None and not trusted:
                trust = menu.addAction(self.tr("Trust this network"))
                trust.setObjectName("trust-network")
                trust.triggered.connect(lambda _checked=False, n=network: c.trust_network(n))
            menu.addSeparator()
        names = c.names()
        if not names:
            empty = menu.addAction(self.tr("No tunnels yet"))
            empty.setEnabled(False)
        for name in names:
            h = c.health(name)
            action = QAction(name, menu)
            action.setCheckable(True)
            action.setChecked(is_active(h))
            action.setObjectName(f"tunnel:{name}")
            action.setToolTip(health_text(h))
            action.triggered.connect(lambda _checked=False, n=name: c.toggle(n))
            menu.addAction(action)
            if is_active(h):
                addresses = _addresses(c, name)
                if addresses:
                    info = menu.addAction(self.tr("    Addresses: {addresses}").format(addresses=addresses))
                    info.setEnabled(False)
        menu.addSeparator()
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


def _addresses(c: TunnelController, name: str) -> str:
    cfg = c.config(name)
    iface = getattr(cfg, "interface", None)
    return ", ".join(str(a) for a in getattr(iface, "addresses", ()) or ())


def duration_text(seconds: int) -> str:
    """``2 minutes``, ``1 minute``, ``90 seconds``: how long a lockdown pause lasts."""
    from PySide6.QtCore import QCoreApplication

    tr = QCoreApplication.translate
    if seconds % 60 == 0:
        minutes = seconds // 60
        return tr("duration", "1 minute") if minutes == 1 else tr("duration", "{n} minutes").format(n=minutes)
    return tr("duration", "1 second") if seconds == 1 else tr("duration", "{n} seconds").format(n=seconds)


def pause_explanation(context: QObject, seconds: int) -> str:
    """What pausing lockdown does (tray tooltip, Settings)."""
    return context.tr(
        "A hotel's or airport's Wi-Fi login page needs traffic before a tunnel can connect. The pause lets "
        "everything through without a tunnel for {duration}; then lockdown blocks again by itself. "
        "Tunnels with their own kill switch keep blocking."
    ).format(duration=duration_text(seconds))


def health_text(h: Health) -> str:
    """A short word for a tunnel's health."""
    from PySide6.QtCore import QCoreApplication

    texts = {
        Health.DOWN: "disconnected",
        Health.STARTING: "connecting",
        Health.WAITING: "waiting for handshake",
        Health.HEALTHY: "connected",
        Health.IDLE: "connected (idle)",
        Health.ERROR: "error",
    }
    return QCoreApplication.translate("health", texts[h])
