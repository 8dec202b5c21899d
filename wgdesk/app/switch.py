"""Bringing tunnels up and down through the helper: the user's connect, disconnect and reconnect, a change
of the full-tunnel / kill-switch toggles, and applying an edited config to a running tunnel.

The config with its keys is read from the keyring on the worker, sent to the helper there, and the next status
poll shows the result. The user's own connects and disconnects are also announced as ``userConnected`` /
``userDisconnected`` (the rules by network listen: a tunnel the user connected is theirs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from wgdesk.app.advice import helper_advice, helper_unusable
from wgdesk.app.library import TunnelLibrary
from wgdesk.app.live_status import LiveStatus
from wgdesk.app.notices import Notice, Notices
from wgdesk.app.settings import FULL_TUNNEL, KILL_SWITCH, AppSettings
from wgdesk.app.state import is_active
from wgdesk.app.workers import HelperCalls
from wgdesk.client import HelperClient, HelperError, RestartRequired
from wgdesk.config import write


class TunnelSwitch(QObject):
    """Up, down, restart and live update of one tunnel at a time, on the worker."""

    userConnected = Signal(str)  # the user asked to connect this tunnel (before it is brought up)
    userDisconnected = Signal(str)  # the user asked to disconnect this tunnel (before it is taken down)

    def __init__(
        self,
        library: TunnelLibrary,
        live: LiveStatus,
        settings: AppSettings,
        calls: HelperCalls,
        notices: Notices,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._library = library
        self._live = live
        self._settings = settings
        self._calls = calls
        self._notices = notices

    def option(self, name: str, option: str) -> bool:
        """The full-tunnel / kill-switch toggle of *name* (defaults: on when a peer routes everything)."""
        value = self._settings.tunnel_option(name, option)
        if value is not None:
            return value
        return self._library.routes_everything(name)

    def set_option(self, name: str, option: str, value: bool) -> None:
        """Change a toggle; a running tunnel is brought down and up again with the new setting."""
        self._settings.set_tunnel_option(name, option, value)
        if self._live.is_up(name):
            self.restart(name)

    # -- the user's verbs -------

    def toggle(self, name: str) -> None:
        """Connect *name* if it is down, else disconnect it."""
        if is_active(self._live.health(name)):
            self.disconnect_tunnel(name)
        else:
            self.connect_tunnel(name)

    def connect_tunnel(self, name: str) -> None:
        """Bring *name* up through the helper. The user's own connect: no network rule takes the tunnel
        down afterwards."""
        self.userConnected.emit(name)
        self.up(name, lambda _: self._live.poll_now(), lambda e: self._failed(name, e, connecting=True))

    def disconnect_tunnel(self, name: str) -> None:
        """Take *name* down. The user's own disconnect: no network rule connects it again until the
        network changes."""
        self.userDisconnected.emit(name)
        self.down(name, lambda _: self._live.poll_now(), lambda e: self._failed(name, e, connecting=False))

    def restart(self, name: str) -> None:
        """Down, then up again (to apply changes that cannot be applied live)."""
        text_of = self._text_with_keys
        full, kill = self.option(name, FULL_TUNNEL), self.option(name, KILL_SWITCH)
        self._live.mark_pending(name)

        def cycle(c: HelperClient) -> Any:
            text = text_of(name)
            c.down(name)
            return c.up(name, text, full_tunnel=full, kill_switch=kill)

        self._calls.submit(
            cycle, lambda _: self._live.poll_now(), lambda e: self._failed(name, e, connecting=True)
        )

    def update_live(
        self,
        name: str,
        on_live: Callable[[dict[str, Any]], None],
        on_restart: Callable[[list[str]], None],
    ) -> None:
        """Apply the stored config of the running *name* without reconnecting (the helper's ``update``).

        Calls ``on_live(result)`` when it was applied live, ``on_restart(keys)`` when only a reconnect can
        apply it (*keys* names what forces that; empty when the helper is too old to update live).
        """
        text_of = self._text_with_keys

        def done(result: dict[str, Any]) -> None:
            self._live.poll_now()
            on_live(result)

        def refused(exc: BaseException) -> None:
            if isinstance(exc, RestartRequired):
                on_restart(exc.keys)
            elif isinstance(exc, HelperError) and exc.code == "unknown_verb":
                on_restart([])
            else:
                self._notices.fail(
                    self.tr("Could not apply the changes to {name}").format(name=name), str(exc)
                )

        self._calls.submit(lambda c: c.update(name, text_of(name)), done, refused)

    # -- the steps, also for the rules by network -------

    def up(self, name: str, on_done: Callable[[Any], None], on_error: Callable[[Any], None]) -> None:
        """Bring *name* up with its toggles (it shows as starting meanwhile); then *on_done* or *on_error*
        on this thread."""
        full, kill = self.option(name, FULL_TUNNEL), self.option(name, KILL_SWITCH)
        text_of = self._text_with_keys
        self._live.mark_pending(name)
        self._calls.submit(
            lambda c: c.up(name, text_of(name), full_tunnel=full, kill_switch=kill), on_done, on_error
        )
        self._live.changed()

    def down(self, name: str, on_done: Callable[[Any], None], on_error: Callable[[Any], None]) -> None:
        """Take *name* down; then *on_done* or *on_error* on this thread."""
        self._live.drop_pending(name)
        self._calls.submit(lambda c: c.down(name), on_done, on_error)

    def _text_with_keys(self, name: str) -> str:
        """The ``.conf`` text of *name* with its keys (reads the keyring: worker threads only)."""
        return write(self._library.store.load(name, with_secrets=True))

    def _failed(self, name: str, exc: BaseException, connecting: bool) -> None:
        self._live.drop_pending(name)
        if helper_unusable(exc):
            self._live.set_helper_problem(exc)
        title = (
            self.tr("Could not connect {name}") if connecting else self.tr("Could not disconnect {name}")
        ).format(name=name)
        self._notices.tell(title, str(exc), Notice.ERROR)
        self._notices.fail(title, helper_advice(exc) if helper_unusable(exc) else str(exc))
        self._live.changed()
