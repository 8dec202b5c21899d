"""The app's model of the user's tunnels: the store on disk plus the helper's live status.

Views read from the controller and call its verbs; it never blocks the UI thread: helper calls and keyring
access run on a :class:`~wgdesk.app.workers.TaskRunner`, and the status comes from a :class:`StatusMonitor`
thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal, Slot

from wgdesk.app.icons import IconState
from wgdesk.app.network_rules import NetworkRules
from wgdesk.app.settings import AUTO_CONNECT, AppSettings
from wgdesk.app.state import Health, health, icon_state, is_active
from wgdesk.app.workers import StatusMonitor, TaskRunner
from wgdesk.client import (
    PAUSE_SECONDS,
    HelperClient,
    HelperError,
    HelperPermissionDenied,
    HelperUnavailable,
    RestartRequired,
    pause_left,
)
from wgdesk.config import ConfigError, lint, parse, write
from wgdesk.platforms import NetworkIdentity, current_network, local_networks, system
from wgdesk.tunnels import TunnelStore, write_export

ClientFactory = Callable[[], HelperClient]
NetworkProbe = Callable[[], NetworkIdentity | None]

FULL_TUNNEL = "full_tunnel"
KILL_SWITCH = "kill_switch"
HISTORY_SECONDS = 300.0
LAN_TTL = 30.0
"""Seconds the local networks read for the linter stay valid."""
NETWORK_INTERVAL = 5.0
"""Seconds between two looks at which network the machine is on (for the rules by network)."""


class Notice:
    """Kinds of notification (for the tray balloon icon)."""

    INFO = 0
    WARNING = 1
    ERROR = 2


class TunnelController(QObject):
    """Owns the tunnel store, the helper connection and the live status; emits what changed."""

    tunnelsChanged = Signal()  # a tunnel was added, removed or edited
    statusChanged = Signal()  # new live status (once a second while the helper answers)
    helperProblemChanged = Signal(str)  # "" when the helper answers, else how to fix it
    notify = Signal(str, str, int)  # title, message, Notice kind
    importFinished = Signal(object)  # the store's ImportReport
    failed = Signal(str, str)  # title, message: an operation the user asked for failed
    networkChanged = Signal()  # the current network, or whether it is trusted, changed
    lockdownChanged = Signal()  # the helper's lockdown state (or whether it is known) changed

    def __init__(
        self,
        store: TunnelStore,
        client_factory: ClientFactory,
        settings: AppSettings,
        parent: QObject | None = None,
        poll_interval: float = 1.0,
        network_probe: NetworkProbe | None = current_network,
        network_interval: float = NETWORK_INTERVAL,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.settings = settings
        self._client_factory = client_factory
        self.runner = TaskRunner(self)
        self._status: dict[str, dict[str, Any]] = {}
        self._history: dict[tuple[str, str], list[tuple[float, int, int]]] = {}
        self._pending: set[str] = set()
        # what to say, instead of the plain "Connected"/"Disconnected", when a tunnel a network rule is
        # bringing up or taking down gets there: name -> (health it is heading for, title, text)
        self._announce: dict[str, tuple[Health, str, str]] = {}
        self._health: dict[str, Health] = {}
        self._helper_problem = ""
        self._helper_headline = ""
        self._configs: dict[str, Any] = {}
        self._warnings: dict[str, list[Any]] = {}
        self._lans: tuple[list[Any], float] | None = None  # (local networks, when read) for the linter
        self._public_keys: dict[str, str] = {}
        self._monitor_client: HelperClient | None = None  # used only on the monitor's thread
        self._monitor = StatusMonitor(self._poll_status, poll_interval, self)
        self._monitor.statusUpdated.connect(self._on_status)
        self._monitor.helperFailed.connect(self._on_helper_failed)
        self.status_received = False
        # rules by network: the probe runs on its own one-thread runner, so a slow probe never delays
        # helper calls and tests waiting for `runner` to go idle are not kept waiting by it
        self._network_probe = network_probe
        self._network: NetworkIdentity | None = None
        self._network_runner = TaskRunner(self, max_threads=1)
        self._network_timer = QTimer(self)
        self._network_timer.setInterval(int(network_interval * 1000))
        self._network_timer.timeout.connect(self.probe_network)
        self._rules = NetworkRules(settings.rule_connected())
        # lockdown as the helper reports it ({"enabled", "policy"}); None: not known (no helper, or one
        # that predates lockdown). Read on the monitor's thread with each status, taken over on this one.
        self._lockdown: dict[str, Any] | None = None
        self._polled_lockdown: tuple[float, dict[str, Any] | None] = (0.0, None)
        """(monotonic time the poll asked, what it got): a poll that asked before the latest
        `set_lockdown` answered is older news than that answer and is ignored."""
        self._lockdown_set_at = 0.0
        self._ending_pause = 0
        """Lockdown calls of this app under way that end a pause (resume, on, off): a pause they end is
        not announced, even when a status poll brings the news before their answer."""

    # -- lifecycle -------

    def start(self) -> None:
        """Start watching the helper (and, with a network probe, the network)."""
        self._monitor.start()
        if self._network_probe is not None:
            self._network_timer.start()
            self.probe_network()

    def stop(self) -> None:
        """Stop the status thread and wait for running tasks."""
        self._network_timer.stop()
        self._monitor.stop()
        self._network_runner.shutdown()
        self.runner.shutdown()
        if self._monitor_client is not None:
            self._monitor_client.close()
            self._monitor_client = None

    # -- reading -------

    def names(self) -> list[str]:
        """The stored tunnels, sorted."""
        try:
            return sorted(self.store.list())
        except OSError:
            return []

    def config(self, name: str) -> Any | None:
        """The stored config without secrets (cached), or None when it cannot be read."""
        if name not in self._configs:
            try:
                self._configs[name] = self.store.load(name)
            except (OSError, ConfigError, KeyError):
                return None
        return self._configs[name]

    def warnings(self, name: str) -> list[Any]:
        """``config.lint`` warnings for *name* on this platform (cached with the config)."""
        if name not in self._warnings:
            cfg = self.config(name)
            if cfg is None:
                return []
            try:
                self._warnings[name] = _lint(cfg, self._local_networks())
            except Exception:  # a linter bug must not take the window down
                return []
        return self._warnings[name]

    def _local_networks(self) -> list[Any]:
        """This machine's networks for the linter's `overlap-lan`, read at most every `LAN_TTL` seconds
        (reading them runs `ip`; the UI thread should not do that for every tunnel shown)."""
        now = time.monotonic()
        if self._lans is None or now - self._lans[1] > LAN_TTL:
            self._lans = (local_networks(), now)
        return self._lans[0]

    def _forget(self, name: str) -> None:
        """Drop what is cached about *name* (after it was saved, renamed or deleted)."""
        self._configs.pop(name, None)
        self._warnings.pop(name, None)
        self._public_keys.pop(name, None)

    def status(self, name: str) -> dict[str, Any] | None:
        """The helper's latest status dict for *name*, None when it is not up."""
        return self._status.get(name)

    def history(self, name: str, peer: str) -> list[tuple[float, int, int]]:
        """(monotonic time, rx bytes, tx bytes) samples of one peer over the last minutes, oldest first."""
        return self._history.get((name, peer), [])

    def health(self, name: str) -> Health:
        """The tunnel's health (see :mod:`wgdesk.app.state`)."""
        return health(self._status.get(name), time.time(), name in self._pending)

    def active(self) -> list[str]:
        """Tunnels that are up or coming up."""
        names = set(self._status) | self._pending
        return sorted(n for n in names if is_active(self.health(n)))

    def icon_state(self) -> IconState:
        """The tray icon for all tunnels together."""
        # a tunnel neither up nor pending is down, which changes no icon: the store need not be listed
        names = set(self._status) | self._pending
        return icon_state([self.health(n) for n in names], bool(self._helper_problem))

    @property
    def helper_problem(self) -> str:
        """Why the helper cannot be used and how to fix it; "" when it answers."""
        return self._helper_problem

    @property
    def helper_headline(self) -> str:
        """A short form of :attr:`helper_problem` for the tray menu and tooltip."""
        return self._helper_headline

    def option(self, name: str, option: str) -> bool:
        """The full-tunnel / kill-switch toggle of *name* (defaults: on when a peer routes everything)."""
        value = self.settings.tunnel_option(name, option)
        if value is not None:
            return value
        return self.routes_everything(name)

    def routes_everything(self, name: str) -> bool:
        """Whether a peer's AllowedIPs contains 0.0.0.0/0 or ::/0."""
        cfg = self.config(name)
        if cfg is None:
            return False
        for peer in getattr(cfg, "peers", ()):
            for net in getattr(peer, "allowed_ips", ()):
                if str(net) in ("0.0.0.0/0", "::/0"):
                    return True
        return False

    def public_key(self, name: str) -> str | None:
        """The interface's public key if known (derived from the keyring's private key on first use)."""
        return self._public_keys.get(name)

    def client(self) -> HelperClient:
        """A fresh helper client (for workers; use it as a context manager so its socket is closed)."""
        return self._client_factory()

    def _poll_status(self) -> list[dict[str, Any]]:
        # one connection, kept open between polls; dropped after any failure
        if self._monitor_client is None:
            self._monitor_client = self._client_factory()
        try:
            asked = time.monotonic()
            tunnels = self._monitor_client.status()
            try:
                self._polled_lockdown = (asked, self._monitor_client.lockdown())
            except HelperError as e:
                if e.code != "unsupported":
                    raise
                self._polled_lockdown = (asked, None)
            return tunnels
        except Exception:
            self._monitor_client.close()
            self._monitor_client = None
            raise

    # -- lockdown -------

    def lockdown(self) -> dict[str, Any] | None:
        """The helper's lockdown: ``{"enabled": bool, "policy": "user"|"always"|"never",
        "paused_until": Unix time | None, "pause_max": seconds}``, or None when it is not known (the
        helper cannot be reached, or predates lockdown)."""
        return self._lockdown

    def lockdown_blocking(self) -> bool:
        """Whether lockdown blocks all traffic right now: it is on, not paused, and no tunnel is up."""
        if not (self._lockdown and self._lockdown.get("enabled")):
            return False
        if self.lockdown_pause_left() is not None:
            return False
        return not any(t.get("state") == "up" for t in self._status.values())

    def lockdown_pause_left(self) -> float | None:
        """Seconds left of a lockdown pause, or None when none runs (or lockdown is not known)."""
        return pause_left(self._lockdown) if self._lockdown else None

    def lockdown_pause_seconds(self) -> int:
        """How long the app pauses lockdown: 2 minutes, or the administrator's maximum if shorter
        (0: pausing is not allowed, or lockdown is not known)."""
        most = self._lockdown.get("pause_max") if self._lockdown else None
        if isinstance(most, bool) or not isinstance(most, int) or most <= 0:
            return 0
        return min(PAUSE_SECONDS, most)

    def lockdown_pausable(self) -> bool:
        """Whether the app offers to pause lockdown: it blocks now and the administrator allows it."""
        return self.lockdown_blocking() and self.lockdown_pause_seconds() > 0

    def pause_lockdown(self) -> None:
        """Pause lockdown for `lockdown_pause_seconds` (a Wi-Fi login page), on the worker; emits
        ``lockdownChanged`` with the answer, or ``failed``."""
        seconds = self.lockdown_pause_seconds()
        self._lockdown_call(
            lambda c: c.pause_lockdown(seconds), self.tr("Could not pause lockdown"), user_resumed=False
        )

    def resume_lockdown(self) -> None:
        """End a lockdown pause now, on the worker."""
        self._lockdown_call(
            lambda c: c.resume_lockdown(), self.tr("Could not resume lockdown"), user_resumed=True
        )

    def set_lockdown(self, enabled: bool) -> None:
        """Turn the helper's lockdown on or off, on the worker; emits ``lockdownChanged`` with the
        answer, or ``failed`` (e.g. the administrator forces it)."""
        title = self.tr("Could not turn lockdown on") if enabled else self.tr("Could not turn lockdown off")
        self._lockdown_call(lambda c: c.set_lockdown(enabled), title, user_resumed=True)

    def _lockdown_call(
        self, call: Callable[[HelperClient], dict[str, Any]], failure: str, user_resumed: bool
    ) -> None:
        """Run a lockdown verb on the worker; its answer becomes the known state. ``user_resumed``:
        a pause this answer ends was ended by the user here (no "pause ended" notification)."""
        client = self._client_factory

        def run() -> dict[str, Any]:
            with client() as c:
                return call(c)

        def done(state: object) -> None:
            self._lockdown_set_at = time.monotonic()
            if isinstance(state, dict):
                self._take_lockdown(state, quiet=user_resumed)
            if user_resumed:
                self._ending_pause -= 1
            self.poll_now()

        def refused(exc: BaseException) -> None:
            if user_resumed:
                self._ending_pause -= 1
            if isinstance(exc, HelperUnavailable):
                self._set_helper_problem(exc)
            self.failed.emit(failure, str(exc))
            self.poll_now()

        if user_resumed:
            self._ending_pause += 1
        self.runner.submit(run, done, refused)

    def _take_lockdown(self, state: dict[str, Any] | None, quiet: bool = False) -> None:
        if state != self._lockdown:
            was_paused = self._lockdown is not None and self._lockdown.get("paused_until") is not None
            self._lockdown = dict(state) if state is not None else None
            if (
                was_paused
                and not quiet
                and not self._ending_pause
                and state is not None
                and state.get("enabled")
                and state.get("paused_until") is None
            ):
                self.notify.emit(
                    self.tr("Lockdown is back on"),
                    self.tr(
                        "The pause has ended: nothing leaves this computer except through a connected tunnel."
                    ),
                    Notice.INFO,
                )
            self.lockdownChanged.emit()

    # -- verbs -------

    def set_option(self, name: str, option: str, value: bool) -> None:
        """Change a toggle; a running tunnel is brought down and up again with the new setting."""
        self.settings.set_tunnel_option(name, option, value)
        if name in self._status:
            self.restart(name)

    def toggle(self, name: str) -> None:
        """Connect *name* if it is down, else disconnect it."""
        if is_active(self.health(name)):
            self.disconnect_tunnel(name)
        else:
            self.connect_tunnel(name)

    def connect_tunnel(self, name: str) -> None:
        """Bring *name* up through the helper (the config with its keys is read on the worker). The
        user's own connect: no network rule takes the tunnel down afterwards."""
        self._rules.user_connected(name)
        self._save_rules()
        self._up(name, lambda _: self._after_change(name), lambda e: self._verb_failed(name, e, True))

    def _up(self, name: str, on_done: Callable[[Any], None], on_error: Callable[[Any], None]) -> None:
        self._pending.add(name)
        full, kill = self.option(name, FULL_TUNNEL), self.option(name, KILL_SWITCH)
        store, client = self.store, self._client_factory

        def up() -> Any:
            text = write(store.load(name, with_secrets=True))
            with client() as c:
                return c.up(name, text, full_tunnel=full, kill_switch=kill)

        self.runner.submit(up, on_done, on_error)
        self.statusChanged.emit()

    def disconnect_tunnel(self, name: str) -> None:
        """Take *name* down. The user's own disconnect: no network rule connects it again until the
        network changes."""
        self._rules.user_disconnected(name)
        self._save_rules()
        self._down(name, lambda _: self._after_change(name), lambda e: self._verb_failed(name, e, False))

    def _down(self, name: str, on_done: Callable[[Any], None], on_error: Callable[[Any], None]) -> None:
        client = self._client_factory
        self._pending.discard(name)
        self.runner.submit(lambda: _call(client, "down", name), on_done, on_error)

    def restart(self, name: str) -> None:
        """Down, then up again (to apply changes that cannot be applied live)."""
        client, store = self._client_factory, self.store
        full, kill = self.option(name, FULL_TUNNEL), self.option(name, KILL_SWITCH)
        self._pending.add(name)

        def cycle() -> Any:
            text = write(store.load(name, with_secrets=True))
            with client() as c:
                c.down(name)
                return c.up(name, text, full_tunnel=full, kill_switch=kill)

        self.runner.submit(
            cycle, lambda _: self._after_change(name), lambda e: self._verb_failed(name, e, True)
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
        store, client = self.store, self._client_factory

        def run() -> dict[str, Any]:
            text = write(store.load(name, with_secrets=True))
            with client() as c:
                return c.update(name, text)

        def done(result: dict[str, Any]) -> None:
            self.poll_now()
            on_live(result)

        def refused(exc: BaseException) -> None:
            if isinstance(exc, RestartRequired):
                on_restart(exc.keys)
            elif isinstance(exc, HelperError) and exc.code == "unknown_verb":
                on_restart([])
            else:
                self.failed.emit(self.tr("Could not apply the changes to {name}").format(name=name), str(exc))

        self.runner.submit(run, done, refused)

    def probe_mtu(
        self,
        name: str,
        apply: bool,
        on_done: Callable[[dict[str, Any]], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        """Probe the path MTU of the running *name* on a worker (the helper's ``probe_mtu``, seconds long);
        with *apply* the helper also lowers the tunnel's MTU to what crosses. Calls back on this thread."""
        client = self._client_factory

        def run() -> dict[str, Any]:
            with client() as c:
                return c.probe_mtu(name, apply=apply)

        def done(result: dict[str, Any]) -> None:
            if result.get("applied"):
                self.poll_now()
            on_done(result)

        self.runner.submit(run, done, on_failed)

    def import_files(self, paths: list[Path]) -> None:
        """Import ``.conf`` / ``.zip`` files; emits ``importFinished(report)``."""
        store = self.store
        self.runner.submit(
            lambda: store.import_files([Path(p) for p in paths]),
            self._imported,
            lambda e: self.failed.emit(self.tr("Import failed"), str(e)),
        )

    def save(self, name: str, text: str, on_saved: Callable[[], None] | None = None) -> None:
        """Parse and store *text* as tunnel *name* (raises ConfigError at once when it is invalid)."""
        cfg = parse(text, filename=f"{name}.conf")
        store = self.store

        def done(_: object) -> None:
            self._forget(name)
            self.tunnelsChanged.emit()
            if on_saved is not None:
                on_saved()

        self.runner.submit(
            lambda: store.save(name, cfg),
            done,
            lambda e: self.failed.emit(self.tr("Could not save {name}").format(name=name), str(e)),
        )

    def apply_fix(self, name: str, code: str, line: int | None) -> None:
        """Apply the linter's mechanical fix for warning *code* (re-linted with the keys, so none is lost)."""
        store = self.store

        def run() -> None:
            cfg = store.load(name, with_secrets=True)
            for w in _lint(cfg, local_networks()):
                if w.code == code and w.line == line and w.fix is not None and w.fix.config is not None:
                    store.save(name, w.fix.config)
                    return
            raise ValueError(self.tr("the warning {code} no longer applies").format(code=code))

        def done(_: object) -> None:
            self._forget(name)
            self.tunnelsChanged.emit()

        self.runner.submit(
            run, done, lambda e: self.failed.emit(self.tr("Could not fix {name}").format(name=name), str(e))
        )

    def load_text(self, name: str, on_loaded: Callable[[str], None]) -> None:
        """Read *name* with its secrets (keyring, on a worker) and pass the ``.conf`` text to *on_loaded*."""
        store = self.store
        self.runner.submit(
            lambda: write(store.load(name, with_secrets=True)),
            on_loaded,
            lambda e: self.failed.emit(self.tr("Could not read {name}").format(name=name), str(e)),
        )

    def rename(self, old: str, new: str, on_renamed: Callable[[], None] | None = None) -> None:
        """Rename a tunnel (file, keyring items and per-tunnel settings)."""
        store = self.store

        def done(_: object) -> None:
            for option in (FULL_TUNNEL, KILL_SWITCH, AUTO_CONNECT):
                value = self.settings.tunnel_option(old, option)
                if value is not None:
                    self.settings.set_tunnel_option(new, option, value)
            self.settings.forget_tunnel(old)
            self._rules.stop_managing(old)
            self._save_rules()
            self._forget(old)
            self.tunnelsChanged.emit()
            if on_renamed is not None:
                on_renamed()

        self.runner.submit(
            lambda: store.rename(old, new),
            done,
            lambda e: self.failed.emit(self.tr("Could not rename {name}").format(name=old), str(e)),
        )

    def delete(self, name: str) -> None:
        """Delete the tunnel (disconnecting it first when it is up)."""
        client, store, up = self._client_factory, self.store, name in self._status

        def remove() -> None:
            if up:
                _call(client, "down", name)
            store.delete(name)

        def done(_: object) -> None:
            self._forget(name)
            self.settings.forget_tunnel(name)
            self._rules.stop_managing(name)
            self._save_rules()
            self.tunnelsChanged.emit()

        self.runner.submit(
            remove,
            done,
            lambda e: self.failed.emit(self.tr("Could not delete {name}").format(name=name), str(e)),
        )

    def export(self, name: str, path: Path, with_secrets: bool) -> None:
        """Write the tunnel's ``.conf`` to *path* (with the keys from the keyring only when asked)."""
        store = self.store

        def run() -> None:
            # never readable by others, keys or not
            write_export(path, store.export(name, with_secrets=with_secrets).encode(), secret=True)

        self.runner.submit(
            run,
            lambda _: self.notify.emit(self.tr("Exported"), str(path), Notice.INFO),
            lambda e: self.failed.emit(self.tr("Export failed"), str(e)),
        )

    def fetch_public_key(self, name: str) -> None:
        """Derive the interface public key from the keyring on a worker; emits ``statusChanged``."""
        if name in self._public_keys:
            return
        from wgdesk.app.keys import public_key

        store = self.store

        def run() -> str | None:
            cfg = store.load(name, with_secrets=True)
            key = getattr(cfg.interface, "private_key", None)
            return public_key(key) if key else None

        def done(key: object) -> None:
            if isinstance(key, str):
                self._public_keys[name] = key
                self.statusChanged.emit()

        self.runner.submit(run, done, lambda e: None)

    # -- rules by network -------

    @property
    def watches_network(self) -> bool:
        """Whether the controller looks at the network (it has a network probe)."""
        return self._network_probe is not None

    def network(self) -> NetworkIdentity | None:
        """The network the machine is on, as last seen (None: none, or not identified yet)."""
        return self._network

    def network_trusted(self) -> bool:
        """Whether the current network is one the user trusts (False when there is none)."""
        return self._network is not None and self._network.key in self._trusted_keys()

    def trusted_networks(self) -> list[Any]:
        """The networks the user trusts (`settings.TrustedNetwork`: key, label)."""
        return self.settings.trusted_networks()

    def trust_network(self, network: NetworkIdentity) -> None:
        """Trust *network* from now on (tunnels a rule connected go down when it is the current one)."""
        self.settings.trust_network(network.key, network.label)
        self.networkChanged.emit()
        self._apply_rules()

    def distrust_network(self, key: str) -> None:
        """Stop trusting the network with identity *key*."""
        self.settings.distrust_network(key)
        self.networkChanged.emit()
        self._apply_rules()

    def auto_connect(self, name: str) -> bool:
        """Whether *name* is connected automatically on untrusted networks."""
        return self.settings.auto_connect(name)

    def set_auto_connect(self, name: str, enabled: bool) -> None:
        """Set or clear *name*'s "Connect automatically on untrusted networks" (clearing it leaves the
        tunnel as it is; setting it on an untrusted network connects it)."""
        self.settings.set_auto_connect(name, enabled)
        if not enabled:
            self._rules.stop_managing(name)
            self._save_rules()
        self._apply_rules()

    def rule_connected(self) -> frozenset[str]:
        """The tunnels a network rule connected (and takes down on a trusted network)."""
        return self._rules.rule_connected

    @Slot()
    def probe_network(self) -> None:
        """Look at the network now, on the network worker; the rules run on the answer."""
        if self._network_probe is None or self._network_runner.busy:
            return
        self._network_runner.submit(self._network_probe, self._on_network, lambda _exc: None)

    def _on_network(self, found: object) -> None:
        network = found if isinstance(found, NetworkIdentity) else None
        if network != self._network:
            self._network = network
            self.networkChanged.emit()
        self._apply_rules()

    def _trusted_keys(self) -> set[str]:
        return {n.key for n in self.settings.trusted_networks()}

    def _apply_rules(self) -> None:
        """Ask the rules about the current network and do what they say. Not before the first status
        (which tunnels are up is not known) and not while the helper cannot be used."""
        if self._network_probe is None or not self.status_received or self._helper_problem:
            return
        flagged = {n for n in self.names() if self.settings.auto_connect(n)}
        actions = self._rules.decide(self._network, self._trusted_keys(), flagged, set(self.active()))
        label = actions.network.label if actions.network is not None else ""
        for name in actions.connect:
            self._rule_up(name, label)
        for name in actions.disconnect:
            self._rule_down(name, label)
        self._save_rules()

    def _rule_up(self, name: str, network: str) -> None:
        text = self.tr("Connected {name}: untrusted network {network}").format(name=name, network=network)
        self._announce[name] = (Health.HEALTHY, self.tr("Network rule"), text)

        def done(_: object) -> None:
            self._after_change(name)

        def failed(exc: BaseException) -> None:
            self._announce.pop(name, None)
            self._pending.discard(name)
            if isinstance(exc, (HelperUnavailable, HelperPermissionDenied)):
                self._set_helper_problem(exc)
            text = self.tr("Untrusted network {network}: {error}").format(network=network, error=exc)
            self.notify.emit(self.tr("Could not connect {name}").format(name=name), text, Notice.ERROR)
            self.statusChanged.emit()

        self._up(name, done, failed)

    def _rule_down(self, name: str, network: str) -> None:
        text = self.tr("Disconnected {name}: trusted network {network}").format(name=name, network=network)
        self._announce[name] = (Health.DOWN, self.tr("Network rule"), text)

        def done(_: object) -> None:
            self._after_change(name)

        def failed(exc: BaseException) -> None:
            self._announce.pop(name, None)
            text = self.tr("Trusted network {network}: {error}").format(network=network, error=exc)
            self.notify.emit(self.tr("Could not disconnect {name}").format(name=name), text, Notice.ERROR)

        self._down(name, done, failed)

    def _save_rules(self) -> None:
        self.settings.set_rule_connected(sorted(self._rules.rule_connected))

    # -- status -------

    def poll_now(self) -> None:
        """Refresh the status without waiting for the next tick."""
        self._monitor.poll_now()

    @Slot(list)
    def _on_status(self, tunnels: list[dict[str, Any]]) -> None:
        now_wall, now_mono = time.time(), time.monotonic()
        if not self.status_received:
            # the rules first see the tunnels after "restore tunnels" (a statusChanged slot) had its turn
            QTimer.singleShot(0, self, self._apply_rules)
        self.status_received = True
        self._status = {str(t.get("name")): t for t in tunnels if t.get("name")}
        for name, t in self._status.items():
            for peer in t.get("peers", ()):
                key = (name, str(peer.get("public_key", "")))
                samples = self._history.setdefault(key, [])
                samples.append((now_mono, int(peer.get("rx_bytes") or 0), int(peer.get("tx_bytes") or 0)))
                while samples and now_mono - samples[0][0] > HISTORY_SECONDS:
                    samples.pop(0)
        for key in [k for k in self._history if k[0] not in self._status]:
            del self._history[key]
        self._pending -= set(self._status)
        self._set_helper_problem(None)
        asked, lockdown = self._polled_lockdown
        if asked > self._lockdown_set_at:
            self._take_lockdown(lockdown)
        self._notify_transitions(now_wall)
        # "restore tunnels at start" brings back what the user connected; what a network rule connected
        # is the rule's to decide on the network found at start
        restorable = sorted(set(self._status) - self._rules.rule_connected)
        if restorable != self.settings.last_connected():
            self.settings.set_last_connected(restorable)
        self.statusChanged.emit()

    @Slot(object)
    def _on_helper_failed(self, exc: BaseException) -> None:
        if not isinstance(exc, (HelperUnavailable, HelperPermissionDenied)):
            return  # a slow or refused status request: keep the last known state, ask again next tick
        self._status = {}
        self._history.clear()
        self._health.clear()  # unknown now; no "disconnected" notices for tunnels we cannot see
        self._set_helper_problem(exc)
        self._take_lockdown(None)
        self.statusChanged.emit()

    def _set_helper_problem(self, exc: BaseException | None) -> None:
        text = helper_advice(exc) if exc is not None else ""
        self._helper_headline = helper_headline(exc) if exc is not None else ""
        if text != self._helper_problem:
            if text and not self._helper_problem:
                self.notify.emit(self._helper_headline, text, Notice.ERROR)
            self._helper_problem = text
            self.helperProblemChanged.emit(text)

    def _notify_transitions(self, now: float) -> None:
        names = set(self._status) | set(self._health)
        for name in names:
            new = health(self._status.get(name), now, name in self._pending)
            old = self._health.get(name, Health.DOWN)
            if new == old:
                continue
            self._health[name] = new
            heading, title, text = self._announce.get(name, (None, "", ""))
            if new == heading:
                del self._announce[name]
                self.notify.emit(title, text, Notice.INFO)
                continue
            if new in (Health.DOWN, Health.ERROR):
                self._announce.pop(name, None)  # it did not get where the rule sent it
            if new == Health.HEALTHY and old in (Health.DOWN, Health.STARTING, Health.WAITING):
                self.notify.emit(
                    self.tr("Connected"), self.tr("{name} is connected.").format(name=name), Notice.INFO
                )
            elif new == Health.DOWN and old != Health.DOWN:
                self.notify.emit(
                    self.tr("Disconnected"), self.tr("{name} is disconnected.").format(name=name), Notice.INFO
                )
            elif new == Health.ERROR:
                self.notify.emit(
                    self.tr("Tunnel error"), self.tr("{name} failed.").format(name=name), Notice.ERROR
                )
        for name in [n for n, h in self._health.items() if h == Health.DOWN]:
            del self._health[name]

    def _after_change(self, name: str) -> None:
        self.poll_now()

    def _verb_failed(self, name: str, exc: BaseException, connecting: bool) -> None:
        self._pending.discard(name)
        if isinstance(exc, (HelperUnavailable, HelperPermissionDenied)):
            self._set_helper_problem(exc)
        title = (
            self.tr("Could not connect {name}") if connecting else self.tr("Could not disconnect {name}")
        ).format(name=name)
        self.notify.emit(title, str(exc), Notice.ERROR)
        self.failed.emit(
            title,
            helper_advice(exc) if isinstance(exc, (HelperUnavailable, HelperPermissionDenied)) else str(exc),
        )
        self.statusChanged.emit()

    def _imported(self, report: object) -> None:
        self._configs.clear()
        self._warnings.clear()
        self.tunnelsChanged.emit()
        self.importFinished.emit(report)


def _lint(cfg: Any, lans: list[Any]) -> list[Any]:
    return lint(cfg, local_networks=lans, platform=system())


def _call(factory: ClientFactory, verb: str, *args: Any) -> Any:
    """One helper call on a fresh connection that is closed afterwards (for worker threads)."""
    with factory() as client:
        return getattr(client, verb)(*args)


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
        if "systemctl" not in detail:
            text += "\n" + t("Fix: start the service: sudo systemctl enable --now wgdesk-helper")
        return text + "\n" + t("Or, for this session only, start it through polkit: pkexec wgdesk-helper")
    return t("The wgdesk helper failed: {detail}").format(detail=detail)
