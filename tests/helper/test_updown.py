"""up/down through the real helper (inside the client namespace) against a wireguard-go server."""

from __future__ import annotations

import os
import time

import pytest

from tests.helper.lab import ENGINES, PUBLIC, PUBLIC6, SERVER_TUNNEL, Capture, lab
from tests.netns import unique_name
from wgdesk.client import HelperError

pytestmark = pytest.mark.root

T = unique_name("wgt")  # tunnel (= interface) names are unique per run: /var/run/wireguard is shared


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_split_tunnel_up_down_leaves_the_system_byte_identical(engine: str) -> None:
    with lab() as L:
        h = L.start_helper(engine=ENGINES[engine])
        before = L.snapshot()
        c = h.client()
        result = c.up(T, L.config(dns="10.97.0.1, corp.test"), kill_switch=False)
        assert result["state"] == "up" and result["full_tunnel"] is False and result["kill_switch"] is False
        assert L.ping(SERVER_TUNNEL[0], 3)
        assert L.ping(SERVER_TUNNEL[1], 3)
        assert h.resolv_conf.read_text().splitlines()[1:] == ["nameserver 10.97.0.1", "search corp.test"]
        [tunnel] = c.status(T)
        [peer] = tunnel.peers
        assert peer.public_key == L.server_public
        assert peer.endpoint == "10.98.2.2:51820"
        assert peer.allowed_ips == ("10.97.0.0/24", "fd97::/64")
        assert isinstance(peer.latest_handshake, int) and peer.rx_bytes > 0 and peer.tx_bytes > 0
        if engine == "wgdesk-engine":  # the engine's counters, through the helper: we initiated, it answered
            assert peer.counters is not None
            assert peer.counters.initiations_sent >= 1 and peer.counters.responses_received >= 1
            assert peer.counters.dropped == {}
        else:  # wireguard-go has none (and is not asked: it would log an invalid operation)
            assert peer.counters is None
            assert "invalid UAPI operation" not in h.log() + "".join(r["message"] for r in c.logs(T))
        # wgdesk-engine gets IFF_VNET_HDR (coalesced TCP writes); wireguard-go 2022 gets packet info
        tun_flags = int(L.client.exec("cat", f"/sys/class/net/{T}/tun_flags").stdout, 16)
        assert bool(tun_flags & 0x4000) is (engine == "wgdesk-engine")
        assert bool(tun_flags & 0x1000) is (engine == "wgdesk-engine")
        during = L.snapshot()
        assert during["route4"] != before["route4"]
        assert c.down(T) == {"name": T, "state": "down"}
        assert L.snapshot() == before
        assert not list((h.state_dir / "journal").glob("*.journal"))
        with pytest.raises(HelperError) as e:
            c.down(T)
        assert e.value.code == "not_found"


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_full_tunnel_probe_reaches_the_server_through_the_tunnel_only(engine: str) -> None:
    with lab() as L:
        h = L.start_helper(engine=ENGINES[engine])
        before = L.snapshot()
        # positive control: without the tunnel the probe crosses the router in plaintext
        cap = Capture(L.router, L.router_lan_if, f"icmp and host {PUBLIC}", L.workdir)
        assert L.ping(PUBLIC, 2)
        assert cap.count() >= 2
        c = h.client()
        r = c.up(T, L.config(allowed="0.0.0.0/0, ::/0"))
        assert r["full_tunnel"] is True and r["kill_switch"] is True
        cap = Capture(L.router, L.router_lan_if, f"host {PUBLIC} or host {PUBLIC6}", L.workdir)
        enc = Capture(L.server, L.server_if, "udp port 51820", L.workdir)
        assert L.ping(PUBLIC, 3)
        assert L.ping(PUBLIC6, 2)
        assert cap.count() == 0
        assert enc.count() >= 10  # the same probes, encrypted, on the server's link
        assert "not from all fwmark 0xca6c lookup 51820" in L.client.exec("ip", "-6", "rule").stdout
        rules = L.client.exec("ip", "-4", "rule").stdout
        assert "not from all fwmark 0xca6c lookup 51820" in rules
        assert "from all lookup main suppress_prefixlength 0" in rules
        assert L.client.exec("sysctl", "-n", "net.ipv4.conf.all.src_valid_mark").stdout.strip() == "1"
        c.down(T)
        assert L.snapshot() == before
        assert L.client.exec("sysctl", "-n", "net.ipv4.conf.all.src_valid_mark").stdout.strip() == "0"


def test_a_failing_step_rolls_back_everything_done_before_it() -> None:
    with lab() as L:
        # DNS is the last step: every earlier one (engine, kill switch, routes, rules, nft) has run
        h = L.start_helper(settings='resolv_conf = "/nonexistent-wgdesk-dir/resolv.conf"\n')
        before = L.snapshot()
        c = h.client()
        with pytest.raises(HelperError) as e:
            c.up(T, L.config(allowed="0.0.0.0/0, ::/0", dns="10.97.0.1"))
        assert e.value.code == "failed"
        assert "/nonexistent-wgdesk-dir" in e.value.message
        assert "kill switch" not in L.snapshot()["nft"]
        assert L.snapshot() == before
        assert c.status() == []
        assert not list((h.state_dir / "journal").glob("*.journal"))
        assert "rolling back" in h.log()


def test_bad_config_is_refused_with_file_and_line_and_changes_nothing() -> None:
    with lab() as L:
        h = L.start_helper()
        before = L.snapshot()
        c = h.client()
        with pytest.raises(HelperError) as e:
            c.up(T, L.config(extra_peer="Bogus = 1"))
        assert e.value.code == "invalid"
        assert e.value.message.startswith(f"{T}.conf:")
        assert L.snapshot() == before


def test_an_engine_that_cannot_start_is_rolled_back_with_the_reason() -> None:
    with lab() as L:
        h = L.start_helper(engine="/nonexistent/wgdesk-engine")
        before = L.snapshot()
        with pytest.raises(HelperError) as e:
            h.client().up(T, L.config(allowed="0.0.0.0/0"))
        assert e.value.code == "failed" and "/nonexistent/wgdesk-engine" in e.value.message
        assert L.snapshot() == before


def test_stopping_the_helper_takes_every_tunnel_down() -> None:
    with lab() as L:
        h = L.start_helper()
        before = L.snapshot()
        h.client().up(T, L.config(allowed="0.0.0.0/0, ::/0", dns="10.97.0.1"))
        assert L.snapshot() != before
        h.stop()
        assert h.proc is not None and h.proc.returncode == 0
        L.helper = None
        assert L.snapshot() == {k: v for k, v in before.items() if k != "resolv.conf"}
        assert h.resolv_conf.read_text() == before["resolv.conf"]
        assert not list((h.state_dir / "journal").glob("*.journal"))


def test_repeated_up_down_leaks_no_fds_threads_or_state() -> None:
    with lab() as L:
        h = L.start_helper()
        c = h.client()
        cfg = L.config(allowed="0.0.0.0/0, ::/0", dns="10.97.0.1")

        def resources() -> tuple[int, int]:
            pid = h.pid()
            return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))

        c.up(T, cfg)
        c.down(T)
        time.sleep(0.5)
        before, counts = L.snapshot(), resources()
        for _ in range(15):
            c.up(T, cfg)
            c.down(T)
        time.sleep(0.5)
        assert resources() == counts
        assert L.snapshot() == before
