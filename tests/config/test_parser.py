"""The `.conf` parser against a corpus of real-world-shaped files, the real `wg`, and tables of rules."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.netns import unique_name
from wgdesk.config import Config, ConfigError, Endpoint, parse, parse_bytes

DATA = Path(__file__).resolve().parent.parent / "data" / "configs"
VALID = sorted((DATA / "valid").glob("*.conf"))
INVALID_DIR = DATA / "invalid"

K1 = "2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y="
P1 = "GS0v7jt5I//6d0J95VmF+w4czLnO5PaAHC3SCPiFbUk="
P2 = "NKODD3gqzjAFl5CBPuaiq+vn5BBAW6d9LN/QYCd2QjQ="

KEY_MESSAGE = "is not a valid key: expected 44 characters of base64 that decode to 32 bytes"

# file -> the exact error; the category says who else rejects it:
#   "wg"       `wg setconf` rejects it (checked against the real tool below),
#   "wg-quick" `wg-quick` stops on it,
#   "later"    the tools accept the file but fail at `ip`, `resolvconf`, `getaddrinfo` or run it as
#              shell code; wgdesk refuses at import time.
INVALID = {
    "address-peer.conf": ("wg", "5: Address belongs in [Interface], not in [Peer]"),
    "bad-pubkey.conf": ("wg", f"7: PublicKey {KEY_MESSAGE} (found 43 characters)"),
    "noncanonical.conf": ("wg", f"2: PrivateKey {KEY_MESSAGE} (found 44 characters)"),
    "short-psk.conf": ("wg", f"5: PresharedKey {KEY_MESSAGE} (found 48 characters)"),
    "unknown-key.conf": ("wg", "3: unknown key `Jc` in [Interface]"),
    "typo-key.conf": ("wg", "6: unknown key `AllowedIP` in [Peer] (did you mean AllowedIPs?)"),
    "endpoint-iface.conf": ("wg", "3: Endpoint belongs in [Peer], not in [Interface]"),
    "no-section.conf": ("wg", "1: `PrivateKey` comes before any [Interface] or [Peer] section"),
    "bad-section.conf": ("wg", "1: unknown section `[Interfaces]`: expected [Interface] or [Peer]"),
    "no-equals.conf": ("wg", "2: PrivateKey must be followed by `=` and its value"),
    "no-pubkey.conf": ("wg", "4: [Peer] has no PublicKey"),
    "prefix-33.conf": (
        "wg",
        "3: AllowedIPs entry `10.1.0.0/33` has an invalid prefix length (0 to 32 for IPv4)",
    ),
    "stray-comma.conf": ("wg", "3: AllowedIPs `10.0.0.0/8,` has an empty entry (a stray comma?)"),
    "not-an-ip.conf": ("wg", "3: AllowedIPs entry `10.0.0/8` is not an IP address with an optional /prefix"),
    "no-port.conf": ("wg", "3: Endpoint `192.0.2.1` has no port: write host:port or [IPv6]:port"),
    "v6-bracket.conf": ("wg", "3: Endpoint `[2001:db8::1:51820` has no closing `]`"),
    "keepalive.conf": (
        "wg",
        "3: PersistentKeepalive must be off or a number of seconds from 0 to 65535, not `70000`",
    ),
    "fwmark.conf": ("wg", "2: FwMark must be off or a number from 0 to 0xffffffff, not `0x1ffffffff`"),
    "listenport.conf": ("wg", "2: ListenPort must be a port number from 0 to 65535, not `51820x`"),
    "empty-value.conf": ("wg", "4: PublicKey has no value"),
    "spaced-quick.conf": (
        "wg",
        "3: Address is only read by wg-quick after a section header written exactly `[Interface]`",
    ),
    "bad-saveconfig.conf": ("wg-quick", "2: SaveConfig must be true or false, not `yes`"),
    "port-range.conf": ("later", "3: Endpoint port must be a port number from 1 to 65535, not `65536`"),
    "bad-dns.conf": ("later", "3: DNS entry `1.1.1` is not a valid IP address"),
    "bad-domain.conf": (
        "later",
        "3: DNS entry `bad_domain!.example` is neither an IP address nor a valid search domain",
    ),
    "bad-address.conf": (
        "later",
        "3: Address entry `10.0.0.300/24` is not an IP address with an optional /prefix",
    ),
    "bad-mtu.conf": ("later", "2: MTU must be a number from 68 to 65535, not `huge`"),
    "bad-table.conf": ("later", "2: Table must be auto, off, a table number or a table name, not `auto off`"),
    "control-char.conf": ("later", "3: line contains a control character (U+001B)"),
    "bidi.conf": ("later", "2: line contains a control character (U+202E)"),
    "not-utf8.conf": ("later", "3: the file is not UTF-8 text"),
}


def test_the_corpus_is_complete() -> None:
    assert sorted(p.name for p in INVALID_DIR.glob("*.conf")) == sorted(INVALID)
    assert len(VALID) >= 12


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_corpus_parses(path: Path) -> None:
    cfg = parse_bytes(path.read_bytes(), filename=path.name)
    assert isinstance(cfg, Config)
    # every key line of the file is recorded with its line number
    key_lines = [
        n
        for n, line in enumerate(path.read_bytes().decode().split("\n"), start=1)
        if "=" in line.split("#", 1)[0]
    ]
    assert [line.number for line in cfg.lines if not line.key.startswith("[")] == key_lines


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_corpus_is_rejected_with_its_message(name: str) -> None:
    _, expected = INVALID[name]
    with pytest.raises(ConfigError) as info:
        parse_bytes((INVALID_DIR / name).read_bytes(), filename=name)
    assert str(info.value) == f"{name}:{expected}"
    line, _, message = expected.partition(": ")
    assert info.value.line == int(line)
    assert info.value.message == message
    assert info.value.filename == name


def test_errors_never_echo_a_key() -> None:
    for name in ("bad-pubkey.conf", "noncanonical.conf", "no-equals.conf"):
        text = (INVALID_DIR / name).read_text()
        with pytest.raises(ConfigError) as info:
            parse(text, name)
        for token in re.findall(r"[A-Za-z0-9+/]{40,}=?", text):
            assert token[:40] not in str(info.value)


# --- the real `wg` as the oracle of what is accepted --------------------------------------------


def _wg_setconf(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Feed `wg setconf` (after wg-quick's strip) a config for an interface that does not exist.

    wg parses the whole file before it looks for the interface, so "Unable to modify interface" means
    the file was accepted. Host names are swapped for `localhost` (resolved from /etc/hosts) and the
    command runs in a fresh network namespace, so nothing is ever looked up on a network.
    """
    from wgdesk.config import strip

    text = re.sub(r"(?im)^(\s*endpoint\s*=\s*)[a-z][a-z0-9.-]*[a-z](:\d+)", r"\1localhost\2", text)
    path = tmp_path / "in.conf"
    path.write_text(strip(text))
    return subprocess.run(
        ["unshare", "--net", "wg", "setconf", unique_name("wgx"), str(path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, WG_ENDPOINT_RESOLUTION_RETRIES="0"),
    )


@pytest.mark.root
@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_wg_accepts_what_we_accept(path: Path, tmp_path: Path) -> None:
    result = _wg_setconf(path.read_bytes().decode(), tmp_path)
    assert "Unable to modify interface" in result.stderr, result.stderr
    assert "parsing error" not in result.stderr and "Invalid configuration" not in result.stderr


@pytest.mark.root
@pytest.mark.parametrize("name", sorted(n for n, (who, _) in INVALID.items() if who == "wg"))
def test_wg_rejects_what_we_reject(name: str, tmp_path: Path) -> None:
    result = _wg_setconf((INVALID_DIR / name).read_text(), tmp_path)
    assert result.returncode != 0
    assert "Unable to modify interface" not in result.stderr, result.stderr
    assert "Configuration parsing error" in result.stderr or "Invalid configuration" in result.stderr


# --- what the corpus means ----------------------------------------------------------------------


def load(name: str) -> Config:
    return parse_bytes((DATA / "valid" / name).read_bytes(), filename=name)


def test_mullvad_like() -> None:
    cfg = load("mullvad-se1.conf")
    assert cfg.interface.private_key == K1
    assert cfg.interface.addresses == (
        ip_interface("10.68.12.34/32"),
        ip_interface("fc00:bbbb:bbbb:bb01::5:c21/128"),
    )
    assert cfg.interface.dns == (ip_address("10.64.0.1"),)
    (peer,) = cfg.peers
    assert peer.allowed_ips == (ip_network("0.0.0.0/0"), ip_network("::/0"))
    assert peer.endpoint == Endpoint("198.51.100.66", 51820)


def test_messy_whitespace_case_and_comments() -> None:
    cfg = load("messy.conf")
    i = cfg.interface
    assert i.private_key == "oAWM+anHD/PYq2XDme05pW+6jw1uS/g62tktJJO0v0I="
    assert i.listen_port == 51821
    assert i.fwmark == 0x1234
    assert i.addresses == tuple(ip_interface(a) for a in ("10.9.0.2/16", "fd10:9::2/64", "10.9.1.2/16"))
    assert i.dns == (ip_address("10.9.0.1"),)
    assert i.dns_search == ("corp.example", "lab.corp.example")
    assert i.mtu == 1380
    assert i.table == "off"
    (peer,) = cfg.peers
    assert peer.preshared_key == "Nb2ssY8TJjDFYz67xM+Pb89x2l6H5u6AuyPo7Fu6mzQ="
    # `Allowed IPs` (wg removes all whitespace) and a second, comma-spaced line
    assert peer.allowed_ips == tuple(ip_network(n) for n in ("10.9.0.0/16", "fd10:9::/64", "192.168.77.0/24"))
    assert peer.endpoint == Endpoint("2001:db8:9::1", 51820)
    assert str(peer.endpoint) == "[2001:db8:9::1]:51820"
    assert peer.persistent_keepalive == 0


def test_server_with_hooks_and_two_peers() -> None:
    cfg = load("server.conf")
    assert cfg.interface.listen_port == 51820
    assert cfg.interface.post_up == (
        "iptables -A FORWARD -i %i -j ACCEPT; iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE",
    )
    assert cfg.has_hooks and list(cfg.interface.hooks) == ["PostUp", "PostDown"]
    assert cfg.interface.save_config is False
    assert [p.preshared_key for p in cfg.peers] == [None, "xVMe1guszf9TOgGKOPy+S5qu1xRdrIUTPaGQ4fygoq8="]


def test_hooks_repeat_and_keep_order() -> None:
    cfg = load("hooks.conf")
    assert cfg.interface.pre_up == ('echo "starting %i" | logger',)
    assert cfg.interface.post_down == ("ip rule del from 10.40.0.2 table 42", "logger stopped")
    assert cfg.interface.table == "42"
    assert cfg.interface.save_config is True


def test_crlf_line_endings() -> None:
    cfg = load("windows-crlf.conf")
    assert cfg.interface.dns == (ip_address("10.20.0.1"),)
    assert cfg.peers[0].endpoint == Endpoint("192.0.2.20", 51820)


def test_unbracketed_ipv6_endpoint_splits_at_the_last_colon_like_wg() -> None:
    cfg = load("unbracketed.conf")
    assert cfg.peers[0].endpoint == Endpoint("2001:db8:30::1", 51820)
    assert cfg.interface.addresses == (ip_interface("10.30.0.2/32"),)
    # host bits are cleared, as the kernel does
    assert cfg.peers[0].allowed_ips[1] == ip_network("10.30.0.0/16")


def test_hostname_endpoints_and_many_peers() -> None:
    assert load("azire-se.conf").peers[0].endpoint == Endpoint("se1.wg.vpn.example", 51820)
    cfg = load("manypeers.conf")
    assert len(cfg.peers) == 60
    assert len({p.public_key for p in cfg.peers}) == 60
    assert cfg.peers[59].allowed_ips == (ip_network("10.100.60.0/24"), ip_network("fd64:0:3c::/48"))


def test_peers_only_and_minimal() -> None:
    assert load("peers-only.conf").interface.private_key is None
    assert len(load("peers-only.conf").peers) == 2
    assert load("minimal.conf").peers == ()


def test_table_fwmark_and_routing_domain() -> None:
    cfg = load("table-fwmark.conf")
    assert (cfg.interface.fwmark, cfg.interface.table, cfg.interface.mtu) == (51820, "1234", 1280)
    assert cfg.interface.listen_port == 0
    assert cfg.interface.dns_search == ("~.",)
    assert cfg.peers[0].persistent_keepalive == 65535


# --- rules, one by one ---------------------------------------------------------------------------


def _one(body: str, section: str = "[Peer]", key: str = P1) -> Config:
    head = f"[Peer]\nPublicKey = {key}\n" if section == "[Peer]" else "[Interface]\n"
    return parse(head + body + "\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("192.0.2.1:51820", Endpoint("192.0.2.1", 51820)),
        ("[2001:DB8::1]:1", Endpoint("2001:db8::1", 1)),
        ("[fe80::1%eth0]:51820", Endpoint("fe80::1%eth0", 51820)),
        ("vpn.example.com:443", Endpoint("vpn.example.com", 443)),
        ("VPN.Example.com.:443", Endpoint("VPN.Example.com.", 443)),
        ("my_host:9", Endpoint("my_host", 9)),
        ("2001:db8::7:51820", Endpoint("2001:db8::7", 51820)),
        ("[192.0.2.1]:5", Endpoint("192.0.2.1", 5)),
    ],
)
def test_endpoint_forms(value: str, expected: Endpoint) -> None:
    assert _one(f"Endpoint = {value}").peers[0].endpoint == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("vpn.example.com", "has no port"),
        ("vpn.example.com:", "has no port"),
        (":51820", "has no port"),
        ("[2001:db8::1]", "has no port"),
        ("[2001:db8::1]51820", "has no port"),
        ("[vpn.example.com]:5", "only IP addresses go in brackets"),
        ("300.1.1.1:5", "invalid IPv4 address"),
        ("vpn.example.com:http", "port must be a port number from 1 to 65535"),
        ("vpn.example.com:0", "port must be a port number from 1 to 65535"),
        ("-bad.example:5", "neither an IP address nor a valid host name"),
        ("a..b:5", "neither an IP address nor a valid host name"),
        ("[2001:db8::g]:5", "invalid IPv6 address"),
    ],
)
def test_endpoint_errors(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _one(f"Endpoint = {value}")
    assert message in info.value.message
    assert (info.value.line, info.value.key) == (3, "Endpoint")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("off", 0),
        ("OFF", 0),
        ("0", 0),
        ("51820", 51820),
        ("0x10", 16),
        ("0xFFFFFFFF", 0xFFFFFFFF),
        ("010", 10),
    ],
)
def test_fwmark_forms(value: str, expected: int) -> None:
    assert _one(f"FwMark = {value}", "[Interface]").interface.fwmark == expected


@pytest.mark.parametrize("value", ["0X10", "-1", "0x", "4294967296", "on", "1e3"])
def test_fwmark_errors(value: str) -> None:
    with pytest.raises(ConfigError, match="FwMark must be off or a number"):
        _one(f"FwMark = {value}", "[Interface]")


@pytest.mark.parametrize(
    ("value", "expected"), [("off", 0), ("Off", 0), ("0", 0), ("25", 25), ("65535", 65535)]
)
def test_keepalive_forms(value: str, expected: int) -> None:
    assert _one(f"PersistentKeepalive = {value}").peers[0].persistent_keepalive == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("auto", "auto"),
        ("off", "off"),
        ("1234", "1234"),
        ("0", "0"),
        ("main", "main"),
        ("vpn_table", "vpn_table"),
    ],
)
def test_table_forms(value: str, expected: str) -> None:
    assert _one(f"Table = {value}", "[Interface]").interface.table == expected


def test_dns_servers_and_search_domains_are_told_apart_like_wg_quick() -> None:
    cfg = _one("DNS = 10.0.0.1,fd00::1 corp.example, ~lan, 192.0.2.53", "[Interface]")
    assert cfg.interface.dns == (ip_address("10.0.0.1"), ip_address("fd00::1"), ip_address("192.0.2.53"))
    assert cfg.interface.dns_search == ("corp.example", "~lan")


def test_keys_are_case_insensitive_and_sections_too() -> None:
    a = parse(f"[interface]\nPRIVATEKEY={K1}\nlistenport = 1\n[PEER]\npublickey = {P1}\nENDPOINT = h:1\n")
    b = parse(f"[Interface]\nPrivateKey = {K1}\nListenPort = 1\n[Peer]\nPublicKey = {P1}\nEndpoint = h:1\n")
    assert a == b


def test_comments_and_blank_lines_do_not_matter() -> None:
    a = parse(f"# top\n\n[Interface] # x\nPrivateKey = {K1}   # the key\n\n\n#[Peer]\n")
    assert a == Config(interface=a.interface) and a.interface.private_key == K1


def test_repeated_scalar_keys_take_the_last_value_and_lists_append() -> None:
    cfg = parse(
        f"[Interface]\nListenPort = 1\nListenPort = 2\nAddress = 10.0.0.1/24\nAddress = 10.0.1.1/24\n"
        f"[Peer]\nPublicKey = {P1}\nAllowedIPs = 10.0.0.0/24\nAllowedIPs = 10.0.1.0/24\n"
    )
    assert cfg.interface.listen_port == 2
    assert len(cfg.interface.addresses) == 2
    assert len(cfg.peers[0].allowed_ips) == 2


def test_wg_quick_keys_in_peer_sections_are_errors_with_advice() -> None:
    with pytest.raises(ConfigError, match="DNS belongs in \\[Interface\\], not in \\[Peer\\]"):
        _one("DNS = 1.1.1.1")


def test_control_characters_are_rejected_in_every_key(subtests: object = None) -> None:
    for key, value in [
        ("PostUp", "echo a\x07b"),
        ("Table", "ma\x00in"),
        ("Address", "10.0.0.1/24\x0b10.0.0.2"),
        ("DNS", "corp\u200f.example"),
        ("PrivateKey", K1[:20] + "\x1b" + K1[20:]),
    ]:
        with pytest.raises(ConfigError, match="control character"):
            parse(f"[Interface]\n{key} = {value}\n")


def test_the_message_format() -> None:
    err = ConfigError("wg0.conf", 7, "PublicKey", "PublicKey is not a valid key")
    assert str(err) == "wg0.conf:7: PublicKey is not a valid key"
    assert str(ConfigError("x.conf", None, None, "whole file")) == "x.conf: whole file"


def test_byte_order_mark_is_ignored() -> None:
    assert parse_bytes(b"\xef\xbb\xbf[Interface]\nListenPort = 5\n").interface.listen_port == 5


# --- fuzzing: arbitrary input gives a Config or a ConfigError, nothing else ----------------------

_LINE = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda k, v: f"{k} = {v}",
        st.sampled_from(
            [
                "PrivateKey",
                "publickey",
                "AllowedIPs",
                "Endpoint",
                "DNS",
                "Address",
                "MTU",
                "Table",
                "FwMark",
                "PostUp",
                "SaveConfig",
                "ListenPort",
                "PersistentKeepalive",
                "PresharedKey",
                "Bogus",
            ]
        ),
        st.one_of(
            st.text(max_size=30), st.sampled_from([K1, P1, "10.0.0.0/8", "[::1]:5", "h:1", "off", "0x1"])
        ),
    ),
    st.sampled_from(["[Interface]", "[Peer]", "[peer]", "#", "", "[Foo]"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_LINE, max_size=12))
def test_parser_never_fails_with_anything_but_config_error(lines: list[str]) -> None:
    text = "\n".join(lines)
    try:
        cfg = parse(text)
    except ConfigError as exc:
        assert exc.line is None or 1 <= exc.line <= max(1, text.count("\n") + 1)
        return
    for value in [
        *cfg.interface.pre_up,
        *cfg.interface.post_up,
        *cfg.interface.dns_search,
        cfg.interface.table or "",
    ]:
        assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_parse_bytes_on_garbage(data: bytes) -> None:
    with contextlib.suppress(ConfigError):
        parse_bytes(data)


@pytest.mark.parametrize(
    "line",
    [
        "[Interface]\nListenPort = ",
        "[Interface]\nMTU = ",
        "[Interface]\nTable = ",
        "[Interface]\nFwMark = 0x",
        f"[Peer]\nPublicKey = {P1}\nAllowedIPs = 10.0.0.0/",
        f"[Peer]\nPublicKey = {P1}\nPersistentKeepalive = ",
    ],
)
def test_very_long_numbers_are_config_errors(line: str) -> None:
    # int() refuses strings of more than 4300 digits with a plain ValueError
    with pytest.raises(ConfigError):
        parse(line + "1" * 5000 + "\n")


def test_utf16_files_get_a_hint() -> None:
    data = "[Interface]\nListenPort = 5\n".encode("utf-16")
    with pytest.raises(ConfigError) as info:
        parse_bytes(data, "win.conf")
    assert str(info.value) == "win.conf:1: the file is UTF-16 text; save it as UTF-8"


@pytest.mark.parametrize(
    "text",
    [
        f"[Interface]\n{K1}\n",  # a bare key line: no `=`... except its padding
        f"[Interface]\n{K1[:-1]}\n",  # no `=` at all
        f"[Interface]\nPrivat Key = {K1}\n",
        f"[Peer]\nPublicKey = {P1}\nEndpoint = {K1}\n",
        f"[Peer]\nPublicKey = {P1}\nAllowedIPs = {K1}\n",
        f"[Interface]\nDNS = {P1[:-1]}\n",
        f"[Interface]\nTable = {K1[:-1]}\n",
    ],
)
def test_key_material_never_appears_in_an_error(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    for key in (K1, P1):
        assert key[:20] not in str(info.value)
