"""Live update (``update``): which config changes an engine takes without a restart, and which peers
changed.

A change of the interface's own key, port, addresses, MTU, DNS, table or hooks needs the tunnel
restarted (`restart_keys` names them for the client); peers are added, removed and changed in place
through UAPI, their routes diffed.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wgdesk.helper.planning import Network
from wgdesk.helper.resolver import EndpointName, is_name
from wgdesk.proto.changes import NO_KEY, Endpoint, PeerChange

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


@dataclass
class PeerChanges:
    """What a live update does to the engine's peers: the UAPI changes in order, and what it reports."""

    changes: list[PeerChange] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    """Public keys (base64) of new peers."""
    removed: list[str] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    """``{"public_key", "fields"}`` of each changed peer."""
    resolved: dict[bytes, str] = field(default_factory=dict)
    """The address each changed endpoint name resolved to, by public key."""


def peer_changes(
    old: dict[bytes, PeerState], new: dict[bytes, PeerState], resolve: Callable[[tuple[str, int]], str]
) -> PeerChanges:
    """The UAPI changes from peers ``old`` to ``new``; ``resolve`` gives the address of a changed
    endpoint. A peer whose endpoint goes is removed and added again (UAPI cannot unset one)."""
    out = PeerChanges()
    for key in old:
        if key not in new:
            out.changes.append(PeerChange(public_key=key, remove=True))
            out.removed.append(base64.b64encode(key).decode())
    for key, p in new.items():
        endpoint: Endpoint | None = None
        fields = peer_diff(old[key], p) if key in old else list(PEER_FIELDS)
        if not fields:
            continue
        if "Endpoint" in fields and p.endpoint is not None:
            endpoint = (resolve(p.endpoint), p.endpoint[1])
            out.resolved[key] = endpoint[0]
        if key not in old or (p.endpoint is None and old[key].endpoint is not None):
            # new, or its endpoint removed (UAPI cannot unset one): (re)create the peer
            if key in old:
                out.changes.append(PeerChange(public_key=key, remove=True))
            out.changes.append(
                PeerChange(
                    public_key=key,
                    preshared_key=p.preshared_key,
                    endpoint=endpoint,
                    persistent_keepalive=p.keepalive,
                    replace_allowed_ips=True,
                    allowed_ips=p.allowed_order,
                )
            )
        else:
            out.changes.append(
                PeerChange(
                    public_key=key,
                    preshared_key=(p.preshared_key or NO_KEY) if "PresharedKey" in fields else None,
                    endpoint=endpoint,
                    persistent_keepalive=p.keepalive if "PersistentKeepalive" in fields else None,
                    replace_allowed_ips="AllowedIPs" in fields,
                    allowed_ips=p.allowed_order if "AllowedIPs" in fields else (),
                )
            )
        b64 = base64.b64encode(key).decode()
        if key in old:
            out.changed.append({"public_key": b64, "fields": fields})
        else:
            out.added.append(b64)
    return out


def updated_names(
    names: dict[bytes, EndpointName], peers: dict[bytes, PeerState], resolved: dict[bytes, str]
) -> dict[bytes, EndpointName]:
    """The endpoint names after a live update: unchanged ones keep their state, changed ones
    start from the resolution the update just made, IP endpoints and removed peers drop out."""
    out: dict[bytes, EndpointName] = {}
    for key, p in peers.items():
        if p.endpoint is None or not is_name(p.endpoint[0]):
            continue
        host, port = p.endpoint
        if key in resolved:
            out[key] = EndpointName(host, port, resolved[key], time.time(), time.monotonic())
        elif key in names and (names[key].host, names[key].port) == (host, port):
            out[key] = names[key]
    return out
