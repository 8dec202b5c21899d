"""Include mode of split tunnelling (`wgdeskctl include -- COMMAND`) against the real kernel.

A tunnel whose peer allows 0.0.0.0/0 and ::/0 is brought up with full tunnel off: ordinary
processes keep the normal route (the lab's "who am I" server sees the client's LAN address), an
included one goes through the tunnel (the server sees the tunnel address) — and gets nothing out
once the engine is gone, the tunnel is down or the helper restarts: not one packet in the clear on
the router's link.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.as_user import CLI, CLI_MODULES, argv_as
from tests.helper.lab import (
    CLIENT_TUNNEL,
    ENGINES,
    NFT,
    PYTHON,
    Capture,
    engine_pid,
)
from tests.helper.test_split import (
    ASK,
    DNS_PORT,
    LAN4,
    LAN6,
    SERVER4,
    SERVER6,
    SYSTEM_PYTHON,
    WHOAMI_PORT,
    block_endpoint,
    ctl,
    split_lab,
)
from tests.helper.test_threats import request_as, throwaway_account
from tests.netns import unique_name, wait_for
from wgdesk.platforms.linux import cgroup as split
from wgdesk.platforms.linux import firewall

pytestmark = pytest.mark.root

T = unique_name("wgi")
INCLUDE = f"wgdesk-test-{unique_name('i')}"
SETTINGS = f'split_tunnel_include_cgroup = "{INCLUDE}"\n'
EVERYTHING = "0.0.0.0/0, ::/0"


def ask(L, h, host: str, kind: str = "tcp", included: bool = False) -> str:  # type: ignore[no-untyped-def]
    """The address the server saw (or ``failed: …``), from a plain or an included process."""
    command = [PYTHON, "-I", "-c", ASK, kind, host, str(WHOAMI_PORT if kind == "tcp" else DNS_PORT)]
    r = ctl(L, h, "include", "--", *command) if included else L.client.exec(*command, check=False)
    return r.stdout.strip() or r.stderr.strip()


def include_dir() -> Path:
    mounts = split.cgroup2_mounts(Path("/proc/self/mountinfo").read_text())
    [root] = [point for point, inside in mounts if inside == "/"][:1]
    return root / INCLUDE


def ruleset(L) -> str:  # type: ignore[no-untyped-def]
    return str(L.client.exec(NFT, "list", "ruleset").stdout)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_only_included_apps_go_through_and_never_in_the_clear(engine: str) -> None:
    with split_lab(settings=SETTINGS, engine=engine) as (L, h):
        before = L.snapshot()
        c = h.client()
        c.up(T, L.config(allowed=EVERYTHING), full_tunnel=False, kill_switch=False)
        [t] = c.status()
        assert t.full_tunnel is False and t.include is True and t.bypass is False
        # (full tunnel off: the peer's 0.0.0.0/0 is not routed, so no plain ping reaches it)
        for host, lan, tunnel in ((SERVER4, LAN4, CLIENT_TUNNEL[0]), (SERVER6, LAN6, CLIENT_TUNNEL[1])):
            assert ask(L, h, host) == lan  # normal routing
            assert ask(L, h, host, included=True) == tunnel  # only through the tunnel
            assert ask(L, h, host, "udp", included=True) == tunnel
        # the process that asked is the one moved (exec keeps its pid and cgroup)
        r = ctl(L, h, "include", "--", PYTHON, "-I", "-c", "print(open('/proc/self/cgroup').read())")
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert f"0::/{INCLUDE}" in r.stdout.splitlines()
        sleeper = L.client.popen(
            PYTHON, "-m", "wgdesk.cli", "--socket", str(h.socket), "include", "--", "sleep", "60",
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(Path(__file__).parents[2])},
        )  # fmt: skip
        try:
            assert wait_for(lambda: str(sleeper.pid) in (include_dir() / "cgroup.procs").read_text(), 10)
            listed = json.loads(ctl(L, h, "included", "--json").stdout)
            mine = {"pid": sleeper.pid, "uid": 0, "command": "sleep", "mode": "include"}
            assert mine in listed["processes"] and listed["processes"] == [mine]
            assert listed["include"] == {"cgroup": INCLUDE, "active": True, "tunnel": T}
            text = ctl(L, h, "included").stdout
            assert f"included apps go only through tunnel {T}" in text and f"{sleeper.pid}" in text
            assert f"{sleeper.pid}" not in ctl(L, h, "excluded").stdout
        finally:
            sleeper.kill()
            sleeper.wait()
        rules = ruleset(L)
        assert f"socket cgroupv2 level 1 {include_dir().stat().st_ino} " in rules
        # the engine dies: included apps get nothing out, not a packet in the clear; others carry on
        os.kill(engine_pid(h, T), signal.SIGKILL)
        assert wait_for(lambda: c.status()[0].state == "failed", 10)
        cap = Capture(L.router, L.router_lan_if, f"port {WHOAMI_PORT} or port {DNS_PORT}", L.workdir)
        assert ask(L, h, SERVER4, included=True).startswith("failed")
        assert ask(L, h, SERVER6, "udp", included=True).startswith("failed")
        assert cap.count() == 0, cap.lines()
        assert ask(L, h, SERVER4) == LAN4
        assert ask(L, h, SERVER6) == LAN6
        c.down(T)
        assert L.snapshot() == before
        # with no tunnel taking them, included apps get nothing out, and are told so
        cap = Capture(L.router, L.router_lan_if, f"port {WHOAMI_PORT}", L.workdir)
        r = ctl(L, h, "include", "--", PYTHON, "-I", "-c", ASK, "tcp", SERVER4, str(WHOAMI_PORT))
        assert r.returncode == 3 and r.stdout.startswith("failed")
        assert "gets nothing out until one is up" in r.stderr
        assert cap.count() == 0, cap.lines()
        assert ask(L, h, SERVER4) == LAN4  # the control: a process not included gets through
        # a full tunnel does not serve include mode (everything goes through it anyway; the guard
        # the included process left stays until the next tunnel change finds the cgroup empty)
        c.up(T, L.config(allowed=EVERYTHING), kill_switch=False)
        assert c.status()[0].include is False and firewall.include_table(T) not in ruleset(L)
        c.down(T)
        assert L.snapshot() == before
    assert not include_dir().exists()


def test_an_ipv4_only_tunnel_keeps_included_apps_off_native_ipv6_and_a_crash_is_undone() -> None:
    with split_lab(settings=SETTINGS) as (L, h):
        before = L.snapshot()
        c = h.client()
        c.up(T, L.config(allowed="0.0.0.0/0, fd97::/64"), full_tunnel=False, kill_switch=False)
        assert ask(L, h, SERVER4, included=True) == CLIENT_TUNNEL[0]
        cap = Capture(L.router, L.router_lan_if, f"port {WHOAMI_PORT} or port {DNS_PORT}", L.workdir)
        assert ask(L, h, SERVER6, included=True).startswith("failed")  # not around the tunnel
        assert cap.count() == 0, cap.lines()
        assert ask(L, h, SERVER6) == LAN6
        h.kill9()
        assert "cgroupv2" in ruleset(L)  # the crash left them
        h.start()
        assert h.client().status() == []
        assert L.snapshot() == before


def test_refused_to_watchers_and_when_the_administrator_forbids_it() -> None:
    with (
        throwaway_account() as (_a, uid_a, group, gid),
        throwaway_account() as (_w, uid_w, watchers, gid_w),
        split_lab(settings=SETTINGS + f'group = "{group}"\nmonitor_group = "{watchers}"\n') as (L, h),
    ):
        r = ctl(L, h, "include", "--", PYTHON, "-I", "-c", "print('RAN')", user=(uid_w, gid_w))
        assert r.returncode == 1 and "RAN" not in r.stdout
        assert f"members of group '{watchers}' may only watch tunnels" in r.stderr
        # no argument names a process: only the caller is ever moved
        assert request_as(h.socket, uid_a, gid, "split_include", pid=1) == {
            "invalid": "split_include: unknown argument 'pid'"
        }
        moved = request_as(h.socket, uid_a, gid, "split_include")["ok"]
        assert isinstance(moved, dict) and moved["uid"] == uid_a and moved["mode"] == "include"
        assert moved["active"] is False and moved["cgroup"] == INCLUDE
    with split_lab(settings=SETTINGS + "allow_split_tunnel = false\n") as (L, h):
        r = ctl(L, h, "include", "--", PYTHON, "-I", "-c", "print('RAN')")
        assert r.returncode == 1 and "RAN" not in r.stdout
        assert "running apps only through the tunnel is switched off by the administrator" in r.stderr
        c = h.client()
        c.up(T, L.config(allowed=EVERYTHING), full_tunnel=False, kill_switch=False)
        assert c.status()[0].include is False and "cgroupv2" not in ruleset(L)
        c.down(T)
    assert not include_dir().exists()


def test_under_the_kill_switch_included_apps_get_through_the_tunnel_only() -> None:
    with split_lab(settings=SETTINGS) as (L, h):
        before = L.snapshot()
        c = h.client()
        c.up(T, L.config(allowed=EVERYTHING), full_tunnel=False, kill_switch=True)
        [t] = c.status()
        assert t.kill_switch is True and t.include is True
        assert ask(L, h, SERVER4, included=True) == CLIENT_TUNNEL[0]
        assert ask(L, h, SERVER6, "udp", included=True) == CLIENT_TUNNEL[1]
        assert ask(L, h, SERVER4).startswith("failed")  # the kill switch: not through a tunnel
        block_endpoint(L)
        cap = Capture(L.router, L.router_lan_if, f"port {WHOAMI_PORT} or port {DNS_PORT}", L.workdir)
        assert ask(L, h, SERVER4, included=True).startswith("failed")
        assert cap.count() == 0, cap.lines()
        c.down(T)
        assert L.snapshot() == before


def test_the_first_tunnel_up_serves_included_apps() -> None:
    second = unique_name("wgj")
    with split_lab(settings=SETTINGS) as (L, h):
        before = L.snapshot()
        c = h.client()
        c.up(T, L.config(allowed=EVERYTHING), full_tunnel=False, kill_switch=False)
        assert ask(L, h, SERVER4, included=True) == CLIENT_TUNNEL[0]
        rules = ruleset(L)
        # (the second tunnel uses the same key: the lab's server answers whichever one spoke last,
        # so only the rules are compared from here on)
        c.up(second, L.config(allowed=EVERYTHING), full_tunnel=False, kill_switch=False)
        assert {t.name: t.include for t in c.status()} == {T: True, second: False}
        assert f"included apps keep going through tunnel {T} (it was up first)" in h.log()
        assert c.split_list()["include"] == {"cgroup": INCLUDE, "active": True, "tunnel": T}
        assert ruleset(L) == rules
        c.down(second)
        assert c.split_list()["include"] == {"cgroup": INCLUDE, "active": True, "tunnel": T}
        assert ruleset(L) == rules
        c.down(T)
        assert c.split_list()["include"]["active"] is False
        assert L.snapshot() == before
        # Table = off: the user routes, wgdesk adds no route, include mode included
        c.up(T, L.config(allowed=EVERYTHING, extra_iface="Table = off"), full_tunnel=False, kill_switch=False)
        assert c.status()[0].include is False and f"{include_dir().stat().st_ino}" not in ruleset(L)
        c.down(T)
        assert L.snapshot() == before


APP = """
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
while True:
    try:
        s.sendto(b"?", (host, port))
        print(s.recv(2048).decode(), flush=True)
    except OSError:
        pass
    time.sleep(0.2)
"""


def test_included_apps_stay_blocked_after_down_and_restarts_and_only_their_owners_tunnel_serves() -> None:
    with (
        throwaway_account() as (_a, uid_a, group, gid),
        throwaway_account() as (_b, uid_b, _gb, _gidb),
        split_lab(settings=SETTINGS + f'group = "{group}"\n') as (L, h),
    ):
        config = L.config(allowed=EVERYTHING)
        up = request_as(
            h.socket, uid_a, gid, "up", name=T, config=config, full_tunnel=False, kill_switch=False
        )
        assert up["ok"]["include"] is True, up  # type: ignore[index]
        # the member's app, started "only through the tunnel", talks through it (the server sees the
        # tunnel address) for as long as it runs
        app = L.client.popen(
            *argv_as(uid_a, gid, CLI, "--socket", str(h.socket), "include", "--",
                     SYSTEM_PYTHON, "-I", "-c", APP, SERVER4, str(DNS_PORT), preload=CLI_MODULES),
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd="/",
        )  # fmt: skip
        try:
            assert app.stdout is not None
            assert app.stdout.readline().strip() == CLIENT_TUNNEL[0].encode()
            # another member's included app is not sent through this member's tunnel, nor around it
            cap = Capture(L.router, L.router_lan_if, f"udp port {DNS_PORT}", L.workdir)
            argv = [SYSTEM_PYTHON, "-I", "-c", ASK, "udp", SERVER4, str(DNS_PORT)]
            r = ctl(L, h, "include", "--", *argv, user=(uid_b, gid))
            assert r.stdout.startswith("failed"), (r.stdout, r.stderr)
            assert "no tunnel of yours takes included apps now" in r.stderr
            assert cap.count() == 0, cap.lines()
            # the positive control of the capture: a process not included is seen on the wire
            cap = Capture(L.router, L.router_lan_if, f"udp port {DNS_PORT}", L.workdir)
            assert ask(L, h, SERVER4, "udp") == LAN4
            assert cap.count() > 0
            # down: the app keeps sending, and not one datagram leaves in the clear
            cap = Capture(L.router, L.router_lan_if, f"udp port {DNS_PORT}", L.workdir)
            assert "ok" in request_as(h.socket, uid_a, gid, "down", name=T)
            time.sleep(2)
            assert cap.count() == 0, cap.lines()
            # a helper restart (a package upgrade), and a crash, do not let it out either
            for restart in (h.stop, h.kill9):
                cap = Capture(L.router, L.router_lan_if, f"udp port {DNS_PORT}", L.workdir)
                restart()
                time.sleep(1.5)  # while no helper runs
                h.start()
                time.sleep(1.5)
                assert cap.count() == 0, (restart, cap.lines())
            assert app.poll() is None  # it ran all along
        finally:
            app.kill()
            app.wait()
        # once the app is gone the guard goes with the next tunnel change
        h.client().up(T, config, full_tunnel=False, kill_switch=False)
        h.client().down(T)
        assert firewall.INCLUDE_GUARD_TABLE not in ruleset(L)
