"""The writer: `parse(write(model)) == model` for every valid model, and no injection through values."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network, ip_interface
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wgdesk.config import Config, ConfigError, Endpoint, Interface, Peer, parse, parse_bytes, write
from wgdesk.config.parser import SPACE

DATA = Path(__file__).resolve().parent.parent / "data" / "configs" / "valid"

keys = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())
label = st.from_regex(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,10}[A-Za-z0-9_])?", fullmatch=True)
domains = (
    st.lists(label, min_size=1, max_size=4).map(".".join).filter(lambda d: not re.fullmatch(r"[0-9.]+", d))
)


def _interface(address: IPv4Address | object, prefix: int) -> IPv4Interface | IPv6Interface:
    return ip_interface((address, prefix % (33 if isinstance(address, IPv4Address) else 129)))  # type: ignore[arg-type]


interfaces = st.builds(_interface, st.ip_addresses(), st.integers(0, 128))
networks = interfaces.map(lambda i: i.network)
hosts = st.one_of(st.ip_addresses().map(str), domains)
endpoints = st.builds(Endpoint, hosts, st.integers(1, 65535))
hook_text = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp", "Cs"), blacklist_characters="#"),
        min_size=1,
        max_size=40,
    )
    .map(lambda s: s.strip(SPACE))
    .filter(bool)
)
tables = st.one_of(
    st.sampled_from(["auto", "off", "main"]),
    st.integers(0, 2**32 - 1).map(str),
    st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
).filter(lambda t: t not in ("auto", "off") or True)
hooks = st.lists(hook_text, max_size=2).map(tuple)

interface_models = st.builds(
    Interface,
    private_key=st.none() | keys,
    listen_port=st.none() | st.integers(0, 65535),
    fwmark=st.none() | st.integers(0, 2**32 - 1),
    addresses=st.lists(interfaces, max_size=3).map(tuple),
    dns=st.lists(st.ip_addresses(), max_size=3).map(tuple),
    dns_search=st.lists(domains, max_size=2).map(tuple),
    mtu=st.none() | st.integers(68, 65535),
    table=st.none() | tables,
    save_config=st.booleans(),
    pre_up=hooks,
    post_up=hooks,
    pre_down=hooks,
    post_down=hooks,
)
peer_models = st.builds(
    Peer,
    public_key=keys,
    preshared_key=st.none() | keys,
    allowed_ips=st.lists(networks, max_size=4).map(tuple),
    endpoint=st.none() | endpoints,
    persistent_keepalive=st.none() | st.integers(0, 65535),
)
configs = st.builds(Config, interface=interface_models, peers=st.lists(peer_models, max_size=4).map(tuple))


@settings(max_examples=500, deadline=None)
@given(configs)
def test_parse_of_write_is_identity(cfg: Config) -> None:
    assert parse(write(cfg)) == cfg


@pytest.mark.parametrize("path", sorted(DATA.glob("*.conf")), ids=lambda p: p.name)
def test_corpus_round_trips(path: Path) -> None:
    cfg = parse_bytes(path.read_bytes())
    text = write(cfg)
    assert parse(text) == cfg
    assert write(parse(text)) == text  # the written form is a fixed point


def test_written_form() -> None:
    cfg = Config(
        Interface(
            private_key="2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y=",
            fwmark=0x1234,
            addresses=(ip_interface("10.0.0.2/24"), ip_interface("fd00::2/64")),
            dns=(IPv4Address("10.0.0.1"),),
            dns_search=("corp.example",),
            post_up=("logger up",),
        ),
        (
            Peer(
                "GS0v7jt5I//6d0J95VmF+w4czLnO5PaAHC3SCPiFbUk=",
                allowed_ips=(IPv4Network("0.0.0.0/0"), IPv6Network("::/0")),
                endpoint=Endpoint("2001:db8::1", 51820),
                persistent_keepalive=25,
            ),
        ),
    )
    assert write(cfg) == (
        "[Interface]\n"
        "PrivateKey = 2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y=\n"
        "FwMark = 0x1234\n"
        "Address = 10.0.0.2/24, fd00::2/64\n"
        "DNS = 10.0.0.1, corp.example\n"
        "PostUp = logger up\n"
        "\n"
        "[Peer]\n"
        "PublicKey = GS0v7jt5I//6d0J95VmF+w4czLnO5PaAHC3SCPiFbUk=\n"
        "AllowedIPs = 0.0.0.0/0, ::/0\n"
        "Endpoint = [2001:db8::1]:51820\n"
        "PersistentKeepalive = 25\n"
    )


P = "GS0v7jt5I//6d0J95VmF+w4czLnO5PaAHC3SCPiFbUk="


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        (Config(Interface(post_up=("true\n[Peer]\nPublicKey = x",))), "PostUp"),
        (Config(Interface(post_up=("rm -rf / # nope",))), "PostUp"),
        (Config(Interface(pre_down=(" padded",))), "PreDown"),
        (Config(Interface(dns_search=("evil\nPostUp = x",))), "DNS"),
        (Config(Interface(dns_search=("1.2.3.4",))), "DNS"),
        (Config(Interface(table="main\nPostUp=x")), "Table"),
        (Config(Interface(private_key="short")), "PrivateKey"),
        (Config(Interface(mtu=10)), "MTU"),
        (Config(Interface(listen_port=70000)), "ListenPort"),
        (Config(peers=(Peer(P, endpoint=Endpoint("a b", 1)),)), "Endpoint"),
        (Config(peers=(Peer(P, endpoint=Endpoint("host\n[Peer]", 1)),)), "Endpoint"),
        (Config(peers=(Peer(P, persistent_keepalive=-1),)), "PersistentKeepalive"),
        (Config(peers=(Peer("x" * 44),)), "PublicKey"),
    ],
)
def test_writer_refuses_values_that_would_not_read_back(cfg: Config, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        write(cfg)
    assert info.value.key == key


def test_without_secrets_and_has_secrets() -> None:
    cfg = parse_bytes((DATA / "server.conf").read_bytes())
    assert cfg.has_secrets
    bare = cfg.without_secrets()
    assert not bare.has_secrets
    assert "PrivateKey" not in write(bare) and "PresharedKey" not in write(bare)
    # the source-line record keeps where the keys were, not what they were
    assert cfg.interface.private_key not in repr(bare.lines)
    assert cfg.peers[1].preshared_key not in repr(bare.lines)
    assert bare.line_of("PrivateKey") == cfg.line_of("PrivateKey") == 5
    assert replace(bare, interface=replace(bare.interface, private_key=cfg.interface.private_key)) != cfg


def test_repr_shows_no_secret() -> None:
    # repr() is what logs, tracebacks and test reports print
    cfg = parse_bytes((DATA / "server.conf").read_bytes())
    assert cfg.interface.private_key is not None and cfg.peers[1].preshared_key is not None
    for text in (repr(cfg), repr(cfg.interface), repr(cfg.peers)):
        assert cfg.interface.private_key not in text
        assert cfg.peers[1].preshared_key not in text
    assert cfg.peers[1].public_key in repr(cfg)


@settings(max_examples=300, deadline=None)
@given(configs, st.data())
def test_a_control_character_anywhere_in_a_setting_is_rejected(cfg: Config, data: st.DataObject) -> None:
    text = write(cfg)
    position = data.draw(st.integers(0, len(text)))
    char = data.draw(st.characters(categories=("Cc", "Cf", "Zl", "Zp"), exclude_characters=SPACE))
    with pytest.raises(ConfigError, match="control character"):
        parse(text[:position] + char + text[position:])
