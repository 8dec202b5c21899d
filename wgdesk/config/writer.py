"""Write a `Config` as wg-quick `.conf` text, such that `parse(write(cfg)) == cfg`."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

from wgdesk.config import parser as _p
from wgdesk.config.model import Config, ConfigError, Interface, Peer

__all__ = ["write"]

_MODEL = "<config>"


def _check(key: str, ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(_MODEL, None, key, message)


def _checked(key: str, check: Callable[[], object], expected: object) -> None:
    try:
        result = check()
    except _p.InvalidValue as exc:
        raise ConfigError(_MODEL, None, key, str(exc)) from None
    _check(key, result == expected, f"{key} value {expected!r} would not read back unchanged")


def _interface_lines(i: Interface) -> list[str]:
    out = ["[Interface]"]
    if i.private_key is not None:
        _checked("PrivateKey", lambda: _p.check_key("PrivateKey", i.private_key or ""), i.private_key)
        out.append(f"PrivateKey = {i.private_key}")
    if i.listen_port is not None:
        _check("ListenPort", 0 <= i.listen_port <= 65535, "ListenPort must be from 0 to 65535")
        out.append(f"ListenPort = {i.listen_port}")
    if i.fwmark is not None:
        _check("FwMark", 0 <= i.fwmark <= 0xFFFFFFFF, "FwMark must be from 0 to 0xffffffff")
        out.append("FwMark = off" if i.fwmark == 0 else f"FwMark = {i.fwmark:#x}")
    if i.addresses:
        for a in i.addresses:
            _check(
                "Address",
                isinstance(a, IPv4Interface) or (isinstance(a, IPv6Interface) and a.ip.scope_id is None),
                "Address entries must be IPv4Interface or IPv6Interface values without a scope",
            )
        out.append("Address = " + ", ".join(str(a) for a in i.addresses))
    if i.dns or i.dns_search:
        for d in i.dns:
            _check(
                "DNS",
                isinstance(d, IPv4Address) or (isinstance(d, IPv6Address) and d.scope_id is None),
                "DNS servers must be IPv4Address or IPv6Address values without a scope",
            )
        for domain in i.dns_search:
            _check(
                "DNS",
                not _p.is_dns_address(domain),
                f"search domain `{domain}` would read back as an address",
            )
            _checked("DNS", lambda d=domain: _p.check_domain("DNS", d), domain)  # type: ignore[misc]
        out.append("DNS = " + ", ".join([*(str(d) for d in i.dns), *i.dns_search]))
    if i.mtu is not None:
        _checked("MTU", lambda: _p.check_mtu(str(i.mtu)), i.mtu)
        out.append(f"MTU = {i.mtu}")
    if i.table is not None:
        _checked("Table", lambda: _p.check_table(i.table or ""), i.table)
        out.append(f"Table = {i.table}")
    if i.save_config:
        out.append("SaveConfig = true")
    for key, values in (
        ("PreUp", i.pre_up),
        ("PostUp", i.post_up),
        ("PreDown", i.pre_down),
        ("PostDown", i.post_down),
    ):
        for value in values:
            _checked(key, lambda k=key, v=value: _p.check_hook(k, v), value)  # type: ignore[misc]
            _check(key, value != "", f"{key} cannot be empty")
            out.append(f"{key} = {value}")
    return out


def _peer_lines(peer: Peer) -> list[str]:
    out = ["[Peer]"]
    _checked("PublicKey", lambda: _p.check_key("PublicKey", peer.public_key), peer.public_key)
    out.append(f"PublicKey = {peer.public_key}")
    if peer.preshared_key is not None:
        _checked(
            "PresharedKey", lambda: _p.check_key("PresharedKey", peer.preshared_key or ""), peer.preshared_key
        )
        out.append(f"PresharedKey = {peer.preshared_key}")
    if peer.allowed_ips:
        _check(
            "AllowedIPs",
            all(isinstance(n, IPv4Network | IPv6Network) for n in peer.allowed_ips),
            "AllowedIPs entries must be IPv4Network or IPv6Network values",
        )
        out.append("AllowedIPs = " + ", ".join(str(n) for n in peer.allowed_ips))
    if peer.endpoint is not None:
        text = str(peer.endpoint)
        _checked("Endpoint", lambda: _p.check_endpoint(text), peer.endpoint)
        out.append(f"Endpoint = {text}")
    if peer.persistent_keepalive is not None:
        _check(
            "PersistentKeepalive",
            0 <= peer.persistent_keepalive <= 65535,
            "PersistentKeepalive must be from 0 to 65535",
        )
        out.append(f"PersistentKeepalive = {peer.persistent_keepalive}")
    return out


def write(cfg: Config) -> str:
    """The `.conf` text for `cfg`: `[Interface]` then one `[Peer]` each, canonical key spelling.

    Raises:
        ConfigError: if a value in `cfg` could not be read back as the same value (for example a
            hook with a newline in it, or a search domain that looks like an address).
    """
    sections = [_interface_lines(cfg.interface), *(_peer_lines(p) for p in cfg.peers)]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"
