"""The linter: each finding on a config with the problem, none on one without, and fixes that fix."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgdesk.config import Config, LintWarning, Severity, lint, parse, parse_bytes, write
from wgdesk.config.lint import _NetworkIndex

DATA = Path(__file__).resolve().parent.parent / "data" / "configs" / "valid"

K = "2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y="
K_PUB = "GS0v7jt5I//6d0J95VmF+w4czLnO5PaAHC3SCPiFbUk="  # the public key of K (checked by `wg pubkey` below)
P1 = "NKODD3gqzjAFl5CBPuaiq+vn5BBAW6d9LN/QYCd2QjQ="
P2 = "qF4zQsjwpWFpbjnIV/kyISxQ1oCwjJfCwjgoyAmwyyw="


def cfg(interface: str = "", *peers: str) -> Config:
    text = f"[Interface]\nPrivateKey = {K}\nListenPort = 51820\n{interface}\n"
    for i, body in enumerate(peers):
        text += f"\n[Peer]\nPublicKey = {[P1, P2][i % 2] if 'PublicKey' not in body else ''}\n{body}\n"
    text = text.replace("PublicKey = \n", "")
    return parse(text)


def codes(found: list[LintWarning]) -> list[str]:
    return [w.code for w in found]


def by_code(found: list[LintWarning], code: str) -> LintWarning:
    (warning,) = [w for w in found if w.code == code]
    return warning


def assert_fix_removes(found: list[LintWarning], code: str, **kw: object) -> Config:
    warning = by_code(found, code)
    assert warning.fix is not None and warning.fix.config is not None
    fixed = warning.fix.config
    assert parse(write(fixed)) == fixed
    assert code not in codes(lint(fixed, **kw))  # type: ignore[arg-type]
    return fixed


def test_a_clean_config_has_no_findings() -> None:
    clean = cfg(
        "Address = 10.0.0.2/32, fd00::2/128\nDNS = 10.0.0.1",
        "AllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = 192.0.2.1:51820\nPersistentKeepalive = 25",
    )
    assert lint(clean, own_public_key=K_PUB, file_mode=0o100600) == []


def test_ipv6_leak() -> None:
    found = lint(cfg("DNS = 10.0.0.1", "AllowedIPs = 10.0.0.0/8", "AllowedIPs = 0.0.0.0/0"))
    warning = by_code(found, "ipv6-leak")
    assert warning.line == 12
    fixed = assert_fix_removes(found, "ipv6-leak")
    assert fixed.peers[1].allowed_ips == (ip_network("0.0.0.0/0"), ip_network("::/0"))
    # split default routes count as a full tunnel too
    assert "ipv6-leak" in codes(lint(cfg("DNS = 10.0.0.1", "AllowedIPs = 0.0.0.0/1, 128.0.0.0/1")))
    assert "ipv6-leak" not in codes(
        lint(cfg("DNS = 10.0.0.1", "AllowedIPs = 0.0.0.0/1, 128.0.0.0/1, ::/1, 8000::/1"))
    )
    assert "ipv6-leak" not in codes(lint(cfg("", "AllowedIPs = 10.0.0.0/8")))


def test_dns_leak() -> None:
    found = lint(cfg("", "AllowedIPs = 0.0.0.0/0, ::/0"))
    warning = by_code(found, "dns-leak")
    assert warning.line == 1 and warning.fix is None
    assert "dns-leak" not in codes(lint(cfg("DNS = 10.0.0.1", "AllowedIPs = 0.0.0.0/0, ::/0")))
    assert "dns-leak" not in codes(lint(cfg("", "AllowedIPs = 10.0.0.0/8")))  # split tunnel: not a leak


def test_dns_server_outside_the_tunnel() -> None:
    found = lint(cfg("DNS = 192.168.1.1, 10.0.0.1", "AllowedIPs = 10.0.0.0/24"))
    warning = by_code(found, "dns-outside-tunnel")
    assert "192.168.1.1" in warning.message and warning.line == 4
    fixed = assert_fix_removes(found, "dns-outside-tunnel")
    assert fixed.peers[0].allowed_ips[-1] == ip_network("192.168.1.1/32")
    # two peers: which one should carry it is not mechanical
    two = lint(cfg("DNS = 192.168.1.1", "AllowedIPs = 10.0.0.0/24", "AllowedIPs = 10.1.0.0/24"))
    assert by_code(two, "dns-outside-tunnel").fix is None


@st.composite
def some_networks(draw: st.DrawFn) -> list[IPv4Network | IPv6Network]:
    out: list[IPv4Network | IPv6Network] = []
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.booleans()):
            out.append(ip_network((draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 32))), strict=False))
        else:
            address = draw(st.integers(0, 2**128 - 1)) & ~((1 << 120) - 1)  # a few /8s: overlaps happen
            out.append(ip_network((address, draw(st.integers(0, 128))), strict=False))
    return out


@given(some_networks(), some_networks())
def test_the_overlap_index_agrees_with_pairwise_checks(theirs: list, mine: list) -> None:  # type: ignore[type-arg]
    index = _NetworkIndex(theirs)
    for net in mine:
        assert index.overlaps(net) == any(net.version == t.version and net.overlaps(t) for t in theirs)


def test_overlap_with_a_large_tunnel_is_not_quadratic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by fuzzing: every range was compared with every range of the other tunnel (and that tunnel's
    list rebuilt for each), so 8 000 peers took minutes. Counted in comparisons, not seconds."""
    calls = 0
    original = ipaddress._BaseNetwork.overlaps

    def counted(self: ipaddress._BaseNetwork, other: ipaddress._BaseNetwork) -> bool:  # type: ignore[type-arg]
        nonlocal calls
        calls += 1
        return original(self, other)

    monkeypatch.setattr(ipaddress._BaseNetwork, "overlaps", counted)
    big = cfg("", *(f"AllowedIPs = 10.{i // 256}.{i % 256}.0/24" for i in range(3000)))
    warning = by_code(lint(big, other_tunnels={"twin": big}), "overlap-tunnel")
    assert warning.message == "AllowedIPs 10.0.0.0/24 overlaps 10.0.0.0/24 of tunnel `twin` (and 2999 more)"
    assert calls < 3000  # pairwise: 9 000 000


def test_overlap_with_another_tunnel_and_the_lan() -> None:
    other = cfg("", "AllowedIPs = 10.8.0.0/16")
    mine = cfg("", "AllowedIPs = 10.8.3.0/24, 172.16.0.0/12")
    warning = by_code(lint(mine, other_tunnels={"work": other}), "overlap-tunnel")
    assert warning.message == "AllowedIPs 10.8.3.0/24 overlaps 10.8.0.0/16 of tunnel `work`"
    assert "overlap-tunnel" not in codes(
        lint(mine, other_tunnels={"home": cfg("", "AllowedIPs = 10.9.0.0/16")})
    )

    lan = [ip_network("172.16.5.0/24"), ip_network("192.168.1.0/24")]
    assert "overlap-lan" not in codes(lint(mine, local_networks=lan))  # the LAN route is more specific: fine
    inside = cfg("", "AllowedIPs = 192.168.1.128/25")
    assert by_code(lint(inside, local_networks=lan), "overlap-lan").message.startswith(
        "AllowedIPs 192.168.1.128/25 lies inside the local network 192.168.1.0/24"
    )
    assert "overlap-lan" not in codes(lint(cfg("", "AllowedIPs = 0.0.0.0/0, ::/0"), local_networks=lan))


def test_same_range_for_two_peers() -> None:
    found = lint(cfg("", "AllowedIPs = 10.0.0.0/24", "AllowedIPs = 10.0.0.0/24, 10.0.1.0/24"))
    assert "only the last keeps it" in by_code(found, "overlap-peers").message


def test_address_without_prefix() -> None:
    found = lint(cfg("Address = 10.0.0.2, fd00::2/64", "AllowedIPs = 10.0.0.0/24"))
    warning = by_code(found, "address-without-prefix")
    assert warning.severity is Severity.INFO
    assert warning.message == "Address 10.0.0.2 has no prefix length and is used as 10.0.0.2/32"
    assert warning.fix is not None and warning.fix.config is not None
    assert "Address = 10.0.0.2/32, fd00::2/64" in write(warning.fix.config)
    assert "address-without-prefix" not in codes(lint(parse(write(warning.fix.config))))
    assert "address-without-prefix" not in codes(lint(warning.fix.config))
    host_bits = by_code(lint(cfg("", "AllowedIPs = 10.0.0.1/24")), "allowed-ips-host-bits")
    assert host_bits.fix is not None and host_bits.fix.config is not None
    assert lint(host_bits.fix.config) == lint(parse(write(host_bits.fix.config)))


def test_allowed_ips_with_host_bits() -> None:
    found = lint(cfg("", "AllowedIPs = 10.0.0.1/24"))
    assert by_code(found, "allowed-ips-host-bits").message == (
        "AllowedIPs entry 10.0.0.1/24 has host bits set; it means 10.0.0.0/24"
    )
    assert "allowed-ips-host-bits" not in codes(lint(cfg("", "AllowedIPs = 10.0.0.1, 10.0.0.0/24")))


def test_duplicate_peer_merges() -> None:
    text = f"AllowedIPs = 10.0.0.0/24\nPublicKey = {P1}"
    found = lint(cfg("", text, f"PublicKey = {P1}\nAllowedIPs = 10.0.1.0/24\nEndpoint = 192.0.2.9:5"))
    warning = by_code(found, "duplicate-peer")
    assert warning.line == 10
    fixed = assert_fix_removes(found, "duplicate-peer")
    (peer,) = fixed.peers
    assert peer.allowed_ips == (ip_network("10.0.0.0/24"), ip_network("10.0.1.0/24"))
    assert str(peer.endpoint) == "192.0.2.9:5"


def test_peer_is_self() -> None:
    import subprocess

    assert subprocess.run(["wg", "pubkey"], input=K, capture_output=True, text=True).stdout.strip() == K_PUB
    found = lint(
        cfg("", f"PublicKey = {K_PUB}\nAllowedIPs = 10.0.0.0/24", "AllowedIPs = 10.1.0.0/24"),
        own_public_key=K_PUB,
    )
    fixed = assert_fix_removes(found, "peer-is-self", own_public_key=K_PUB)
    assert [p.public_key for p in fixed.peers] == [P2]
    assert "peer-is-self" not in codes(lint(cfg("", "AllowedIPs = 10.0.0.0/24"), own_public_key=K_PUB))


def test_no_keepalive_is_informational_and_only_for_clients() -> None:
    client = parse(f"[Interface]\nPrivateKey = {K}\n[Peer]\nPublicKey = {P1}\nEndpoint = 192.0.2.1:5\n")
    warning = by_code(lint(client), "no-keepalive")
    assert warning.severity is Severity.INFO
    fixed = assert_fix_removes(lint(client), "no-keepalive")
    assert fixed.peers[0].persistent_keepalive == 25
    server = cfg("", "Endpoint = 192.0.2.1:5")  # has a ListenPort: it is the side that is reached
    assert "no-keepalive" not in codes(lint(server))


def test_hooks_are_flagged_with_a_removal_fix() -> None:
    found = lint(parse_bytes((DATA / "hooks.conf").read_bytes()))
    warning = by_code(found, "hooks")
    assert (
        warning.message == "PreUp, PostUp, PreDown, PostDown commands are kept but wgdesk does not run them"
    )
    assert warning.line == 4
    fixed = assert_fix_removes(found, "hooks")
    assert not fixed.has_hooks


def test_world_readable_file() -> None:
    assert by_code(lint(cfg(), file_mode=0o100644), "world-readable").message == (
        "the file is accessible to all users (mode 644)"
    )
    assert "world-readable" not in codes(lint(cfg(), file_mode=0o100640))
    assert "world-readable" not in codes(lint(cfg()))


@pytest.mark.parametrize(
    ("platform", "interface", "ignored"),
    [
        ("linux", "SaveConfig = true\nFwMark = 1\nTable = 5", ["SaveConfig"]),
        ("darwin", "FwMark = 1\nTable = 5", ["FwMark"]),
        ("win32", "FwMark = 1\nTable = 5", ["FwMark", "Table"]),
        ("win32", "Table = off", []),
    ],
)
def test_ignored_keys_per_platform(platform: str, interface: str, ignored: list[str]) -> None:
    found = [w for w in lint(cfg(interface), platform=platform) if w.code == "ignored-key"]
    assert [w.message.split()[0] for w in found] == ignored
    for warning in found:
        assert warning.fix is not None and warning.fix.config is not None
        key = warning.message.split()[0]
        assert f"\n{key} =" not in write(warning.fix.config)


def test_every_code_is_documented() -> None:
    import importlib
    import re

    module = importlib.import_module(
        "wgdesk.config.lint"
    )  # the attribute `wgdesk.config.lint` is the function
    documented = set(re.findall(r"\| `([a-z0-9-]+)` \|", module.__doc__ or ""))
    assert documented == {
        "ipv6-leak",
        "dns-leak",
        "dns-outside-tunnel",
        "overlap-tunnel",
        "overlap-lan",
        "overlap-peers",
        "allowed-ips-host-bits",
        "address-without-prefix",
        "duplicate-peer",
        "peer-is-self",
        "no-keepalive",
        "hooks",
        "world-readable",
        "ignored-key",
    }


@pytest.mark.parametrize("path", sorted(DATA.glob("*.conf")), ids=lambda p: p.name)
def test_lint_runs_on_the_corpus_and_explains_itself(path: Path) -> None:
    for warning in lint(parse_bytes(path.read_bytes()), file_mode=0o100644, platform="win32"):
        assert warning.explanation and warning.message
        assert str(warning).endswith(f"[{warning.code}]")
