"""The "Where does this go?" dialog: which tunnel and peer carry packets to an address or host name.

The answer comes twice: from wgdesk's own rules (`wgdesk.config.routing`, over the stored tunnels and
the helper's live status) and from the kernel (`wgdesk.platforms.route_to`). Name resolution and the
kernel's answer run on the controller's worker, never on the UI thread; the explanation is redrawn
live as the user types and whenever a tunnel comes up or goes down.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from wgdesk.app.controller import TunnelController
from wgdesk.app.settings import FULL_TUNNEL
from wgdesk.config.routing import explain_status
from wgdesk.platforms import addresses_of, local_networks, route_to
from wgdesk.snapshots import TunnelSnapshot

IPAddress = IPv4Address | IPv6Address
DEBOUNCE_MS = 300


@dataclass(frozen=True)
class Lookup:
    """What the worker found for one input: its addresses and the kernel's route to each."""

    target: str
    addresses: tuple[IPAddress, ...]
    kernel: tuple[dict[str, str] | None, ...]
    local: tuple[Any, ...]


def look_up(target: str) -> Lookup:
    """Resolve `target` and ask the kernel about each address (blocking: call on a worker)."""
    addresses = tuple(addresses_of(target))
    return Lookup(target, addresses, tuple(route_to(str(a)) for a in addresses), tuple(local_networks()))


def recheck(previous: Lookup) -> Lookup:
    """The kernel's answers again for addresses already resolved (after tunnels changed)."""
    kernel = tuple(route_to(str(a)) for a in previous.addresses)
    return Lookup(previous.target, previous.addresses, kernel, tuple(local_networks()))


class RouteDialog(QDialog):
    """An address or name in, the explanation out (live)."""

    def __init__(self, controller: TunnelController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Where does this go?"))
        self.setObjectName("route-dialog")
        self._controller = controller
        self._generation = 0
        self._lookup: Lookup | None = None
        self._tunnels_key: tuple[Any, ...] = self._state_key()
        layout = QVBoxLayout(self)
        intro = QLabel(
            self.tr(
                "Enter an IP address or a host name to see which tunnel and peer would carry packets to "
                "it, or whether they go straight out."
            )
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.target = QLineEdit()
        self.target.setObjectName("route-target")
        self.target.setPlaceholderText(self.tr("e.g. 10.1.2.3 or example.org"))
        self.target.setClearButtonEnabled(True)
        layout.addWidget(self.target)
        self.answer = QLabel()
        self.answer.setObjectName("route-result")
        self.answer.setTextFormat(Qt.TextFormat.PlainText)  # names and configs are not markup
        self.answer.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.answer.setWordWrap(True)
        self.answer.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.answer.setMinimumWidth(520)
        layout.addWidget(self.answer, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._query)
        self.target.textChanged.connect(lambda _: self._timer.start())
        controller.live.statusChanged.connect(self._status_changed)

    # -- the worker -------------------------------------------------------------------

    def _query(self) -> None:
        text = self.target.text().strip()
        self._generation += 1
        generation = self._generation
        if not text:
            self._lookup = None
            self.answer.setText("")
            return
        self.answer.setText(self.tr("Looking up {target}…").format(target=text))
        self._controller.runner.submit(
            lambda: look_up(text),
            lambda found: self._found(generation, found),
            lambda error: self._failed(generation, text, error),
        )

    def _status_changed(self) -> None:
        key = self._state_key()
        if key == self._tunnels_key:
            return
        self._tunnels_key = key
        previous = self._lookup
        if previous is None:
            return
        generation = self._generation
        self._controller.runner.submit(
            lambda: recheck(previous), lambda found: self._found(generation, found), lambda error: None
        )

    def _found(self, generation: int, found: Lookup) -> None:
        if generation != self._generation:
            return  # the user typed on meanwhile
        self._lookup = found
        self._render()

    def _failed(self, generation: int, text: str, error: Exception) -> None:
        if generation != self._generation:
            return
        self._lookup = None
        self.answer.setText(self.tr("Cannot resolve {target}: {error}").format(target=text, error=error))

    # -- the explanation -------------------------------------------------------------------

    def _state_key(self) -> tuple[Any, ...]:
        return tuple((t.name, t.state, t.full_tunnel, t.kill_switch) for t in self._statuses())

    def _statuses(self) -> list[TunnelSnapshot]:
        library, live = self._controller.library, self._controller.live
        names = sorted(set(library.names()) | set(live.active()))
        return [s for s in (live.status(n) for n in names) if s is not None]

    def _render(self) -> None:
        found = self._lookup
        if found is None:
            return
        c = self._controller
        stored = {n: cfg for n in c.library.names() if (cfg := c.library.config(n)) is not None}
        preferences = {n: c.settings.tunnel_option(n, FULL_TUNNEL) for n in stored}
        status = self._statuses()
        lines: list[str] = []
        if c.live.helper_problem:
            lines.append(self.tr("The helper is not running: every tunnel counts as down."))
        if not found.addresses:
            lines.append(self.tr("{target} has no addresses").format(target=found.target))
        elif str(found.addresses[0]) != found.target or len(found.addresses) > 1:
            lines.append(
                self.tr("{target} resolves to {addresses}").format(
                    target=found.target, addresses=", ".join(str(a) for a in found.addresses)
                )
            )
        for address, kernel in zip(found.addresses, found.kernel, strict=True):
            explanation = explain_status(address, stored, status, found.local, preferences)
            lines.extend(explanation.lines(kernel, kernel_checked=True))
        self.answer.setText("\n".join(lines))

    def done(self, result: int) -> None:
        self._timer.stop()
        self._generation += 1  # a lookup still on its way is dropped: the labels go with the dialog
        super().done(result)


def show_route_dialog(parent: QWidget | None, controller: TunnelController) -> RouteDialog:
    """Open the "Where does this go?" dialog (non-blocking; returned so tests can drive it)."""
    dialog = RouteDialog(controller, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
