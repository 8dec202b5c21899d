"""UAPI requests, as the engine reads them from its socket (``wg``, ``wg-quick``, the helper): the input is
the byte stream a client writes.

A real `Engine` (real `UapiServer` framing, `handle_uapi`, `uapi.read_request`/`parse_set`, a real
`proto.Device` and a real UDP `Bind`) serves one connection per input; its TUN is one end of a socket pair.
A ``set`` may bind any port and a peer with an endpoint may make the device send, so the target runs in a
network namespace of its own (the worker process unshares one; it refuses to run without): nothing it
does reaches a real network. Port 51820 is taken in that namespace, so binding it fails (EADDRINUSE). The
device starts empty for each input.

Invariants:
* every reply is ``key=value`` lines ending in ``errno=N`` and an empty line; N is 0 or the negative errno
  of a refusal (EINVAL, EPROTO, EMSGSIZE, EADDRINUSE, EPERM, EACCES), never EIO (an internal error) and the
  engine counts no internal error;
* a ``get`` reply decodes (`parse_get`) and re-encodes to the same text;
* a refused ``set`` changes nothing (the engine decodes a whole request before it applies it);
* every ``set`` that decodes round-trips through `format_set`;
* the connection ends when the client's stream does, or right after a refused request.
"""

from __future__ import annotations

import ctypes
import errno
import io
import logging
import os
import socket
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tests.fuzz.targets import check
from tests.proto.pair import SeededRandom
from wgdesk import uapi
from wgdesk.engine.bind import Bind
from wgdesk.engine.loop import Engine
from wgdesk.engine.uapi_server import socket_path
from wgdesk.platforms.linux.tun import LinuxTun
from wgdesk.proto.changes import ConfigurationError, DeviceSnapshot
from wgdesk.proto.device import Device

MAX_LEN = 8192
IFNAME = "fuzz0"
TAKEN_PORT = 51820
CLONE_NEWNET = 0x40000000
REFUSALS = frozenset(
    {errno.EINVAL, errno.EPROTO, errno.EMSGSIZE, errno.EADDRINUSE, errno.EPERM, errno.EACCES}
)
MAX_ROUNDS = 10_000


def private_network_namespace() -> None:
    """Move this process into a new, empty network namespace (loopback down, no routes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise RuntimeError(
            f"the uapi_request target needs a network namespace of its own (unshare: {os.strerror(code)}); "
            "run it as root"
        )


def comparable(snapshot: DeviceSnapshot) -> DeviceSnapshot:
    return replace(snapshot, dropped={})


class Harness:
    def __init__(self) -> None:
        private_network_namespace()
        logging.disable(logging.CRITICAL)
        self.directory = Path(tempfile.mkdtemp(prefix="wgdesk-fuzz-engine-"))
        self.blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.blocker.bind(("0.0.0.0", TAKEN_PORT))
        self.tun_peer, tun_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.path = socket_path(IFNAME, self.directory)
        listener.bind(str(self.path))
        listener.listen(4)
        self.engine = Engine(LinuxTun(tun_end.detach(), IFNAME), listener, self.path, bind=Bind.open(0))
        assert self.engine.uapi is not None
        self.server = self.engine.uapi
        self.real_handler = self.server.handler
        self.server.handler = self.handler
        self.refused_unchanged = True

    def handler(self, request: bytes) -> tuple[str, bool]:
        """The engine's own handler, with the per-request invariants around it."""
        before = comparable(self.engine.device.snapshot(self.engine.now()))
        reply, hang_up = self.real_handler(request)
        if not reply:
            return reply, hang_up
        check(reply.endswith("\n\n"), f"reply {reply[-40:]!r} does not end with an empty line")
        lines = reply[:-2].split("\n")
        status = lines[-1]
        check(status.startswith("errno="), f"reply ends with {status!r}")
        code = -int(status[len("errno=") :])
        check(code == 0 or code in REFUSALS, f"errno={-code} ({os.strerror(code)}) for {request[:200]!r}")
        check(code == 0 or len(lines) == 1, f"a refusal with a body: {reply[:200]!r}")
        if code == 0 and request.startswith(b"get=1\n"):
            snapshot = uapi.parse_get([*lines, ""])
            check(uapi.format_get(snapshot) == reply, "a get reply does not re-encode to the same text")
            return reply, hang_up
        if code == 0 and request.startswith(uapi.COUNTERS_REQUEST[:-1].encode()):
            _, peers = uapi.parse_counters(lines[:-1])
            check(set(peers) == set(self.engine.device.peers), "the counters reply does not name every peer")
            return reply, hang_up
        try:
            _, body = uapi.read_request(io.BytesIO(request).readline)
            change = uapi.parse_set(body)
        except (ConfigurationError, EOFError):
            change = None
        if change is not None:
            again = uapi.parse_set(uapi.format_set(change).split("\n")[1:])
            check(again == change, f"set does not round-trip: {change}")
        if code != 0:
            after = comparable(self.engine.device.snapshot(self.engine.now()))
            check(after == before, f"a refused set (errno={-code}) changed the device: {request[:300]!r}")
        return reply, hang_up

    def one_input(self, data: bytes) -> None:
        engine = self.engine
        engine.device = Device(SeededRandom(len(data)), lambda: 1_700_000_000.0)
        engine.device.set_listen_port(engine.bind.port)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            client.connect(str(self.path))
            self.server._accept(0)
            check(len(self.server.connections) == 1, f"{len(self.server.connections)} connections")
            client.sendall(data)
            client.shutdown(socket.SHUT_WR)
            client.setblocking(False)
            replies = bytearray()
            for _ in range(MAX_ROUNDS):
                for key, mask in engine.selector.select(timeout=0):
                    key.data(mask)
                try:
                    while chunk := client.recv(1 << 16):
                        replies += chunk
                except BlockingIOError:
                    pass
                if not self.server.connections:
                    break
            else:
                raise AssertionError("the engine kept the connection open after the client's stream ended")
        finally:
            client.close()
        check(replies == b"" or replies.endswith(b"\n\n"), f"replies end with {bytes(replies[-40:])!r}")
        check(engine.internal_errors == 0, "the engine counted an internal error")


def setup() -> Callable[[bytes], None]:
    return Harness().one_input
