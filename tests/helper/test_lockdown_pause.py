"""Pausing lockdown for a captive portal (USERS.md "captive portals vs kill switch"), in the T2 lab,
real kernel: with lockdown on and no tunnel up, a pause lets everything through (TCP, UDP, DNS to the
lab's resolver, both families) until it ends by itself or is resumed; it never outlives the helper and
never lifts a tunnel's own kill switch.

"Open" is shown by real answers: a "who am I" server on the "internet" address (TCP and UDP) and a
dnsmasq on the router (the lab's resolver) answering a name; "blocked" by the same questions going
unanswered and the kill-switch table being back.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from tests.helper.lab import PUBLIC, PUBLIC6, PYTHON, ROUTER_LAN, SERVER_TUNNEL, WHOAMI, Lab, lab
from tests.helper.test_lockdown import FULL, assert_blocked, ld, plaintext, settings, table
from tests.helper.test_threats import request_as, throwaway_account
from tests.netns import Namespace, unique_name, wait_for
from wgdesk.client import HelperError, HelperPermissionDenied

pytestmark = pytest.mark.root

T = unique_name("wgp")
PORT = 7391
RESOLVERS = tuple(a.split("/")[0] for a in ROUTER_LAN)  # the lab's resolv.conf names the first
PORTAL = "portal.lab.test"

ASK = """
import socket, struct, sys
kind, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
try:
    if kind == "tcp":
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((host, port))
        print(s.recv(100).decode().strip())
    elif kind == "udp":
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        s.sendto(b"who", (host, port))
        print(s.recv(100).decode().strip())
    else:  # dns: an A query for the name in sys.argv[5]; prints the first address of the answer
        q = struct.pack("!HHHHHH", 0x5157, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(p)]) + p.encode() for p in sys.argv[5].split(".")) + b"\\0"
        q += struct.pack("!HH", 1, 1)
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        s.sendto(q, (host, port))
        r = s.recv(512)
        ident, _flags, _qd, an = struct.unpack("!HHHH", r[:8])
        if ident != 0x5157 or an == 0:
            print("error: no answer")
        else:
            print(socket.inet_ntoa(r[-4:]))
except OSError as e:
    print("error:", e)
"""


def ask(ns: Namespace, kind: str, host: str, port: int = PORT, timeout: float = 1.0) -> str:
    """What the server at ``host`` answered over ``kind`` (tcp, udp, dns), or ``error: …``."""
    r = ns.exec(PYTHON, "-I", "-c", ASK, kind, host, str(port), str(timeout), PORTAL, timeout=timeout + 30)
    return r.stdout.strip()


def answers(L: Lab) -> dict[str, str]:
    """Every question, both families: TCP and UDP to the "internet" address, DNS to the resolver."""
    got = {}
    for host in (PUBLIC, PUBLIC6):
        for kind in ("tcp", "udp"):
            got[f"{kind} {host}"] = ask(L.client, kind, host)
    for resolver in RESOLVERS:
        got[f"dns {resolver}"] = ask(L.client, "dns", resolver, 53)
    return got


def assert_open(L: Lab) -> None:
    client4, client6 = (a.split("/")[0] for a in ("10.98.1.2/24", "fd98:1::2/64"))
    expected = {
        f"tcp {PUBLIC}": client4,
        f"udp {PUBLIC}": client4,
        f"tcp {PUBLIC6}": client6,
        f"udp {PUBLIC6}": client6,
        **{f"dns {r}": PUBLIC for r in RESOLVERS},
    }
    got = answers(L)
    for _ in range(2):  # a loaded machine may lose a first datagram: ask again what did not answer
        if got == expected:
            break
        got.update({k: v for k, v in answers(L).items() if k in got and got[k] != expected[k]})
    assert got == expected
    assert L.ping(PUBLIC, 1) and L.ping(PUBLIC6, 1)


def assert_closed(L: Lab) -> None:
    assert table(L) is not None
    assert all(v.startswith("error") for v in answers(L).values()), answers(L)
    assert_blocked(L)


@contextmanager
def portal_lab(extra: str = "") -> Iterator[Lab]:
    """The lab with a "who am I" server on the internet address and a resolver on the router (it
    answers portal.lab.test with the internet address), lockdown on."""
    with lab() as L:
        server = L.server.popen(PYTHON, "-I", "-c", WHOAMI, str(PORT), str(PORT), stdout=subprocess.PIPE)
        dns = L.router.popen(
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-hosts",
            "--no-resolv",
            f"--address=/{PORTAL}/{PUBLIC}",
            *(f"--listen-address={r}" for r in RESOLVERS),
            "--bind-interfaces",
            "--user=root",
            f"--pid-file={L.workdir / 'dnsmasq.pid'}",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert server.stdout is not None and server.stdout.readline() == b"ready\n"
            assert wait_for(lambda: f"{RESOLVERS[0]}:53 " in L.router.exec("ss", "-lnu").stdout, 10)
            h = L.start_helper(settings=settings(L, extra))
            assert_open(L)  # control: everything answers without lockdown
            h.client().set_lockdown(True)
            yield L
        finally:
            for p in (server, dns):
                p.terminate()
                p.wait(10)


def lockdown_events(L: Lab) -> list[dict[str, object]]:
    """Collects the ``lockdown`` events of a subscription (started before this returns)."""
    assert L.helper is not None
    events: list[dict[str, object]] = []

    def listen() -> None:
        with suppress(HelperError):  # the helper goes at the end of the test
            for ev in L.helper.client().subscribe():  # type: ignore[union-attr]
                if ev.get("event") == "lockdown":
                    events.append(ev)

    threading.Thread(target=listen, daemon=True).start()
    time.sleep(1.0)  # subscribed (the helper sends the tunnels' states first: there are none)
    return events


def test_a_pause_lets_everything_through_until_it_ends_by_itself_or_is_resumed() -> None:
    with portal_lab() as L:
        assert L.helper is not None
        c = L.helper.client()
        assert_closed(L)
        events = lockdown_events(L)

        before = time.time()
        state = c.pause_lockdown(60)
        until = state["paused_until"]
        assert isinstance(until, float) and before + 59 < until < time.time() + 61
        assert state == ld(True, "user", paused_until=until)
        assert c.lockdown() == state
        assert table(L) is None
        assert_open(L)
        assert "uid 0 asks to pause lockdown for 60 s" in L.helper.log()
        assert "lockdown paused for 60 s" in L.helper.log()

        # resumed early: blocked at once
        assert c.resume_lockdown() == ld(True, "user")
        assert_closed(L)
        assert "uid 0 resumes lockdown" in L.helper.log()
        assert c.resume_lockdown() == ld(True, "user")  # nothing to resume: no change, no event

        # a 3-second pause ends by itself: nobody asks the helper anything
        c.pause_lockdown(3)
        ends = time.monotonic() + 3
        assert table(L) is None and L.ping(PUBLIC, 1)
        assert wait_for(lambda: table(L) is not None, 10)
        assert time.monotonic() >= ends - 0.5  # not before its time (less the answer's way back)
        assert_closed(L)
        assert "lockdown pause ended" in L.helper.log()
        assert c.lockdown() == ld(True, "user")
        assert wait_for(lambda: len(events) == 4, 5)
        paused = [e["paused_until"] for e in events]
        assert paused[0] == until and paused[1] is None and isinstance(paused[2], float)
        assert paused[3] is None
        assert all(e["enabled"] is True for e in events)

        # turning lockdown off and on again ends a pause too
        c.pause_lockdown(60)
        assert c.set_lockdown(False) == ld(False, "user")
        assert c.set_lockdown(True) == ld(True, "user")
        assert_closed(L)


def test_a_pause_does_not_lift_a_tunnels_own_kill_switch() -> None:
    with portal_lab() as L:
        assert L.helper is not None
        c = L.helper.client()
        c.pause_lockdown(120)
        # a full tunnel comes up during the pause: its kill switch applies as usual
        c.up(T, L.config(allowed=FULL))
        assert table(L) is not None
        answered: list[bool] = []
        assert plaintext(L, lambda: answered.extend([L.ping(PUBLIC, 2), L.ping(PUBLIC6, 2)])) == 0
        assert answered == [True, True]  # through the tunnel
        assert c.lockdown()["paused_until"] is not None
        c.down(T)
        assert table(L) is None  # still paused: nothing blocks
        assert_open(L)
        # a tunnel without a kill switch of its own, and the pause ends while it is up: lockdown is
        # back, with the tunnel let out
        c.up(T, L.config(), kill_switch=False)
        c.resume_lockdown()
        assert f'"{T}"' in (table(L) or "")
        assert L.ping(SERVER_TUNNEL[0], 2)
        assert_closed(L)
        c.down(T)
        assert_closed(L)


def test_a_pause_never_outlives_the_helper() -> None:
    with portal_lab() as L:
        h = L.helper
        assert h is not None
        h.client().pause_lockdown(120)
        assert table(L) is None
        h.kill9()
        h.start()
        assert h.client().lockdown() == ld(True, "user")
        assert_closed(L)

        # a clean stop during a pause leaves the block in place, as lockdown does
        h.client().pause_lockdown(120)
        assert table(L) is None
        h.stop()
        assert table(L) is not None
        assert not L.ping(PUBLIC, 1, attempts=1)
        h.start()
        assert h.client().lockdown() == ld(True, "user")
        assert_closed(L)


def test_who_may_pause_and_for_how_long() -> None:
    with (
        throwaway_account() as (_m, uid_m, group, gid),
        throwaway_account() as (_w, uid_w, watchers, gid_w),
        lab() as L,
    ):
        h = L.start_helper(
            settings=settings(
                L, f'group = "{group}"\nmonitor_group = "{watchers}"\nlockdown_pause_max = 30\n'
            )
        )
        c = h.client()
        with pytest.raises(HelperError) as e:
            c.pause_lockdown(10)
        assert (e.value.code, e.value.message) == ("conflict", "lockdown is off: there is nothing to pause")
        c.set_lockdown(True)

        r = request_as(h.socket, uid_w, gid_w, "pause_lockdown", seconds=10)
        assert f"members of group '{watchers}' may only watch" in str(r["denied"])
        r = request_as(h.socket, uid_w, gid_w, "resume_lockdown")
        assert "denied" in r
        assert table(L) is not None

        for bad in (0, -5, "60", True, 1.5, None):
            r = request_as(h.socket, uid_m, gid, "pause_lockdown", seconds=bad)
            assert "seconds must be a whole number of seconds, at least 1" in str(r["invalid"]), bad
        r = request_as(h.socket, uid_m, gid, "pause_lockdown", seconds=31)
        assert r == {"invalid": "seconds must be from 1 to 30, not 31"}
        assert table(L) is not None and c.lockdown() == ld(True, "user", pause_max=30)

        r = request_as(h.socket, uid_m, gid, "pause_lockdown", seconds=30)
        assert "ok" in r and r["ok"]["paused_until"] is not None  # type: ignore[index]
        assert table(L) is None
        assert f"uid {uid_m} asks to pause lockdown for 30 s" in h.log()
        assert request_as(h.socket, uid_m, gid, "resume_lockdown") == {"ok": ld(True, "user", pause_max=30)}
        assert table(L) is not None
        assert f"uid {uid_m} resumes lockdown" in h.log()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("lockdown_pause_max = 0\n", "(lockdown_pause_max is 0 in /etc/wgdesk/helper.toml)"),
        (
            'lockdown = "always"\n',
            '(lockdown_pause_max is 0 in /etc/wgdesk/helper.toml, the default with lockdown = "always")',
        ),
    ],
)
def test_the_administrator_may_forbid_pausing(toml: str, message: str) -> None:
    with lab() as L:
        h = L.start_helper(settings=settings(L, toml))
        c = h.client()
        if "always" not in toml:
            c.set_lockdown(True)
        assert c.lockdown()["pause_max"] == 0
        with pytest.raises(HelperPermissionDenied) as e:
            c.pause_lockdown(10)
        assert e.value.message == f"the administrator does not allow pausing lockdown {message}"
        assert table(L) is not None
        assert not L.ping(PUBLIC, 1, attempts=1)


def test_a_forced_lockdown_may_be_paused_when_the_administrator_says_so() -> None:
    with lab() as L:
        h = L.start_helper(settings=settings(L, 'lockdown = "always"\nlockdown_pause_max = 20\n'))
        c = h.client()
        assert c.lockdown() == ld(True, "always", pause_max=20)
        assert c.pause_lockdown(20)["paused_until"] is not None
        assert table(L) is None and L.ping(PUBLIC, 1)
        c.resume_lockdown()
        assert table(L) is not None and not L.ping(PUBLIC, 1, attempts=1)


def test_wgdeskctl_lockdown_pause_and_resume() -> None:
    from tests.test_cli import run

    with lab() as L:
        h = L.start_helper(settings=settings(L))
        sock = ("--socket", str(h.socket))
        h.client().set_lockdown(True)
        r = run(*sock, "lockdown", "pause")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.decode().splitlines()
        assert lines[0] == "lockdown: on"
        assert lines[1].startswith(("paused: 2:00 left — ", "paused: 1:59 left — ")), lines
        assert lines[1].endswith(
            "traffic flows outside tunnels until then (tunnels with their own kill switch still block); "
            "`wgdeskctl lockdown resume` ends it now"
        )
        until = h.client().lockdown()["paused_until"]
        assert isinstance(until, float) and 118 < until - time.time() <= 120
        assert table(L) is None
        r = run(*sock, "lockdown")
        assert re.match(r"paused: (2:00|1:[45]\d) left — ", r.stdout.decode().splitlines()[1])
        r = run(*sock, "lockdown", "resume")
        assert r.returncode == 0 and r.stdout.decode() == (
            "lockdown: on\n"
            "no tunnel is up: all traffic is blocked except loopback, DHCP and neighbour discovery\n"
        )
        assert table(L) is not None
        r = run(*sock, "lockdown", "pause", "45")
        assert r.returncode == 0 and r.stdout.decode().splitlines()[1].startswith("paused: 0:45 left")
        assert "uid 0 asks to pause lockdown for 45 s" in h.log()
        r = run(*sock, "lockdown", "pause", "301")
        assert r.returncode == 1
        assert r.stderr.decode() == "wgdeskctl lockdown: seconds must be from 1 to 300, not 301\n"
        r = run(*sock, "lockdown", "on", "30")
        assert r.returncode == 2 and b"SECONDS goes with `pause` only" in r.stderr
        r = run(*sock, "lockdown", "resume", "--json")
        assert r.returncode == 0 and r.stdout.decode().startswith('{"enabled": true, "policy": "user"')
        assert table(L) is not None
