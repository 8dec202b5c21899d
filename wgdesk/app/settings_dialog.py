"""The settings dialog: start at login, restore tunnels, lockdown (with its pause), the trusted networks.

The view of :class:`~wgdesk.app.settings.AppSettings` (applied on OK) and of the helper's lockdown through
:class:`~wgdesk.app.lockdown.Lockdown` (the pause button acts at once).
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from wgdesk.app.controller import TunnelController
from wgdesk.app.labels import duration_text, pause_explanation
from wgdesk.app.networks import TrustedNetworks
from wgdesk.app.settings import AppSettings
from wgdesk.client import minutes_seconds


class SettingsDialog(QDialog):
    """Start at login, restore tunnels on start; with a controller also the trusted networks."""

    def __init__(
        self,
        settings: AppSettings,
        parent: QWidget | None = None,
        controller: TunnelController | None = None,
    ) -> None:
        super().__init__(parent)
        self._settings = settings
        self.setWindowTitle(self.tr("wgdesk settings"))
        self.setObjectName("settings")
        layout = QVBoxLayout(self)
        self.start_at_login = QCheckBox(self.tr("&Start wgdesk when I log in"))
        self.start_at_login.setChecked(settings.start_at_login())
        self.restore = QCheckBox(self.tr("&Reconnect the tunnels that were connected when wgdesk last ran"))
        self.restore.setChecked(settings.restore_tunnels())
        note = QLabel(
            self.tr("The login entry starts wgdesk minimised to the tray: {path}").format(
                path=settings.autostart_path()
            )
        )
        note.setWordWrap(True)
        layout.addWidget(self.start_at_login)
        layout.addWidget(note)
        layout.addWidget(self.restore)
        self.networks: TrustedNetworks | None = None
        self._controller = controller
        self.lockdown: QCheckBox | None = None
        self.lockdown_reason: QLabel | None = None
        self.lockdown_pause: QPushButton | None = None
        """Pauses lockdown (a Wi-Fi login page) while it blocks, resumes it while paused; at once,
        not on OK."""
        self.lockdown_pause_note: QLabel | None = None
        self._lockdown_touched = False
        if controller is not None:
            self._add_lockdown(layout, controller)
            restore_note = QLabel(
                self.tr(
                    "Tunnels a network rule connected are not reconnected at start: the rule decides "
                    "for them on the network found then."
                )
            )
            restore_note.setWordWrap(True)
            layout.addWidget(restore_note)
            self.networks = TrustedNetworks(controller.networks, self)
            layout.addWidget(self.networks)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _add_lockdown(self, layout: QVBoxLayout, controller: TunnelController) -> None:
        self.lockdown = QCheckBox(self.tr("&Block all traffic when no tunnel is connected (lockdown)"))
        self.lockdown.setObjectName("lockdown")
        self.lockdown.clicked.connect(self._lockdown_clicked)
        explanation = QLabel(
            self.tr(
                "With lockdown on, nothing leaves this computer except through a connected tunnel: not "
                "while it starts up, not after you disconnect, and not while wgdesk or its helper is "
                "stopped. Without a tunnel there is no internet at all. It applies to every user of this "
                "computer and stays on until it is turned off here or with `wgdeskctl lockdown off`."
            )
        )
        explanation.setWordWrap(True)
        explanation.setObjectName("lockdown-explanation")
        self.lockdown_reason = QLabel()
        self.lockdown_reason.setWordWrap(True)
        self.lockdown_reason.setObjectName("lockdown-reason")
        layout.addWidget(self.lockdown)
        layout.addWidget(explanation)
        layout.addWidget(self.lockdown_reason)
        row = QHBoxLayout()
        self.lockdown_pause_note = QLabel()
        self.lockdown_pause_note.setWordWrap(True)
        self.lockdown_pause_note.setObjectName("lockdown-pause-note")
        self.lockdown_pause = QPushButton()
        self.lockdown_pause.setObjectName("lockdown-pause")
        self.lockdown_pause.clicked.connect(self._pause_clicked)
        row.addWidget(self.lockdown_pause_note, 1)
        row.addWidget(self.lockdown_pause)
        layout.addLayout(row)
        controller.lockdown.changed.connect(self._show_lockdown)
        controller.live.helperProblemChanged.connect(self._show_lockdown)
        controller.live.statusChanged.connect(self._show_pause)  # a tunnel up or down; the countdown
        self._show_lockdown()

    def _lockdown_clicked(self) -> None:
        self._lockdown_touched = True

    def _pause_clicked(self) -> None:
        if self._controller is None:
            return
        lockdown = self._controller.lockdown
        if lockdown.pause_left() is not None:
            lockdown.resume()  # on the worker
        elif lockdown.pausable():
            lockdown.pause()

    def _show_pause(self) -> None:
        """The pause button and its note: "Pause lockdown for 2 minutes (Wi-Fi login)" while lockdown
        blocks (and the administrator allows pausing), "Resume now" with the time left while paused."""
        button, note, c = self.lockdown_pause, self.lockdown_pause_note, self._controller
        if button is None or note is None or c is None:
            return
        lockdown = c.lockdown
        left = lockdown.pause_left()
        if left is not None:
            note.setText(self.tr("Lockdown paused — {left} left.").format(left=minutes_seconds(left)))
            button.setText(self.tr("&Resume now"))
        elif lockdown.pausable():
            seconds = lockdown.pause_seconds()
            note.setText(pause_explanation(self, seconds))
            button.setText(
                self.tr("&Pause lockdown for {duration} (Wi-Fi login)").format(
                    duration=duration_text(seconds)
                )
            )
        visible = left is not None or lockdown.pausable()
        note.setVisible(visible)
        button.setVisible(visible)

    def _show_lockdown(self) -> None:
        """The checkbox as the helper has lockdown; disabled, with the reason, when it cannot change."""
        box, reason, c = self.lockdown, self.lockdown_reason, self._controller
        if box is None or reason is None or c is None:
            return
        self._show_pause()
        state = c.lockdown.state()
        if state is None:
            box.setEnabled(False)
            box.setChecked(False)
            if c.live.helper_problem:
                why = self.tr("{headline}: lockdown cannot be changed now.").format(
                    headline=c.live.helper_headline
                )
            elif c.live.status_received:
                why = self.tr("This wgdesk helper does not support lockdown; update wgdesk.")
            else:
                why = self.tr("Waiting for the wgdesk helper…")
            reason.setText(why)
            reason.setVisible(True)
            return
        policy = state.get("policy")
        if policy in ("always", "never"):
            box.setEnabled(False)
            box.setChecked(policy == "always")
            reason.setText(
                self.tr(
                    'Your administrator keeps lockdown on (lockdown = "always" in /etc/wgdesk/helper.toml).'
                )
                if policy == "always"
                else self.tr(
                    'Your administrator keeps lockdown off (lockdown = "never" in /etc/wgdesk/helper.toml).'
                )
            )
            reason.setVisible(True)
            return
        box.setEnabled(True)
        if not self._lockdown_touched:
            box.setChecked(bool(state.get("enabled")))
        reason.setText("")
        reason.setVisible(False)

    def accept(self) -> None:
        """Apply and close."""
        if self.start_at_login.isChecked() != self._settings.start_at_login():
            self._settings.set_start_at_login(self.start_at_login.isChecked())
        self._settings.set_restore_tunnels(self.restore.isChecked())
        c, box = self._controller, self.lockdown
        state = c.lockdown.state() if c is not None else None
        changed = box is not None and state is not None and box.isChecked() != bool(state.get("enabled"))
        if c is not None and box is not None and box.isEnabled() and changed:
            c.lockdown.set_enabled(box.isChecked())  # on the worker
        super().accept()
