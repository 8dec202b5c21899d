"""`wgdeskctl allowed-ips` end to end through the console script: the paste-ready list, the private ranges
preset, and wg-style errors (1 for a bad range or an empty result, 2 for usage)."""

from __future__ import annotations

from ipaddress import ip_network

from tests.test_cli import run
from wgdesk.config import PRIVATE_LAN_RANGES, parse

PRIVATE_KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
PEER_KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="

# 0.0.0.0/0 minus 10.0.0.0/8, derived bit by bit in tests/config/test_calculator.py
ALL_BUT_10 = "0.0.0.0/5, 8.0.0.0/7, 11.0.0.0/8, 12.0.0.0/6, 16.0.0.0/4, 32.0.0.0/3, 64.0.0.0/2, 128.0.0.0/1"


def test_prints_the_difference_ready_to_paste() -> None:
    r = run("allowed-ips", "0.0.0.0/0", "::/0", "--exclude", "10.0.0.0/8")
    assert (r.returncode, r.stderr) == (0, b"")
    assert r.stdout.decode() == f"{ALL_BUT_10}, ::/0\n"


def test_includes_and_excludes_may_be_comma_lists_and_repeated() -> None:
    r = run(
        "allowed-ips", "0.0.0.0/0,", "::/0", "--exclude", "10.0.0.0/9,", "10.128.0.0/9", "--exclude", "::/1"
    )
    assert (r.returncode, r.stderr) == (0, b"")
    assert r.stdout.decode() == f"{ALL_BUT_10}, 8000::/1\n"


def test_exclude_private_keeps_every_local_network_out_and_the_rest_in() -> None:
    r = run("allowed-ips", "--exclude-private", "0.0.0.0/0", "::/0")
    assert (r.returncode, r.stderr) == (0, b"")
    value = r.stdout.decode().removesuffix("\n")
    text = (
        f"[Interface]\nPrivateKey = {PRIVATE_KEY}\n\n[Peer]\nPublicKey = {PEER_KEY}\nAllowedIPs = {value}\n"
    )
    networks = parse(text).peers[0].allowed_ips  # pasted into a config, it parses
    private = [ip_network(n) for n in PRIVATE_LAN_RANGES]
    for family, size in ((4, 2**32), (6, 2**128)):
        kept_out = sum(n.num_addresses for n in private if n.version == family)
        assert sum(n.num_addresses for n in networks if n.version == family) == size - kept_out
    for n in private:
        for address in (n.network_address, n.broadcast_address):
            assert not any(address in m for m in networks), address
        for address in (n.network_address - 1, n.broadcast_address + 1):  # no private range is adjacent
            assert any(address in m for m in networks), address


def test_a_range_with_host_bits_is_an_error_naming_it() -> None:
    r = run("allowed-ips", "0.0.0.0/0", "--exclude", "192.168.1.1/24")
    assert (r.returncode, r.stdout) == (1, b"")
    assert r.stderr == (
        b"wgdeskctl: exclude: entry `192.168.1.1/24` has host bits set: "
        b"the /24 block that holds it is `192.168.1.0/24`\n"
    )


def test_garbage_is_an_error_naming_it() -> None:
    r = run("allowed-ips", "everything")
    assert (r.returncode, r.stdout) == (1, b"")
    assert (
        r.stderr == b"wgdeskctl: include: entry `everything` is not an IP address with an optional /prefix\n"
    )


def test_an_empty_result_is_an_error() -> None:
    r = run("allowed-ips", "10.0.0.0/24", "--exclude", "10.0.0.0/8")
    assert (r.returncode, r.stdout) == (1, b"")
    assert r.stderr == b"wgdeskctl: nothing is left: the excluded ranges cover everything included\n"


def test_no_include_is_a_usage_error() -> None:
    r = run("allowed-ips", "--exclude-private")
    assert (r.returncode, r.stdout) == (2, b"")
    assert b"the following arguments are required: INCLUDE" in r.stderr
