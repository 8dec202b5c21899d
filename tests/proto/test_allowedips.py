"""AllowedIPs: the kernel's static cases, random tables against an `ipaddress` oracle."""

from __future__ import annotations

import random
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from hypothesis import given, settings
from hypothesis import strategies as st

from wgdesk.proto.allowedips import AllowedIPs

Network = IPv4Network | IPv6Network


class Peer:
    """A stand-in for a peer: compared by identity, deliberately unhashable like a mutable object."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def ip4(a: int, b: int, c: int, d: int) -> bytes:
    return bytes((a, b, c, d))


def ip6(a: int, b: int, c: int, d: int) -> bytes:
    return ((a << 96) | (b << 64) | (c << 32) | d).to_bytes(16, "big")


def net(addr: bytes, cidr: int) -> Network:
    return ip_network((ip_address(addr), cidr), strict=False)


def static_table() -> tuple[AllowedIPs[Peer], dict[str, Peer]]:
    """The kernel self-test's table (drivers/net/wireguard/selftest/allowedips.c)."""
    p = {n: Peer(n) for n in "abcdefgh"}
    t: AllowedIPs[Peer] = AllowedIPs()
    for value, addr, cidr in [
        ("a", ip4(192, 168, 4, 0), 24),
        ("b", ip4(192, 168, 4, 4), 32),
        ("c", ip4(192, 168, 0, 0), 16),
        ("d", ip4(192, 95, 5, 64), 27),
        ("c", ip4(192, 95, 5, 65), 27),  # moves the previous entry; host bits are masked
        ("d", ip6(0x26075300, 0x60006B00, 0, 0xC05F0543), 128),
        ("c", ip6(0x26075300, 0x60006B00, 0, 0), 64),
        ("e", ip4(0, 0, 0, 0), 0),
        ("e", ip6(0, 0, 0, 0), 0),
        ("f", ip6(0, 0, 0, 0), 0),  # moves ::/0 from e to f
        ("g", ip6(0x24046800, 0, 0, 0), 32),
        ("h", ip6(0x24046800, 0x40040800, 0xDEADBEEF, 0xDEADBEEF), 64),
        ("a", ip6(0x24046800, 0x40040800, 0xDEADBEEF, 0xDEADBEEF), 128),
        ("c", ip6(0x24446800, 0x40E40800, 0xDEAEBEEF, 0xDEFBEEF), 128),
        ("b", ip6(0x24446800, 0xF0E40800, 0xEEAEBEEF, 0), 98),
        ("g", ip4(64, 15, 112, 0), 20),
        ("h", ip4(64, 15, 123, 211), 25),
        ("a", ip4(10, 0, 0, 0), 25),
        ("b", ip4(10, 0, 0, 128), 25),
        ("a", ip4(10, 1, 0, 0), 30),
        ("b", ip4(10, 1, 0, 4), 30),
        ("c", ip4(10, 1, 0, 8), 29),
        ("d", ip4(10, 1, 0, 16), 29),
    ]:
        t.insert(net(addr, cidr), p[value])
    return t, p


STATIC_LOOKUPS = [
    ("a", ip4(192, 168, 4, 20)),
    ("a", ip4(192, 168, 4, 0)),
    ("b", ip4(192, 168, 4, 4)),
    ("c", ip4(192, 168, 200, 182)),
    ("c", ip4(192, 95, 5, 68)),
    ("e", ip4(192, 95, 5, 96)),
    ("d", ip6(0x26075300, 0x60006B00, 0, 0xC05F0543)),
    ("c", ip6(0x26075300, 0x60006B00, 0, 0xC02E01EE)),
    ("f", ip6(0x26075300, 0x60006B01, 0, 0)),
    ("g", ip6(0x24046800, 0x40040806, 0, 0x1006)),
    ("g", ip6(0x24046800, 0x40040806, 0x1234, 0x5678)),
    ("f", ip6(0x240467FF, 0x40040806, 0x1234, 0x5678)),
    ("f", ip6(0x24046801, 0x40040806, 0x1234, 0x5678)),
    ("h", ip6(0x24046800, 0x40040800, 0x1234, 0x5678)),
    ("h", ip6(0x24046800, 0x40040800, 0, 0)),
    ("h", ip6(0x24046800, 0x40040800, 0x10101010, 0x10101010)),
    ("a", ip6(0x24046800, 0x40040800, 0xDEADBEEF, 0xDEADBEEF)),
    ("g", ip4(64, 15, 116, 26)),
    ("g", ip4(64, 15, 127, 3)),
    ("g", ip4(64, 15, 123, 1)),
    ("h", ip4(64, 15, 123, 128)),
    ("h", ip4(64, 15, 123, 129)),
    ("a", ip4(10, 0, 0, 52)),
    ("b", ip4(10, 0, 0, 220)),
    ("a", ip4(10, 1, 0, 2)),
    ("b", ip4(10, 1, 0, 6)),
    ("c", ip4(10, 1, 0, 10)),
    ("d", ip4(10, 1, 0, 20)),
]


def test_kernel_static_lookups() -> None:
    t, _ = static_table()
    got = [(want, addr.hex(), getattr(t.lookup(addr), "name", None)) for want, addr in STATIC_LOOKUPS]
    assert [g for g in got if g[0] != g[2]] == []


def test_moved_prefix_leaves_previous_owner() -> None:
    t, p = static_table()
    assert ip_network("192.95.5.64/27") not in t.entries(p["d"])
    assert ip_network("192.95.5.64/27") in t.entries(p["c"])
    assert ip_network("::/0") not in t.entries(p["e"])
    assert t.entries(p["f"]) == [ip_network("::/0")]


def test_remove_by_value_of_hosts() -> None:
    t: AllowedIPs[Peer] = AllowedIPs()
    a = Peer("a")
    for first in (1, 64, 128, 192, 255):
        t.insert(net(ip4(first, 0, 0, 0), 32), a)
    t.remove_by_value(a)
    for first in (1, 64, 128, 192, 255):
        assert t.lookup(ip4(first, 0, 0, 0)) is not a
    assert len(t) == 0


def test_remove_by_value_nested() -> None:
    t: AllowedIPs[Peer] = AllowedIPs()
    a = Peer("a")
    t.insert(ip_network("192.168.0.0/16"), a)
    t.insert(ip_network("192.168.0.0/24"), a)
    t.remove_by_value(a)
    assert t.lookup(ip4(192, 168, 0, 1)) is None
    assert len(t) == 0


def test_every_single_bit_host_route() -> None:
    # The kernel inserts 128 /128s that each differ from all-ones in one bit, then frees them.
    t: AllowedIPs[Peer] = AllowedIPs()
    a = Peer("a")
    addrs = [((1 << 128) - 1 ^ (1 << i)).to_bytes(16, "big") for i in range(128)]
    for addr in addrs:
        t.insert(net(addr, 128), a)
    assert len(t) == 128
    assert all(t.lookup(addr) is a for addr in addrs)
    assert t.lookup(b"\xff" * 16) is None
    t.remove_by_value(a)
    assert len(t) == 0 and t.entries(a) == []


def test_entries_are_masked_and_in_insertion_order() -> None:
    t: AllowedIPs[Peer] = AllowedIPs()
    a = Peer("a")
    t.insert(net(ip4(192, 95, 5, 93), 27), a)
    t.insert(net(ip6(0x26075300, 0x60006B00, 0, 0xC05F0543), 128), a)
    t.insert(net(ip4(10, 1, 0, 20), 29), a)
    t.insert(net(ip6(0x26075300, 0x6D8A6BF8, 0xDAB1F1DF, 0xC05F1523), 83), a)
    t.insert(net(ip6(0x26075300, 0x6D8A6BF8, 0xDAB1F1DF, 0xC05F1523), 21), a)
    assert t.entries(a) == [
        ip_network("192.95.5.64/27"),
        ip_network("2607:5300:6000:6b00::c05f:543/128"),
        ip_network("10.1.0.16/29"),
        ip_network("2607:5300:6d8a:6bf8:dab1:e000::/83"),
        ip_network("2607:5000::/21"),
    ]


def test_reinsert_same_value_keeps_position() -> None:
    t: AllowedIPs[Peer] = AllowedIPs()
    a = Peer("a")
    for n in ("10.0.0.0/24", "fd00::/64", "0.0.0.0/0"):
        t.insert(ip_network(n), a)
    t.insert(ip_network("10.0.0.0/24"), a)
    assert [str(n) for n in t.entries(a)] == ["10.0.0.0/24", "fd00::/64", "0.0.0.0/0"]


def test_remove_only_if_owned() -> None:
    t: AllowedIPs[Peer] = AllowedIPs()
    a, b = Peer("a"), Peer("b")
    t.insert(ip_network("10.0.0.0/8"), a)
    assert t.remove(ip_network("10.0.0.0/8"), b) is False
    assert t.lookup(ip4(10, 1, 2, 3)) is a
    assert t.remove(ip_network("10.0.0.0/16"), a) is False
    assert t.remove(ip_network("10.0.0.0/8"), a) is True
    assert t.lookup(ip4(10, 1, 2, 3)) is None
    assert t.entries(a) == [] and len(t) == 0


def test_families_are_separate() -> None:
    t: AllowedIPs[Peer] = AllowedIPs()
    a, b = Peer("a"), Peer("b")
    t.insert(ip_network("0.0.0.0/0"), a)
    t.insert(ip_network("::/0"), b)
    assert t.lookup(bytes(4)) is a
    assert t.lookup(bytes(16)) is b
    assert t.lookup(b"\x00" * 5) is None
    assert t.lookup(b"") is None
    assert len(t) == 2


def test_clear() -> None:
    t, p = static_table()
    t.clear()
    assert len(t) == 0 and t.lookup(ip4(10, 1, 0, 20)) is None and t.entries(p["a"]) == []


class Oracle:
    """Longest-prefix match the obvious way, with `ipaddress` doing the containment."""

    def __init__(self) -> None:
        self.routes: dict[Network, Peer] = {}

    def insert(self, n: Network, v: Peer) -> None:
        if self.routes.get(n) is not v:
            self.routes.pop(n, None)  # a moved prefix goes to the end of its new owner's list
            self.routes[n] = v

    def remove(self, n: Network, v: Peer) -> bool:
        if self.routes.get(n) is v:
            del self.routes[n]
            return True
        return False

    def remove_by_value(self, v: Peer) -> None:
        self.routes = {n: w for n, w in self.routes.items() if w is not v}

    def lookup(self, addr: bytes) -> Peer | None:
        a = ip_address(addr)
        best = max(
            (n for n in self.routes if n.version == a.version and a in n),
            key=lambda n: n.prefixlen,
            default=None,
        )
        return None if best is None else self.routes[best]

    def entries(self, v: Peer) -> list[Network]:
        return [n for n, w in self.routes.items() if w is v]


PEERS = [Peer(f"p{i}") for i in range(4)]


@st.composite
def networks(draw: st.DrawFn) -> Network:
    # Few distinct top bits so that prefixes nest and collide often.
    if draw(st.booleans()):
        addr = draw(st.sampled_from([0, 0x0A000000, 0xC0A80000, 0xFFFFFFFF])) ^ draw(st.integers(0, 0xFFFF))
        return ip_network((addr, draw(st.integers(0, 32))), strict=False)
    top = draw(st.sampled_from([0, 0xFD00 << 112, 0x2001_0DB8 << 96, (1 << 128) - 1]))
    return ip_network((top ^ draw(st.integers(0, 1 << 20)), draw(st.integers(0, 128))), strict=False)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), networks(), st.sampled_from(PEERS)),
        st.tuples(st.just("remove"), networks(), st.sampled_from(PEERS)),
        st.tuples(st.just("remove_by_value"), st.just(None), st.sampled_from(PEERS)),
    ),
    max_size=40,
)


def probes(routes: list[Network], rng: random.Random) -> list[bytes]:
    out = []
    for n in routes:
        size = 4 if n.version == 4 else 16
        first, last = int(n.network_address), int(n.broadcast_address)
        for x in (first, last, first - 1, last + 1, rng.randint(first, last)):
            out.append((x % (1 << (8 * size))).to_bytes(size, "big"))
    out += [rng.randbytes(4) for _ in range(10)] + [rng.randbytes(16) for _ in range(10)]
    return out


@settings(max_examples=300, deadline=None)
@given(operations, st.randoms(use_true_random=False))
def test_matches_oracle(ops: list[tuple[str, Network | None, Peer]], rng: random.Random) -> None:
    t: AllowedIPs[Peer] = AllowedIPs()
    o = Oracle()
    touched: list[Network] = []
    for op, n, v in ops:
        if op == "insert":
            assert n is not None
            t.insert(n, v)
            o.insert(n, v)
            touched.append(n)
        elif op == "remove":
            assert n is not None
            assert t.remove(n, v) == o.remove(n, v)
        else:
            t.remove_by_value(v)
            o.remove_by_value(v)
    for addr in probes(touched, rng):
        assert t.lookup(addr) is o.lookup(addr), addr.hex()
    assert len(t) == len(o.routes)
    for v in PEERS:
        assert t.entries(v) == o.entries(v)
    for v in PEERS:
        t.remove_by_value(v)
    assert len(t) == 0


def test_random_table_like_the_kernel() -> None:
    # A scaled-down version of the kernel's randomized test: routes and mutated near-routes,
    # random queries against the oracle, then removing every peer empties the table.
    rng = random.Random(1)
    peers = [Peer(f"p{i}") for i in range(50)]
    t: AllowedIPs[Peer] = AllowedIPs()
    o = Oracle()
    for bits in (32, 128):
        for _ in range(40):
            base = rng.getrandbits(bits)
            for j in range(10):
                keep = rng.randrange(bits)
                mask = ((1 << keep) - 1) << (bits - keep)
                addr = base if j == 0 else (base & mask) | (rng.getrandbits(bits) & ~mask)
                n = ip_network((addr, rng.randint(1, bits)), strict=False)
                v = rng.choice(peers)
                t.insert(n, v)
                o.insert(n, v)
    queries = [rng.randbytes(4) for _ in range(300)] + [rng.randbytes(16) for _ in range(300)]
    queries += [n.network_address.packed for n in o.routes]
    for i, p in enumerate(peers):
        if i % 10 == 0:
            assert [t.lookup(q) for q in queries] == [o.lookup(q) for q in queries]
        t.remove_by_value(p)
        o.remove_by_value(p)
    assert len(t) == 0 and not o.routes
