"""Semantic checks of a valid `Config`: leaks, conflicts and settings that will not do what they say.

`lint` does no I/O. Facts about the world (the file's mode, other tunnels, local networks, the
platform, the tunnel's own public key) are passed in by the caller.

Codes (stable; the GUI and `wgdeskctl check` show them):

| code | severity | what |
|---|---|---|
| `ipv6-leak` | warning | `0.0.0.0/0` is routed into the tunnel but `::/0` is not |
| `dns-leak` | warning | full tunnel without `DNS` |
| `dns-outside-tunnel` | warning | a `DNS` server is not inside any peer's `AllowedIPs` |
| `overlap-tunnel` | warning | `AllowedIPs` overlap another tunnel's |
| `overlap-lan` | warning | `AllowedIPs` take over (part of) a local network |
| `overlap-peers` | warning | the same range is given to two peers (the last one wins) |
| `allowed-ips-host-bits` | warning | an `AllowedIPs` entry has host bits set (`wg` drops them) |
| `address-without-prefix` | info | an `Address` without `/prefix` (used as /32 or /128) |
| `duplicate-peer` | warning | two `[Peer]` sections with one public key |
| `peer-is-self` | warning | a peer's public key is the tunnel's own |
| `no-keepalive` | info | a client with an endpoint and no `PersistentKeepalive` |
| `hooks` | warning | `PreUp`/`PostUp`/`PreDown`/`PostDown` present: kept, not run |
| `world-readable` | warning | the file is accessible to all users |
| `ignored-key` | info | a key this platform (or wgdesk) ignores |
"""

from __future__ import annotations

import enum
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Network, IPv6Network, collapse_addresses, ip_network

from wgdesk.config.model import Config, Interface, IPNetwork, Peer
from wgdesk.config.parser import check_ip, check_network, list_entries

__all__ = ["Fix", "LintWarning", "Severity", "lint"]

DEFAULT_KEEPALIVE = 25
_V4_ALL = IPv4Network("0.0.0.0/0")
_V6_ALL = IPv6Network("::/0")


class Severity(enum.Enum):
    INFO = "info"
    WARNING = "warning"


@dataclass(frozen=True)
class Fix:
    """A mechanical fix. `config` is the fixed configuration, or None when the fix is outside the
    config (such as changing the file's mode); `description` says what it does."""

    description: str
    config: Config | None

    def __post_init__(self) -> None:
        # A fixed config is new text-to-be: the old line numbers and written forms no longer apply.
        if self.config is not None and self.config.lines:
            object.__setattr__(self, "config", replace(self.config, lines=()))


@dataclass(frozen=True)
class LintWarning:
    """One finding: a stable `code`, a one-line `message`, the `line` it is about (None when it is
    about the whole file), an optional `fix`, and a longer `explanation` of why it matters."""

    code: str
    message: str
    line: int | None
    fix: Fix | None = None
    severity: Severity = Severity.WARNING
    explanation: str = ""

    def __str__(self) -> str:
        return f"{self.severity.value}: {self.message} [{self.code}]"


def _covers_all(networks: Sequence[IPNetwork], everything: IPNetwork) -> bool:
    if isinstance(everything, IPv4Network):
        return everything in collapse_addresses(n for n in networks if isinstance(n, IPv4Network))
    return everything in collapse_addresses(n for n in networks if isinstance(n, IPv6Network))


def _all_networks(cfg: Config) -> list[IPNetwork]:
    return [n for p in cfg.peers for n in p.allowed_ips]


def _with_peer(cfg: Config, index: int, peer: Peer) -> Config:
    peers = list(cfg.peers)
    peers[index] = peer
    return replace(cfg, peers=tuple(peers))


def _peer_label(cfg: Config, index: int) -> str:
    return f"peer {index + 1} ({cfg.peers[index].public_key[:8]}…)"


def _allowed_line(cfg: Config, index: int) -> int | None:
    return cfg.line_of("AllowedIPs", index + 1) or cfg.section_line(index + 1)


def _leaks(cfg: Config) -> list[LintWarning]:
    found: list[LintWarning] = []
    networks = _all_networks(cfg)
    full4 = _covers_all(networks, _V4_ALL)
    full6 = _covers_all(networks, _V6_ALL)
    if full4 and not full6:
        target = next((i for i, p in enumerate(cfg.peers) if _covers_all(list(p.allowed_ips), _V4_ALL)), None)
        fix = None
        if target is not None:
            peer = cfg.peers[target]
            fix = Fix(
                f"add ::/0 to the AllowedIPs of {_peer_label(cfg, target)}",
                _with_peer(cfg, target, replace(peer, allowed_ips=(*peer.allowed_ips, _V6_ALL))),
            )
        found.append(
            LintWarning(
                "ipv6-leak",
                "all IPv4 traffic goes through the tunnel, IPv6 traffic does not (no ::/0)",
                _allowed_line(cfg, target) if target is not None else None,
                fix,
                explanation=(
                    "On a network with IPv6, connections to IPv6 addresses bypass the tunnel and reveal "
                    "your real address. Adding ::/0 sends IPv6 into the tunnel too (where it is dropped if "
                    "the server has no IPv6)."
                ),
            )
        )
    if (full4 or full6) and not cfg.interface.dns:
        found.append(
            LintWarning(
                "dns-leak",
                "full tunnel without DNS: name lookups keep using the local network's resolver",
                cfg.section_line(0),
                None,
                explanation=(
                    "Your DNS queries would go to the resolver of the network you are on, which sees every "
                    "name you look up. Add `DNS = ` with a resolver reachable through the tunnel (your "
                    "provider's, or the server's tunnel address)."
                ),
            )
        )
    for server in cfg.interface.dns:
        if any(server in n for n in networks if n.version == server.version):
            continue
        fix = None
        if len(cfg.peers) == 1:
            host = ip_network(f"{server}/{server.max_prefixlen}")
            peer = cfg.peers[0]
            fix = Fix(
                f"add {host} to the AllowedIPs of the peer",
                _with_peer(cfg, 0, replace(peer, allowed_ips=(*peer.allowed_ips, host))),
            )
        found.append(
            LintWarning(
                "dns-outside-tunnel",
                f"DNS server {server} is not inside any peer's AllowedIPs, "
                "so queries to it bypass the tunnel",
                cfg.line_of("DNS", 0),
                fix,
                explanation=(
                    "Queries travel unencrypted over the local network; anyone on the path can read them."
                ),
            )
        )
    return found


class _NetworkIndex:
    """One tunnel's networks, indexed so that "does this network overlap any of them?" costs
    O(log n + distinct prefix lengths) instead of a pass over all of them: with pairwise checks a config of
    a few thousand peers (well under the 1 MiB import limit) kept `lint` busy for minutes (found by
    fuzzing). Two CIDR blocks overlap only if one contains the other, so either one of ours starts
    inside the network asked about, or the network lies inside one of ours."""

    def __init__(self, networks: Sequence[IPNetwork]) -> None:
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._exact: set[tuple[int, int, int]] = set()
        self._lengths: dict[int, set[int]] = {4: set(), 6: set()}
        for n in networks:
            self._starts[n.version].append(int(n.network_address))
            self._exact.add((n.version, n.prefixlen, int(n.network_address)))
            self._lengths[n.version].add(n.prefixlen)
        for starts in self._starts.values():
            starts.sort()

    def overlaps(self, net: IPNetwork) -> bool:
        first, last = int(net.network_address), int(net.broadcast_address)
        starts = self._starts[net.version]
        k = bisect_left(starts, first)
        if k < len(starts) and starts[k] <= last:
            return True
        bits = net.max_prefixlen
        for length in self._lengths[net.version]:
            if length <= net.prefixlen:
                mask = ((1 << length) - 1) << (bits - length)
                if (net.version, length, first & mask) in self._exact:
                    return True
        return False


def _overlaps(
    cfg: Config, other_tunnels: Mapping[str, Config], local_networks: Sequence[IPNetwork]
) -> list[LintWarning]:
    found: list[LintWarning] = []
    for name, other in sorted(other_tunnels.items()):
        theirs_all = _all_networks(other)
        index = _NetworkIndex(theirs_all)
        overlapping = [
            (i, mine) for i, p in enumerate(cfg.peers) for mine in p.allowed_ips if index.overlaps(mine)
        ]
        if overlapping:
            i, mine = overlapping[0]
            theirs = next(t for t in theirs_all if t.version == mine.version and mine.overlaps(t))
            more = f" (and {len(overlapping) - 1} more)" if len(overlapping) > 1 else ""
            found.append(
                LintWarning(
                    "overlap-tunnel",
                    f"AllowedIPs {mine} overlaps {theirs} of tunnel `{name}`{more}",
                    _allowed_line(cfg, i),
                    None,
                    explanation=(
                        "With both tunnels up, packets for the overlapping addresses go to only one of them. "
                        "Bring one down first, or narrow the ranges."
                    ),
                )
            )
    for lan in local_networks:
        for i, p in enumerate(cfg.peers):
            for mine in p.allowed_ips:
                if mine.version == lan.version and mine.subnet_of(lan):  # type: ignore[arg-type]
                    found.append(
                        LintWarning(
                            "overlap-lan",
                            f"AllowedIPs {mine} lies inside the local network {lan}: "
                            "those local hosts become unreachable while the tunnel is up",
                            _allowed_line(cfg, i),
                            None,
                            explanation=(
                                "A more specific route into the tunnel takes precedence over the local "
                                "network's route. Remove the range if you need your printer, NAS or router."
                            ),
                        )
                    )
    seen: dict[IPNetwork, int] = {}
    for i, p in enumerate(cfg.peers):
        for net in p.allowed_ips:
            first = seen.setdefault(net, i)
            if first != i and cfg.peers[first].public_key != p.public_key:
                found.append(
                    LintWarning(
                        "overlap-peers",
                        f"AllowedIPs {net} is given to {_peer_label(cfg, first)} and {_peer_label(cfg, i)}; "
                        "only the last keeps it",
                        _allowed_line(cfg, i),
                        None,
                        explanation="Each range routes to exactly one peer (cryptokey routing).",
                    )
                )
    return found


def _written_forms(cfg: Config) -> list[LintWarning]:
    found: list[LintWarning] = []
    for line in cfg.lines:
        if line.key == "Address":
            for entry in list_entries(line.value):
                if "/" not in entry:
                    bits = 128 if ":" in entry else 32
                    found.append(
                        LintWarning(
                            "address-without-prefix",
                            f"Address {entry} has no prefix length and is used as {entry}/{bits}",
                            line.number,
                            Fix(f"write it as {entry}/{bits}", cfg),
                            Severity.INFO,
                            explanation=(
                                "Without a prefix no other address of the tunnel's subnet is on-link; "
                                "traffic to them still works only if AllowedIPs route it."
                            ),
                        )
                    )
        elif line.key == "AllowedIPs":
            for entry in line.value.split(","):
                address, slash, _ = entry.partition("/")
                network = check_network(entry)
                if slash and check_ip(address) != network.network_address:
                    found.append(
                        LintWarning(
                            "allowed-ips-host-bits",
                            f"AllowedIPs entry {entry} has host bits set; it means {network}",
                            line.number,
                            Fix(f"write it as {network}", cfg),
                            explanation="`wg` clears the host bits, so the range is wider than it looks.",
                        )
                    )
    return found


def _peers(cfg: Config, own_public_key: str | None) -> list[LintWarning]:
    found: list[LintWarning] = []
    first_index: dict[str, int] = {}
    for i, p in enumerate(cfg.peers):
        if p.public_key in first_index:
            j = first_index[p.public_key]
            merged = _merge(cfg.peers[j], p)
            peers = [q for k, q in enumerate(cfg.peers) if k != i]
            peers[j] = merged
            found.append(
                LintWarning(
                    "duplicate-peer",
                    f"{_peer_label(cfg, i)} has the same public key as {_peer_label(cfg, j)}",
                    cfg.section_line(i + 1),
                    Fix("merge the two [Peer] sections", replace(cfg, peers=tuple(peers))),
                    explanation="`wg` treats them as one peer and keeps only the last section's AllowedIPs.",
                )
            )
        else:
            first_index[p.public_key] = i
        if own_public_key is not None and p.public_key == own_public_key:
            found.append(
                LintWarning(
                    "peer-is-self",
                    f"{_peer_label(cfg, i)} has this tunnel's own public key",
                    cfg.line_of("PublicKey", i + 1),
                    Fix(
                        "remove this peer",
                        replace(cfg, peers=tuple(q for k, q in enumerate(cfg.peers) if k != i)),
                    ),
                    explanation=(
                        "A tunnel cannot talk to itself. The PublicKey of a peer must be the *other* side's "
                        "public key; this usually means the keys were pasted the wrong way round."
                    ),
                )
            )
    client = cfg.interface.listen_port is None
    for i, p in enumerate(cfg.peers):
        if client and p.endpoint is not None and not p.persistent_keepalive:
            found.append(
                LintWarning(
                    "no-keepalive",
                    f"{_peer_label(cfg, i)} has an endpoint but no PersistentKeepalive",
                    cfg.section_line(i + 1),
                    Fix(
                        f"set PersistentKeepalive = {DEFAULT_KEEPALIVE}",
                        _with_peer(cfg, i, replace(p, persistent_keepalive=DEFAULT_KEEPALIVE)),
                    ),
                    Severity.INFO,
                    explanation=(
                        "Behind NAT or a stateful firewall the server cannot reach you after a quiet minute "
                        "or two; a keepalive every 25 seconds keeps the path open. Not needed if you only "
                        "ever send first."
                    ),
                )
            )
    return found


def _merge(first: Peer, later: Peer) -> Peer:
    allowed = list(dict.fromkeys([*first.allowed_ips, *later.allowed_ips]))
    return Peer(
        public_key=first.public_key,
        preshared_key=later.preshared_key or first.preshared_key,
        allowed_ips=tuple(allowed),
        endpoint=later.endpoint or first.endpoint,
        persistent_keepalive=(
            later.persistent_keepalive
            if later.persistent_keepalive is not None
            else first.persistent_keepalive
        ),
    )


def _interface_checks(cfg: Config, platform: str) -> list[LintWarning]:
    found: list[LintWarning] = []
    i = cfg.interface
    hooks = i.hooks
    if hooks:
        first = min((line for key in hooks if (line := cfg.line_of(key, 0)) is not None), default=None)
        found.append(
            LintWarning(
                "hooks",
                f"{', '.join(hooks)} commands are kept but wgdesk does not run them",
                first,
                Fix(
                    "remove the hook commands",
                    replace(cfg, interface=replace(i, pre_up=(), post_up=(), pre_down=(), post_down=())),
                ),
                explanation=(
                    "Hooks run arbitrary shell commands as root. wgdesk runs them only if an administrator "
                    "sets `allow_scripts = true` in /etc/wgdesk/helper.toml; otherwise the tunnel comes up "
                    "without them."
                ),
            )
        )
    ignored: list[tuple[str, Interface, str]] = []
    if i.save_config:
        ignored.append(
            ("SaveConfig", replace(i, save_config=False), "wgdesk never writes a running tunnel back")
        )
    if platform in ("darwin", "win32") and i.fwmark is not None:
        ignored.append(("FwMark", replace(i, fwmark=None), f"firewall marks do not exist on {_os(platform)}"))
    if platform == "win32" and i.table is not None and i.table != "off":
        ignored.append(("Table", replace(i, table=None), "routing tables are a Linux feature"))
    for key, fixed, why in ignored:
        found.append(
            LintWarning(
                "ignored-key",
                f"{key} is ignored here: {why}",
                cfg.line_of(key, 0),
                Fix(f"remove {key}", replace(cfg, interface=fixed)),
                Severity.INFO,
                explanation="The setting has no effect; removing it changes nothing.",
            )
        )
    return found


def _os(platform: str) -> str:
    return {"darwin": "macOS", "win32": "Windows"}.get(platform, platform)


def lint(
    cfg: Config,
    *,
    own_public_key: str | None = None,
    other_tunnels: Mapping[str, Config] | None = None,
    local_networks: Sequence[IPNetwork] = (),
    file_mode: int | None = None,
    platform: str = "linux",
) -> list[LintWarning]:
    """All findings for `cfg`, in a stable order (leaks first, then conflicts, then style).

    Args:
        cfg: a parsed configuration (line numbers come from `cfg.lines`).
        own_public_key: the public key of `cfg.interface.private_key`, if the caller can derive it
            (this package does no cryptography); enables `peer-is-self`.
        other_tunnels: other tunnels by name, for `overlap-tunnel`.
        local_networks: networks of the local interfaces, for `overlap-lan`.
        file_mode: `st_mode` of the source file, for `world-readable`.
        platform: `linux`, `darwin` or `win32` (`wgdesk.platforms.system()`), for `ignored-key`.
    """
    found = _leaks(cfg)
    found += _overlaps(cfg, other_tunnels or {}, local_networks)
    found += _written_forms(cfg)
    found += _peers(cfg, own_public_key)
    found += _interface_checks(cfg, platform)
    if file_mode is not None and file_mode & 0o007:
        found.append(
            LintWarning(
                "world-readable",
                f"the file is accessible to all users (mode {file_mode & 0o777:o})",
                None,
                Fix("chmod 600 the file", None),
                explanation="Anyone on this computer can read the private key and impersonate you.",
            )
        )
    return found
