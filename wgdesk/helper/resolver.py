"""Endpoint names: resolved at bring-up, and resolved again while a tunnel runs (dynamic DNS).

A peer whose ``Endpoint`` is written as a host name is resolved once by `up`. A server behind a
dynamic-DNS name changes address; the engine then keeps sending to the old one. As wireguard-tools'
``reresolve-dns.sh`` does, the `Reresolver` looks, every ``reresolve_interval`` seconds, at each
running tunnel's peers that have an endpoint *name*: a peer whose latest handshake is older than
``reresolve_after`` seconds (or that never had one) gets its name resolved again, at most once per
interval, and when the address differs from the engine's current endpoint, the new one is set over
UAPI. Peers configured with an IP address are never touched (their endpoint may have roamed), nor is
a peer whose handshake is fresh. A failure to resolve is logged (rate-limited) and retried at the next
check; it never takes the tunnel down. With no such peer the thread sleeps until `wake`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any, Protocol

from wgdesk import uapi
from wgdesk.helper.engine_process import EngineError, EngineProcess, uapi_get, uapi_request
from wgdesk.proto.changes import ConfigurationError, DeviceChange, PeerChange

if TYPE_CHECKING:
    from wgdesk.helper.logbook import LogBook
    from wgdesk.helper.settings import Settings

FAILURE_LOG_INTERVAL = 600.0
"""Seconds between two log records of the same peer's resolution failing with the same error."""


def resolve(host: str, port: int) -> str:
    """The address ``host`` resolves to (IPv4 preferred, as wg-quick), or ``host`` if it is an IP.

    Raises OSError (``socket.gaierror``) or UnicodeError for a name that does not resolve.
    """
    if not is_name(host):
        return host
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    infos.sort(key=lambda i: i[0] != socket.AF_INET)
    return str(infos[0][4][0])


def is_name(host: str) -> bool:
    """True for an endpoint host that is a name, not an IP literal."""
    try:
        ip_address(host)
    except ValueError:
        return True
    return False


@dataclass
class EndpointName:
    """One peer's endpoint name and what its last resolution gave."""

    host: str
    port: int
    address: str
    """The address of the last successful resolution."""
    resolved_at: float
    """Wall-clock time of the last successful resolution."""
    attempted: float
    """Monotonic time of the last resolution attempt."""
    error: str | None = None
    error_logged: float = 0.0
    """Monotonic time the current error was last logged."""


def _same_endpoint(current: str | None, address: str, port: int) -> bool:
    if current is None:
        return False
    try:
        return uapi.parse_endpoint(current) == uapi.parse_endpoint(uapi.format_endpoint((address, port)))
    except ConfigurationError:
        return False


class NamedTunnel(Protocol):
    """What the `Reresolver` reads of one running tunnel."""

    @property
    def name(self) -> str: ...

    @property
    def ifname(self) -> str: ...

    @property
    def engine(self) -> EngineProcess | None: ...

    @property
    def names(self) -> dict[bytes, EndpointName]: ...


class NamedTunnels(Protocol):
    """What the `Reresolver` may ask of the tunnel manager, and no more (not its lock, not its
    table of tunnels)."""

    log: LogBook

    def named(self) -> Sequence[tuple[NamedTunnel, dict[bytes, EndpointName]]]:
        """The running tunnels that have endpoint names, each with a copy of its names."""
        ...

    def still_named(
        self, tunnel: NamedTunnel, key: bytes, name: EndpointName
    ) -> AbstractContextManager[bool]:
        """Holds off `update` and `down` while the block runs; True when ``tunnel`` still runs and
        ``key``'s endpoint is still ``name`` (a concurrent change wins)."""
        ...


class Reresolver:
    """Re-resolves the endpoint names of running tunnels; `run` is the body of its thread."""

    def __init__(self, manager: NamedTunnels, settings: Settings) -> None:
        self.manager = manager
        self.settings = settings
        self._wake = threading.Event()
        self._stopped = threading.Event()

    def wake(self) -> None:
        """A tunnel came up or changed: check now (a peer is resolved at most once per interval)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def run(self) -> None:
        """Check every ``reresolve_interval`` seconds while a tunnel has an endpoint name; otherwise
        sleep until `wake`. Returns after `stop`, or at once when ``reresolve_endpoints`` is off."""
        if not self.settings.reresolve_endpoints:
            return
        while not self._stopped.is_set():
            try:
                named = self.check()
            except Exception as e:  # a bug must not stop re-resolution for good
                self.manager.log.error(None, f"endpoint re-resolution failed: {e!r}")
                named = True
            self._wake.wait(self.settings.reresolve_interval if named else None)
            self._wake.clear()

    def check(self) -> bool:
        """One pass over all running tunnels; True if any has a peer with an endpoint name."""
        now = time.monotonic()
        work = self.manager.named()
        for tunnel, names in work:
            due = {k: n for k, n in names.items() if now - n.attempted >= self.settings.reresolve_interval}
            if not due:
                continue
            try:
                stale = self._stale_peers(tunnel)
            except EngineError:
                continue  # the engine is going away; its exit is reported elsewhere
            for key, name in due.items():
                if key not in stale:
                    continue
                name.attempted = now
                try:
                    address = resolve(name.host, name.port)
                except (OSError, UnicodeError) as e:
                    self._failed(tunnel, name, e)
                    continue
                if name.error is not None:
                    self.manager.log.info(tunnel.name, f"endpoint {name.host} resolves again")
                    name.error = None
                self._apply(tunnel, key, name, address)
        return bool(work)

    def _stale_peers(self, tunnel: NamedTunnel) -> dict[bytes, dict[str, Any]]:
        """Peers of ``tunnel`` whose latest handshake is older than ``reresolve_after`` (or none)."""
        device = uapi_get(tunnel.ifname, timeout=3.0)
        limit = time.time() - self.settings.reresolve_after
        out = {}
        for p in device["peers"]:
            handshake = int(p.get("last_handshake_time_sec", 0))
            if not handshake or handshake < limit:
                out[bytes.fromhex(p["public_key"])] = p
        return out

    def _failed(self, tunnel: NamedTunnel, name: EndpointName, e: BaseException) -> None:
        message = str(e)
        now = time.monotonic()
        if message != name.error or now - name.error_logged >= FAILURE_LOG_INTERVAL:
            self.manager.log.warning(
                tunnel.name,
                f"cannot resolve endpoint {name.host} again ({message}); keeping {name.address}, "
                "retrying later",
            )
            name.error_logged = now
        name.error = message

    def _apply(self, tunnel: NamedTunnel, key: bytes, name: EndpointName, address: str) -> None:
        """Under the manager's lock, so a concurrent `update` or `down` wins: set the endpoint if the
        peer is still this name's, still stale, and the engine sends elsewhere."""
        m = self.manager
        with m.still_named(tunnel, key, name) as current:
            engine = tunnel.engine
            if not current or engine is None:
                return
            name.address, name.resolved_at = address, time.time()
            try:
                peer = self._stale_peers(tunnel).get(key)
                if peer is None or _same_endpoint(peer["endpoint"], address, name.port):
                    return
                change = DeviceChange(
                    peers=(PeerChange(public_key=key, update_only=True, endpoint=(address, name.port)),)
                )
                uapi_request(tunnel.ifname, uapi.format_set(change), alive=engine.alive)
            except EngineError as e:
                m.log.warning(tunnel.name, f"could not set the new endpoint of {name.host}: {e}")
                return
            new = uapi.format_endpoint((address, name.port))
            m.log.info(tunnel.name, f"endpoint {name.host} changed: {peer['endpoint'] or 'none'} → {new}")
