"""The engine's event loop: TUN ⇄ `proto.Device` ⇄ UDP, one timer, and the UAPI server.

The loop routes bytes and makes no protocol decision. Each wake-up drains what is ready
(up to `BATCH` reads per source), hands it to the device in one call, then flushes the device's
outputs and re-arms the single timer from `device.get_timer()`. Everything runs on one thread, so
a UAPI `get` always sees a consistent device between two batches. How packets move is the data
path's (`datapath.py`: compiled or pure Python, offload or portable I/O), chosen once at start.
"""

from __future__ import annotations

import errno
import io
import os
import selectors
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from wgdesk import uapi
from wgdesk.engine.bind import Bind, BindError
from wgdesk.engine.datapath import BATCH, make_path
from wgdesk.engine.linkwatch import LinkWatch
from wgdesk.engine.logger import EventLog, log, peer_name
from wgdesk.engine.tun import Tun, TunGone
from wgdesk.engine.uapi_server import UapiServer
from wgdesk.fastpath import Choice, choose
from wgdesk.platforms import suspend_aware_clock
from wgdesk.platforms.interface import UapiListener, UdpGuard
from wgdesk.proto.changes import ConfigurationError, DeviceChange
from wgdesk.proto.device import Device

QUIET = 0.001
"""Seconds without a read from a source after which its next packet is read and handled alone."""


class Engine:
    """One running WireGuard interface.

    `bind` may be None: the engine then binds UDP itself (port 0 until configured). With a bind
    handed over (`WGDESK_UDP_FDS`) the engine may run without privileges; a later port or fwmark
    change it cannot make is answered with `errno=EPERM`.
    `time_scale` multiplies the protocol clock fed to the device (a test knob; 1 in production).
    `datapath` is the data path to run (default: `fastpath.choose()`, from the environment); the
    bind it opens itself and the TUN's offloads follow its offload/portable choice.
    """

    def __init__(
        self,
        tun: Tun,
        uapi_listener: UapiListener | None,
        uapi_path: Path | None = None,
        bind: Bind | None = None,
        time_scale: float = 1.0,
        device: Device | None = None,
        datapath: Choice | None = None,
        udp_guard: UdpGuard | None = None,
    ) -> None:
        self.tun = tun
        self.time_scale = time_scale
        self.clock = suspend_aware_clock()
        self.choice = datapath if datapath is not None else choose()
        module = self.choice.module
        self.device = device or Device(rng=os.urandom, wall_clock=time.time, datapath=module)
        if self.device.datapath is not module:
            raise ValueError("the device must be made with the engine's data path")
        if module is not None and not self.choice.portable:
            tun.enable_offloads()
        self.path = make_path(module, self.device, tun, self._count_loop_drop, self.choice.threaded)
        self.selector = selectors.DefaultSelector()
        self.events = EventLog()
        self._stopping = False
        self.exit_reason = ""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        self.bind = bind if bind is not None else Bind.open(0, offload=not self.choice.portable)
        self.udp_guard = udp_guard
        """Told of every new bind before it sends (Windows pins the sockets out of the tunnel)."""
        if udp_guard is not None:
            udp_guard.bound(self.bind)
        self._register_bind()
        self.device.set_listen_port(self.bind.port)
        if self.bind.fwmark and not self.device.fwmark:
            self.device.apply(DeviceChange(fwmark=self.bind.fwmark), self.now())
        self.selector.register(tun.fd, selectors.EVENT_READ, self._on_tun)
        self.links = self._watch_mtu()
        self.uapi: UapiServer | None = None
        if uapi_listener is not None:
            self.uapi = UapiServer(uapi_listener, uapi_path, self.handle_uapi, self.selector)
        self._deadline: float | None = None
        self._tun_last = 0.0
        self._udp_last = 0.0
        self.loop_drops = 0
        self._loop_logged = 0.0
        self._send_failures = 0
        self._send_failure_logged = 0.0
        self.internal_errors = 0
        self._error_logged = 0.0

    # -- clock -------------------------------------------------------------------------------

    def now(self) -> float:
        """The protocol clock: seconds that keep counting through a suspend (see `suspend_aware_clock`)."""
        return self.clock() * self.time_scale

    # -- sources -----------------------------------------------------------------------------

    def _register_bind(self) -> None:
        for sock in self.bind.sockets():
            self.selector.register(sock, selectors.EVENT_READ, lambda m, s=sock: self._on_udp(s))

    def _unregister_bind(self) -> None:
        for sock in self.bind.sockets():
            with suppress(KeyError, ValueError):
                self.selector.unregister(sock)

    # Latency: the first packet after a quiet spell (longer than `QUIET`) is read alone and handled
    # at once, and the loop goes back to epoll, which is level-triggered: if more is queued the next
    # wake-up comes at once and, being close to this one, reads a whole batch. A sparse packet thus
    # never pays for the read that would only report "nothing more" (EAGAIN, a Python exception:
    # ~2 µs warm, ~45 µs with the caches cold after an idle spell). Under load wake-ups come back
    # to back and every one reads a batch.

    def _on_udp(self, sock: socket.socket) -> None:
        clock = self.clock()
        quiet = clock - self._udp_last > QUIET
        self._udp_last = clock
        if self.path.from_udp(self.bind, sock, 1 if quiet else BATCH, clock * self.time_scale):
            self._flush()

    def _on_tun(self, mask: int) -> None:
        clock = self.clock()
        quiet = clock - self._tun_last > QUIET
        self._tun_last = clock
        try:
            read = self.path.from_tun(self.bind, 1 if quiet else BATCH, clock * self.time_scale)
        except TunGone:
            log.debug("Interface %s was deleted", self.tun.name)
            self.stop("interface deleted")
            return
        if read:
            self._flush()

    def _watch_mtu(self) -> LinkWatch | None:
        """Take the TUN's MTU now and follow its changes (`linkwatch`); None where that cannot be done."""
        try:
            self.device.mtu = self.tun.mtu()
            links = LinkWatch.open(self.tun.index())
        except OSError:
            return None
        if links is not None:
            self.selector.register(links, selectors.EVENT_READ, self._on_link)
        return links

    def _on_link(self, mask: int) -> None:
        assert self.links is not None
        mtu = self.links.mtu()
        if mtu is not None and mtu != self.device.mtu:
            log.debug("MTU of %s is now %d", self.tun.name, mtu)
            self.device.mtu = mtu

    def _internal_error(self, where: str) -> None:
        """Log an unexpected exception (at most once a second) and carry on."""
        self.internal_errors += 1
        now = time.monotonic()
        if now - self._error_logged >= 1.0:
            self._error_logged = now
            log.exception("Internal error while handling a %s (%d so far)", where, self.internal_errors)

    def _count_loop_drop(self, count: int) -> None:
        self.loop_drops += count
        now = time.monotonic()
        if now - self._loop_logged > 1.0:
            self._loop_logged = now
            log.error(
                "Avoiding routing loop: our own UDP datagrams came back through %s (%d dropped so far);"
                " route the peer's endpoint outside the tunnel",
                self.tun.name,
                self.loop_drops,
            )

    def _on_wake(self, mask: int) -> None:
        with suppress(OSError):
            while self._wake_r.recv(512):
                pass

    # -- outputs -----------------------------------------------------------------------------

    def _flush(self) -> None:
        device = self.device
        failed = self.path.send(self.bind)
        if failed and self.events.enabled:
            self._send_failures += failed
            now = time.monotonic()
            if now - self._send_failure_logged >= 1.0:
                self._send_failure_logged = now
                log.debug(
                    "Failed to send %d datagrams: %s",
                    self._send_failures,
                    os.strerror(self.bind.last_send_error),
                )
                self._send_failures = 0
        try:
            self.path.write_tun()
        except TunGone:
            self.stop("interface deleted")
        event = device.next_event()
        while event is not None:
            if self.events.enabled:
                self.events.record(event)
            event = device.next_event()
        self._deadline = device.get_timer()

    # -- UAPI --------------------------------------------------------------------------------

    def handle_uapi(self, request: bytes) -> tuple[str, bool]:
        """Answer one UAPI request (one `get=1` or `set=1` block); True means hang up after replying."""
        try:
            op, lines = uapi.read_request(io.BytesIO(request).readline)
        except EOFError:
            return "", True
        except ConfigurationError as exc:
            log.error("UAPI: %s", exc.message)
            return uapi.format_errno(exc.errno), True
        try:
            if op == "get":
                return uapi.format_get(self.device.snapshot(self.now())), False
            if op == "counters":
                return uapi.format_counters(self.device.snapshot(self.now())), False
            reply = self._set(lines)
            self._flush()
        except Exception:  # a bug must not take the interface down with it
            self._internal_error("UAPI request")
            return uapi.format_errno(errno.EIO), True
        return reply, False

    def _set(self, lines: list[str]) -> str:
        """Apply one ``set``. A refused request changes nothing: the whole request is decoded, and a new
        port or fwmark is taken (which the system may refuse), before the device is changed."""
        try:
            change = uapi.parse_set(lines)
        except ConfigurationError as exc:
            log.error("UAPI: %s", exc.message)
            return uapi.format_errno(exc.errno)
        self._log_change(change)
        old_mark = self.bind.fwmark
        try:
            bind = self._prepare_bind(change)
        except BindError as exc:
            log.error("UAPI: %s", exc)
            return uapi.format_errno(errno.EPERM if exc.errno in (errno.EACCES, errno.EPERM) else exc.errno)
        try:
            self.device.apply(change, self.now())
        except ConfigurationError as exc:
            log.error("UAPI: %s", exc.message)
            if bind is not self.bind:
                bind.close()
            elif bind.fwmark != old_mark:
                with suppress(BindError):
                    bind.set_mark(old_mark)
            return uapi.format_errno(exc.errno)
        if bind is not self.bind:
            self.path.drain(self.bind)  # nothing may still be sent from the sockets closed next
            self._unregister_bind()
            self.bind.close()
            self.bind = bind
            if self.udp_guard is not None:
                self.udp_guard.bound(bind)
            self._register_bind()
            log.debug("UDP bind has been updated: listening on port %d", bind.port)
        self.device.set_listen_port(self.bind.port)
        return uapi.format_errno(0)

    def _prepare_bind(self, change: DeviceChange) -> Bind:
        """The bind `change` asks for: the current one (its fwmark set as asked) or a new one on the new
        port. Raises `BindError`, leaving the current bind as it was."""
        bind = self.bind
        wanted = change.listen_port
        if wanted is not None and wanted != 0 and wanted != bind.port:
            bind = Bind.open(wanted, bind.fwmark, offload=bind.offload)
        if change.fwmark is not None and change.fwmark != bind.fwmark:
            try:
                bind.set_mark(change.fwmark)
            except BindError:
                if bind is not self.bind:
                    bind.close()
                raise
        return bind

    @staticmethod
    def _log_change(change: DeviceChange) -> None:
        if not log.isEnabledFor(10):
            return
        if change.private_key is not None:
            log.debug("UAPI: Updating private key")
        if change.listen_port is not None:
            log.debug("UAPI: Updating listen port")
        if change.fwmark is not None:
            log.debug("UAPI: Updating fwmark")
        if change.replace_peers:
            log.debug("UAPI: Removing all peers")
        for peer in change.peers:
            name = peer_name(peer.public_key)
            if peer.remove:
                log.debug("%s - UAPI: Removing", name)
                continue
            log.debug("%s - UAPI: Updating", name)
            if peer.endpoint is not None:
                log.debug("%s - UAPI: Updating endpoint", name)
            if peer.persistent_keepalive is not None:
                log.debug("%s - UAPI: Updating persistent keepalive interval", name)
            if peer.replace_allowed_ips:
                log.debug("%s - UAPI: Removing all allowedips", name)
            if peer.allowed_ips:
                log.debug("%s - UAPI: Adding %d allowedips", name, len(peer.allowed_ips))

    # -- running -----------------------------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        """Ask the loop to finish; safe from a signal handler or another thread."""
        if not self._stopping:
            self.exit_reason = reason
        self._stopping = True
        with suppress(OSError):
            self._wake_w.send(b"\0")

    def run(self, ready: Callable[[], None] | None = None) -> None:
        """Run until `stop()` or until the interface disappears, then release everything."""
        select = self.selector.select
        scale = self.time_scale
        log.debug("Device started: %s", self.choice.describe())
        if ready is not None:
            ready()
        try:
            self._flush()
            next_summary = time.monotonic() + 1.0
            while not self._stopping:
                deadline = self._deadline
                timeout = None if deadline is None else max(0.0, (deadline - self.now()) / scale)
                if self.events.enabled:
                    timeout = 1.0 if timeout is None else min(timeout, 1.0)
                for key, mask in select(timeout):
                    try:
                        key.data(mask)
                    except Exception:  # a bug must not take the interface down with it
                        self._internal_error("packet batch")
                    if self._stopping:
                        break
                deadline = self._deadline
                if deadline is not None:
                    now = self.now()
                    if now >= deadline:
                        try:
                            self.device.handle_timer(now)
                            self._flush()
                        except Exception:
                            self._internal_error("timer")
                            self._deadline = now + scale  # retry in a second, do not spin
                if self.events.enabled and time.monotonic() >= next_summary:
                    next_summary = time.monotonic() + 1.0
                    self.events.summarise(time.monotonic())
        finally:
            self.close()

    def close(self) -> None:
        """Remove the UAPI socket, close UDP, and close the TUN (which deletes the interface)."""
        if self.uapi is not None:
            self.uapi.close()
            self.uapi = None
        self.path.close()  # the writer thread finishes before the sockets and the TUN are closed
        if self.udp_guard is not None:
            self.udp_guard.close()  # no re-pinning of sockets about to close
            self.udp_guard = None
        self._unregister_bind()
        self.bind.close()
        with suppress(KeyError, ValueError):
            self.selector.unregister(self.tun.fd)
        if self.links is not None:
            with suppress(KeyError, ValueError):
                self.selector.unregister(self.links)
            self.links.close()
            self.links = None
        self.tun.close()
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()
        log.debug("Device closed")
