"""`wgdesk.config.routing.explain`: which tunnel and peer carry a packet, as the helper routes."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wgdesk.config import Config, Interface, Peer
from wgdesk.config.routing import explain, explain_status, would_be_full_tunnel
from wgdesk.snapshots import TunnelSnapshot

A = "GS0v7jt5I//6d0J95VmF+w4czLnO5PaAHC3SCPiFbUk="
B = "2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y="
C = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
LAN = [ip_network("192.168.1.0/24"), ip_network("fd77::/64")]


def cfg(*peers: tuple[str, str], table: str | None = None) -> Config:
    return Config(
        interface=Interface(table=table),
        peers=tuple(
            Peer(key, allowed_ips=tuple(ip_network(n.strip()) for n in nets.split(",") if n.strip()))
            for key, nets in peers
        ),
    )


FULL = cfg((A, "0.0.0.0/0, ::/0"))
FULL4 = cfg((A, "0.0.0.0/0"))
OFFICE = cfg((B, "10.0.0.0/8, fd00:1::/48"), (C, "10.1.0.0/16"))


def where(addr: str, tunnels: dict[str, Config], active: dict[str, bool], **kw: object):  # type: ignore[no-untyped-def]
    return explain(ip_address(addr), tunnels, active, LAN, **kw)  # type: ignore[arg-type]


def test_split_tunnel_picks_the_most_specific_peer() -> None:
    e = where("10.1.2.3", {"office": OFFICE}, {"office": False})
    assert e.carrier is not None
    assert (e.carrier.tunnel, e.carrier.peer, str(e.carrier.allowed_ip)) == ("office", C, "10.1.0.0/16")
    assert e.carrier.table == "main" and str(e.carrier.route) == "10.1.0.0/16"
    e = where("10.9.0.1", {"office": OFFICE}, {"office": False})
    assert e.carrier is not None and (e.carrier.peer, str(e.carrier.allowed_ip)) == (B, "10.0.0.0/8")
    assert e.lines()[:2] == [
        "10.9.0.1",
        f"  wgdesk's rules say: tunnel office, peer {B} (AllowedIPs 10.0.0.0/8)",
    ]
    e = where("8.8.8.8", {"office": OFFICE}, {"office": False})
    assert e.carrier is None and e.blocked is None
    assert e.verdict == "not through any tunnel (straight out)"


def test_full_tunnel_takes_the_rest_but_not_the_lan_nor_a_split_tunnel() -> None:
    tunnels = {"home": FULL, "office": OFFICE}
    active = {"home": True, "office": False}
    e = where("8.8.8.8", tunnels, active, fwmarks={"home": 51820})
    assert e.carrier is not None and (e.carrier.tunnel, e.carrier.table) == ("home", "51820")
    assert str(e.carrier.allowed_ip) == "0.0.0.0/0"
    # the LAN's route is more specific than the default: suppress_prefixlength 0 lets it win
    e = where("192.168.1.7", tunnels, active)
    assert e.carrier is None and "local network 192.168.1.0/24" in e.reason
    assert "suppress_prefixlength 0" in e.reason
    # the split tunnel's main-table route beats the full tunnel's default route too
    e = where("10.1.2.3", tunnels, active)
    assert e.carrier is not None and (e.carrier.tunnel, e.carrier.peer) == ("office", C)
    # a full tunnel whose user turned "full" off routes no default at all
    e = where("8.8.8.8", {"home": FULL}, {"home": False})
    assert e.carrier is None


def test_a_more_specific_split_route_beats_the_lan_and_the_lan_beats_a_wider_one() -> None:
    inside = cfg((B, "192.168.1.128/25"))
    e = where("192.168.1.200", {"t": inside}, {"t": False})
    assert e.carrier is not None and e.carrier.tunnel == "t"
    wide = cfg((B, "192.168.0.0/16"))
    e = where("192.168.1.200", {"t": wide}, {"t": False})
    assert e.carrier is None and "local network" in e.reason
    e = where("192.168.2.1", {"t": wide}, {"t": False})
    assert e.carrier is not None and e.carrier.tunnel == "t"


def test_overlapping_tunnels_longest_prefix_across_tunnels() -> None:
    wide, narrow = cfg((B, "10.0.0.0/8")), cfg((C, "10.20.0.0/16"))
    tunnels = {"wide": wide, "narrow": narrow}
    e = where("10.20.1.1", tunnels, {"wide": False, "narrow": False})
    assert e.carrier is not None and e.carrier.tunnel == "narrow"
    e = where("10.21.1.1", tunnels, {"wide": False, "narrow": False})
    assert e.carrier is not None and e.carrier.tunnel == "wide"


def test_ipv6_and_an_ipv4_only_full_tunnel_blocks_ipv6() -> None:
    tunnels = {"home": FULL, "office": OFFICE}
    e = where("2001:db8::1", tunnels, {"home": True})
    assert e.carrier is not None and str(e.carrier.allowed_ip) == "::/0"
    e = where("fd00:1::5", tunnels, {"home": True, "office": False})
    assert e.carrier is not None and (e.carrier.tunnel, str(e.carrier.route)) == ("office", "fd00:1::/48")
    e = where("2001:db8::1", {"home": FULL4}, {"home": True})
    assert e.carrier is None and e.blocked is not None and "IPv4 only" in e.blocked
    e = where("fe80::1", {"home": FULL4}, {"home": True})
    assert e.blocked is None  # link-local (neighbour discovery) passes
    e = where("2001:db8::1", {"home": FULL4}, {})
    assert e.blocked is None


def test_a_down_tunnel_is_named_with_what_would_happen() -> None:
    tunnels = {"home": FULL, "office": OFFICE}
    e = where("10.1.2.3", tunnels, {})
    assert e.carrier is None
    assert [(c.tunnel, c.peer) for c in e.if_up] == [("home", A), ("office", C)]
    assert f"  if office were up: tunnel office, peer {C} (AllowedIPs 10.1.0.0/16)" in e.lines()
    # the user has full tunnel off for home: it would not carry 8.8.8.8
    e = where("8.8.8.8", tunnels, {}, preferences={"home": False})
    assert e.if_up == ()
    # a second full tunnel cannot come up next to a running one
    other = cfg((B, "0.0.0.0/0"))
    e = where("8.8.8.8", {"home": FULL, "other": other}, {"home": True})
    assert e.if_up == () and any("only one can be up" in n for n in e.notes)


def test_loopback_is_this_machine_even_under_a_full_tunnel() -> None:
    for addr in ("127.0.0.1", "::1"):
        e = where(addr, {"home": FULL}, {"home": True}, kill_switch=["home"])
        assert e.carrier is None and e.blocked is None and "loopback" in e.reason


def test_kill_switch_blocks_what_goes_straight_out() -> None:
    e = where("8.8.8.8", {"office": OFFICE}, {"office": False}, kill_switch=["office"])
    assert e.carrier is None and e.blocked is not None and "kill switch of office" in e.blocked
    e = where("10.1.2.3", {"office": OFFICE}, {"office": False}, kill_switch=["office"])
    assert e.blocked is None


def test_table_off_and_custom_tables_route_nothing_wgdesk_consults() -> None:
    off = cfg((B, "10.0.0.0/8"), table="off")
    assert where("10.1.1.1", {"t": off}, {"t": False}).carrier is None
    custom = cfg((B, "10.0.0.0/8"), table="1234")
    e = where("10.1.1.1", {"t": custom}, {"t": False})
    assert e.carrier is None and any("table 1234" in n for n in e.notes)
    main = cfg((B, "0.0.0.0/0"), table="main")
    assert not would_be_full_tunnel(main)
    e = where("8.8.8.8", {"t": main}, {"t": False})
    assert e.carrier is not None and str(e.carrier.route) == "0.0.0.0/0"
    # a default route in the main table is what suppress_prefixlength 0 skips: the full tunnel wins
    e = where("8.8.8.8", {"t": main, "home": FULL}, {"t": False, "home": True})
    assert e.carrier is not None and e.carrier.tunnel == "home"


def test_repeated_peer_and_shared_prefix_follow_the_engine() -> None:
    # a repeated [Peer] replaces its AllowedIPs: 10.0.0.0/8 is still routed but no peer holds it
    repeated = cfg((B, "10.0.0.0/8"), (B, "10.5.0.0/16"))
    e = where("10.9.9.9", {"t": repeated}, {"t": False})
    assert e.carrier is not None and e.carrier.peer is None
    assert "no peer's AllowedIPs contain it" in e.verdict
    # the same prefix given to two peers belongs to the later one
    shared = cfg((B, "10.0.0.0/8"), (C, "10.0.0.0/8"))
    e = where("10.9.9.9", {"t": shared}, {"t": False})
    assert e.carrier is not None and e.carrier.peer == C


def test_from_the_helper_status_live_peers_and_unstored_tunnels() -> None:
    status: list[dict[str, Any]] = [
        {
            "name": "office",
            "state": "up",
            "full_tunnel": False,
            "kill_switch": False,
            "fwmark": 51821,
            # the engine's AllowedIPs differ from the stored config: the live ones count
            "peers": [{"public_key": B, "allowed_ips": ["10.0.0.0/8"]}, {"public_key": C, "allowed_ips": []}],
        },
        {
            "name": "adhoc",  # brought up from a file, not stored
            "state": "up",
            "full_tunnel": True,
            "kill_switch": True,
            "fwmark": 51822,
            "peers": [{"public_key": A, "allowed_ips": ["0.0.0.0/0", "bogus"]}],
        },
        {"name": "home", "state": "down", "full_tunnel": False, "peers": []},
    ]
    stored = {"office": OFFICE, "home": FULL}
    snapshots = [TunnelSnapshot.from_wire({"interface": t["name"]} | t) for t in status]
    e = explain_status(ip_address("10.1.2.3"), stored, snapshots, LAN)
    assert e.carrier is not None and (e.carrier.tunnel, e.carrier.peer) == ("office", B)
    e = explain_status(ip_address("8.8.8.8"), stored, snapshots, LAN)
    assert e.carrier is not None and (e.carrier.tunnel, e.carrier.table) == ("adhoc", "51822")
    assert e.running == {"office", "adhoc"}
    # home would be a second full tunnel: it cannot come up, and the note says why
    assert e.if_up == () and any("adhoc is a full tunnel" in n for n in e.notes)
    # no helper: everything is down
    e = explain_status(ip_address("10.1.2.3"), stored, [], LAN)
    assert e.carrier is None and [c.tunnel for c in e.if_up] == ["office", "home"]


def test_kernel_answer_is_shown_and_a_disagreement_noted() -> None:
    e = where("10.1.2.3", {"office": OFFICE}, {"office": False})
    agree = e.lines({"dev": "office", "source": "10.66.0.2"}, kernel_checked=True)
    assert "  the kernel routes it via: office (from 10.66.0.2)" in agree
    assert not any("disagrees" in line for line in agree)
    differ = e.lines({"dev": "eth0", "gateway": "192.0.2.1"}, kernel_checked=True)
    assert "  the kernel routes it via: eth0 (gateway 192.0.2.1)" in differ
    assert any("disagrees" in line for line in differ)
    assert "  the kernel routes it via: no route (or this system cannot tell)" in e.lines(None, True)
    out = where("8.8.8.8", {"office": OFFICE}, {"office": False})
    assert any("disagrees" in line for line in out.lines({"dev": "office"}, kernel_checked=True))
    assert not any("kernel" in line for line in out.lines())


# --- property: against a brute-force oracle ----------------------------------------------------------

KEYS = (A, B, C)


def oracle(
    addr: IPv4Address, tunnels: dict[str, Config], active: dict[str, bool], local: list[IPv4Network]
) -> tuple[str | None, str | None]:
    """(tunnel, peer) by enumerating every route and rule, written without the module's helpers."""
    rows: list[tuple[str, int, str | None]] = []  # (table, prefixlen, tunnel) of routes containing addr
    full = None
    for name, up_full in active.items():
        c = tunnels[name]
        mode = (c.interface.table or "auto").lower()
        for p in c.peers:
            for n in p.allowed_ips:
                if addr not in n:
                    continue
                if mode == "main" or (mode == "auto" and n.prefixlen > 0):
                    rows.append(("main", n.prefixlen, name))
                elif mode == "auto" and up_full:
                    rows.append(("full", 0, name))
        if up_full and mode == "auto" and any(n.prefixlen == 0 for p in c.peers for n in p.allowed_ips):
            full = name
    rows += [("main", n.prefixlen, None) for n in local if addr in n]
    rules = [("main", 1), ("full", 0), ("main", 0)] if full else [("main", 0)]
    winner: str | None = None
    for table, min_len in rules:
        found = [r for r in rows if r[0] == table and r[1] >= min_len]
        if found:
            top = max(r[1] for r in found)
            winner = next(r for r in found if r[1] == top)[2]
            break
    if winner is None:
        return None, None
    owner: dict[IPv4Network, str] = {}
    for p in tunnels[winner].peers:
        for n in [n for n, k in owner.items() if k == p.public_key]:
            del owner[n]
        for n in p.allowed_ips:
            owner[n] = p.public_key  # type: ignore[index]
    held = [(n.prefixlen, k) for n, k in owner.items() if addr in n]
    return winner, (max(held)[1] if held else None)


nets = st.builds(
    lambda a, n: ip_network((0x0A000000 | a, n), strict=False),
    st.integers(0, 15),
    st.sampled_from([0, 8, 28, 29, 30, 31, 32]),
)
peers = st.tuples(st.sampled_from(KEYS), st.lists(nets, max_size=3))
configs = st.builds(
    lambda ps, table: Config(
        interface=Interface(table=table), peers=tuple(Peer(k, allowed_ips=tuple(ns)) for k, ns in ps)
    ),
    st.lists(peers, min_size=1, max_size=3),
    st.sampled_from([None, None, "off", "main"]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["t1", "t2", "t3"]), configs, min_size=1),
    st.data(),
    st.lists(nets.filter(lambda n: n.prefixlen > 0), max_size=2),
    st.integers(0, 15),
)
def test_matches_a_brute_force_oracle(
    tunnels: dict[str, Config], data: st.DataObject, local: list[IPv4Network], host: int
) -> None:
    names = sorted(tunnels)
    up = data.draw(st.lists(st.sampled_from(names), unique=True))
    # as the helper allows: at most one full tunnel
    fulls = [n for n in up if would_be_full_tunnel(tunnels[n])]
    active = {n: n == (fulls[0] if fulls else None) for n in up}
    addr = IPv4Address(0x0A000000 | host)
    e = explain(addr, tunnels, active, local)
    got = (e.carrier.tunnel, e.carrier.peer) if e.carrier else (None, None)
    assert got == oracle(addr, tunnels, active, local)
