"""The words the views show for the model's states: a tunnel's health, a network and its trust, how long a
lockdown pause lasts. Shared by the tray, the manager window and the settings, so that they say the same."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QObject

from wgdesk.app.state import Health
from wgdesk.platforms import NetworkIdentity


def health_text(h: Health) -> str:
    """A short word for a tunnel's health."""
    texts = {
        Health.DOWN: "disconnected",
        Health.STARTING: "connecting",
        Health.WAITING: "waiting for handshake",
        Health.HEALTHY: "connected",
        Health.IDLE: "connected (idle)",
        Health.ERROR: "error",
    }
    return QCoreApplication.translate("health", texts[h])


def kind_text(kind: str) -> str:
    """A network's kind in words."""
    texts = {"wifi": "Wi-Fi", "wired": "wired", "other": "other"}
    return QCoreApplication.translate("network", texts.get(kind, kind))


def network_text(network: NetworkIdentity | None, trusted: bool) -> str:
    """One line on the current network and its trust, for the settings and the tray menu."""
    if network is None:
        return QCoreApplication.translate("network", "No network")
    text = (
        QCoreApplication.translate("network", "{label} ({kind}), trusted")
        if trusted
        else QCoreApplication.translate("network", "{label} ({kind}), untrusted")
    )
    return text.format(label=network.label, kind=kind_text(network.kind))


def duration_text(seconds: int) -> str:
    """``2 minutes``, ``1 minute``, ``90 seconds``: how long a lockdown pause lasts."""
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
