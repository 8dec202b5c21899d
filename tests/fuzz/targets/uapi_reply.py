"""UAPI replies, as the root helper reads them from an engine it must not trust (a compromised engine runs
as another account): the input is what an engine answers to ``get=1``.

A stand-in engine (a thread on a UNIX socket in a scratch ``UAPI_DIRECTORY``) sends the input and hangs up;
the helper's real client, `engine_process.uapi_get` (framing in `uapi_request`, decoding in
`uapi.parse_get`), reads it. The same bytes also go straight to `uapi.parse_get`.

Invariants:
* `uapi_get` raises only `EngineError`, `parse_get` only `ConfigurationError`;
* what `uapi_get` returns is well-typed (ports, counters and intervals in range, keys 64 hex digits,
  allowed IPs that parse as networks) and never carries a private or preshared key;
* a reply that decodes round-trips: ``parse_get(format_get(snapshot)) == snapshot``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tests.fuzz.targets import check
from wgdesk import uapi
from wgdesk.helper import engine_process
from wgdesk.helper.engine_process import EngineError
from wgdesk.platforms.unix import uapi as unix_uapi
from wgdesk.proto.changes import ConfigurationError

MAX_LEN = 8192
IFNAME = "fuzz0"
_HEX_KEY = re.compile(r"[0-9a-f]{64}")
_PUBLIC_LINE = re.compile(rb"^public_key=([0-9a-fA-F]{64})$", re.MULTILINE)
_SECRET_LINE = re.compile(rb"^(?:private_key|preshared_key)=([0-9a-fA-F]{64})$", re.MULTILINE)


class StandInEngine(threading.Thread):
    """Answers each connection with `reply` after reading the request, then hangs up."""

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True, name="stand-in-engine")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(directory / f"{IFNAME}.sock"))
        self.listener.listen(4)
        self.reply = b""

    def run(self) -> None:
        while True:
            conn, _ = self.listener.accept()
            with conn:
                request = b""
                while not request.endswith(b"\n\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                with contextlib.suppress(OSError):
                    conn.sendall(self.reply)


def check_result(result: dict[str, object], data: bytes) -> None:
    check(set(result) == {"listen_port", "fwmark", "peers"}, f"uapi_get returned {sorted(result)}")
    check(type(result["listen_port"]) is int and 0 <= result["listen_port"] <= 0xFFFF, "listen_port")  # type: ignore[operator]
    check(type(result["fwmark"]) is int and 0 <= result["fwmark"] < 2**32, "fwmark")  # type: ignore[operator]
    peers = result["peers"]
    check(isinstance(peers, list), "peers is not a list")
    for peer in peers:  # type: ignore[attr-defined]
        check(not ({"private_key", "preshared_key"} & set(peer)), "a secret field left uapi_get")
        check(_HEX_KEY.fullmatch(peer["public_key"]) is not None, f"public key {peer['public_key']!r}")
        for key in ("rx_bytes", "tx_bytes", "last_handshake_time_sec", "persistent_keepalive_interval"):
            check(type(peer[key]) is int and peer[key] >= 0, f"{key}={peer[key]!r}")
        for net in peer["allowed_ips"]:
            ipaddress.ip_network(net)
        if peer["endpoint"] is not None:
            uapi.parse_endpoint(peer["endpoint"])
    text = repr(result)
    public = {key.lower() for key in _PUBLIC_LINE.findall(data)}
    for secret in _SECRET_LINE.findall(data):
        if secret.strip(b"0") and secret.lower() not in public:  # a "secret" equal to a public key is shown
            check(secret.decode().lower() not in text, "a private or preshared key left uapi_get")


def one_input(engine: StandInEngine, data: bytes) -> None:
    engine.reply = data
    try:
        result = engine_process.uapi_get(IFNAME, timeout=5.0)
    except EngineError:
        pass
    else:
        check_result(result, data)
    lines = data.decode("utf-8", "replace").split("\n")
    try:
        snapshot = uapi.parse_get(lines)
    except ConfigurationError:
        return
    again = uapi.parse_get(uapi.format_get(snapshot).split("\n"))
    check(again == replace(snapshot, dropped=again.dropped), f"get reply does not round-trip: {snapshot}")


def setup() -> Callable[[bytes], None]:
    directory = Path(tempfile.mkdtemp(prefix="wgdesk-fuzz-uapi-"))
    unix_uapi.SOCKET_DIRECTORY = directory
    engine = StandInEngine(directory)
    engine.start()
    return lambda data: one_input(engine, data)
