"""The `update` verb: an edited config applied to a running tunnel (real helper, engine and wireguard-go
server in the lab's namespaces). Peers, endpoints, keepalives and AllowedIPs change live on the same
engine process; anything else is refused as ``restart_required`` and changes nothing."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.helper.lab import (
    ENGINES,
    PUBLIC,
    PUBLIC6,
    SERVER_TUNNEL,
    SERVER_WAN,
    WG,
    WGDESK_ENGINE,
    Capture,
    Lab,
    engine_pid,
    genkey,
    lab,
)
from tests.netns import unique_name
from wgdesk.client import HelperError, RestartRequired

pytestmark = pytest.mark.root

T = unique_name("wgu")
SERVER6 = SERVER_WAN[1].split("/")[0]


def dump(L: Lab, name: str) -> dict[str, dict[str, str]]:
    """`wg show NAME dump` in the client namespace: peers by public key (endpoint, allowed IPs, keepalive,
    preshared key)."""
    lines = L.client.exec(WG, "show", name, "dump").stdout.splitlines()
    peers = {}
    for line in lines[1:]:
        key, psk, endpoint, allowed, _hs, _rx, _tx, keepalive = line.split("\t")
        peers[key] = {"endpoint": endpoint, "allowed": allowed, "keepalive": keepalive, "psk": psk}
    return peers


def journal_routes(L: Lab, name: str) -> list[str]:
    assert L.helper is not None
    path = L.helper.state_dir / "journal" / f"{name}.journal"
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [d for e in entries if e.get("kind") == "routes" for d in e["dsts"]]


def routes(L: Lab, name: str) -> set[str]:
    out = L.client.exec("ip", "-4", "route", "show", "dev", name).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_peers_keepalive_endpoint_and_allowed_ips_change_on_the_running_engine(engine: str) -> None:
    with lab() as L:
        h = L.start_helper(engine=ENGINES[engine])
        before = L.snapshot()
        c = h.client()
        c.up(T, L.config(), kill_switch=False)
        pid = engine_pid(h, T)
        assert L.ping(SERVER_TUNNEL[0], 2)
        assert dump(L, T)[L.server_public]["keepalive"] == "off"

        _, extra_public = genkey()
        extra = (
            f"\n[Peer]\nPublicKey = {extra_public}\nAllowedIPs = 10.96.5.0/24\nEndpoint = 10.98.2.2:51999\n"
        )
        edited = L.config(keepalive=7).replace(
            f"Endpoint = 10.98.2.2:{51820}", f"Endpoint = [{SERVER6}]:51820"
        )
        result = c.update(T, edited + extra)
        assert result["applied"] == "live"
        assert result["peers"] == {
            "added": [extra_public],
            "removed": [],
            "changed": [{"public_key": L.server_public, "fields": ["Endpoint", "PersistentKeepalive"]}],
        }
        assert result["routes"] == {"added": ["10.96.5.0/24"], "removed": []}
        peers = dump(L, T)
        assert peers[L.server_public]["keepalive"] == "7"
        assert peers[L.server_public]["endpoint"] == f"[{SERVER6}]:51820"
        assert peers[extra_public] == {
            "endpoint": "10.98.2.2:51999",
            "allowed": "10.96.5.0/24",
            "keepalive": "off",
            "psk": "(none)",
        }
        assert "10.96.5.0/24" in routes(L, T)
        assert "10.96.5.0/24" in journal_routes(L, T)
        assert engine_pid(h, T) == pid and os.path.exists(f"/proc/{pid}")  # the same engine, not a restart
        assert [t.state for t in c.status()] == ["up"]
        assert L.ping(SERVER_TUNNEL[0], 2)  # through the new (IPv6) endpoint

        # the extra peer goes, the server's AllowedIPs grow: routes follow, the journal with them
        widened = L.config(allowed="10.97.0.0/24, fd97::/64, 10.95.0.0/16", keepalive=7)
        result = c.update(T, widened.replace("Endpoint = 10.98.2.2:51820", f"Endpoint = [{SERVER6}]:51820"))
        assert result["peers"] == {
            "added": [],
            "removed": [extra_public],
            "changed": [{"public_key": L.server_public, "fields": ["AllowedIPs"]}],
        }
        assert result["routes"] == {"added": ["10.95.0.0/16"], "removed": ["10.96.5.0/24"]}
        peers = dump(L, T)
        assert set(peers) == {L.server_public}
        assert set(peers[L.server_public]["allowed"].split(",")) == {
            "10.97.0.0/24",
            "fd97::/64",
            "10.95.0.0/16",
        }
        assert routes(L, T) == {"10.97.0.0/24", "10.95.0.0/16"}
        assert sorted(journal_routes(L, T)) == ["10.95.0.0/16", "10.97.0.0/24", "fd97::/64"]
        assert engine_pid(h, T) == pid
        assert L.ping(SERVER_TUNNEL[0], 2)

        c.down(T)
        assert L.snapshot() == before
        assert not list((h.state_dir / "journal").glob("*.journal"))


def test_interface_changes_need_a_restart_and_change_nothing() -> None:
    with lab() as L:
        h = L.start_helper(engine=WGDESK_ENGINE)
        before = L.snapshot()
        c = h.client()
        config = L.config()
        c.up(T, config, kill_switch=False)
        pid = engine_pid(h, T)
        during, peers = L.snapshot(), dump(L, T)
        other_private, _ = genkey()
        cases = {
            "PrivateKey": config.replace(L.client_private, other_private),
            "Address": config.replace("10.97.0.2/32", "10.97.0.3/32"),
            "DNS": L.config(dns="10.97.0.1"),
            "MTU": L.config(extra_iface="MTU = 1300"),
            "ListenPort": L.config(extra_iface="ListenPort = 40123"),
            "AllowedIPs": L.config(allowed="10.97.0.0/24, fd97::/64, 0.0.0.0/0"),
        }
        for key, text in cases.items():
            with pytest.raises(RestartRequired) as e:
                c.update(T, text + "\n")  # (a keepalive change alongside would not be applied either)
            assert e.value.keys == [key] and e.value.code == "restart_required"
            assert "reconnect" in e.value.message and other_private not in e.value.message
        both = config.replace(L.client_private, other_private).replace("10.97.0.2/32", "10.97.0.3/32")
        with pytest.raises(RestartRequired) as e:
            c.update(T, both.replace("[Peer]", "[Peer]\nPersistentKeepalive = 9"))
        assert e.value.keys == ["PrivateKey", "Address"]
        assert L.snapshot() == during
        assert dump(L, T)[L.server_public]["keepalive"] == peers[L.server_public]["keepalive"] == "off"
        assert engine_pid(h, T) == pid
        assert other_private not in h.log() and L.client_private not in h.log()

        # overlaps with another tunnel's routes are refused as `up` refuses them
        other = unique_name("wgv")
        _, stranger = genkey()
        c.up(
            other,
            f"[Interface]\nPrivateKey = {other_private}\n\n"
            f"[Peer]\nPublicKey = {stranger}\nAllowedIPs = 10.90.0.0/24\n",
        )
        with pytest.raises(HelperError) as conflict:
            c.update(T, L.config(allowed="10.97.0.0/24, 10.90.0.0/16"))
        assert conflict.value.code == "conflict" and "10.90.0.0/24" in conflict.value.message
        c.down(other)
        assert L.snapshot() == during

        with pytest.raises(HelperError) as missing:
            c.update(unique_name("nope"), config)
        assert missing.value.code == "not_found"
        with pytest.raises(HelperError) as invalid:
            c.update(T, config + "Bogus = 1\n")
        assert invalid.value.code == "invalid" and invalid.value.message.startswith(f"{T}.conf:")

        # a route added live is journalled: a crashed helper's successor removes it with the rest
        c.update(T, L.config(allowed="10.97.0.0/24, fd97::/64, 10.95.0.0/16"))
        assert "10.95.0.0/16" in journal_routes(L, T)
        h.kill9()
        h.start()
        assert h.client().status() == []
        assert L.snapshot() == before


def test_a_preshared_key_and_a_removed_endpoint_apply_live() -> None:
    with lab() as L:
        h = L.start_helper(engine=WGDESK_ENGINE)
        before = L.snapshot()
        c = h.client()
        c.up(T, L.config(), kill_switch=False)
        pid = engine_pid(h, T)
        assert L.ping(SERVER_TUNNEL[0], 2)
        psk = subprocess.run([WG, "genpsk"], capture_output=True, text=True, check=True).stdout.strip()
        psk_file = L.workdir / "psk"
        psk_file.write_text(psk + "\n")
        L.server.exec(WG, "set", L.server_wg, "peer", L.client_public, "preshared-key", str(psk_file))

        # no Endpoint any more: UAPI cannot unset one, so the peer is created again (its session goes)
        endpoint = "Endpoint = 10.98.2.2:51820"
        no_endpoint = L.config(extra_peer=f"PresharedKey = {psk}").replace(endpoint + "\n", "")
        result = c.update(T, no_endpoint)
        assert result["peers"]["changed"] == [
            {"public_key": L.server_public, "fields": ["PresharedKey", "Endpoint"]}
        ]
        assert psk not in json.dumps(result) and psk not in h.log()
        peer = dump(L, T)[L.server_public]
        assert peer["endpoint"] == "(none)" and peer["psk"] == psk
        assert not L.ping(SERVER_TUNNEL[0], 1, timeout=1, attempts=1)

        # the endpoint back: a fresh handshake, which the server only answers with the preshared key
        result = c.update(T, L.config(extra_peer=f"PresharedKey = {psk}"))
        assert result["peers"]["changed"] == [{"public_key": L.server_public, "fields": ["Endpoint"]}]
        assert L.ping(SERVER_TUNNEL[0], 3)
        assert engine_pid(h, T) == pid

        c.down(T)
        assert L.snapshot() == before


def test_a_full_tunnel_with_kill_switch_takes_peer_edits_live_but_not_losing_its_default_route() -> None:
    with lab() as L:
        h = L.start_helper(engine=WGDESK_ENGINE)
        before = L.snapshot()
        c = h.client()
        everything = "0.0.0.0/0, ::/0"
        r = c.up(T, L.config(allowed=everything))
        assert r["full_tunnel"] is True and r["kill_switch"] is True
        pid = engine_pid(h, T)
        assert L.ping(PUBLIC, 2)
        nft = L.snapshot()["nft"]

        # a new endpoint (IPv6) and keepalive: the kill switch lets the engine's marked packets out to it
        edited = L.config(allowed=everything, keepalive=4).replace(
            "Endpoint = 10.98.2.2:51820", f"Endpoint = [{SERVER6}]:51820"
        )
        result = c.update(T, edited)
        assert result["peers"]["changed"] == [
            {"public_key": L.server_public, "fields": ["Endpoint", "PersistentKeepalive"]}
        ]
        assert result["routes"] == {"added": [], "removed": []}
        assert dump(L, T)[L.server_public]["endpoint"] == f"[{SERVER6}]:51820"
        cap = Capture(L.router, L.router_lan_if, f"host {PUBLIC} or host {PUBLIC6}", L.workdir)
        assert L.ping(PUBLIC, 2) and L.ping(PUBLIC6, 2)
        assert cap.count() == 0  # still only encrypted
        assert L.snapshot()["nft"] == nft

        with pytest.raises(RestartRequired) as e:
            c.update(T, L.config(allowed="0.0.0.0/0"))  # ::/0 gone: no longer the same full tunnel
        assert e.value.keys == ["AllowedIPs"]
        assert engine_pid(h, T) == pid
        c.down(T)
        assert L.snapshot() == before
