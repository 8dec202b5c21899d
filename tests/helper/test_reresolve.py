"""Dynamic-DNS endpoints: the helper resolves a peer's endpoint name again while the tunnel runs.

The client's config names the server ``vpn.dyn.test``, answered by a dnsmasq in the router namespace
(the helper's private resolv.conf points there). The server then moves from A (10.98.2.2) to B
(10.98.2.3) on its link and the DNS answer changes to B: with re-resolution the client finds it again,
without it the tunnel stays dead. Intervals are shortened through helper.toml.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helper.lab import (
    CLIENT_TUNNEL,
    ENGINES,
    ROUTER_LAN,
    ROUTER_WAN,
    SERVER_PORT,
    SERVER_TUNNEL,
    SERVER_WAN,
    WG,
    WGDESK_ENGINE,
    Lab,
    lab,
)
from tests.netns import IP, Namespace, unique_name, wait_for
from wgdesk.helper.settings import Settings, SettingsError, load

pytestmark = pytest.mark.root

T = unique_name("wgr")
A = SERVER_WAN[0].split("/")[0]  # 10.98.2.2
B = "10.98.2.3"
NAME = "vpn.dyn.test"
DNS_ADDRESS = ROUTER_LAN[0].split("/")[0]  # the lab's resolv.conf names it
FAST = "reresolve_interval = 0.5\nreresolve_after = 1\n"


class Dns:
    """dnsmasq in ``ns`` answering only from a hosts file the test rewrites (`set`)."""

    def __init__(self, ns: Namespace, workdir: Path) -> None:
        self.hosts = workdir / "dyn-hosts"
        self.hosts.write_text("")
        self.proc = ns.popen(
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-hosts",
            "--no-resolv",
            "--local=/test/",  # NXDOMAIN for any other name under .test
            f"--addn-hosts={self.hosts}",
            f"--listen-address={DNS_ADDRESS}",
            "--bind-interfaces",
            "--local-ttl=0",
            "--user=root",
            f"--pid-file={workdir / 'dnsmasq.pid'}",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ns = ns
        listening = f"{DNS_ADDRESS}:53 "
        assert wait_for(lambda: listening in ns.exec("ss", "-lnu").stdout, 10), "dnsmasq did not start"

    def set(self, records: dict[str, str]) -> None:
        """Serve exactly ``records`` (name → IPv4 address) from now on."""
        self.hosts.write_text("".join(f"{ip} {name}\n" for name, ip in records.items()))
        self.proc.send_signal(signal.SIGHUP)  # re-reads the hosts file, empties the cache
        time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@contextmanager
def dyn_lab() -> Iterator[tuple[Lab, Dns]]:
    with lab() as L:
        dns = Dns(L.router, L.workdir)
        try:
            yield L, dns
        finally:
            dns.stop()


def named_config(L: Lab, host: str = NAME, keepalive: int | None = None) -> str:
    text = L.config(keepalive=keepalive)
    text = text.replace(f"Endpoint = {A}:{SERVER_PORT}", f"Endpoint = {host}:{SERVER_PORT}")
    assert f"Endpoint = {host}:" in text
    return text


def move_server(L: Lab) -> None:
    """The server's public address changes from A to B (A no longer answers)."""
    L.server.exec("sysctl", "-qw", f"net.ipv4.conf.{L.server_if}.promote_secondaries=1")
    L.server.exec(IP, "addr", "add", f"{B}/24", "dev", L.server_if)
    L.server.exec(IP, "addr", "del", SERVER_WAN[0], "dev", L.server_if)  # B is promoted to primary
    L.server.exec(IP, "route", "replace", "default", "via", ROUTER_WAN[0].split("/")[0])


def endpoint(L: Lab) -> str:
    """The server peer's endpoint as `wg show` reports it in the client namespace."""
    out = L.client.exec(WG, "show", T, "endpoints").stdout
    [line] = [ln for ln in out.splitlines() if ln.startswith(L.server_public)]
    return line.split("\t")[1]


def helper_messages(L: Lab) -> list[str]:
    assert L.helper is not None
    with L.helper.client() as c:
        return [r["message"] for r in c.logs(T)]


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_moved_server_is_found_again_through_its_name(engine: str) -> None:
    with dyn_lab() as (L, dns):
        dns.set({NAME: A})
        h = L.start_helper(engine=ENGINES[engine], settings=FAST)
        c = h.client()
        before = time.time()
        c.up(T, named_config(L), kill_switch=False)
        assert endpoint(L) == f"{A}:{SERVER_PORT}"
        assert L.ping(SERVER_TUNNEL[0], 2)
        [peer] = c.status(T)[0].peers
        assert peer.endpoint_host == NAME and before <= peer.endpoint_resolved_at <= time.time()
        move_server(L)
        dns.set({NAME: B})
        moved = time.time()
        assert wait_for(lambda: endpoint(L) == f"{B}:{SERVER_PORT}", 15), helper_messages(L)
        assert L.ping(SERVER_TUNNEL[0], 2)
        [peer] = c.status(T)[0].peers
        assert peer.endpoint == f"{B}:{SERVER_PORT}" and peer.endpoint_resolved_at >= moved
        changes = [m for m in helper_messages(L) if "changed:" in m]
        assert changes == [f"endpoint {NAME} changed: {A}:{SERVER_PORT} → {B}:{SERVER_PORT}"]
        assert c.status(T)[0].state == "up"
        c.down(T)


def test_without_reresolution_the_moved_server_stays_lost() -> None:
    # negative control: the same move with the feature switched off
    with dyn_lab() as (L, dns):
        dns.set({NAME: A})
        h = L.start_helper(engine=WGDESK_ENGINE, settings=FAST + "reresolve_endpoints = false\n")
        c = h.client()
        c.up(T, named_config(L), kill_switch=False)
        assert L.ping(SERVER_TUNNEL[0], 2)
        move_server(L)
        dns.set({NAME: B})
        time.sleep(4)  # eight checks' worth at the shortened interval
        assert endpoint(L) == f"{A}:{SERVER_PORT}"
        assert not L.ping(SERVER_TUNNEL[0], 2, attempts=1)
        c.down(T)


def test_a_peer_with_a_fresh_handshake_is_not_touched() -> None:
    with dyn_lab() as (L, dns):
        dns.set({NAME: A})
        h = L.start_helper(engine=WGDESK_ENGINE, settings="reresolve_interval = 0.5\nreresolve_after = 60\n")
        c = h.client()
        c.up(T, named_config(L), kill_switch=False)
        assert L.ping(SERVER_TUNNEL[0], 2)
        move_server(L)
        dns.set({NAME: B})
        time.sleep(4)  # the name now says B, but the handshake is seconds old
        assert endpoint(L) == f"{A}:{SERVER_PORT}"
        assert not [m for m in helper_messages(L) if "changed:" in m]
        c.down(T)


def test_an_ip_endpoint_that_roamed_is_left_alone() -> None:
    with dyn_lab() as (L, _dns):
        h = L.start_helper(engine=WGDESK_ENGINE, settings=FAST)
        c = h.client()
        c.up(T, L.config(), kill_switch=False)  # Endpoint = A, an IP literal
        assert L.ping(SERVER_TUNNEL[0], 2)
        move_server(L)
        # the server speaks first from its new address: the client's engine roams to B. (Setting the
        # client's endpoint again on the server drops wireguard-go's remembered source address A.)
        [client_endpoint] = L.server.exec(WG, "show", L.server_wg, "endpoints").stdout.split()[1:]
        L.server.exec(WG, "set", L.server_wg, "peer", L.client_public, "endpoint", client_endpoint)
        L.server.exec("ping", "-n", "-c", "2", "-W", "2", CLIENT_TUNNEL[0], check=False)
        assert wait_for(lambda: endpoint(L) == f"{B}:{SERVER_PORT}", 10)
        time.sleep(3)  # the handshake is stale now, checks run every 0.5 s
        assert endpoint(L) == f"{B}:{SERVER_PORT}"  # not put back to the configured A
        assert L.ping(SERVER_TUNNEL[0], 2)
        [peer] = c.status(T)[0].peers
        assert peer.endpoint_host is None and peer.endpoint_resolved_at is None
        c.down(T)


def test_a_name_that_stops_resolving_leaves_the_tunnel_up_and_is_logged_once() -> None:
    with dyn_lab() as (L, dns):
        dns.set({NAME: A})
        h = L.start_helper(engine=WGDESK_ENGINE, settings=FAST)
        c = h.client()
        c.up(T, named_config(L), kill_switch=False)
        assert L.ping(SERVER_TUNNEL[0], 2)
        dns.set({})  # NXDOMAIN from now on
        assert wait_for(lambda: any("cannot resolve" in m for m in helper_messages(L)), 10)
        time.sleep(3)  # several more failed attempts
        failures = [m for m in helper_messages(L) if "cannot resolve" in m]
        assert len(failures) == 1, failures
        assert f"cannot resolve endpoint {NAME} again" in failures[0] and f"keeping {A}" in failures[0]
        [tunnel] = c.status(T)
        assert tunnel.state == "up" and tunnel.peers[0].endpoint == f"{A}:{SERVER_PORT}"
        assert "Name or service not known" in tunnel.peers[0].resolve_error
        [finding] = [f for f in c.diagnose(T).findings if "does not resolve" in f]
        assert f"endpoint name {NAME} does not resolve any more" in finding
        assert f"still sending to {A}:{SERVER_PORT}" in finding
        assert L.ping(SERVER_TUNNEL[0], 2)
        # the name comes back, at the server's new address
        move_server(L)
        dns.set({NAME: B})
        assert wait_for(lambda: endpoint(L) == f"{B}:{SERVER_PORT}", 15), helper_messages(L)
        assert f"endpoint {NAME} resolves again" in helper_messages(L)
        assert c.status(T)[0].peers[0].resolve_error is None
        assert not [f for f in c.diagnose(T).findings if "does not resolve" in f]
        assert L.ping(SERVER_TUNNEL[0], 2)
        c.down(T)


def test_after_an_update_the_new_name_is_followed() -> None:
    with dyn_lab() as (L, dns):
        other = "old.dyn.test"
        dns.set({other: A, NAME: A})
        h = L.start_helper(engine=WGDESK_ENGINE, settings=FAST)
        c = h.client()
        c.up(T, named_config(L, other), kill_switch=False)
        assert L.ping(SERVER_TUNNEL[0], 2)
        result = c.update(T, named_config(L, NAME))
        assert result["peers"]["changed"][0]["fields"] == ["Endpoint"]
        move_server(L)
        dns.set({other: A, NAME: B})  # the old name still says A: following it would keep the tunnel dead
        assert wait_for(lambda: endpoint(L) == f"{B}:{SERVER_PORT}", 15), helper_messages(L)
        time.sleep(2)
        assert endpoint(L) == f"{B}:{SERVER_PORT}"
        assert L.ping(SERVER_TUNNEL[0], 2)
        assert c.status(T)[0].peers[0].endpoint_host == NAME
        c.down(T)


def test_settings_take_the_intervals_and_refuse_nonsense(tmp_path: Path) -> None:
    assert (Settings().reresolve_endpoints, Settings().reresolve_interval, Settings().reresolve_after) == (
        True,
        30.0,
        135.0,
    )
    path = tmp_path / "helper.toml"
    path.write_text("reresolve_interval = 5\nreresolve_after = 0.5\nreresolve_endpoints = false\n")
    s = load(path)
    assert (s.reresolve_endpoints, s.reresolve_interval, s.reresolve_after) == (False, 5.0, 0.5)
    for bad in (
        "reresolve_interval = 0",
        "reresolve_after = -1",
        "reresolve_interval = nan",
        "reresolve_interval = inf",
        'reresolve_after = "135"',
        "reresolve_endpoints = 1",
    ):
        path.write_text(bad + "\n")
        with pytest.raises(SettingsError, match=bad.split(" ")[0]):
            load(path)
