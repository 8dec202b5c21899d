"""Which edits of a running tunnel's config apply live (no root: the pure comparison of two configs)."""

from __future__ import annotations

import pytest

from wgdesk.config import parse
from wgdesk.helper.live_update import peer_states as _peer_states
from wgdesk.helper.live_update import restart_keys

KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
OTHER_KEY = "UHpOw9OuAZr6yd5+Gr5RyE/8MQPzGIFE5vV1JwvMpWc="
PEER = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
PEER2 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="

BASE = f"""[Interface]
PrivateKey = {KEY}
Address = 10.0.0.2/32, fd00::2/128
DNS = 10.0.0.1

[Peer]
PublicKey = {PEER}
Endpoint = 192.0.2.1:51820
AllowedIPs = 10.0.0.0/24
"""


def keys(edited: str, base: str = BASE) -> list[str]:
    return restart_keys(parse(base, "t.conf"), parse(edited, "t.conf"))


@pytest.mark.parametrize(
    "edited",
    [
        BASE.replace("AllowedIPs = 10.0.0.0/24", "AllowedIPs = 10.0.0.0/24, 10.1.0.0/16"),
        BASE.replace("192.0.2.1:51820", "192.0.2.9:4000"),
        BASE + "PersistentKeepalive = 25\nPresharedKey = " + KEY + "\n",
        BASE + f"\n[Peer]\nPublicKey = {PEER2}\nAllowedIPs = 10.5.0.0/24\n",
        BASE.replace("Address = 10.0.0.2/32, fd00::2/128", "Address = fd00::2/128, 10.0.0.2/32"),
    ],
)
def test_peer_edits_apply_live(edited: str) -> None:
    assert keys(edited) == []


@pytest.mark.parametrize(
    ("edited", "expected"),
    [
        (BASE.replace(KEY, OTHER_KEY), ["PrivateKey"]),
        (BASE.replace("10.0.0.2/32", "10.0.0.3/32"), ["Address"]),
        (BASE.replace("DNS = 10.0.0.1", "DNS = 10.0.0.1, corp.test"), ["DNS"]),
        (BASE.replace("DNS = 10.0.0.1\n", ""), ["DNS"]),
        (BASE.replace("[Peer]", "MTU = 1380\n\n[Peer]"), ["MTU"]),
        (BASE.replace("[Peer]", "ListenPort = 5000\nFwMark = 77\n\n[Peer]"), ["ListenPort", "FwMark"]),
        (BASE.replace("[Peer]", "Table = 1234\n\n[Peer]"), ["Table"]),
        (BASE.replace("[Peer]", "PostUp = true\n\n[Peer]"), ["PostUp"]),
        (BASE.replace("AllowedIPs = 10.0.0.0/24", "AllowedIPs = 0.0.0.0/0"), ["AllowedIPs"]),
        (BASE.replace("AllowedIPs = 10.0.0.0/24", "AllowedIPs = 10.0.0.0/24, ::/0"), ["AllowedIPs"]),
    ],
)
def test_interface_edits_and_a_new_default_route_need_a_restart(edited: str, expected: list[str]) -> None:
    assert keys(edited) == expected


def test_a_default_route_under_table_off_is_not_a_full_tunnel_and_applies_live() -> None:
    off = BASE.replace("[Peer]", "Table = off\n\n[Peer]")
    assert keys(off.replace("AllowedIPs = 10.0.0.0/24", "AllowedIPs = 0.0.0.0/0"), base=off) == []


def test_a_repeated_peer_is_merged_as_up_applies_it() -> None:
    text = BASE + f"\n[Peer]\nPublicKey = {PEER}\nAllowedIPs = 10.9.0.0/24\nPersistentKeepalive = 5\n"
    [state] = _peer_states(parse(text, "t.conf").peers).values()
    assert state.endpoint == ("192.0.2.1", 51820)  # the first section's, not unset by the second
    assert state.keepalive == 5
    assert {str(n) for n in state.allowed_ips} == {"10.9.0.0/24"}  # replace_allowed_ips: the last list


def test_keepalive_off_and_unset_are_the_same() -> None:
    unset = _peer_states(parse(BASE, "t.conf").peers)
    off = _peer_states(parse(BASE + "PersistentKeepalive = 0\n", "t.conf").peers)
    assert unset == off
