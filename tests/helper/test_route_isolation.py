"""What one member's tunnel may do to routes that carry another member's traffic (issue 13, item 1).

Routing is machine-wide: a route one member adds carries everybody's packets. So while a member's
tunnel is up, another member's tunnel may not route, address or look up anything that would take
part of its traffic: no prefix overlapping its routes (its full tunnel's default route included —
``suppress_prefixlength 0`` makes any main-table route beat it), no address inside them (the local
table beats everything), not its routing table, not its DNS servers or endpoints. Each variant below
was accepted before the fix and sent the victim's packets to the attacker's tunnel.
"""

from __future__ import annotations

import pytest

from tests.helper.lab import SERVER_TUNNEL, SERVER_WAN
from tests.helper.members import two_members
from tests.netns import unique_name

pytestmark = pytest.mark.root

VICTIM, ATTACKER, SECOND = unique_name("wgv"), unique_name("wgx"), unique_name("wgy")
ENDPOINT = f"{SERVER_WAN[0].split('/')[0]}:51820"


def attacker_config(L, allowed: str | None, address: str = "10.55.0.2/32", extra: str = "") -> str:  # type: ignore[no-untyped-def]
    """A config of the attacker's own (the server need not know it: the refusal comes first)."""
    peer = f"AllowedIPs = {allowed}\n" if allowed else ""
    return (
        f"[Interface]\nPrivateKey = {L.client_private}\nAddress = {address}\n{extra}\n"
        f"[Peer]\nPublicKey = {L.server_public}\n{peer}Endpoint = {ENDPOINT}\n"
    )


def test_a_member_cannot_take_traffic_of_another_members_full_tunnel() -> None:
    with two_members() as (L, victim, attacker):
        # the victim: an IPv4 full tunnel whose DNS server is reached through it
        victim.ok("up", name=VICTIM, config=L.config(allowed="0.0.0.0/0", dns=SERVER_TUNNEL[0]))
        assert L.ping(SERVER_TUNNEL[0], 2)
        [tunnel] = victim.ok("status")["tunnels"]
        attacks = {
            "the two halves of the address space": attacker_config(L, "0.0.0.0/1, 128.0.0.0/1"),
            "a host route to the victim's DNS server": attacker_config(L, f"{SERVER_TUNNEL[0]}/32"),
            "an address inside the victim's tunnel": attacker_config(
                L, None, "203.0.113.9/32", "Table = off"
            ),
            "the victim's routing table": attacker_config(
                L, "10.55.0.0/24", extra=f"Table = {tunnel['fwmark']}"
            ),
        }
        for what, config in attacks.items():
            reply = attacker.request("up", name=ATTACKER, config=config)
            assert "conflict" in reply, (what, reply)
            assert f"tunnel {VICTIM} of another user" in reply["conflict"], (what, reply)
        # the victim's traffic still goes through the victim's tunnel, and nothing of the attacker's is up
        assert L.ping(SERVER_TUNNEL[0], 2)
        assert ATTACKER not in L.client.exec("ip", "link", "show").stdout
        # positive control: what does not touch the victim's traffic is allowed (IPv6 only) ...
        v6 = attacker_config(L, "fd96::/64", "fd96::2/128")
        assert attacker.ok("up", name=ATTACKER, config=v6)["state"] == "up"
        # ... and cannot later grow into the victim's family
        reply = attacker.request(
            "update", name=ATTACKER, config=attacker_config(L, "fd96::/64, 10.1.0.0/16", "fd96::2/128")
        )
        assert "conflict" in reply, reply
        attacker.ok("down", name=ATTACKER)
        # the victim may still add a split tunnel of their own under their full tunnel (as wg-quick does)
        own = attacker_config(L, "10.55.0.0/24", "10.55.0.2/32")
        assert victim.ok("up", name=SECOND, config=own)["state"] == "up"
        victim.ok("down", name=SECOND)
        victim.ok("down", name=VICTIM)


def test_a_member_cannot_put_an_address_or_route_inside_another_members_split_tunnel() -> None:
    with two_members() as (L, victim, attacker):
        victim.ok("up", name=VICTIM, config=L.config(), kill_switch=False)  # routes 10.97.0.0/24, fd97::/64
        assert L.ping(SERVER_TUNNEL[0], 2)
        # the victim's server address as the attacker's own: the local table would answer for it
        reply = attacker.request(
            "up", name=ATTACKER, config=attacker_config(L, None, f"{SERVER_TUNNEL[0]}/32", "Table = off")
        )
        assert "conflict" in reply and f"tunnel {VICTIM} of another user" in reply["conflict"], reply
        # the victim's endpoint routed into the attacker's tunnel would cut the victim off
        reply = attacker.request(
            "up", name=ATTACKER, config=attacker_config(L, f"{SERVER_WAN[0].split('/')[0]}/32")
        )
        assert "conflict" in reply and f"tunnel {VICTIM} of another user" in reply["conflict"], reply
        assert L.ping(SERVER_TUNNEL[0], 2)
        # positive control: a tunnel beside the victim's is fine
        assert attacker.ok("up", name=ATTACKER, config=attacker_config(L, "10.55.0.0/24"))["state"] == "up"
        attacker.ok("down", name=ATTACKER)
        victim.ok("down", name=VICTIM)
