"""`wgdesk.helper.conflicts`: the rules between tunnels of different owners, and the range search
behind them checked against a brute-force oracle."""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network, ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wgdesk.helper import conflicts
from wgdesk.helper.conflicts import Conflict, Footprint, Ranges, first_overlap

Network = IPv4Network | IPv6Network


@st.composite
def networks(draw: st.DrawFn) -> Network:
    if draw(st.booleans()):
        prefix = draw(st.integers(0, 32))
        return IPv4Network((draw(st.integers(0, 2**32 - 1)), prefix), strict=False)
    prefix = draw(st.integers(0, 128))
    return IPv6Network((draw(st.integers(0, 2**128 - 1)), prefix), strict=False)


@settings(max_examples=500)
@given(st.lists(networks(), max_size=30), st.lists(networks(), max_size=30))
def test_first_overlap_agrees_with_comparing_every_pair(ours: list[Network], theirs: list[Network]) -> None:
    found = first_overlap(ours, theirs)
    expected = [(a, b) for a in ours for b in theirs if a.version == b.version and a.overlaps(b)]
    if not expected:
        assert found is None
    else:
        assert found is not None and found[0].overlaps(found[1]) and found[0] == expected[0][0]


def test_ranges_merge_nested_and_adjacent_networks() -> None:
    r = Ranges([ip_network("10.0.0.0/8"), ip_network("10.1.0.0/16"), ip_network("11.0.0.0/8")])
    assert r.overlaps(ip_network("11.255.255.255/32")) and r.overlaps(ip_network("8.0.0.0/5"))
    assert not r.overlaps(ip_network("12.0.0.0/8")) and not r.overlaps(ip_network("::/0"))


def net(*texts: str) -> tuple[Network, ...]:
    return tuple(ip_network(t) for t in texts)


FULL = Footprint(
    "full", 1000, routes=net("0.0.0.0/0"), tables=frozenset({"51820"}), marks=frozenset({51820}), full=True
)


@pytest.mark.parametrize(
    ("attempt", "message"),
    [
        (Footprint("x", 1001, routes=net("0.0.0.0/1", "128.0.0.0/1")), "route 0.0.0.0/1 would take traffic"),
        (Footprint("x", 1001, addresses=net("203.0.113.9/32")), "address 203.0.113.9/32 would take traffic"),
        (Footprint("x", 1001, tables=frozenset({"51820"})), "routing table or firewall mark 51820"),
        (Footprint("x", 1001, marks=frozenset({51820})), "routing table or firewall mark 51820"),
        (Footprint("x", 1001, routes=net("::/0"), full=True), "already a full tunnel"),
    ],
)
def test_another_owner_may_take_nothing_of_a_full_tunnel(attempt: Footprint, message: str) -> None:
    with pytest.raises(Conflict, match=message):
        conflicts.check(attempt, [FULL])


def test_what_another_owner_may_do_and_the_older_rules_for_one_owner() -> None:
    conflicts.check(Footprint("x", 1001, routes=net("fd00::/64"), addresses=net("fd00::2/128")), [FULL])
    # one owner: a split tunnel under their own full tunnel, an address inside it
    conflicts.check(Footprint("x", 1000, routes=net("10.0.0.0/8"), addresses=net("10.0.0.2/32")), [FULL])
    split = Footprint("s", 1000, routes=net("10.0.0.0/8"), dns=net("10.0.0.53/32"), sets_dns=True)
    with pytest.raises(
        Conflict, match=re.escape("10.1.0.0/16 overlaps 10.0.0.0/8, which tunnel s already routes")
    ):
        conflicts.check(Footprint("x", 1000, routes=net("10.1.0.0/16")), [split])
    with pytest.raises(Conflict, match="sets this computer's DNS servers"):
        conflicts.check(Footprint("x", 1001, sets_dns=True), [split])
    conflicts.check(Footprint("x", 1000, sets_dns=True), [split])  # the same owner (the backend decides)
    endpoint = Footprint("e", 1000, endpoints=net("198.51.100.1/32"))
    with pytest.raises(Conflict, match=re.escape("198.51.100.0/24")):
        conflicts.check(Footprint("x", 1001, routes=net("198.51.100.0/24")), [endpoint])
    include = Footprint("i", 1000, include_families=frozenset({4}))
    with pytest.raises(Conflict, match="apps started with `wgdeskctl include`"):
        conflicts.check(Footprint("x", 1001, routes=net("0.0.0.0/0"), full=True), [include])


def test_a_member_may_use_only_a_free_numbered_table() -> None:
    used = {"100"}
    mine = [Footprint("m", 1000, tables=frozenset({"200"}))]

    def in_use(number: str) -> bool:
        return number in used or number == "200"

    for table, why in (
        ("local", "the kernel's local table"),
        ("255", "the kernel's local table"),
        ("default", "the kernel's default table"),
        ("vpn", "use a table number"),
        ("100", "table 100 is already used on this computer"),
    ):
        refusal = conflicts.system_table_refusal(table, in_use, mine)
        assert refusal is not None and why in refusal, (table, refusal)
    for table in ("auto", "off", "main", "254", "300", "200"):
        assert conflicts.system_table_refusal(table, in_use, mine) is None, table


def test_address_networks_are_the_host_and_the_connected_prefix() -> None:
    assert conflicts.address_networks(["10.0.0.2/24", "fd00::2/128"]) == net(
        "10.0.0.2/32", "10.0.0.0/24", "fd00::2/128"
    )
