"""Live update (``update``): which config changes an engine takes without a restart, and which peers
changed.

A change of the interface's own key, port, addresses, MTU, DNS, table or hooks needs the tunnel
restarted (`restart_keys` names them for the client); peers are added, removed and changed in place
through UAPI, their routes diffed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wgdesk.helper.planning import Network

if TYPE_CHECKING:
    from wgdesk.config import Config, Peer


@dataclass(frozen=True)
class PeerState:
    """One peer as the engine holds it after `up` applied a config (repeated sections merged)."""

    preshared_key: bytes | None
    endpoint: tuple[str, int] | None  # (host as written, port)
    keepalive: int
    allowed_ips: frozenset[Network]
    allowed_order: tuple[Network, ...]


def peer_states(peers: Sequence[Peer]) -> dict[bytes, PeerState]:
    """Peers by public key, merged as the UAPI set of `up` merges a repeated [Peer]: later
    AllowedIPs replace earlier ones, a later PresharedKey/Endpoint/PersistentKeepalive wins."""
    from wgdesk.config import key_bytes

    out: dict[bytes, PeerState] = {}
    for p in peers:
        key = key_bytes(p.public_key)
        prev = out.get(key)
        psk = key_bytes(p.preshared_key) if p.preshared_key else (prev.preshared_key if prev else None)
        endpoint = (p.endpoint.host, p.endpoint.port) if p.endpoint is not None else None
        if endpoint is None and prev is not None:
            endpoint = prev.endpoint
        keepalive = p.persistent_keepalive
        if keepalive is None:
            keepalive = prev.keepalive if prev is not None else 0
        out[key] = PeerState(psk, endpoint, keepalive, frozenset(p.allowed_ips), tuple(p.allowed_ips))
    return out


PEER_FIELDS = ("PresharedKey", "Endpoint", "PersistentKeepalive", "AllowedIPs")


def peer_diff(old: PeerState, new: PeerState) -> list[str]:
    changed = []
    if old.preshared_key != new.preshared_key:
        changed.append("PresharedKey")
    if old.endpoint != new.endpoint:
        changed.append("Endpoint")
    if old.keepalive != new.keepalive:
        changed.append("PersistentKeepalive")
    if old.allowed_ips != new.allowed_ips:
        changed.append("AllowedIPs")
    return changed


def restart_keys(old: Config, new: Config) -> list[str]:
    """The config keys whose change needs the tunnel taken down and up again (empty: live-appliable).

    Peers, their endpoints, keepalives, preshared keys and AllowedIPs change live; everything of
    [Interface] does not, nor does adding or removing a peer's 0.0.0.0/0 or ::/0 (it decides
    whether this is a full tunnel, with its policy rules, firewall and kill switch).
    """
    from wgdesk.config import key_bytes

    a, b = old.interface, new.interface
    keys: list[str] = []
    if a.private_key is None or b.private_key is None or key_bytes(a.private_key) != key_bytes(b.private_key):
        keys.append("PrivateKey")
    if (a.listen_port or 0) != (b.listen_port or 0):
        keys.append("ListenPort")
    if (a.fwmark or 0) != (b.fwmark or 0):
        keys.append("FwMark")
    if set(a.addresses) != set(b.addresses):
        keys.append("Address")
    if a.dns != b.dns or a.dns_search != b.dns_search:
        keys.append("DNS")
    if a.mtu != b.mtu:
        keys.append("MTU")
    if (a.table or "auto").lower() != (b.table or "auto").lower():
        keys.append("Table")
    for hook in ("PreUp", "PostUp", "PreDown", "PostDown"):
        if a.hooks.get(hook, ()) != b.hooks.get(hook, ()):
            keys.append(hook)
    defaults_old = {n for n in old.all_allowed_ips() if n.prefixlen == 0}
    defaults_new = {n for n in new.all_allowed_ips() if n.prefixlen == 0}
    if defaults_old != defaults_new and (b.table or "auto").lower() == "auto":
        keys.append("AllowedIPs")
    return keys
