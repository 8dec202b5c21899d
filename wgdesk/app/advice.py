"""What to tell the user when the helper cannot be used, and how to fix it."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication

from wgdesk.client import HelperPermissionDenied, HelperUnavailable


def helper_unusable(exc: BaseException) -> bool:
    """Whether *exc* means no tunnel can be controlled (the helper is not running or refuses this user), as
    opposed to one request failing."""
    return isinstance(exc, (HelperUnavailable, HelperPermissionDenied))


def helper_headline(exc: BaseException) -> str:
    """One short line saying that tunnels cannot be controlled, and roughly why."""
    if isinstance(exc, HelperPermissionDenied):
        return QCoreApplication.translate("helper", "The wgdesk helper refused this user")
    if isinstance(exc, HelperUnavailable):
        return QCoreApplication.translate("helper", "The wgdesk helper is not running")
    return QCoreApplication.translate("helper", "The wgdesk helper failed")


def helper_advice(exc: BaseException) -> str:
    """What to tell the user when the helper cannot be used: the client's message and how to fix it."""

    def t(s: str) -> str:
        return QCoreApplication.translate("helper", s)

    detail = str(exc)
    if isinstance(exc, HelperPermissionDenied):
        text = t("The wgdesk helper refused this user: {detail}").format(detail=detail)
        if "usermod" not in detail:
            text += "\n" + t(
                "Fix: join the group 'wgdesk' (sudo usermod -aG wgdesk $USER), then log in again."
            )
        return text
    if isinstance(exc, HelperUnavailable):
        text = t("Tunnels cannot be connected: {detail}").format(detail=detail)
        if exc.code == "untrusted":  # something else answers on the socket: never start anything
            return text
        if "systemctl" not in detail:
            text += "\n" + t("Fix: start the service: sudo systemctl enable --now wgdesk-helper")
        # the service, not `pkexec wgdesk-helper`: only the unit runs the helper in its sandbox
        return text + "\n" + t(
            "Or, for this session only: systemctl start wgdesk-helper (asks for an administrator's password)"
        )
    return t("The wgdesk helper failed: {detail}").format(detail=detail)
