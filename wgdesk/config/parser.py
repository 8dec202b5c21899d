"""Parse wg-quick `.conf` text into a `Config`, accepting what `wg` and `wg-quick` accept.

The rules follow the two real readers of the format:

* wg-quick reads a line, cuts it at the first `#`, trims the key (text before the first `=`) and the
  value, and matches its own keys (`Address`, `DNS`, `MTU`, `Table`, hooks, `SaveConfig`) without
  regard to case, in `[Interface]` only.
* Everything else goes to `wg setconf`, which removes *all* whitespace from the line and matches its
  keys without regard to case: `ListenPort`, `FwMark`, `PrivateKey` in `[Interface]`; `PublicKey`,
  `PresharedKey`, `AllowedIPs`, `Endpoint`, `PersistentKeepalive` in `[Peer]`.

Where those tools would fail later (at `ip` or `resolvconf` time) this parser fails now, with the
line: a `DNS` or `Address` entry that looks numeric must be an IP address, and so on. It is also
deliberately stricter than `getaddrinfo` where that accepts surprising input: ports are decimal
numbers in range (65536 would silently become port 0), endpoint IPv4 addresses are full dotted quads
(`127.1` is not 127.0.0.1 here), and an endpoint port is never 0. No control or format character
survives into any value.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

from wgdesk.config.model import (
    Config,
    ConfigError,
    Endpoint,
    Interface,
    IPAddress,
    IPInterface,
    IPNetwork,
    Peer,
    SourceLine,
    is_valid_key,
)

__all__ = ["SPACE", "parse", "parse_bytes"]

SPACE = " \t\n\v\f\r"
"""C `isspace` in the C locale: what `wg` removes and wg-quick trims."""
_NO_SPACE = str.maketrans("", "", SPACE)

# Canonical spellings by lower-case key.
QUICK_KEYS = {
    k.lower(): k
    for k in ("Address", "DNS", "MTU", "Table", "PreUp", "PostUp", "PreDown", "PostDown", "SaveConfig")
}
INTERFACE_KEYS = {k.lower(): k for k in ("PrivateKey", "ListenPort", "FwMark")}
PEER_KEYS = {
    k.lower(): k for k in ("PublicKey", "PresharedKey", "AllowedIPs", "Endpoint", "PersistentKeepalive")
}
ALL_KEYS = sorted({*QUICK_KEYS.values(), *INTERFACE_KEYS.values(), *PEER_KEYS.values()})

_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_DIGITS = re.compile(r"[0-9]{1,30}")  # bounded: int() refuses very long digit strings


class InvalidValue(Exception):
    """A value is wrong; the parser adds file, line and key."""


def _forbidden_char(text: str, allowed: str = SPACE) -> str | None:
    if text.isascii() and text.isprintable():  # the usual line: no forbidden category in it (fast)
        return None
    for ch in text:
        if ch not in allowed and unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
            return ch
    return None


def _describe(ch: str) -> str:
    return f"U+{ord(ch):04X}"


# --- value checks, shared with the writer -------------------------------------------------------


def check_key(key: str, value: str) -> str:
    # The value is never echoed: it may be a private key with a typo in it.
    if not is_valid_key(value):
        raise InvalidValue(
            f"{key} is not a valid key: expected 44 characters of base64 that decode to 32 bytes"
            f" (found {len(value)} characters)"
        )
    return value


_KEY_LIKE = re.compile(r"[A-Za-z0-9+/]{20,}={0,2}")


def _shorten(value: str) -> str:
    """`value` for an error message: at most 60 characters, and anything that could be key material
    (a long run of base64 characters) replaced, since error messages end up in terminals and logs."""
    value = _KEY_LIKE.sub("<hidden>", value)
    return value if len(value) <= 60 else value[:57] + "..."


def check_port(key: str, value: str, minimum: int = 0) -> int:
    if not _DIGITS.fullmatch(value) or not minimum <= int(value) <= 65535:
        raise InvalidValue(f"{key} must be a port number from {minimum} to 65535, not `{_shorten(value)}`")
    return int(value)


def check_fwmark(value: str) -> int:
    if value.lower() == "off":
        return 0
    number: int | None = None
    if re.fullmatch(r"0x[0-9a-fA-F]{1,30}", value):
        number = int(value[2:], 16)
    elif _DIGITS.fullmatch(value):
        number = int(value, 10)
    if number is None or number > 0xFFFFFFFF:
        raise InvalidValue(f"FwMark must be off or a number from 0 to 0xffffffff, not `{_shorten(value)}`")
    return number


def check_keepalive(value: str) -> int:
    if value.lower() == "off":
        return 0
    if not _DIGITS.fullmatch(value) or int(value) > 65535:
        raise InvalidValue(
            f"PersistentKeepalive must be off or a number of seconds from 0 to 65535, not `{_shorten(value)}`"
        )
    return int(value)


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"({_OCTET})\.({_OCTET})\.({_OCTET})\.({_OCTET})")
"""What `IPv4Address` accepts (decimal octets, no leading zero), read 2-3 times faster: a config
at the control protocol's size limit has 26 000 of them."""


def check_ip(text: str) -> IPAddress:
    """An IP address the way `inet_pton` reads it (a colon means IPv6; no scope)."""
    if "%" in text:
        raise ValueError(text)
    if ":" in text:
        return IPv6Address(text)
    quad = _DOTTED_QUAD.fullmatch(text)
    if quad is not None:
        a, b, c, d = map(int, quad.groups())
        return IPv4Address(a << 24 | b << 16 | c << 8 | d)
    return IPv4Address(text)


def _split_prefix(key: str, entry: str) -> tuple[IPAddress, int]:
    address, slash, prefix = entry.partition("/")
    try:
        ip = check_ip(address)
    except ValueError:
        raise InvalidValue(
            f"{key} entry `{_shorten(entry)}` is not an IP address with an optional /prefix"
        ) from None
    if not slash:
        return ip, ip.max_prefixlen
    if not _DIGITS.fullmatch(prefix) or int(prefix) > ip.max_prefixlen:
        raise InvalidValue(
            f"{key} entry `{_shorten(entry)}` has an invalid prefix length"
            f" (0 to {ip.max_prefixlen} for IPv{ip.version})"
        )
    return ip, int(prefix)


def check_network(entry: str) -> IPNetwork:
    ip, prefix = _split_prefix("AllowedIPs", entry)
    if isinstance(ip, IPv4Address):
        return IPv4Network((ip, prefix), strict=False)
    return IPv6Network((ip, prefix), strict=False)


def check_address(entry: str) -> IPInterface:
    _, slash, written = entry.partition("/")
    if slash and len(written) > 1 and written.startswith("0"):
        # `ip address add` reads the prefix with strtoul(..., 0): /024 is octal, i.e. /20.
        raise InvalidValue(
            f"Address entry `{_shorten(entry)}`: `ip` reads a prefix with a leading zero as octal;"
            " write it without the zero"
        )
    ip, prefix = _split_prefix("Address", entry)
    if isinstance(ip, IPv4Address):
        return IPv4Interface((ip, prefix))
    return IPv6Interface((ip, prefix))


def is_dns_address(entry: str) -> bool:
    """wg-quick's rule: digits and dots, or anything with a colon, is a server; the rest are domains."""
    return re.fullmatch(r"[0-9.]+", entry) is not None or ":" in entry


def check_domain(key: str, entry: str) -> str:
    """A DNS search domain (a leading `~` makes a systemd-resolved routing domain)."""
    name = entry[1:] if entry.startswith("~") else entry
    if name in ("", ".") and entry.startswith("~"):
        return entry
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise InvalidValue(
            f"{key} entry `{_shorten(entry)}` is neither an IP address nor a valid search domain"
        )
    return entry


def check_dns(entry: str) -> IPAddress | str:
    if is_dns_address(entry):
        try:
            return check_ip(entry)
        except ValueError:
            raise InvalidValue(f"DNS entry `{_shorten(entry)}` is not a valid IP address") from None
    return check_domain("DNS", entry)


def check_host(host: str, raw: str) -> str:
    """An endpoint host: an IP address (canonical form) or a host name (as written)."""
    if ":" in host:
        address, percent, scope = host.partition("%")
        try:
            canonical = str(IPv6Address(address))
        except ValueError:
            raise InvalidValue(f"Endpoint `{_shorten(raw)}` has an invalid IPv6 address") from None
        if percent:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", scope):
                raise InvalidValue(f"Endpoint `{_shorten(raw)}` has an invalid IPv6 scope")
            canonical += "%" + scope
        return canonical
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return str(IPv4Address(host))
        except ValueError:
            raise InvalidValue(f"Endpoint `{_shorten(raw)}` has an invalid IPv4 address") from None
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
        raise InvalidValue(f"Endpoint host `{_shorten(host)}` is neither an IP address nor a valid host name")
    return host


def check_endpoint(value: str) -> Endpoint:
    """`host:port`, `[IPv6]:port`, or (as `wg` reads it, splitting at the last colon) `IPv6:port`."""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket:
            raise InvalidValue(f"Endpoint `{_shorten(value)}` has no closing `]`")
        if not rest.startswith(":") or len(rest) == 1:
            raise InvalidValue(f"Endpoint `{_shorten(value)}` has no port: write [IPv6]:port")
        port = rest[1:]
        if ":" not in host and not re.fullmatch(r"[0-9.]+", host):
            raise InvalidValue(f"Endpoint `{_shorten(value)}`: only IP addresses go in brackets")
    else:
        host, colon, port = value.rpartition(":")
        if not colon or not port or not host:
            raise InvalidValue(f"Endpoint `{_shorten(value)}` has no port: write host:port or [IPv6]:port")
    number = check_port("Endpoint port", port, minimum=1)
    return Endpoint(check_host(host, value), number)


def _octal_trap(key: str, value: str) -> None:
    # `ip` reads these numbers with strtoul(..., 0): a leading zero means octal (01280 is 696).
    if len(value) > 1 and value.startswith("0") and _DIGITS.fullmatch(value):
        raise InvalidValue(
            f"{key} `{_shorten(value)}`: `ip` reads a number with a leading zero as octal;"
            " write it without the zero"
        )


def check_mtu(value: str) -> int:
    _octal_trap("MTU", value)
    if not _DIGITS.fullmatch(value) or not 68 <= int(value) <= 65535:
        raise InvalidValue(f"MTU must be a number from 68 to 65535, not `{_shorten(value)}`")
    return int(value)


def check_table(value: str) -> str:
    if value in ("auto", "off"):
        return value
    if _DIGITS.fullmatch(value):
        _octal_trap("Table", value)
        if int(value) > 0xFFFFFFFF:
            raise InvalidValue(f"Table number `{_shorten(value)}` is larger than 4294967295")
        return value
    if _TABLE_NAME.fullmatch(value) and value.lower() not in ("auto", "off"):
        return value
    raise InvalidValue(f"Table must be auto, off, a table number or a table name, not `{_shorten(value)}`")


def check_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise InvalidValue(f"SaveConfig must be true or false, not `{_shorten(value)}`")


def check_hook(key: str, value: str) -> str:
    bad = _forbidden_char(value, allowed=" ")
    if bad is not None:
        raise InvalidValue(f"{key} contains a control character ({_describe(bad)})")
    if "#" in value:
        raise InvalidValue(f"{key} cannot contain `#`: wg-quick treats the rest of the line as a comment")
    if value != value.strip(SPACE):
        raise InvalidValue(f"{key} has leading or trailing whitespace that wg-quick would drop")
    return value


# --- the reader ---------------------------------------------------------------------------------


@dataclass
class _PeerDraft:
    line: int
    public_key: str | None = None
    preshared_key: str | None = None
    allowed_ips: list[IPNetwork] = field(default_factory=list)
    endpoint: Endpoint | None = None
    persistent_keepalive: int | None = None


@dataclass
class _InterfaceDraft:
    private_key: str | None = None
    listen_port: int | None = None
    fwmark: int | None = None
    addresses: list[IPInterface] = field(default_factory=list)
    dns: list[IPAddress] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    mtu: int | None = None
    table: str | None = None
    save_config: bool = False
    hooks: dict[str, list[str]] = field(
        default_factory=lambda: {"PreUp": [], "PostUp": [], "PreDown": [], "PostDown": []}
    )


def _unknown_key_message(key: str, section: str) -> str:
    squashed = "".join(ch for ch in key if ch not in SPACE)
    lowered = squashed.lower()
    if section == "[Peer]" and (lowered in QUICK_KEYS or lowered in INTERFACE_KEYS):
        canonical = QUICK_KEYS.get(lowered) or INTERFACE_KEYS[lowered]
        return f"{canonical} belongs in [Interface], not in [Peer]"
    if section == "[Interface]" and lowered in PEER_KEYS:
        return f"{PEER_KEYS[lowered]} belongs in [Peer], not in [Interface]"
    for known in ALL_KEYS:
        if re.match(re.escape(known) + r"[ \t]", key.strip(SPACE), re.IGNORECASE):
            return f"{known} must be followed by `=` and its value"
    # Show the first word only: a mangled line may hold a private key.
    word = key.split()[0] if key.split() else key
    message = f"unknown key `{_shorten(word[:32])}` in {section}"
    close = difflib.get_close_matches(squashed, ALL_KEYS, n=1, cutoff=0.75)
    if not close:
        close = [k for k in ALL_KEYS if k.lower() == lowered]
    if close:
        message += f" (did you mean {close[0]}?)"
    return message


@dataclass
class _Document:
    """What the reader has taken in so far, and where it is."""

    filename: str
    interface: _InterfaceDraft = field(default_factory=_InterfaceDraft)
    peers: list[_PeerDraft] = field(default_factory=list)
    lines: list[SourceLine] = field(default_factory=list)
    section: int = -1
    """-1 before any section, 0 in [Interface], n in the n-th [Peer]."""
    quick_keys: bool = False
    """wg-quick's own keys are read here (after a header written exactly ``[Interface]``)."""


def parse(text: str, filename: str = "wg0.conf") -> Config:
    """Parse `.conf` text.

    Args:
        text: the file's contents (decoded; see `parse_bytes` for raw file contents).
        filename: used in error messages only.

    Returns:
        The `Config`; its `lines` record where each setting was.

    Raises:
        ConfigError: for the first problem found, with its line and key.
    """
    doc = _Document(filename)
    for number, raw_line in enumerate(text.split("\n"), start=1):
        stripped = raw_line.split("#", 1)[0].strip(SPACE)
        if not stripped:
            continue
        bad = _forbidden_char(stripped)
        if bad is not None:
            raise ConfigError(filename, number, None, f"line contains a control character ({_describe(bad)})")
        if stripped.startswith("["):
            _read_header(doc, number, stripped)
        else:
            _read_setting(doc, number, stripped)
    return _build(doc)


def _read_header(doc: _Document, number: int, stripped: str) -> None:
    header = "".join(ch for ch in stripped if ch not in SPACE).lower()
    if header == "[interface]":
        doc.section = 0
        # wg-quick only knows its own keys after a header written exactly `[Interface]`;
        # `wg` (which removes all whitespace) also takes `[ Interface ]`.
        doc.quick_keys = stripped.lower() == "[interface]"
        doc.lines.append(SourceLine(number, 0, "[Interface]", ""))
    elif header == "[peer]":
        doc.peers.append(_PeerDraft(line=number))
        doc.section = len(doc.peers)
        doc.lines.append(SourceLine(number, doc.section, "[Peer]", ""))
    else:
        raise ConfigError(
            doc.filename,
            number,
            None,
            f"unknown section `{_shorten(stripped)}`: expected [Interface] or [Peer]",
        )


def _read_setting(doc: _Document, number: int, stripped: str) -> None:
    raw_key, equals, raw_value = stripped.partition("=")
    key_text = raw_key.strip(SPACE)
    if not equals:
        raise ConfigError(doc.filename, number, None, f"expected `Key = value`, found `{_shorten(stripped)}`")
    if doc.section < 0:
        raise ConfigError(
            doc.filename,
            number,
            None,
            f"`{_shorten(key_text)}` comes before any [Interface] or [Peer] section",
        )
    key, value = _key_and_value(doc, number, key_text, raw_value.strip(SPACE))
    doc.lines.append(SourceLine(number, doc.section, key, value))
    try:
        if doc.section == 0:
            _apply_interface(doc.interface, key, value)
        else:
            _apply_peer(doc.peers[doc.section - 1], key, value)
    except InvalidValue as exc:
        raise ConfigError(doc.filename, number, key, str(exc)) from None


def _key_and_value(doc: _Document, number: int, key_text: str, value: str) -> tuple[str, str]:
    """The canonical key and the value as the tool that reads the key sees it: wg-quick's keys keep
    their inner spaces (no control characters), `wg`'s lose every whitespace character."""
    key = QUICK_KEYS.get(key_text.lower()) if doc.section == 0 and doc.quick_keys else None
    if key is not None:
        bad = _forbidden_char(value, allowed=" \t")
        if bad is not None:
            raise ConfigError(
                doc.filename, number, key, f"line contains a control character ({_describe(bad)})"
            )
        return key, value
    squashed_key = "".join(ch for ch in key_text if ch not in SPACE).lower()
    key = (INTERFACE_KEYS if doc.section == 0 else PEER_KEYS).get(squashed_key)
    if key is None:
        if doc.section == 0 and key_text.lower() in QUICK_KEYS:
            message = (
                f"{QUICK_KEYS[key_text.lower()]} is only read by wg-quick after a section header "
                "written exactly `[Interface]`"
            )
        else:
            message = _unknown_key_message(key_text, "[Interface]" if doc.section == 0 else "[Peer]")
        raise ConfigError(doc.filename, number, None, message)
    # `wg` removes every whitespace character, inside values too.
    value = value.translate(_NO_SPACE)
    if not value:
        raise ConfigError(doc.filename, number, key, f"{key} has no value")
    return key, value


def _build(doc: _Document) -> Config:
    built_peers = []
    for draft in doc.peers:
        if draft.public_key is None:
            raise ConfigError(doc.filename, draft.line, "PublicKey", "[Peer] has no PublicKey")
        built_peers.append(
            Peer(
                public_key=draft.public_key,
                preshared_key=draft.preshared_key,
                allowed_ips=tuple(draft.allowed_ips),
                endpoint=draft.endpoint,
                persistent_keepalive=draft.persistent_keepalive,
            )
        )
    interface = doc.interface
    return Config(
        interface=Interface(
            private_key=interface.private_key,
            listen_port=interface.listen_port,
            fwmark=interface.fwmark,
            addresses=tuple(interface.addresses),
            dns=tuple(interface.dns),
            dns_search=tuple(interface.dns_search),
            mtu=interface.mtu,
            table=interface.table,
            save_config=interface.save_config,
            pre_up=tuple(interface.hooks["PreUp"]),
            post_up=tuple(interface.hooks["PostUp"]),
            pre_down=tuple(interface.hooks["PreDown"]),
            post_down=tuple(interface.hooks["PostDown"]),
        ),
        peers=tuple(built_peers),
        lines=tuple(doc.lines),
    )


def parse_bytes(data: bytes, filename: str = "wg0.conf") -> Config:
    """Parse raw file contents, which must be UTF-8 (an optional byte-order mark is dropped)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(filename, 1, None, "the file is UTF-16 text; save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(filename, line, None, "the file is not UTF-8 text") from None
    return parse(text, filename)


def list_entries(value: str) -> list[str]:
    """wg-quick's `${value//,/ }` word splitting."""
    return [entry for entry in re.split(r"[, \t]+", value) if entry]


def _apply_interface(draft: _InterfaceDraft, key: str, value: str) -> None:
    if key == "PrivateKey":
        draft.private_key = check_key(key, value)
    elif key == "ListenPort":
        draft.listen_port = check_port(key, value)
    elif key == "FwMark":
        draft.fwmark = check_fwmark(value)
    elif key == "Address":
        draft.addresses.extend(check_address(entry) for entry in list_entries(value))
    elif key == "DNS":
        for entry in list_entries(value):
            checked = check_dns(entry)
            if isinstance(checked, str):
                draft.dns_search.append(checked)
            else:
                draft.dns.append(checked)
    elif key == "MTU":
        draft.mtu = check_mtu(value) if value else None
    elif key == "Table":
        draft.table = check_table(value) if value else None
    elif key == "SaveConfig":
        draft.save_config = check_bool(value)
    elif key in draft.hooks:
        if value:
            draft.hooks[key].append(check_hook(key, value))
    else:  # pragma: no cover - the key tables and this function list the same keys
        raise AssertionError(key)


def _apply_peer(draft: _PeerDraft, key: str, value: str) -> None:
    if key == "PublicKey":
        draft.public_key = check_key(key, value)
    elif key == "PresharedKey":
        draft.preshared_key = check_key(key, value)
    elif key == "AllowedIPs":
        entries = value.split(",")
        if "" in entries:
            raise InvalidValue(f"AllowedIPs `{_shorten(value)}` has an empty entry (a stray comma?)")
        draft.allowed_ips.extend(check_network(entry) for entry in entries)
    elif key == "Endpoint":
        draft.endpoint = check_endpoint(value)
    elif key == "PersistentKeepalive":
        draft.persistent_keepalive = check_keepalive(value)
    else:  # pragma: no cover
        raise AssertionError(key)
