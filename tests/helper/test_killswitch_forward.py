"""The kill switch covers forwarded traffic: a "container" behind the client cannot reach the internet
around a failed tunnel, but keeps its private networks and the replies of its published ports.

    container ns  ct 172.30.0.2 ── 172.30.0.1 client ns (ip_forward, masquerade like docker's
                     fd98:30::2     fd98:30::1  ``! -o BRIDGE``, DNAT of port 8080 to the container)

The lab's "internet" address is the server's 198.51.100.7 / 2001:db8:77::7 (documentation ranges,
never routed outside the test's namespaces); the router has 192.0.2.1 / 2001:db8:1::1 on its
loopback as the public-looking source of a connection to the published port. A "who am I" server
in the server namespace and one in the container answer with the source address they see.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.helper.lab import (
    CLIENT_LAN,
    CLIENT_TUNNEL,
    ENGINES,
    IP,
    NFT,
    PUBLIC,
    PUBLIC6,
    PYTHON,
    ROUTER_LAN,
    WHOAMI,
    Capture,
    Lab,
    engine_pid,
    lab,
)
from tests.netns import Namespace, namespaces, unique_name, veth, wait_for

pytestmark = pytest.mark.root

T = unique_name("wgk")  # tunnel (= interface) names are unique per run: /var/run/wireguard is shared
FULL = "0.0.0.0/0, ::/0"
ENGINE = ENGINES["wgdesk-engine"]

BRIDGE = ("172.30.0.1/24", "fd98:30::1/64")  # the client's side of the container link
CONTAINER = ("172.30.0.2/24", "fd98:30::2/64")
OUTSIDE = ("192.0.2.1", "2001:db8:1::1")  # router loopback: a public-looking client of the published port
LAN = (CLIENT_LAN[0].split("/")[0], CLIENT_LAN[1].split("/")[0])
ROUTER = (ROUTER_LAN[0].split("/")[0], ROUTER_LAN[1].split("/")[0])
SERVERS = (PUBLIC, PUBLIC6)
WHOAMI_PORT = 7377
CONTAINER_PORT, PUBLISHED_PORT = 80, 8080

ASK = """
import socket, sys
host, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[4]))
if source:
    s.bind((source, 0))
try:
    s.connect((host, port))
    print(s.recv(100).decode().strip())
except OSError as e:
    print("error:", e)
"""


def ask(ns: Namespace, host: str, port: int = WHOAMI_PORT, source: str = "", timeout: float = 3.0) -> str:
    """The source address a "who am I" server at ``host`` saw, or ``error: …``."""
    r = ns.exec(PYTHON, "-I", "-c", ASK, host, str(port), source, str(timeout), timeout=timeout + 30)
    return r.stdout.strip()


def ask_retrying(ns: Namespace, host: str, attempts: int = 5, **kw: object) -> str:
    """`ask` until it gets an answer (the first packets after an up may wait for the handshake)."""
    answer = ""
    for _ in range(attempts):
        answer = ask(ns, host, **kw)  # type: ignore[arg-type]
        if not answer.startswith("error"):
            break
    return answer


def pings(ns: Namespace, target: str, attempts: int = 3) -> bool:
    for _ in range(attempts):
        r = ns.exec("ping", "-n", "-c", "1", "-W", "2", target, check=False, timeout=30)
        if r.returncode == 0:
            return True
    return False


def whoami(ns: Namespace, port: int) -> None:
    proc = ns.popen(PYTHON, "-I", "-c", WHOAMI, str(port), str(port), stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"


@contextmanager
def container_lab(settings: str = "") -> Iterator[tuple[Lab, Namespace]]:
    """The helper lab, a container namespace behind the client, whoami servers, the helper started."""
    with lab() as L, namespaces("hct") as (ct,):
        bridge, _ = veth(L.client, ct, BRIDGE, CONTAINER)
        for gateway in BRIDGE:
            ct.exec(IP, "route", "add", "default", "via", gateway.split("/")[0])
        L.client.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
        L.client.exec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        nat = "\n".join(
            [
                "table inet lab-containers {",
                "  chain postrouting {",
                "    type nat hook postrouting priority srcnat; policy accept;",
                f'    oifname != "{bridge}" ip saddr 172.30.0.0/24 masquerade',
                f'    oifname != "{bridge}" ip6 saddr fd98:30::/64 masquerade',
                "  }",
                "  chain prerouting {",
                "    type nat hook prerouting priority dstnat; policy accept;",
                f"    ip daddr {LAN[0]} tcp dport {PUBLISHED_PORT}"
                f" dnat ip to {CONTAINER[0].split('/')[0]}:{CONTAINER_PORT}",
                f"    ip6 daddr {LAN[1]} tcp dport {PUBLISHED_PORT}"
                f" dnat ip6 to [{CONTAINER[1].split('/')[0]}]:{CONTAINER_PORT}",
                "  }",
                "}",
            ]
        )
        subprocess.run(L.client.argv(NFT, "-f", "-"), input=nat, text=True, check=True, capture_output=True)
        L.router.exec(IP, "addr", "add", f"{OUTSIDE[0]}/32", "dev", "lo")
        L.router.exec(IP, "addr", "add", f"{OUTSIDE[1]}/128", "dev", "lo")
        assert wait_for(lambda: "tentative" not in ct.exec(IP, "-6", "addr").stdout, 10)
        whoami(L.server, WHOAMI_PORT)
        whoami(ct, CONTAINER_PORT)
        L.start_helper(settings=settings, engine=ENGINE)
        yield L, ct


def leaked(L: Lab, ct: Namespace) -> tuple[int, list[str]]:
    """Plaintext packets to/from the servers on the router's client-facing link while the container
    asks both servers, and what it got back."""
    cap = Capture(L.router, L.router_lan_if, f"host {PUBLIC} or host {PUBLIC6}", L.workdir)
    answers = [ask(ct, host, timeout=2.0) for host in SERVERS]
    return cap.count(), answers


def assert_private_and_published_port_work(L: Lab, ct: Namespace) -> None:
    for router in ROUTER:  # container → the client's LAN (forwarded to a private address)
        assert pings(ct, router), router
    for lan, outside in zip(LAN, OUTSIDE, strict=True):
        # outside → published port → container, and the container's reply to a public address
        assert ask(L.router, lan, PUBLISHED_PORT, source=outside) == outside


def test_container_goes_through_the_tunnel_and_is_blocked_when_the_engine_dies() -> None:
    with container_lab() as (L, ct):
        c = L.helper.client()  # type: ignore[union-attr]
        # control: without a tunnel the container reaches the servers in plaintext (masqueraded)
        count, answers = leaked(L, ct)
        assert answers == list(LAN) and count >= 4, (count, answers)

        c.up(T, L.config(allowed=FULL), kill_switch=True)
        # 1. up: through the tunnel — the server sees the client's tunnel address, nothing in plaintext
        assert ask_retrying(ct, PUBLIC) == CLIENT_TUNNEL[0]
        count, answers = leaked(L, ct)
        assert answers == list(CLIENT_TUNNEL) and count == 0, (count, answers)

        # 2. the engine dies: the tunnel is failed, the kill switch stays — the container gets nowhere
        os.kill(engine_pid(L.helper, T), signal.SIGKILL)  # type: ignore[arg-type]
        assert wait_for(lambda: c.status()[0].state == "failed", 10)
        assert wait_for(lambda: T not in L.client.exec(IP, "link").stdout, 10)
        count, answers = leaked(L, ct)
        assert count == 0 and all(a.startswith("error") for a in answers), (count, answers)
        assert not pings(ct, PUBLIC, attempts=1)

        # 3. private destinations and published ports still work
        assert_private_and_published_port_work(L, ct)

        c.down(T)
        count, answers = leaked(L, ct)  # and after down the container is back on the plain route
        assert answers == list(LAN) and count >= 4, (count, answers)


def test_container_stays_blocked_after_a_helper_crash() -> None:
    with container_lab() as (L, ct):
        h = L.helper
        assert h is not None
        c = h.client()
        c.up(T, L.config(allowed=FULL), kill_switch=True)
        assert ask_retrying(ct, PUBLIC) == CLIENT_TUNNEL[0]
        h.kill9()
        time.sleep(1.0)
        # no helper: the orphaned engine may still carry traffic; nothing leaks
        count, answers = leaked(L, ct)
        assert count == 0 and all(a in CLIENT_TUNNEL or a.startswith("error") for a in answers), answers
        h.start()  # recovery stops the engine; the kill-switch table is all that stays
        assert [t.state for t in h.client().status()] == ["blocked"]
        count, answers = leaked(L, ct)
        assert count == 0 and all(a.startswith("error") for a in answers), (count, answers)
        assert_private_and_published_port_work(L, ct)
        h.client().down(T)
        assert ask(ct, PUBLIC) == LAN[0]


def test_container_and_client_talk_in_the_failed_state_with_lan_allowed() -> None:
    with container_lab(settings="allow_lan = true\n") as (L, ct):
        c = L.helper.client()  # type: ignore[union-attr]
        c.up(T, L.config(allowed=FULL), kill_switch=True)
        assert ask_retrying(ct, PUBLIC) == CLIENT_TUNNEL[0]
        os.kill(engine_pid(L.helper, T), signal.SIGKILL)  # type: ignore[arg-type]
        assert wait_for(lambda: c.status()[0].state == "failed", 10)
        count, answers = leaked(L, ct)
        assert count == 0 and all(a.startswith("error") for a in answers), (count, answers)
        for bridge, container in zip(BRIDGE, CONTAINER, strict=True):
            assert pings(ct, bridge.split("/")[0]), bridge
            assert pings(L.client, container.split("/")[0]), container
        assert ask(L.client, CONTAINER[0].split("/")[0], CONTAINER_PORT) == BRIDGE[0].split("/")[0]
        c.down(T)
