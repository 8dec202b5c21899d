"""The cross-platform userspace configuration protocol (UAPI), as text; no I/O.

Requests are ``get=1`` or ``set=1`` followed by ``key=value`` lines and an empty line; replies are
``key=value`` lines, then ``errno=N`` and an empty line (https://www.wireguard.com/xplatform/).
This module matches wireguard-go (device/uapi.go) and wireguard-tools (ipc-uapi.h):

* every malformed value, unknown key or key in the wrong section is ``EINVAL``; a line without
  ``=`` is ``EPROTO``; keys are 64 hex digits; numbers are unsigned decimal of the field's width;
  flags (``replace_peers``, ``remove``, ``update_only``, ``replace_allowed_ips``) accept only
  ``true``; ``protocol_version`` accepts only ``1``;
* the reply's errno is negative (``errno=-22``), which is what ``wg`` expects;
* ``get`` lists ``private_key`` (if set), ``listen_port`` and ``fwmark`` (if nonzero), then per
  peer ``public_key``, ``preshared_key`` (zeros when none), ``protocol_version``, ``endpoint`` (if
  known), ``last_handshake_time_sec``/``_nsec`` (0/0 when none), ``tx_bytes``, ``rx_bytes``,
  ``persistent_keepalive_interval`` and one ``allowed_ip`` per prefix.

Unlike wireguard-go, which applies each line as it reads it, a whole ``set`` is decoded before
anything is applied, so a request with an error changes nothing.
"""

from __future__ import annotations

import errno
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Final

from wgdesk.proto.changes import (
    COUNTER_FIELDS,
    NO_KEY,
    ConfigurationError,
    DeviceChange,
    DeviceSnapshot,
    Endpoint,
    Network,
    PeerChange,
    PeerCounters,
    PeerSnapshot,
)
from wgdesk.proto.keys import public_key

__all__ = [
    "COUNTERS_REQUEST",
    "MAX_LINE_BYTES",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_LINES",
    "RequestError",
    "format_counters",
    "format_endpoint",
    "format_errno",
    "format_get",
    "format_set",
    "parse_allowed_ip",
    "parse_counters",
    "parse_endpoint",
    "parse_get",
    "parse_reply",
    "parse_set",
    "read_request",
]

MAX_LINE_BYTES: Final = 1024
"""Longest accepted request line, newline included (real lines are under 120 bytes)."""
MAX_REQUEST_LINES: Final = 262_144
MAX_REQUEST_BYTES: Final = 32 * 1024 * 1024

_HEX_KEY: Final = re.compile(r"[0-9a-fA-F]{64}")
_DIGITS: Final = re.compile(r"[0-9]{1,20}")


class RequestError(ConfigurationError):
    """The request itself is malformed (unknown operation, overlong, truncated).

    The server should reply `format_errno(e.errno)` and close the connection.
    """


_invalid: Final = ConfigurationError.invalid


def _show(value: str) -> str:
    return repr(value if len(value) <= 64 else value[:64] + "…")


def _key_values(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """The ``key=value`` pairs up to the first empty line; a line without ``=`` is EPROTO."""
    for raw in lines:
        line = raw[:-1] if raw.endswith("\n") else raw
        if not line:
            return
        key, eq, value = line.partition("=")
        if not eq:
            raise ConfigurationError(errno.EPROTO, f"failed to parse line {_show(line)}: no '='")
        yield key, value


# --- values ------------------------------------------------------------------------------------------


def _parse_key(key: str, value: str) -> bytes:
    # The value is never echoed: it may be a secret.
    if not _HEX_KEY.fullmatch(value):
        raise _invalid(f"{key} must be 64 hexadecimal digits")
    return bytes.fromhex(value)


def _parse_uint(key: str, value: str, bits: int) -> int:
    if _DIGITS.fullmatch(value):
        n = int(value)
        if n < 1 << bits:
            return n
    raise _invalid(f"{key}={_show(value)}: expected an integer from 0 to {(1 << bits) - 1}")


def _parse_true(key: str, value: str) -> bool:
    if value != "true":
        raise _invalid(f"{key}={_show(value)}: the only accepted value is 'true'")
    return True


def _address_text(addr: IPv4Address | IPv6Address) -> str:
    """Canonical text, with IPv4-mapped IPv6 in dotted form as Go and inet_ntop print it."""
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        scope = f"%{addr.scope_id}" if addr.scope_id else ""
        return f"::ffff:{addr.ipv4_mapped}{scope}"
    return str(addr)


def parse_endpoint(value: str) -> Endpoint:
    """Parse ``a.b.c.d:port`` or ``[v6addr%scope]:port`` into (address text, port).

    Raises ConfigurationError(EINVAL). Host names are not accepted (``wg`` resolves them first).
    """
    try:
        if value.startswith("["):
            close = value.find("]")
            if close < 0 or value[close + 1 : close + 2] != ":":
                raise ValueError("expected [address]:port")
            addr: IPv4Address | IPv6Address = IPv6Address(value[1:close])
            port_text = value[close + 2 :]
        else:
            host, colon, port_text = value.rpartition(":")
            if not colon:
                raise ValueError("expected address:port")
            addr = IPv4Address(host)  # IPv6 needs brackets
    except ValueError as e:
        raise _invalid(f"endpoint={_show(value)}: {e}") from None
    if not _DIGITS.fullmatch(port_text) or int(port_text) > 0xFFFF:
        raise _invalid(f"endpoint={_show(value)}: the port must be an integer from 0 to 65535")
    return _address_text(addr), int(port_text)


def format_endpoint(endpoint: Endpoint) -> str:
    """``a.b.c.d:port`` or ``[v6addr]:port``."""
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_allowed_ip(value: str) -> Network:
    """Parse ``address/cidr``; host bits are masked off. Raises ConfigurationError(EINVAL)."""
    host, slash, bits = value.partition("/")
    try:
        if not slash or not _DIGITS.fullmatch(bits) or "%" in host:
            raise ValueError("expected address/prefix-length")
        addr = ip_address(host)
        if int(bits) > addr.max_prefixlen:
            raise ValueError(f"prefix length above {addr.max_prefixlen}")
        return ip_network((addr, int(bits)), strict=False)
    except ValueError as e:
        raise _invalid(f"allowed_ip={_show(value)}: {e}") from None


def _network_text(net: Network) -> str:
    return f"{_address_text(net.network_address)}/{net.prefixlen}"


# --- set ---------------------------------------------------------------------------------------------


@dataclass
class _PeerBuilder:
    public_key: bytes
    remove: bool = False
    update_only: bool = False
    preshared_key: bytes | None = None
    endpoint: Endpoint | None = None
    persistent_keepalive: int | None = None
    replace_allowed_ips: bool = False
    allowed_ips: list[Network] = field(default_factory=list)
    protocol_version: int | None = None

    def build(self) -> PeerChange:
        return PeerChange(
            public_key=self.public_key, remove=self.remove, update_only=self.update_only,
            preshared_key=self.preshared_key, endpoint=self.endpoint,
            persistent_keepalive=self.persistent_keepalive, replace_allowed_ips=self.replace_allowed_ips,
            allowed_ips=tuple(self.allowed_ips), protocol_version=self.protocol_version,
        )


def _peer_line(peer: _PeerBuilder, key: str, value: str) -> None:
    if key == "allowed_ip":
        peer.allowed_ips.append(parse_allowed_ip(value))
    elif key == "endpoint":
        peer.endpoint = parse_endpoint(value)
    elif key == "preshared_key":
        peer.preshared_key = _parse_key(key, value)
    elif key == "persistent_keepalive_interval":
        peer.persistent_keepalive = _parse_uint(key, value, 16)
    elif key == "replace_allowed_ips":
        # Only the prefixes that follow survive, as when applied line by line.
        peer.replace_allowed_ips = _parse_true(key, value)
        peer.allowed_ips.clear()
    elif key == "remove":
        peer.remove = _parse_true(key, value)
    elif key == "update_only":
        peer.update_only = _parse_true(key, value)
    elif key == "protocol_version":
        if value != "1":
            raise _invalid(f"protocol_version={_show(value)}: only protocol version 1 exists")
        peer.protocol_version = 1
    else:
        raise _invalid(f"invalid UAPI peer key: {_show(key)}")


def parse_set(lines: Iterable[str]) -> DeviceChange:
    """Decode the body of a ``set=1`` request (the lines after it, up to an empty line).

    A trailing newline on each line is allowed. Raises ConfigurationError with the errno
    wireguard-go would report: EPROTO for a line without ``=``, EINVAL for anything else.
    The peer blocks are returned in order; a key given twice in one block keeps its last value.
    """
    private_key: bytes | None = None
    listen_port: int | None = None
    fwmark: int | None = None
    replace_peers = False
    peers: list[PeerChange] = []
    peer: _PeerBuilder | None = None
    for key, value in _key_values(lines):
        if key == "public_key":
            if peer is not None:
                peers.append(peer.build())
            peer = _PeerBuilder(_parse_key(key, value))
        elif peer is not None:
            _peer_line(peer, key, value)
        elif key == "private_key":
            private_key = _parse_key(key, value)
        elif key == "listen_port":
            listen_port = _parse_uint(key, value, 16)
        elif key == "fwmark":
            fwmark = _parse_uint(key, value, 32)
        elif key == "replace_peers":
            replace_peers = _parse_true(key, value)
        else:
            raise _invalid(f"invalid UAPI device key: {_show(key)}")
    if peer is not None:
        peers.append(peer.build())
    return DeviceChange(private_key=private_key, listen_port=listen_port, fwmark=fwmark,
                        replace_peers=replace_peers, peers=tuple(peers))


def format_set(change: DeviceChange) -> str:
    """Encode a change as a complete ``set=1`` request (ends with the empty line), as ``wg`` does."""
    out = ["set=1"]
    if change.private_key is not None:
        out.append(f"private_key={change.private_key.hex()}")
    if change.listen_port is not None:
        out.append(f"listen_port={change.listen_port}")
    if change.fwmark is not None:
        out.append(f"fwmark={change.fwmark}")
    if change.replace_peers:
        out.append("replace_peers=true")
    for p in change.peers:
        out.append(f"public_key={p.public_key.hex()}")
        if p.remove:
            out.append("remove=true")
        if p.update_only:
            out.append("update_only=true")
        if p.preshared_key is not None:
            out.append(f"preshared_key={p.preshared_key.hex()}")
        if p.endpoint is not None:
            out.append(f"endpoint={format_endpoint(p.endpoint)}")
        if p.persistent_keepalive is not None:
            out.append(f"persistent_keepalive_interval={p.persistent_keepalive}")
        if p.replace_allowed_ips:
            out.append("replace_allowed_ips=true")
        out.extend(f"allowed_ip={_network_text(n)}" for n in p.allowed_ips)
        if p.protocol_version is not None:
            out.append(f"protocol_version={p.protocol_version}")
    return "\n".join(out) + "\n\n"


# --- get ---------------------------------------------------------------------------------------------


def _handshake_time(t: float | None) -> tuple[int, int]:
    if t is None or not math.isfinite(t) or t <= 0:
        return 0, 0
    sec = math.floor(t)
    nsec = min(999_999_999, max(0, round((t - sec) * 1e9)))
    return sec, nsec


def format_get(snapshot: DeviceSnapshot) -> str:
    """The whole reply to ``get=1``: wireguard-go's keys and order, then ``errno=0`` and a blank line."""
    out: list[str] = []
    if snapshot.private_key is not None and snapshot.private_key != NO_KEY:
        out.append(f"private_key={snapshot.private_key.hex()}")
    if snapshot.listen_port:
        out.append(f"listen_port={snapshot.listen_port}")
    if snapshot.fwmark:
        out.append(f"fwmark={snapshot.fwmark}")
    for p in snapshot.peers:
        sec, nsec = _handshake_time(p.last_handshake)
        out.append(f"public_key={p.public_key.hex()}")
        out.append(f"preshared_key={(p.preshared_key or NO_KEY).hex()}")
        out.append(f"protocol_version={p.protocol_version}")
        if p.endpoint is not None:
            out.append(f"endpoint={format_endpoint(p.endpoint)}")
        out.append(f"last_handshake_time_sec={sec}")
        out.append(f"last_handshake_time_nsec={nsec}")
        out.append(f"tx_bytes={p.tx_bytes}")
        out.append(f"rx_bytes={p.rx_bytes}")
        out.append(f"persistent_keepalive_interval={p.persistent_keepalive}")
        out.extend(f"allowed_ip={_network_text(n)}" for n in p.allowed_ips)
    out.append("errno=0")
    return "\n".join(out) + "\n\n"


@dataclass
class _PeerState:
    public_key: bytes
    preshared_key: bytes | None = None
    endpoint: Endpoint | None = None
    persistent_keepalive: int = 0
    allowed_ips: list[Network] = field(default_factory=list)
    sec: int = 0
    nsec: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    protocol_version: int = 1

    def build(self) -> PeerSnapshot:
        last = self.sec + self.nsec / 1e9 if (self.sec or self.nsec) else None
        return PeerSnapshot(
            public_key=self.public_key, preshared_key=self.preshared_key, endpoint=self.endpoint,
            persistent_keepalive=self.persistent_keepalive, allowed_ips=tuple(self.allowed_ips),
            last_handshake=last, rx_bytes=self.rx_bytes, tx_bytes=self.tx_bytes,
            protocol_version=self.protocol_version,
        )


def parse_get(lines: Iterable[str]) -> DeviceSnapshot:
    """Decode a ``get=1`` reply (as a client such as the helper reads it), up to its empty line.

    Unknown keys are ignored, as ``wg`` ignores them. A nonzero ``errno`` raises
    ConfigurationError with that (positive) code; a malformed or unterminated reply raises
    ConfigurationError(EPROTO).
    """
    private_key: bytes | None = None
    listen_port = fwmark = 0
    peers: list[PeerSnapshot] = []
    peer: _PeerState | None = None
    code: int | None = None
    try:
        for key, value in _key_values(lines):
            if key == "errno":
                code = int(value)
            elif key == "public_key":
                if peer is not None:
                    peers.append(peer.build())
                peer = _PeerState(_parse_key(key, value))
            elif peer is None:
                if key == "private_key":
                    # all zeros is "no key", as for preshared_key (and what format_get leaves out)
                    private_key = _parse_key(key, value)
                    private_key = None if private_key == NO_KEY else private_key
                elif key == "listen_port":
                    listen_port = _parse_uint(key, value, 16)
                elif key == "fwmark":
                    fwmark = _parse_uint(key, value, 32)
            elif key == "preshared_key":
                psk = _parse_key(key, value)
                peer.preshared_key = None if psk == NO_KEY else psk
            elif key == "endpoint":
                peer.endpoint = parse_endpoint(value)
            elif key == "persistent_keepalive_interval":
                peer.persistent_keepalive = _parse_uint(key, value, 16)
            elif key == "allowed_ip":
                peer.allowed_ips.append(parse_allowed_ip(value))
            elif key == "last_handshake_time_sec":
                peer.sec = _parse_uint(key, value, 63)
            elif key == "last_handshake_time_nsec":
                peer.nsec = _parse_uint(key, value, 63)
            elif key == "rx_bytes":
                peer.rx_bytes = _parse_uint(key, value, 64)
            elif key == "tx_bytes":
                peer.tx_bytes = _parse_uint(key, value, 64)
            elif key == "protocol_version":
                peer.protocol_version = _parse_uint(key, value, 32)
    except (ValueError, ConfigurationError) as e:
        raise ConfigurationError(errno.EPROTO, f"malformed UAPI get reply: {e}") from None
    if code is None:
        raise ConfigurationError(errno.EPROTO, "UAPI get reply without errno")
    if code != 0:
        raise ConfigurationError(abs(code), f"UAPI get failed with errno {abs(code)}")
    if peer is not None:
        peers.append(peer.build())
    public = public_key(private_key) if private_key is not None else None
    return DeviceSnapshot(private_key=private_key, public_key=public, listen_port=listen_port,
                          fwmark=fwmark, peers=tuple(peers))


# --- counters (a wgdesk operation) --------------------------------------------------------------------

COUNTERS_REQUEST: Final = "wgdesk_counters=1\n\n"
"""Asks a wgdesk engine for `PeerCounters`. A separate operation rather than extra keys in ``get=1``:
``wg`` and other UAPI clients never send it, so what they parse stays exactly wireguard-go's reply
(``wg`` would ignore unknown keys today, but nothing promises that), and an engine that predates it
refuses it like any unknown operation (EPROTO), which the helper reads as "no counters"."""

_DROP_PREFIX: Final = "drop_"


def format_counters(snapshot: DeviceSnapshot) -> str:
    """The reply to `COUNTERS_REQUEST`: device-wide ``drop_REASON=N``, then per peer ``public_key``
    and its `PeerCounters` (``initiations_sent=N``…, ``drop_REASON=N``), ``errno=0`` and a blank line."""
    out = [f"{_DROP_PREFIX}{reason}={n}" for reason, n in sorted(snapshot.dropped.items()) if n]
    for p in snapshot.peers:
        out.append(f"public_key={p.public_key.hex()}")
        out.extend(f"{name}={getattr(p.counters, name)}" for name in COUNTER_FIELDS)
        out.extend(f"{_DROP_PREFIX}{reason}={n}" for reason, n in sorted(p.counters.dropped.items()) if n)
    out.append("errno=0")
    return "\n".join(out) + "\n\n"


def parse_counters(lines: Iterable[str]) -> tuple[dict[str, int], dict[bytes, PeerCounters]]:
    """Decode a `COUNTERS_REQUEST` reply's lines (without ``errno``): the device-wide drops by reason
    and `PeerCounters` by public key. Unknown keys are skipped (a newer engine may count more); a
    malformed value raises ConfigurationError(EPROTO)."""
    device: dict[str, int] = {}
    peers: dict[bytes, tuple[dict[str, int], dict[str, int]]] = {}
    current: tuple[dict[str, int], dict[str, int]] | None = None
    try:
        for key, value in _key_values(lines):
            if key == "public_key":
                current = peers.setdefault(_parse_key(key, value), ({}, {}))
            elif key.startswith(_DROP_PREFIX) and _DROP_REASON.fullmatch(key[len(_DROP_PREFIX) :]):
                drops = device if current is None else current[1]
                drops[key[len(_DROP_PREFIX) :]] = _parse_uint(key, value, 64)
            elif current is not None and key in COUNTER_FIELDS:
                current[0][key] = _parse_uint(key, value, 64)
    except ConfigurationError as e:
        raise ConfigurationError(errno.EPROTO, f"malformed UAPI counters reply: {e}") from None
    return device, {k: PeerCounters.of(*v) for k, v in peers.items()}


_DROP_REASON: Final = re.compile(r"[a-z0-9_]{1,40}")


# --- framing -----------------------------------------------------------------------------------------


def format_errno(code: int) -> str:
    """The status that ends a reply: ``errno=0`` or wireguard-go's negative errno, then a blank line."""
    return f"errno={-abs(code)}\n\n"


_ERRNO: Final = re.compile(r"errno=(-?[0-9]{1,10})")


def parse_reply(data: bytes) -> tuple[list[str], int]:
    """Split a whole reply, as a client reads it, into its ``key=value`` lines and its errno (0 or a
    positive code; the sign ``wg`` expects is dropped).

    Raises ConfigurationError(EPROTO) for a reply without an ``errno`` line or with a malformed one: an
    engine is not trusted to send well-formed text.
    """
    code: int | None = None
    body: list[str] = []
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith("errno="):
            match = _ERRNO.fullmatch(line)
            if match is None or abs(int(match.group(1))) > 0x7FFFFFFF:
                raise ConfigurationError(errno.EPROTO, f"malformed UAPI reply status {_show(line)}")
            code = abs(int(match.group(1)))
        elif line:
            body.append(line)
    if code is None:
        raise ConfigurationError(errno.EPROTO, "UAPI reply without errno")
    return body, code


def read_request(
    readline: Callable[[int], bytes],
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_lines: int = MAX_REQUEST_LINES,
    max_bytes: int = MAX_REQUEST_BYTES,
) -> tuple[str, list[str]]:
    """Read one request; return ("get", []), ("counters", []) for `COUNTERS_REQUEST`, or ("set", body
    lines without newlines).

    `readline(limit)` returns one line of at most `limit` bytes, including its newline, or b""
    at end of stream (``io.BufferedReader.readline`` does). Memory is bounded by `max_bytes`.
    Raises EOFError when the stream ends before a request starts (the client is done), and
    RequestError for an unknown operation (EPROTO), an overlong line or request (EMSGSIZE), a
    stream that ends inside a request (EPROTO), or ``get=1`` not followed by an empty line (EINVAL).
    """

    def line() -> bytes:
        data = readline(max_line_bytes)
        if len(data) > max_line_bytes:
            raise RequestError(errno.EMSGSIZE, f"UAPI line longer than {max_line_bytes} bytes")
        if data and not data.endswith(b"\n"):
            if len(data) >= max_line_bytes:
                raise RequestError(errno.EMSGSIZE, f"UAPI line longer than {max_line_bytes} bytes")
            raise RequestError(errno.EPROTO, "UAPI request ended inside a line")
        return data

    op = line()
    if not op:
        raise EOFError("UAPI client closed the connection")
    if op in (b"get=1\n", COUNTERS_REQUEST[:-1].encode()):
        nxt = line()
        if not nxt:
            raise RequestError(errno.EPROTO, "UAPI get without the empty line that ends it")
        if nxt != b"\n":
            raise RequestError(errno.EINVAL, "trailing characters in UAPI get")
        return ("get" if op == b"get=1\n" else "counters"), []
    if op != b"set=1\n":
        raise RequestError(errno.EPROTO, f"invalid UAPI operation: {_show(op.decode('ascii', 'replace'))}")
    body: list[str] = []
    total = len(op)
    while True:
        data = line()
        if not data:
            raise RequestError(errno.EPROTO, "UAPI set=1 ended without an empty line")
        if data == b"\n":
            return "set", body
        total += len(data)
        if len(body) >= max_lines or total > max_bytes:
            raise RequestError(errno.EMSGSIZE, "UAPI set request too large")
        body.append(data[:-1].decode("utf-8", "replace"))
