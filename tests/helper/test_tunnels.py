"""Several tunnels, conflicts, Table/MTU, wgdeskctl and the event stream, through the real helper."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.helper.lab import ROOT, SERVER_TUNNEL, SERVER_WAN, genkey, lab
from tests.secret_service import SecretService, secret_service  # noqa: F401
from wgdesk.client import HelperError

pytestmark = pytest.mark.root


def second_tunnel(L: Any, allowed: str, net: str = "10.96.0") -> tuple[str, str]:
    """A config for a second client key that the server also knows; returns (config, public key)."""
    private, public = genkey()
    L.server.exec("wg", "set", L.server_wg, "peer", public, "allowed-ips", f"{net}.2/32")
    cfg = (
        f"[Interface]\nPrivateKey = {private}\nAddress = {net}.2/32\n\n"
        f"[Peer]\nPublicKey = {L.server_public}\n"
        f"AllowedIPs = {allowed}\nEndpoint = {SERVER_WAN[0].split('/')[0]}:51820\n"
    )
    return cfg, public


def test_several_tunnels_at_once_and_conflicts_are_explained() -> None:
    with lab() as L:
        h = L.start_helper()
        before = L.snapshot()
        c = h.client()
        c.up("wgta", L.config(), kill_switch=False)
        cfg_b, _ = second_tunnel(L, "10.96.0.0/24")
        c.up("wgtb", cfg_b, kill_switch=False)
        assert sorted(t["name"] for t in c.status()) == ["wgta", "wgtb"]
        assert L.ping(SERVER_TUNNEL[0], 2)
        mid = L.snapshot()
        cfg_c, _ = second_tunnel(L, "10.97.0.128/25", net="10.95.0")
        with pytest.raises(HelperError) as e:
            c.up("wgtc", cfg_c)
        assert e.value.code == "conflict"
        assert "10.97.0.128/25 overlaps 10.97.0.0/24, which tunnel wgta already routes" in e.value.message
        with pytest.raises(HelperError) as e:
            c.up("wgta", L.config())
        assert e.value.code == "conflict" and "already up" in e.value.message
        assert L.snapshot() == mid
        c.down("wgta")
        c.down("wgtb")
        assert L.snapshot() == before


def test_only_one_full_tunnel() -> None:
    with lab() as L:
        h = L.start_helper()
        c = h.client()
        c.up("wgta", L.config(allowed="0.0.0.0/0"), kill_switch=False)
        cfg_b, _ = second_tunnel(L, "0.0.0.0/0")
        with pytest.raises(HelperError) as e:
            c.up("wgtb", cfg_b)
        assert e.value.code == "conflict" and "only one full tunnel" in e.value.message
        with pytest.raises(HelperError) as e:
            c.up("wgtc", L.config(allowed="10.9.0.0/24"), full_tunnel=True)
        assert e.value.code == "invalid" and "full tunnel needs a peer with AllowedIPs" in e.value.message
        c.down("wgta")


def test_table_mtu_and_no_full_tunnel_are_honoured() -> None:
    with lab() as L:
        h = L.start_helper()
        before = L.snapshot()
        c = h.client()
        c.up("wgt0", L.config(extra_iface="Table = 1234\nMTU = 1380"))
        assert L.client.exec("ip", "route", "show", "table", "1234").stdout.split() == [
            "10.97.0.0/24",
            "dev",
            "wgt0",
            "scope",
            "link",
        ]
        assert "wgt0" not in L.client.exec("ip", "route", "show", "table", "main").stdout
        assert json.loads(L.client.exec("ip", "-j", "link", "show", "wgt0").stdout)[0]["mtu"] == 1380
        c.down("wgt0")
        c.up("wgt0", L.config(extra_iface="Table = off"))
        routes = L.client.exec("ip", "route", "show", "table", "all").stdout.splitlines()
        assert [r for r in routes if "wgt0" in r and "table local" not in r and "proto kernel" not in r] == []
        c.down("wgt0")
        r = c.up("wgt0", L.config(allowed="0.0.0.0/0, 10.97.0.0/24"), full_tunnel=False)
        assert r["full_tunnel"] is False and r["kill_switch"] is False
        assert any("full tunnel is off" in w for w in r["warnings"])
        routes = L.client.exec("ip", "route", "show", "table", "all").stdout
        assert "10.97.0.0/24 dev wgt0" in routes and "default dev wgt0" not in routes
        assert link_mtu(L, "wgt0") == 1420  # 1500 - 80
        c.down("wgt0")
        # a smaller MTU on the way to the endpoint gives a smaller tunnel MTU
        L.client.exec("ip", "link", "set", L.client_if, "mtu", "1380")
        c.up("wgt0", L.config(), kill_switch=False)
        assert link_mtu(L, "wgt0") == 1300
        c.down("wgt0")
        L.client.exec("ip", "link", "set", L.client_if, "mtu", "1500")
        assert L.snapshot() == before


def link_mtu(L: Any, ifname: str) -> int:
    mtu: int = json.loads(L.client.exec("ip", "-j", "link", "show", ifname).stdout)[0]["mtu"]
    return mtu


def wgdeskctl(h: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wgdesk.cli", "--socket", str(h.socket), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_wgdeskctl_up_show_down_a_file() -> None:
    with lab() as L:
        h = L.start_helper()
        conf = L.workdir / "wgfile.conf"
        conf.write_text(L.config(dns="10.97.0.1"))
        r = wgdeskctl(h, "up", str(conf), "--no-kill-switch")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "wgfile is up (full tunnel off, kill switch off)"
        assert L.ping(SERVER_TUNNEL[0], 2)
        r = wgdeskctl(h, "show", "--json")
        data = json.loads(r.stdout)
        [t] = data["tunnels"]
        assert t["name"] == "wgfile" and t["interface"] == "wgfile" and t["state"] == "up"
        [p] = t["peers"]
        assert set(p) >= {"public_key", "endpoint", "allowed_ips", "latest_handshake", "rx_bytes", "tx_bytes"}
        assert p["public_key"] == L.server_public and isinstance(p["latest_handshake"], int)
        assert L.client_private not in r.stdout
        text = wgdeskctl(h, "show", "wgfile").stdout
        assert (
            "interface: wgfile" in text and f"peer: {L.server_public}" in text and "latest handshake:" in text
        )
        r = wgdeskctl(h, "down", "wgfile")
        assert r.returncode == 0 and r.stdout.strip() == "wgfile is down"
        r = wgdeskctl(h, "down", "wgfile")
        assert r.returncode == 1 and "no tunnel named wgfile is up" in r.stderr


def test_subscribers_see_state_and_handshake_events() -> None:
    with lab() as L:
        h = L.start_helper()
        events: list[dict[str, Any]] = []
        done = threading.Event()

        def listen() -> None:
            for ev in h.client().subscribe():
                events.append(ev)
                if ev.get("state") == "down":
                    done.set()
                    return

        threading.Thread(target=listen, daemon=True).start()
        import time

        from tests.netns import wait_for

        assert wait_for(lambda: "event subscriber connected" in h.log(), 10)
        c = h.client()
        c.up("wgt0", L.config(), kill_switch=False)
        assert L.ping(SERVER_TUNNEL[0], 2)
        time.sleep(2.5)
        c.down("wgt0")
        assert done.wait(10)
        states = [e["state"] for e in events if e["event"] == "state"]
        assert states == ["starting", "up", "stopping", "down"]
        assert any(e["event"] == "handshake" and e["peer"] == L.server_public for e in events)


def test_roaming_endpoint_keeps_working_under_the_kill_switch() -> None:
    with lab() as L:
        h = L.start_helper()
        c = h.client()
        c.up("wgt0", L.config(allowed="0.0.0.0/0, ::/0"))
        assert L.ping(SERVER_TUNNEL[0], 2)
        L.server.exec("ip", "addr", "add", "10.98.2.3/24", "dev", L.server_if)
        L.client.exec("wg", "set", "wgt0", "peer", L.server_public, "endpoint", "10.98.2.3:51820")
        assert L.ping(SERVER_TUNNEL[0], 3)
        [t] = c.status()
        assert t["peers"][0]["endpoint"] == "10.98.2.3:51820"
        c.down("wgt0")


def test_wgdeskctl_up_a_stored_tunnel_sends_its_keys_from_the_keyring(
    secret_service: SecretService,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = dict(secret_service.env)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    with lab() as L:
        h = L.start_helper()
        conf = tmp_path / "office.conf"
        conf.write_text(L.config())

        def ctl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "wgdesk.cli", "--socket", str(h.socket), *args],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                cwd=ROOT,
                env=env,
            )

        assert ctl("import", str(conf)).returncode == 0
        stored = (tmp_path / "config" / "wgdesk" / "tunnels" / "office.conf").read_text()
        assert "PrivateKey" not in stored  # the key is only in the keyring
        r = ctl("up", "office", "--no-kill-switch")
        assert r.returncode == 0, r.stderr
        assert L.ping(SERVER_TUNNEL[0], 2)  # the engine got the private key
        assert [t["name"] for t in json.loads(ctl("show", "--json").stdout)["tunnels"]] == ["office"]
        assert ctl("down", "office").returncode == 0
