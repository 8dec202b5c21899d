"""The tunnel model: what a wg-quick `.conf` file says, as typed, comparable values.

A `Config` holds exactly the information that `wg` and `wg-quick` act on. Comments, key spelling and
whitespace are not part of the model; `Config.lines` keeps where each setting came from (for error
and lint line numbers) but takes no part in equality.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

__all__ = [
    "INTERFACE_NAME",
    "KEY_LENGTH",
    "Config",
    "ConfigError",
    "Endpoint",
    "IPAddress",
    "IPInterface",
    "IPNetwork",
    "Interface",
    "Peer",
    "SourceLine",
    "is_interface_name",
    "is_valid_key",
    "key_bytes",
]

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface
IPNetwork = IPv4Network | IPv6Network

KEY_LENGTH = 32
"""Curve25519 keys and preshared keys are 32 bytes, written as 44 characters of base64."""

INTERFACE_NAME = re.compile(r"[a-zA-Z0-9_=+.-]{1,15}")
"""What wg-quick accepts as an interface (and so tunnel) name."""


def is_interface_name(name: str) -> bool:
    """True if `name` is a valid interface name: `^[a-zA-Z0-9_=+.-]{1,15}$` (wg-quick's rule) but not
    `.` or `..`, which the pattern allows and the kernel refuses (`ip link add ..` fails), and not
    starting with `-`: the name goes into command lines (`resolvectl dns NAME …`), where a program
    would read `-iwork` as an option and act on another link."""
    return INTERFACE_NAME.fullmatch(name) is not None and name not in (".", "..") and not name.startswith("-")


def is_valid_key(text: str) -> bool:
    """True if `text` is the canonical 44-character base64 encoding of 32 bytes, as `wg` requires."""
    if len(text) != 44 or not text.endswith("=") or not text.isascii():
        return False
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == KEY_LENGTH and base64.b64encode(raw).decode("ascii") == text


def key_bytes(text: str) -> bytes:
    """The 32 bytes of a base64 key; raises ValueError for anything `is_valid_key` rejects."""
    if not is_valid_key(text):
        raise ValueError("not a valid key: expected 44 characters of base64 that decode to 32 bytes")
    return base64.b64decode(text)


class ConfigError(ValueError):
    """A configuration that `wg`/`wg-quick` would not accept, or that wgdesk refuses.

    `str()` is `FILE:LINE: MESSAGE` (or `FILE: MESSAGE` when no line applies), the format compilers
    use, so editors and terminals can jump to the line.
    """

    def __init__(self, filename: str, line: int | None, key: str | None, message: str) -> None:
        self.filename = filename
        self.line = line
        self.key = key
        self.message = message
        super().__init__(filename, line, key, message)

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.filename}: {self.message}"
        return f"{self.filename}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Endpoint:
    """A peer's UDP endpoint: an IP address or a host name, and a port.

    `host` never has brackets; `str()` adds them for IPv6 (`[2001:db8::1]:51820`).
    """

    host: str
    port: int

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    def __str__(self) -> str:
        if self.is_ipv6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Interface:
    """The `[Interface]` section.

    Attributes:
        private_key: base64 key, or None when absent (tunnel files in the store never hold it).
        listen_port: UDP port, None when not set (random).
        fwmark: firewall mark, 0 for `off`, None when not set.
        addresses: `Address` entries in order; an entry written without a prefix has /32 or /128.
        dns: `DNS` entries that are IP addresses.
        dns_search: `DNS` entries that are search domains.
        mtu: None for automatic.
        table: `auto`, `off`, a decimal table number or a routing table name; None when not set.
        save_config: wg-quick's `SaveConfig`.
        pre_up, post_up, pre_down, post_down: hook command lines, kept verbatim and never run by the
            app unless an administrator allows it.
    """

    private_key: str | None = field(default=None, repr=False)  # repr() ends up in logs
    listen_port: int | None = None
    fwmark: int | None = None
    addresses: tuple[IPInterface, ...] = ()
    dns: tuple[IPAddress, ...] = ()
    dns_search: tuple[str, ...] = ()
    mtu: int | None = None
    table: str | None = None
    save_config: bool = False
    pre_up: tuple[str, ...] = ()
    post_up: tuple[str, ...] = ()
    pre_down: tuple[str, ...] = ()
    post_down: tuple[str, ...] = ()

    @property
    def hooks(self) -> dict[str, tuple[str, ...]]:
        """The hooks that are present, by their key name (`PostUp`, ...)."""
        found = {
            "PreUp": self.pre_up,
            "PostUp": self.post_up,
            "PreDown": self.pre_down,
            "PostDown": self.post_down,
        }
        return {key: value for key, value in found.items() if value}


@dataclass(frozen=True)
class Peer:
    """One `[Peer]` section. `persistent_keepalive` is 0 for `off`, None when not set."""

    public_key: str
    preshared_key: str | None = field(default=None, repr=False)
    allowed_ips: tuple[IPNetwork, ...] = ()
    endpoint: Endpoint | None = None
    persistent_keepalive: int | None = None


@dataclass(frozen=True)
class SourceLine:
    """Where one setting came from: its line number, its section (0 = [Interface], n = n-th [Peer],
    -1 = none), the key's canonical name and the value as written (trimmed)."""

    number: int
    section: int
    key: str
    value: str


@dataclass(frozen=True)
class Config:
    """A whole tunnel configuration."""

    interface: Interface = field(default_factory=Interface)
    peers: tuple[Peer, ...] = ()
    lines: tuple[SourceLine, ...] = field(default=(), compare=False, repr=False)

    @property
    def has_hooks(self) -> bool:
        return bool(self.interface.hooks)

    def all_allowed_ips(self) -> list[IPNetwork]:
        """Every peer's AllowedIPs, each once, in config order."""
        nets: list[IPNetwork] = []
        for p in self.peers:
            for n in p.allowed_ips:
                if n not in nets:
                    nets.append(n)
        return nets

    @property
    def has_secrets(self) -> bool:
        """True if any private or preshared key is present."""
        return self.interface.private_key is not None or any(p.preshared_key for p in self.peers)

    def line_of(self, key: str, section: int = 0) -> int | None:
        """The line number of the first `key` in `section` (see `SourceLine`), if known."""
        for line in self.lines:
            if line.key == key and line.section == section:
                return line.number
        return None

    def section_line(self, section: int) -> int | None:
        """The line number of a section header (0 = [Interface], n = n-th [Peer]), if known."""
        return self.line_of("[Peer]" if section else "[Interface]", section)

    def without_secrets(self) -> Config:
        """A copy with no private key and no preshared keys."""
        return Config(
            interface=replace(self.interface, private_key=None),
            peers=tuple(replace(p, preshared_key=None) for p in self.peers),
            lines=tuple(
                replace(line, value="") if line.key in ("PrivateKey", "PresharedKey") else line
                for line in self.lines
            ),
        )
