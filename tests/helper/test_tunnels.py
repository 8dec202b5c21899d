"""Several tunnels, conflicts, Table/MTU, wgdeskctl and the event stream, through the real helper."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.helper.lab import ROOT, SERVER_TUNNEL, SERVER_WAN, genkey, lab
from tests.netns import unique_name
from tests.secret_service import SecretService, secret_service  # noqa: F401
from wgdesk.client import HelperError

pytestmark = pytest.mark.root

T = unique_name("wgt")  # tunnel (= interface) names are unique per run: /var/run/wireguard is shared
TA = unique_name("wga")
TB = unique_name("wgb")
TC = unique_name("wgc")
TF = unique_name("wgf")
TS = unique_name("wgs")


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
        c.up(TA, L.config(), kill_switch=False)
        cfg_b, _ = second_tunnel(L, "10.96.0.0/24")
        c.up(TB, cfg_b, kill_switch=False)
        assert sorted(t.name for t in c.status()) == sorted([TA, TB])
        assert L.ping(SERVER_TUNNEL[0], 2)
        mid = L.snapshot()
        cfg_c, _ = second_tunnel(L, "10.97.0.128/25", net="10.95.0")
        with pytest.raises(HelperError) as e:
            c.up(TC, cfg_c)
        assert e.value.code == "conflict"
        assert f"10.97.0.128/25 overlaps 10.97.0.0/24, which tunnel {TA} already routes" in e.value.message
        with pytest.raises(HelperError) as e:
            c.up(TA, L.config())
        assert e.value.code == "conflict" and "already up" in e.value.message
        assert L.snapshot() == mid
        c.down(TA)
        c.down(TB)
        assert L.snapshot() == before


def test_only_one_full_tunnel() -> None:
    with lab() as L:
        h = L.start_helper()
        c = h.client()
        c.up(TA, L.config(allowed="0.0.0.0/0"), kill_switch=False)
        cfg_b, _ = second_tunnel(L, "0.0.0.0/0")
        with pytest.raises(HelperError) as e:
            c.up(TB, cfg_b)
        assert e.value.code == "conflict" and "only one full tunnel" in e.value.message
        with pytest.raises(HelperError) as e:
            c.up(TC, L.config(allowed="10.9.0.0/24"), full_tunnel=True)
        assert e.value.code == "invalid" and "full tunnel needs a peer with AllowedIPs" in e.value.message
        c.down(TA)


def test_table_mtu_and_no_full_tunnel_are_honoured() -> None:
    with lab() as L:
        h = L.start_helper()
        before = L.snapshot()
        c = h.client()
        c.up(T, L.config(extra_iface="Table = 1234\nMTU = 1380"))
        assert L.client.exec("ip", "route", "show", "table", "1234").stdout.split() == [
            "10.97.0.0/24",
            "dev",
            T,
            "scope",
            "link",
        ]
        assert T not in L.client.exec("ip", "route", "show", "table", "main").stdout
        assert json.loads(L.client.exec("ip", "-j", "link", "show", T).stdout)[0]["mtu"] == 1380
        c.down(T)
        c.up(T, L.config(extra_iface="Table = off"))
        routes = L.client.exec("ip", "route", "show", "table", "all").stdout.splitlines()
        assert [r for r in routes if T in r and "table local" not in r and "proto kernel" not in r] == []
        c.down(T)
        r = c.up(T, L.config(allowed="0.0.0.0/0, 10.97.0.0/24"), full_tunnel=False)
        assert r["full_tunnel"] is False and r["kill_switch"] is False
        assert any("full tunnel is off" in w for w in r["warnings"])
        routes = L.client.exec("ip", "route", "show", "table", "main").stdout
        assert f"10.97.0.0/24 dev {T}" in routes and f"default dev {T}" not in routes
        assert link_mtu(L, T) == 1420  # 1500 - 80
        c.down(T)
        # a smaller MTU on the way to the endpoint gives a smaller tunnel MTU
        L.client.exec("ip", "link", "set", L.client_if, "mtu", "1380")
        c.up(T, L.config(), kill_switch=False)
        assert link_mtu(L, T) == 1300
        c.down(T)
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
        conf = L.workdir / f"{TF}.conf"
        conf.write_text(L.config(dns="10.97.0.1"))
        r = wgdeskctl(h, "up", str(conf), "--no-kill-switch")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"{TF} is up (full tunnel off, kill switch off)"
        assert L.ping(SERVER_TUNNEL[0], 2)
        r = wgdeskctl(h, "show", "--json")
        data = json.loads(r.stdout)
        [t] = data["tunnels"]
        assert t["name"] == TF and t["interface"] == TF and t["state"] == "up"
        [p] = t["peers"]
        assert set(p) >= {"public_key", "endpoint", "allowed_ips", "latest_handshake", "rx_bytes", "tx_bytes"}
        assert p["public_key"] == L.server_public and isinstance(p["latest_handshake"], int)
        assert L.client_private not in r.stdout
        text = wgdeskctl(h, "show", TF).stdout
        assert (
            f"interface: {TF}" in text and f"peer: {L.server_public}" in text and "latest handshake:" in text
        )
        # an edited keepalive applies live; an edited Address needs a reconnect and changes nothing
        edited = L.config(dns="10.97.0.1", keepalive=7)
        conf.write_text(edited)
        r = wgdeskctl(h, "update", str(conf))
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == (
            f"{TF} updated live: 0 peer(s) added, 0 removed, 1 changed; 0 route(s) added, 0 removed"
        )
        [peer_line] = L.client.exec("wg", "show", TF, "dump").stdout.splitlines()[1:]
        assert peer_line.split("\t")[7] == "7"
        conf.write_text(edited.replace("10.97.0.2/32", "10.97.0.3/32", 1))
        r = wgdeskctl(h, "update", str(conf))
        assert r.returncode == 1 and "needs a reconnect: Address" in r.stderr, r.stderr
        assert L.ping(SERVER_TUNNEL[0], 2)
        r = wgdeskctl(h, "down", TF)
        assert r.returncode == 0 and r.stdout.strip() == f"{TF} is down"
        r = wgdeskctl(h, "down", TF)
        assert r.returncode == 1 and f"no tunnel named {TF} is up" in r.stderr


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
        from tests.netns import wait_for

        assert wait_for(lambda: "event subscriber connected" in h.log(), 10)
        c = h.client()
        c.up(T, L.config(), kill_switch=False)
        assert L.ping(SERVER_TUNNEL[0], 2)
        # the helper reports handshakes from its periodic engine poll: wait for that event, not a fixed time
        assert wait_for(
            lambda: any(e["event"] == "handshake" and e["peer"] == L.server_public for e in list(events)), 15
        )
        c.down(T)
        assert done.wait(10)
        states = [e["state"] for e in events if e["event"] == "state"]
        assert states == ["starting", "up", "stopping", "down"]


def test_roaming_endpoint_keeps_working_under_the_kill_switch() -> None:
    with lab() as L:
        h = L.start_helper()
        c = h.client()
        c.up(T, L.config(allowed="0.0.0.0/0, ::/0"))
        # room for one lost first initiation (retransmitted after Rekey-Timeout, 5 s): this test is
        # about roaming under the kill switch, and a fresh-clone CI run once missed the 7 s window (the
        # one cause found: strict rp_filter inherited from the host; see the rp_filter test, lab.py pins it)
        assert L.ping(SERVER_TUNNEL[0], 2, attempts=5)
        L.server.exec("ip", "addr", "add", "10.98.2.3/24", "dev", L.server_if)
        L.client.exec("wg", "set", T, "peer", L.server_public, "endpoint", "10.98.2.3:51820")
        assert L.ping(SERVER_TUNNEL[0], 3)
        [t] = c.status()
        assert t.peers[0].endpoint == "10.98.2.3:51820"
        c.down(T)


def test_a_first_handshake_answered_after_up_gets_in_under_strict_reverse_path_filtering() -> None:
    with lab() as L:
        for key in ("all", "default", L.client_if):
            L.client.exec("sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=1")  # strict: RHEL's default
        h = L.start_helper()
        c = h.client()
        # the server answers only after up returned, as over any real network (RTT > the helper's last steps)
        os.kill(L.server_proc.pid, signal.SIGSTOP)
        try:
            c.up(T, L.config(allowed="0.0.0.0/0, ::/0"), kill_switch=False)
        finally:
            os.kill(L.server_proc.pid, signal.SIGCONT)
        # one attempt of 3 s: inside the first initiation's Rekey-Timeout, so a dropped response fails it
        answered = L.ping(SERVER_TUNNEL[0], 1, timeout=3, attempts=1)
        dropped = L.client.exec("nstat", "-az", "TcpExtIPReversePathFilter").stdout.split()[-2]
        c.down(T)
        assert answered and dropped == "0", f"{dropped} packet(s) dropped by the reverse-path filter"


def test_wgdeskctl_up_a_stored_tunnel_sends_its_keys_from_the_keyring(
    secret_service: SecretService,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = dict(secret_service.env)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    with lab() as L:
        h = L.start_helper()
        conf = tmp_path / f"{TS}.conf"
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
        stored = (tmp_path / "config" / "wgdesk" / "tunnels" / f"{TS}.conf").read_text()
        assert "PrivateKey" not in stored  # the key is only in the keyring
        r = ctl("up", TS, "--no-kill-switch")
        assert r.returncode == 0, r.stderr
        assert L.ping(SERVER_TUNNEL[0], 2)  # the engine got the private key
        assert [t["name"] for t in json.loads(ctl("show", "--json").stdout)["tunnels"]] == [TS]
        assert ctl("down", TS).returncode == 0


def test_endpoint_host_names_are_resolved_by_the_helper() -> None:
    with lab() as L:
        h = L.start_helper()
        c = h.client()
        cfg = L.config().replace(f"Endpoint = {SERVER_WAN[0].split('/')[0]}:", "Endpoint = vpn.lab.test:")
        assert "vpn.lab.test:51820" in cfg
        c.up(T, cfg, kill_switch=False)
        assert L.ping(SERVER_TUNNEL[0], 2)
        assert c.status()[0].peers[0].endpoint == "10.98.2.2:51820"
        c.down(T)
        with pytest.raises(HelperError) as e:
            c.up(T, cfg.replace("vpn.lab.test", "nowhere.invalid"))
        assert e.value.code == "invalid" and "cannot resolve endpoint nowhere.invalid" in e.value.message
