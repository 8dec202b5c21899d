"""What the generated pf anchors do with packets (`tests.darwin.pfmodel`: pf's first-quick-match
order over the rule forms the backend writes). The rulesets themselves are golden in
``golden/bringup.txt``; this checks the claims made for them: the kill switch, DNS outside the tunnel,
the LAN, the engine's UDP both ways, the CVE-2019-14899 guard, the family a tunnel does not carry, the
failsafe."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.darwin.pfmodel import Packet, verdict
from wgdesk.platforms.darwin import DarwinPlatform, pf
from wgdesk.platforms.interface import FullTunnel, KillSwitch, KillSwitchMember, PlatformOptions

KILL = KillSwitch(members=(KillSwitchMember("office", "utun7", 0, 51820),), lan=("192.168.1.0/24",))
GUARDED = FullTunnel("utun7", 0, ("10.8.0.2/32", "fd00:8::2/128"), frozenset({4, 6}))
V4_ONLY = FullTunnel("utun7", 0, ("10.8.0.2/32",), frozenset({4}))


def anchors(*, guard: FullTunnel | None = GUARDED, kill: KillSwitch | None = KILL) -> dict[str, str]:
    found = {}
    if guard is not None:
        found[pf.GUARD + guard.ifname] = pf.guard_rules(guard)
    if kill is not None:
        found[pf.KILL_SWITCH] = pf.kill_switch_rules(kill)
    return found


CASES = [
    # (packet, verdict, why)
    (Packet("out", "utun7", "tcp", "10.8.0.2", "93.184.216.34", 50000, 443), "pass", "through the tunnel"),
    (Packet("out", "en0", "tcp", "192.168.1.23", "93.184.216.34", 50000, 443), "block", "around the tunnel"),
    (Packet("out", "en0", "udp", "192.168.1.23", "203.0.113.5", 51820, 51820), "pass", "the engine's UDP"),
    (Packet("in", "en0", "udp", "203.0.113.5", "192.168.1.23", 51820, 51820), "pass", "a peer initiates"),
    (
        Packet("out", "en0", "udp", "192.168.1.23", "192.168.1.1", 5353, 53),
        "block",
        "DNS to the LAN resolver",
    ),
    (Packet("out", "en0", "tcp", "192.168.1.23", "192.168.1.1", 50000, 53), "block", "DNS over TCP too"),
    (Packet("out", "utun7", "udp", "10.8.0.2", "10.8.0.1", 5353, 53), "pass", "DNS through the tunnel"),
    (Packet("out", "en0", "tcp", "192.168.1.23", "192.168.1.50", 50000, 445), "pass", "the LAN"),
    (Packet("in", "en0", "tcp", "192.168.1.50", "192.168.1.23", 50000, 22), "pass", "from the LAN"),
    (Packet("out", "en0", "udp", "0.0.0.0", "255.255.255.255", 68, 67), "pass", "DHCP"),
    (Packet("out", "en0", "icmp6", "fe80::1c2f", "ff02::1:ff00:1"), "pass", "neighbour discovery"),
    (Packet("out", "lo0", "tcp", "127.0.0.1", "127.0.0.1", 50000, 8080), "pass", "loopback"),
    (
        Packet("in", "en0", "tcp", "192.168.1.50", "10.8.0.2", 50000, 22),
        "block",
        "CVE-2019-14899: LAN to tunnel address",
    ),
    (Packet("in", "en0", "tcp", "2001:db8::50", "fd00:8::2", 50000, 22), "block", "the same over IPv6"),
    (
        Packet("in", "lo0", "tcp", "10.8.0.2", "10.8.0.2", 50000, 22),
        "pass",
        "the Mac to its own tunnel address",
    ),
    (Packet("in", "utun7", "tcp", "10.8.0.1", "10.8.0.2", 50000, 22), "pass", "the peer through the tunnel"),
]


@pytest.mark.parametrize(("packet", "expected", "why"), CASES, ids=[c[2] for c in CASES])
def test_kill_switch_and_guard(packet: Packet, expected: str, why: str) -> None:
    assert verdict(anchors(), packet) == expected, why


def test_without_the_lan_option_the_lan_is_blocked() -> None:
    no_lan = KillSwitch(members=KILL.members)
    packet = Packet("out", "en0", "tcp", "192.168.1.23", "192.168.1.50", 50000, 445)
    assert verdict(anchors(kill=no_lan), packet) == "block"


def test_guard_alone_leaves_other_traffic_alone() -> None:
    """A full tunnel without kill switch: only the guard (pf's default for the rest is pass)."""
    assert (
        verdict(anchors(kill=None), Packet("out", "en0", "tcp", "192.168.1.23", "1.1.1.1", 5, 443)) == "pass"
    )
    assert (
        verdict(anchors(kill=None), Packet("in", "en0", "tcp", "192.168.1.50", "10.8.0.2", 5, 22)) == "block"
    )


def test_a_family_the_tunnel_does_not_carry_does_not_leak() -> None:
    guard = anchors(guard=V4_ONLY, kill=None)
    assert verdict(guard, Packet("out", "en0", "tcp", "2001:db8::23", "2606:4700::1", 5, 443)) == "block"
    assert verdict(guard, Packet("out", "lo0", "tcp", "::1", "::1", 5, 443)) == "pass"
    assert verdict(guard, Packet("out", "en0", "tcp", "192.168.1.23", "1.1.1.1", 5, 443)) == "pass"


def test_failsafe_blocks_all_but_loopback() -> None:
    failsafe = {pf.FAILSAFE: pf.FAILSAFE_RULES}
    assert verdict(failsafe, Packet("out", "en0", "udp", "0.0.0.0", "255.255.255.255", 68, 67)) == "block"
    assert verdict(failsafe, Packet("out", "utun7", "tcp", "10.8.0.2", "1.1.1.1", 5, 443)) == "block"
    assert verdict(failsafe, Packet("out", "lo0", "tcp", "127.0.0.1", "127.0.0.1", 5, 80)) == "pass"


ENGINE_UID = 250
"""The uid of the account that created the engine's sockets (`socketowner`)."""
ENGINE_PORT = 51820


def owned(port: int) -> int | None:
    return ENGINE_UID if port == ENGINE_PORT else None


def test_the_engines_udp_is_matched_by_port_and_user_when_its_owner_is_known() -> None:
    rules = pf.kill_switch_rules(KILL, owned)
    assert f"pass out quick proto udp from any port {ENGINE_PORT} to any user {ENGINE_UID}\n" in rules
    assert f"pass in quick proto udp from any to any port {ENGINE_PORT} user {ENGINE_UID}\n" in rules
    kill = {pf.KILL_SWITCH: rules}
    out = Packet("out", "en0", "udp", "192.168.1.23", "203.0.113.5", ENGINE_PORT, 51820, owner=ENGINE_UID)
    back = Packet("in", "en0", "udp", "203.0.113.5", "192.168.1.23", 51820, ENGINE_PORT, owner=ENGINE_UID)
    assert verdict(kill, out) == verdict(kill, back) == "pass"
    # the engine killed, its port taken by someone else's process (or root's): not let out
    for uid in (501, 0):
        assert (
            verdict(
                kill,
                Packet("out", "en0", "udp", "192.168.1.23", "203.0.113.5", ENGINE_PORT, 51820, owner=uid),
            )
            == "block"
        )


def test_with_root_made_sockets_the_port_alone_decides() -> None:
    """The fallback (`socketowner`: sockets the helper had to make itself): no ``user`` — it would
    say root — so any process on the engine's port gets out. This is what matching by user fixes."""
    rules = pf.kill_switch_rules(KILL, lambda port: 0)
    assert " user " not in rules
    intruder = Packet("out", "en0", "udp", "192.168.1.23", "203.0.113.5", ENGINE_PORT, 51820, owner=501)
    assert verdict({pf.KILL_SWITCH: rules}, intruder) == "pass"


def test_the_backend_wires_the_socket_owner_record_into_the_kill_switch(tmp_path: Path) -> None:
    """What `DarwinEngineHost.bind_udp` records is what `PfFirewall` asks: one file, one format."""
    platform = DarwinPlatform(PlatformOptions(state_dir=tmp_path), boot_rules=None)
    platform.engine.owners.set(ENGINE_PORT, ENGINE_UID)
    assert platform.firewall.owner(ENGINE_PORT) == ENGINE_UID
    assert platform.firewall.owner(ENGINE_PORT + 1) is None
    assert DarwinPlatform().firewall.boot_rules == pf.BOOT_RULES
