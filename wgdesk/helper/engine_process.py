"""One engine process per tunnel, and the UAPI client the helper configures it with.

The helper opens the TUN, the UAPI listener (``/var/run/wireguard/IFNAME.sock``) and, for
``wgdesk-engine``, the UDP sockets (bound with ``SO_MARK``), then starts the engine with those fds
(``WG_TUN_FD``, ``WG_UAPI_FD``, ``WGDESK_UDP_FDS``). The engine starts as root and becomes the
unprivileged account itself (``WGDESK_RUN_AS``: no groups, no capabilities, no_new_privs, not
dumpable) before it reads the first packet or UAPI request: an exec as that account would need it to
read the engine, its Python and the libraries — not the case when wgdesk runs from a venv or a
pyenv Python in a private home (0700, or Ubuntu's 0750). ``wireguard-go`` binds its own socket, so it
is run as root.

The helper trusts nothing an engine says: its output is read in lines of at most `MAX_LINE` bytes
(a longer line is cut and the rest skipped, so an engine cannot make the root helper buffer
gigabytes), and a UAPI reply is bounded (`MAX_UAPI_REPLY`) and parsed defensively — a malformed
one is that tunnel's `EngineError`, never an internal error of a request about other tunnels.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

from wgdesk import uapi
from wgdesk.helper.logbook import LogBook
from wgdesk.platforms import PlatformError, backend
from wgdesk.platforms.interface import EndpointInUse, EngineLaunch
from wgdesk.proto.changes import ConfigurationError, PeerCounters

UAPI_TIMEOUT = 10.0
MAX_UAPI_REPLY = 16 << 20
"""Largest UAPI reply read (a `get` of the largest config the protocol accepts is about 2 MiB)."""
T = TypeVar("T")
MAX_LINE = 4096
"""Longest line of engine output read at once; the log keeps its first 2000 characters."""


class EngineError(Exception):
    """The engine could not be started, died, or refused a UAPI request."""


def uapi_path(ifname: str) -> str:
    return backend().uapi.path(ifname)


def uapi_listener(ifname: str) -> socket.socket:
    """Create the engine's UAPI listener (root only) where ``wg`` looks for it."""
    try:
        return backend().uapi.listen(ifname)
    except EndpointInUse as e:
        raise EngineError(str(e)) from e


def uapi_request(
    ifname: str, request: str, timeout: float = UAPI_TIMEOUT, alive: Callable[[], bool] | None = None
) -> list[str]:
    """Send one UAPI request; return the reply's lines without ``errno``. Raises `EngineError`."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    try:
        # a set of thousands of AllowedIPs takes the engine a while to read
        sock = backend().uapi.connect(ifname, timeout)
    except OSError as e:
        raise EngineError(f"UAPI socket of {ifname}: {e.strerror or e}") from e
    try:
        sock.sendall(request.encode())
        sock.settimeout(0.2)  # from here on, look at the engine between reads
        while not buf.endswith(b"\n\n") and buf != b"\n":
            if time.monotonic() > deadline:
                raise EngineError(f"engine for {ifname} did not answer UAPI within {timeout:.0f} s")
            if alive is not None and not alive():
                raise EngineError(f"engine for {ifname} exited")
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_UAPI_REPLY:
                raise EngineError("UAPI reply too large")
    except OSError as e:
        raise EngineError(f"UAPI socket of {ifname}: {e.strerror or e}") from e
    finally:
        sock.close()
    try:
        body, code = uapi.parse_reply(bytes(buf))
    except ConfigurationError as e:
        raise EngineError(f"engine for {ifname} sent a malformed UAPI reply: {e.message}") from None
    if code != 0:
        raise EngineError(f"engine refused the configuration (errno=-{code}: {os.strerror(code)})")
    return body


def uapi_get(ifname: str, timeout: float = UAPI_TIMEOUT) -> dict[str, Any]:
    """`get=1` decoded with `wgdesk.uapi.parse_get`: device fields and ``peers`` (a list of dicts).

    Private and preshared keys are dropped here and never leave this function.
    """
    lines = uapi_request(ifname, "get=1\n\n", timeout)
    try:
        snap = uapi.parse_get([*lines, "errno=0", ""])
    except ConfigurationError as e:
        raise EngineError(f"engine for {ifname}: {e.message}") from e
    peers = []
    for p in snap.peers:
        sec = int(p.last_handshake) if p.last_handshake else 0
        peers.append(
            {
                "public_key": p.public_key.hex(),
                "endpoint": uapi.format_endpoint(p.endpoint) if p.endpoint else None,
                "allowed_ips": [str(n) for n in p.allowed_ips],
                "rx_bytes": p.rx_bytes,
                "tx_bytes": p.tx_bytes,
                "last_handshake_time_sec": sec,
                "last_handshake_time_nsec": 0,
                "persistent_keepalive_interval": p.persistent_keepalive,
            }
        )
    return {"listen_port": snap.listen_port, "fwmark": snap.fwmark, "peers": peers}


def uapi_counters(ifname: str, timeout: float = UAPI_TIMEOUT) -> dict[str, PeerCounters] | None:
    """The engine's `PeerCounters` by public key (hex), from `wgdesk.uapi.COUNTERS_REQUEST`; None when
    the engine does not answer that request (one that predates it, or one that died meanwhile: the
    ``get=1`` beside it says which)."""
    try:
        lines = uapi_request(ifname, uapi.COUNTERS_REQUEST, timeout)
        _, peers = uapi.parse_counters(lines)
    except (EngineError, ConfigurationError):
        return None
    return {key.hex(): counters for key, counters in peers.items()}


@dataclass
class EngineProcess:
    """A running engine and the thread that copies its output into the log book."""

    ifname: str
    proc: subprocess.Popen[bytes]
    start_time: int | None
    account: str
    reader: threading.Thread | None = None
    exited: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.reader is not None:
            self.reader.join(2.0)


def start_engine(
    executable: str,
    ifname: str,
    account: str,
    tun_fd: int | None,
    uapi_fd: int | None,
    udp_fds: Sequence[int | None] | None,
    logbook: LogBook,
    tunnel: str,
    on_exit: Callable[[EngineProcess], None],
) -> EngineProcess:
    """Start ``executable -f IFNAME`` with the fds (none: it makes its own device and UAPI
    endpoint, `TunnelDevices.made_by_engine`); returns once the process exists."""
    if not os.path.isabs(executable) or not os.path.exists(executable):
        raise EngineError(f"engine {executable} does not exist (set engine_path in helper.toml)")
    if not os.access(executable, os.R_OK | os.X_OK):
        raise EngineError(
            f"engine {executable} cannot be run by root (not an executable file, or on a file system that "
            "does not let root in, e.g. NFS with root_squash): set engine_path in helper.toml, or install "
            "wgdesk system-wide (make deb)"
        )
    launch = EngineLaunch(
        executable,
        ifname,
        account,
        tun_fd,
        uapi_fd,
        None if udp_fds is None else tuple(udp_fds),
        {"WG_PROCESS_FOREGROUND": "1", "LOG_LEVEL": "verbose"},
    )
    platform = backend()
    try:
        proc = platform.engine.start(launch)
    except KeyError as e:
        raise EngineError(f"engine account {account!r} does not exist; set engine_user in helper.toml") from e
    except (OSError, PlatformError) as e:
        raise EngineError(f"cannot start engine {executable}: {getattr(e, 'strerror', None) or e}") from e
    engine = EngineProcess(ifname, proc, platform.identity.start_time(proc.pid), account)

    def pump() -> None:
        assert proc.stdout is not None
        for line in bounded_lines(proc.stdout):
            logbook.add("error" if line.startswith("ERROR") else "info", "engine", tunnel, line)
        proc.wait()
        engine.exited.set()
        on_exit(engine)

    engine.reader = threading.Thread(target=pump, name=f"engine-{ifname}", daemon=True)
    engine.reader.start()
    return engine


ENGINE_READY_TIMEOUT = 20.0
"""How long an engine that makes its own device and UAPI endpoint gets to make them."""


def await_engine(
    engine: EngineProcess,
    what: str,
    probe: Callable[[], T | None],
    timeout: float = ENGINE_READY_TIMEOUT,
    poll: float = 0.05,
) -> T:
    """Poll ``probe`` until it returns something; `EngineError` when the engine exits first (its
    status) or ``what`` is not there within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if not engine.alive():
            status = engine.proc.returncode
            raise EngineError(f"the engine exited with status {status} before {what} appeared")
        if time.monotonic() > deadline:
            raise EngineError(f"{what} did not appear within {timeout:.0f} s")
        time.sleep(poll)


def bounded_lines(stream: Any, limit: int = MAX_LINE) -> Iterator[str]:
    """Lines of ``stream`` (binary), each cut to ``limit`` bytes and then 2000 characters; the rest
    of an overlong line is read and dropped, never buffered."""
    skipping = False
    while True:
        raw = stream.readline(limit)
        if not raw:
            return
        complete = raw.endswith(b"\n")
        if not skipping:
            yield raw.decode(errors="replace").rstrip()[:2000]
        skipping = not complete


def kill_recorded(pid: int, start_time: int | None) -> None:
    """Kill a process recorded in a journal, only if it is still the same process."""
    backend().identity.terminate(pid, start_time)
