"""The AllowedIPs calculator: exact known cases, a property test against a bit-level oracle, the private
ranges preset, input errors, and rewriting one peer's AllowedIPs in config text."""

from __future__ import annotations

from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    collapse_addresses,
    ip_address,
    ip_network,
)
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wgdesk.config import ConfigError, parse
from wgdesk.config.calculator import (
    PRIVATE_LAN_RANGES,
    allowed_ips,
    parse_networks,
    private_ranges,
    with_allowed_ips,
)
from wgdesk.config.model import IPAddress, IPNetwork


def strs(networks: list[IPNetwork]) -> list[str]:
    return [str(n) for n in networks]


# --- known cases ----------------------------------------------------------------------------------

# 10.0.0.0/8 is 00001010 in its first octet. Everything else is, for each of those 8 bits, the block that
# agrees with 10 on the bits before it and differs in it: /1 128.0.0.0 (1xxxxxxx), /2 64 (01), /3 32 (001),
# /4 16 (0001), /5 0 (00000), /6 12 (000011), /7 8 (0000100), /8 11 (00001011).
ALL_BUT_10 = [
    "0.0.0.0/5",
    "8.0.0.0/7",
    "11.0.0.0/8",
    "12.0.0.0/6",
    "16.0.0.0/4",
    "32.0.0.0/3",
    "64.0.0.0/2",
    "128.0.0.0/1",
]

ALL_BUT_10_0_0_7 = [
    "10.0.0.0/30",
    "10.0.0.4/31",
    "10.0.0.6/32",
    "10.0.0.8/29",
    "10.0.0.16/28",
    "10.0.0.32/27",
    "10.0.0.64/26",
    "10.0.0.128/25",
]

# ::/1 minus the documentation prefix 2001:db8::/32 (0010 0000 0000 0001 : 0000 1101 1011 1000)
LOWER_HALF_BUT_DOC = [
    "::/3",
    "2000::/16",
    "2001::/21",
    "2001:800::/22",
    "2001:c00::/24",
    "2001:d00::/25",
    "2001:d80::/27",
    "2001:da0::/28",
    "2001:db0::/29",
    "2001:db9::/32",
    "2001:dba::/31",
    "2001:dbc::/30",
    "2001:dc0::/26",
    "2001:e00::/23",
    "2001:1000::/20",
    "2001:2000::/19",
    "2001:4000::/18",
    "2001:8000::/17",
    "2002::/15",
    "2004::/14",
    "2008::/13",
    "2010::/12",
    "2020::/11",
    "2040::/10",
    "2080::/9",
    "2100::/8",
    "2200::/7",
    "2400::/6",
    "2800::/5",
    "3000::/4",
    "4000::/2",
]

KNOWN = [
    (["0.0.0.0/0"], ["10.0.0.0/8"], ALL_BUT_10),
    (["0.0.0.0/0"], [], ["0.0.0.0/0"]),
    (["0.0.0.0/0"], ["0.0.0.0/0"], []),
    (["10.0.0.0/24"], ["10.0.0.0/25"], ["10.0.0.128/25"]),
    (["10.0.0.0/24"], ["10.0.0.7"], ALL_BUT_10_0_0_7),
    # includes are merged and sorted; an exclude outside every include changes nothing
    (["10.0.1.0/24", "10.0.0.0/24"], ["192.168.0.0/16"], ["10.0.0.0/23"]),
    # an exclude of the other family is ignored; IPv4 comes first
    (["::/0", "0.0.0.0/0"], ["10.0.0.0/8"], [*ALL_BUT_10, "::/0"]),
    (["::/0"], ["::/1"], ["8000::/1"]),
    (["::/0"], ["2001:db8::/32", "8000::/1"], LOWER_HALF_BUT_DOC),
    # exclusions that overlap each other
    (["192.168.0.0/16"], ["192.168.0.0/17", "192.168.0.0/24", "192.168.128.0/17"], []),
]


@pytest.mark.parametrize(("include", "exclude", "expected"), KNOWN)
def test_known_differences(include: list[str], exclude: list[str], expected: list[str]) -> None:
    assert strs(allowed_ips(include, exclude)) == expected


def test_all_but_private_ranges_leaves_exactly_the_other_addresses() -> None:
    result = allowed_ips(["0.0.0.0/0", "::/0"], PRIVATE_LAN_RANGES)
    v4 = [n for n in result if n.version == 4]
    v6 = [n for n in result if n.version == 6]
    private = private_ranges()
    private4 = sum(n.num_addresses for n in private if n.version == 4)
    private6 = sum(n.num_addresses for n in private if n.version == 6)
    assert sum(n.num_addresses for n in v4) == 2**32 - private4
    assert sum(n.num_addresses for n in v6) == 2**128 - private6
    for address in ("192.168.1.1", "10.1.2.3", "172.31.255.255", "169.254.0.1", "fe80::1", "fd12::1"):
        assert not any(ip_address(address) in n for n in result), address
    for address in ("172.32.0.0", "172.15.255.255", "192.169.0.0", "8.8.8.8", "100.64.0.1", "2001:db8::1"):
        assert any(ip_address(address) in n for n in result), address
    everything = [ip_network("0.0.0.0/0"), ip_network("::/0")]
    check(everything, private, result, breakpoints([*everything, *private, *result]))


def test_private_ranges_are_the_local_networks() -> None:
    assert strs(private_ranges()) == list(PRIVATE_LAN_RANGES)
    for n in private_ranges():
        assert n.is_private and not n.is_global
        assert not n.is_multicast
    assert IPv4Network("100.64.0.0/10") not in private_ranges()  # CGNAT is the ISP's, not the LAN


def test_the_helper_uses_the_same_ranges() -> None:
    from wgdesk.helper import settings as helper_settings

    assert helper_settings.PRIVATE_LAN_RANGES is PRIVATE_LAN_RANGES


# --- input errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("include", "exclude", "message"),
    [
        (
            ["0.0.0.0/0"],
            ["192.168.1.5/24"],
            "exclude: entry `192.168.1.5/24` has host bits set: "
            "the /24 block that holds it is `192.168.1.0/24`",
        ),
        (
            ["10.0.0.1/8"],
            [],
            "include: entry `10.0.0.1/8` has host bits set: the /8 block that holds it is `10.0.0.0/8`",
        ),
        (["0.0.0.0/0"], ["lan"], "exclude: entry `lan` is not an IP address with an optional /prefix"),
        (
            ["0.0.0.0/33"],
            [],
            "include: entry `0.0.0.0/33` has an invalid prefix length (0 to 32 for IPv4)",
        ),
        (
            ["fe80::1%eth0/64"],
            [],
            "include: entry `fe80::1%eth0/64` is not an IP address with an optional /prefix",
        ),
    ],
)
def test_bad_entries_raise_config_error_naming_the_entry(
    include: list[str], exclude: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        allowed_ips(include, exclude)
    assert str(info.value) == message


def test_entries_may_be_pasted_allowed_ips_values() -> None:
    assert strs(parse_networks(["0.0.0.0/0, ::/0", "203.0.113.7 192.0.2.0/24"])) == [
        "0.0.0.0/0",
        "::/0",
        "203.0.113.7/32",
        "192.0.2.0/24",
    ]


# --- property: exactly the difference, disjoint, minimal ------------------------------------------


def member(address: IPAddress, network: IPNetwork) -> bool:
    """Oracle: the address agrees with the network on its first prefixlen bits (plain integers)."""
    if address.version != network.version:
        return False
    shift = address.max_prefixlen - network.prefixlen
    return int(address) >> shift == int(network.network_address) >> shift


def expected_member(address: IPAddress, include: list[IPNetwork], exclude: list[IPNetwork]) -> bool:
    return any(member(address, n) for n in include) and not any(member(address, n) for n in exclude)


def check(
    include: list[IPNetwork], exclude: list[IPNetwork], result: list[IPNetwork], addresses: list[IPAddress]
) -> None:
    for address in addresses:
        assert any(member(address, n) for n in result) == expected_member(address, include, exclude), address
    v4 = [n for n in result if n.version == 4]
    v6 = [n for n in result if n.version == 6]
    assert result == v4 + v6
    for family in (v4, v6):
        for a, b in pairwise(family):
            assert int(a.broadcast_address) < int(b.network_address)  # sorted and disjoint
        assert list(collapse_addresses(family)) == family  # no two blocks merge into one


def breakpoints(networks: list[IPNetwork]) -> list[IPAddress]:
    """Every address where membership in any of `networks` can change: both functions compared by `check`
    are constant between consecutive breakpoints of the inputs and the result, so checking these checks
    every address."""
    points: set[IPAddress] = {IPv4Address(0), IPv6Address(0)}
    for n in networks:
        points.add(n.network_address)
        end = int(n.broadcast_address) + 1
        if end < 2**n.max_prefixlen:
            points.add(ip_address(end) if n.version == 4 else IPv6Address(end))
    return sorted(points, key=lambda a: (a.version, int(a)))


def small(base: str, bits: int) -> st.SearchStrategy[IPNetwork]:
    """Networks inside a 256-address universe at `base`, so every address can be checked."""
    universe = ip_network(base)
    return st.builds(
        lambda offset, prefix: ip_network((int(universe.network_address) + offset, prefix), strict=False),
        st.integers(0, 255),
        st.integers(bits - 8, bits),
    )


SMALL = st.one_of(small("10.1.2.0/24", 32), small("2001:db8::/120", 128))
UNIVERSE: list[IPAddress] = [
    *ip_network("10.1.2.0/24"),
    *ip_network("2001:db8::/120"),
    IPv4Address("10.1.1.255"),
    IPv4Address("10.1.3.0"),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(SMALL, max_size=5), st.lists(SMALL, max_size=6))
def test_small_sets_every_address(include: list[IPNetwork], exclude: list[IPNetwork]) -> None:
    check(include, exclude, allowed_ips(include, exclude), UNIVERSE)


ANY4 = st.builds(
    lambda a, p: IPv4Network((a, p), strict=False), st.integers(0, 2**32 - 1), st.integers(0, 32)
)
ANY6 = st.builds(
    lambda a, p: IPv6Network((a, p), strict=False), st.integers(0, 2**128 - 1), st.integers(0, 128)
)
ANY = st.one_of(ANY4, ANY6)


@settings(max_examples=300, deadline=None)
@given(st.lists(ANY, max_size=5), st.lists(ANY, max_size=6))
def test_any_sets_at_every_breakpoint(include: list[IPNetwork], exclude: list[IPNetwork]) -> None:
    result = allowed_ips(include, exclude)
    check(include, exclude, result, breakpoints([*include, *exclude, *result]))


@pytest.mark.parametrize(
    "wrong",
    [
        ALL_BUT_10[1:],  # a block missing
        [*ALL_BUT_10, "10.0.0.0/32"],  # an excluded address covered
        ["0.0.0.0/6", "4.0.0.0/6", *ALL_BUT_10[1:]],  # right addresses, not minimal
        ["0.0.0.0/5", "0.0.0.0/6", *ALL_BUT_10[1:]],  # overlapping
        [*ALL_BUT_10[1:], "0.0.0.0/5"],  # unsorted
    ],
)
def test_the_check_detects_a_wrong_result(wrong: list[str]) -> None:
    """Positive control for the property tests: wrong answers to 0.0.0.0/0 minus 10.0.0.0/8 fail."""
    include, exclude = [IPv4Network("0.0.0.0/0")], [IPv4Network("10.0.0.0/8")]
    result: list[IPNetwork] = [IPv4Network(n) for n in wrong]
    with pytest.raises(AssertionError):
        check(include, exclude, result, breakpoints([*include, *exclude, *result]))


# --- rewriting one peer's AllowedIPs in config text -----------------------------------------------

K = "2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y="
P1 = "NKODD3gqzjAFl5CBPuaiq+vn5BBAW6d9LN/QYCd2QjQ="
P2 = "qF4zQsjwpWFpbjnIV/kyISxQ1oCwjJfCwjgoyAmwyyw="

TEXT = f"""# office
[Interface]
PrivateKey = {K}
Address = 10.0.0.2/32

[Peer]
PublicKey = {P1}
allowedips=10.0.0.0/24   # the office
Endpoint = 192.0.2.1:51820

[Peer]
# second peer
PublicKey = {P2}
AllowedIPs = 0.0.0.0/0  # everything
AllowedIPs = ::/0
Endpoint = 192.0.2.2:51820
"""


def test_rewrite_keeps_spelling_spacing_and_comments() -> None:
    nets = allowed_ips(["10.0.0.0/24"], ["10.0.0.0/25"])
    out = with_allowed_ips(TEXT, 1, nets, "office.conf")
    assert out == TEXT.replace("allowedips=10.0.0.0/24   #", "allowedips=10.0.0.128/25   #")
    assert parse(out).peers[0].allowed_ips == (IPv4Network("10.0.0.128/25"),)


def test_rewrite_merges_a_peers_several_lines_into_the_first() -> None:
    nets = allowed_ips(["0.0.0.0/0", "::/0"], ["10.0.0.0/8"])
    out = with_allowed_ips(TEXT, 2, nets)
    value = ", ".join(strs(nets))
    assert out == TEXT.replace(
        "AllowedIPs = 0.0.0.0/0  # everything\nAllowedIPs = ::/0\n", f"AllowedIPs = {value}  # everything\n"
    )
    assert parse(out).peers[1].allowed_ips == tuple(nets)
    assert parse(out).peers[0] == parse(TEXT).peers[0]


def test_rewrite_keeps_the_comment_of_a_removed_line() -> None:
    text = TEXT.replace("AllowedIPs = ::/0\n", "AllowedIPs = ::/0 # v6 too\n")
    out = with_allowed_ips(text, 2, [IPv4Network("0.0.0.0/0")])
    assert "AllowedIPs = 0.0.0.0/0  # everything\n# v6 too\nEndpoint" in out


def test_rewrite_adds_a_line_when_the_peer_has_none_and_keeps_crlf() -> None:
    text = f"[Interface]\r\nPrivateKey = {K}\r\n\r\n[Peer]\r\nPublicKey = {P1}\r\n# end\r\n"
    out = with_allowed_ips(text, 1, [IPv4Network("192.0.2.0/24")])
    assert out == text.replace(f"{P1}\r\n", f"{P1}\r\nAllowedIPs = 192.0.2.0/24\r\n")


@pytest.mark.parametrize(
    ("peer", "networks", "message"),
    [
        (3, [IPv4Network("10.0.0.0/8")], "office.conf: there is no peer number 3"),
        (0, [IPv4Network("10.0.0.0/8")], "office.conf: there is no peer number 0"),
        (1, [], "office.conf: AllowedIPs would be empty"),
    ],
)
def test_rewrite_refuses(peer: int, networks: list[IPNetwork], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        with_allowed_ips(TEXT, peer, networks, "office.conf")
    assert str(info.value) == message


def test_rewrite_refuses_text_that_does_not_parse() -> None:
    with pytest.raises(ConfigError) as info:
        with_allowed_ips(TEXT + "Foo = 1\n", 1, [IPv4Network("10.0.0.0/8")], "office.conf")
    assert str(info.value) == "office.conf:17: unknown key `Foo` in [Peer]"
