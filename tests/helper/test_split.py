"""Per-app split tunnelling (`wgdeskctl exclude -- COMMAND`) against the real kernel, in the helper lab.

A TCP (and UDP) "who am I" server in the server namespace answers with the source address it sees:
the client's tunnel address (10.97.0.2 / fd97::2) when a connection came through the tunnel, its
LAN address (10.98.1.2 / fd98:1::2: the router forwards without NAT) when it went around it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.as_user import CLI, CLI_MODULES, argv_as
from tests.helper.lab import (
    CLIENT_LAN,
    CLIENT_TUNNEL,
    ENGINES,
    NFT,
    PYTHON,
    ROOT,
    SERVER_TUNNEL,
    SERVER_WAN,
    WHOAMI,
    HelperProcess,
    Lab,
    lab,
)
from tests.helper.test_threats import request_as, throwaway_account
from tests.netns import unique_name, wait_for
from wgdesk.client import HelperError
from wgdesk.platforms.linux import cgroup as split

pytestmark = pytest.mark.root

T = unique_name("wgx")
CGROUP = f"wgdesk-test-{unique_name('b')}"
SYSTEM_PYTHON = "/usr/bin/python3"
WHOAMI_PORT = 7377
DNS_PORT = 53
SERVER4, SERVER6 = SERVER_WAN[0].split("/")[0], SERVER_WAN[1].split("/")[0]
LAN4, LAN6 = CLIENT_LAN[0].split("/")[0], CLIENT_LAN[1].split("/")[0]

ASK = """
import socket, sys
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
for attempt in range(5):
    try:
        if kind == "tcp":
            s = socket.create_connection((host, port), timeout=2)
            print(s.makefile().readline().strip())
        else:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.settimeout(2)
            s.sendto(b"?", (host, port))
            print(s.recv(2048).decode())
        sys.exit(0)
    except OSError as e:
        err = e
print(f"failed: {err}")
sys.exit(3)
"""


@contextmanager
def split_lab(settings: str = "", engine: str = "wireguard-go") -> Iterator[tuple[Lab, HelperProcess]]:
    with lab() as L:
        ready = L.server.popen(
            PYTHON, "-I", "-c", WHOAMI, str(WHOAMI_PORT), str(DNS_PORT), stdout=subprocess.PIPE
        )
        assert ready.stdout is not None and ready.stdout.readline().strip() == b"ready"
        h = L.start_helper(settings=f'split_tunnel_cgroup = "{CGROUP}"\n' + settings, engine=ENGINES[engine])
        yield L, h


def ctl(
    L: Lab, h: HelperProcess, *args: str, user: tuple[int, int] | None = None
) -> subprocess.CompletedProcess[str]:
    """``wgdeskctl`` in the client namespace (optionally as an unprivileged (uid, gid))."""
    argv = [PYTHON, "-m", "wgdesk.cli", "--socket", str(h.socket), *args]
    if user is not None:
        argv = argv_as(*user, CLI, "--socket", str(h.socket), *args, preload=CLI_MODULES)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        ["ip", "netns", "exec", L.client.name, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd="/",
    )


def ask(
    L: Lab, h: HelperProcess, host: str, kind: str = "tcp", port: int = WHOAMI_PORT, excluded: bool = False
) -> str:
    """The address the server saw (or ``failed: …``), from a plain or an excluded process."""
    command = [PYTHON, "-I", "-c", ASK, kind, host, str(port)]
    r = ctl(L, h, "exclude", "--", *command) if excluded else L.client.exec(*command, check=False)
    return r.stdout.strip() or r.stderr.strip()


def cgroup_dir() -> Path:
    """The test's bypass cgroup, as this (root-namespace) process sees the cgroup2 hierarchy."""
    mounts = split.cgroup2_mounts(Path("/proc/self/mountinfo").read_text())
    [root] = [point for point, inside in mounts if inside == "/"][:1]
    return root / CGROUP


def bypass_rules(L: Lab) -> str:
    return str(L.client.exec(NFT, "list", "ruleset").stdout)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_excluded_app_goes_around_the_full_tunnel_dns_stays_inside(engine: str) -> None:
    with split_lab(engine=engine) as (L, h):
        before = L.snapshot()
        c = h.client()
        c.up(T, L.config(allowed="0.0.0.0/0, ::/0", dns=SERVER_TUNNEL[0]), kill_switch=False)
        assert L.ping(SERVER_TUNNEL[0], 2, attempts=5)
        assert ask(L, h, SERVER4) == CLIENT_TUNNEL[0]  # through the tunnel
        assert ask(L, h, SERVER4, excluded=True) == LAN4  # around it
        assert ask(L, h, SERVER6) == CLIENT_TUNNEL[1]
        assert ask(L, h, SERVER6, excluded=True) == LAN6
        # an excluded app still resolves names through the tunnel's DNS server
        assert ask(L, h, SERVER_TUNNEL[0], "udp", DNS_PORT, excluded=True) == CLIENT_TUNNEL[0]
        # the rules name our cgroup (nft shows it by inode number) and the tunnel's mark
        rules = bypass_rules(L)
        assert f"socket cgroupv2 level 1 {cgroup_dir().stat().st_ino} " in rules
        assert f"meta mark set 0x{c.status()[0].fwmark:08x}" in rules
        # the process that asked is the one moved, and it keeps its pid (exec) and its cgroup
        r = ctl(L, h, "exclude", "--", PYTHON, "-I", "-c", "print(open('/proc/self/cgroup').read())")
        assert r.returncode == 0 and r.stderr == "", r.stderr  # a full tunnel is up: no notice
        assert f"0::/{CGROUP}" in r.stdout.splitlines()
        sleeper = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                L.client.name,
                PYTHON,
                "-m",
                "wgdesk.cli",
                "--socket",
                str(h.socket),
                "exclude",
                "--",
                "sleep",
                "60",
            ],
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(ROOT)},
        )
        try:
            assert wait_for(lambda: str(sleeper.pid) in (cgroup_dir() / "cgroup.procs").read_text(), 10)
            listed = json.loads(ctl(L, h, "excluded", "--json").stdout)
            mine = {"pid": sleeper.pid, "uid": 0, "command": "sleep", "mode": "exclude"}
            assert mine in listed["processes"]
            assert listed["active"] is True and listed["tunnel"] == T and listed["cgroup"] == CGROUP
            text = ctl(L, h, "excluded").stdout
            assert f"excluded apps bypass full tunnel {T}" in text and f"{sleeper.pid}" in text
        finally:
            sleeper.kill()
            sleeper.wait()
        c.down(T)
        assert L.snapshot() == before
        # with the tunnel down, an excluded app uses normal routing, and says so
        r = ctl(L, h, "exclude", "--", PYTHON, "-I", "-c", ASK, "tcp", SERVER4, str(WHOAMI_PORT))
        assert r.returncode == 0 and r.stdout.strip() == LAN4
        assert "no full tunnel is up" in r.stderr
    # the helper removes its (empty) cgroup when it stops
    assert not cgroup_dir().exists()


def test_down_and_a_late_failure_take_the_bypass_rules_away() -> None:
    with split_lab(settings='resolv_conf = "/nonexistent-wgdesk-dir/resolv.conf"\n') as (L, h):
        before = L.snapshot()
        c = h.client()
        # DNS is the last step: the bypass table is in place when it fails
        with pytest.raises(HelperError) as e:
            c.up(T, L.config(allowed="0.0.0.0/0, ::/0", dns=SERVER_TUNNEL[0]))
        assert e.value.code == "failed" and "/nonexistent-wgdesk-dir" in e.value.message
        assert f"apps in cgroup {CGROUP} bypass this full tunnel" in h.log()
        assert "rolling back" in h.log()
        assert L.snapshot() == before
        c.up(T, L.config(allowed="0.0.0.0/0, ::/0"))
        assert "cgroupv2" in bypass_rules(L) and c.status()[0].bypass is True
        c.down(T)
        assert L.snapshot() == before


def test_a_crashed_helpers_bypass_rules_are_removed_when_it_restarts() -> None:
    with split_lab() as (L, h):
        before = L.snapshot()
        h.client().up(T, L.config(allowed="0.0.0.0/0, ::/0"), kill_switch=False)
        assert "cgroupv2" in bypass_rules(L)
        h.kill9()
        assert "cgroupv2" in bypass_rules(L)  # the crash left them
        h.start()
        assert h.client().status() == []
        assert L.snapshot() == before
        # and the restarted helper still excludes (its cgroup was left in place, processes and all)
        assert ask(L, h, SERVER4, excluded=True) == LAN4


def block_endpoint(L: Lab) -> None:
    """The router drops the tunnel's UDP: the tunnel carries nothing any more."""
    L.router.exec(NFT, "add", "table", "inet", "blk")
    L.router.exec(NFT, "add", "chain", "inet", "blk", "udp_out", "{ type filter hook forward priority 0; }")
    L.router.exec(NFT, "add", "rule", "inet", "blk", "udp_out", "udp", "dport", "51820", "drop")


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_under_the_kill_switch_excluded_apps_get_out_and_others_do_not(engine: str) -> None:
    with split_lab(engine=engine) as (L, h):
        c = h.client()
        c.up(T, L.config(allowed="0.0.0.0/0, ::/0", dns=SERVER_TUNNEL[0]))
        [t] = c.status()
        assert t.kill_switch is True and t.bypass is True
        assert L.ping(SERVER_TUNNEL[0], 2, attempts=5)
        assert ask(L, h, SERVER4) == CLIENT_TUNNEL[0]
        assert ask(L, h, SERVER4, excluded=True) == LAN4
        assert ask(L, h, SERVER6, excluded=True) == LAN6
        assert ask(L, h, SERVER_TUNNEL[0], "udp", DNS_PORT, excluded=True) == CLIENT_TUNNEL[0]
        block_endpoint(L)
        assert ask(L, h, SERVER4).startswith("failed")
        assert ask(L, h, SERVER6).startswith("failed")
        assert ask(L, h, SERVER4, excluded=True) == LAN4
        assert ask(L, h, SERVER6, excluded=True) == LAN6
        assert ask(L, h, SERVER4, "udp", DNS_PORT, excluded=True) == LAN4
        c.down(T)


def test_an_ipv4_only_full_tunnel_lets_excluded_apps_use_native_ipv6() -> None:
    with split_lab() as (L, h):
        c = h.client()
        c.up(T, L.config(allowed="0.0.0.0/0", dns=SERVER_TUNNEL[0]), kill_switch=False)
        assert L.ping(SERVER_TUNNEL[0], 2, attempts=5)
        assert ask(L, h, SERVER6).startswith("failed")  # the native-IPv6 leak block
        assert ask(L, h, SERVER6, excluded=True) == LAN6
        assert ask(L, h, SERVER4, excluded=True) == LAN4
        c.down(T)


def test_refused_when_the_administrator_forbids_it_and_nothing_is_run() -> None:
    with split_lab(settings="allow_split_tunnel = false\n") as (L, h):
        r = ctl(L, h, "exclude", "--", PYTHON, "-I", "-c", "print('RAN')")
        assert r.returncode == 1 and "RAN" not in r.stdout
        assert "switched off by the administrator (allow_split_tunnel = false" in r.stderr
        c = h.client()
        c.up(T, L.config(allowed="0.0.0.0/0, ::/0"), kill_switch=False)
        assert c.status()[0].bypass is False and "cgroupv2" not in bypass_rules(L)
        listed = h.client().split_list()
        assert listed["available"] is False and "allow_split_tunnel = false" in listed["reason"]
        c.down(T)
    assert not cgroup_dir().exists()  # never created


def test_refused_cleanly_without_cgroup2(tmp_path: Path) -> None:
    with split_lab(settings=f'split_tunnel_cgroup_root = "{tmp_path}"\n') as (L, h):
        r = ctl(L, h, "exclude", "--", PYTHON, "-I", "-c", "print('RAN')")
        assert r.returncode == 1 and "RAN" not in r.stdout
        assert f"{tmp_path} (split_tunnel_cgroup_root) is not the root of a cgroup2 mount" in r.stderr
        # a full tunnel still comes up, without bypass rules, and says why in its log
        c = h.client()
        c.up(T, L.config(allowed="0.0.0.0/0, ::/0"), kill_switch=False)
        assert c.status()[0].bypass is False and "cgroupv2" not in bypass_rules(L)
        assert "is not the root of a cgroup2 mount" in h.log()
        assert h.client().split_list()["available"] is False
        c.down(T)
        assert h.proc is not None and h.proc.poll() is None


def test_the_helper_moves_only_the_caller_and_watchers_may_not() -> None:
    with (
        throwaway_account() as (_a, uid_a, group, gid),
        throwaway_account() as (_w, uid_w, watchers, gid_w),
        split_lab(settings=f'group = "{group}"\nmonitor_group = "{watchers}"\n') as (L, h),
    ):
        h.client().up(T, L.config(allowed="0.0.0.0/0, ::/0"), kill_switch=False)
        assert L.ping(SERVER_TUNNEL[0], 2, attempts=5)
        victim = L.client.popen("sleep", "60")
        try:
            # no argument names a process: a pid in the request is refused outright
            r = request_as(h.socket, uid_a, gid, "split_exclude", pid=victim.pid)
            assert r == {"invalid": "split_exclude: unknown argument 'pid'"}
            # the process moved is the caller itself, never another one
            r = request_as(h.socket, uid_a, gid, "split_exclude")
            moved = r["ok"]
            assert isinstance(moved, dict) and moved["uid"] == uid_a and moved["pid"] != victim.pid
            assert moved["active"] is True and moved["tunnel"] == T
            assert str(victim.pid) not in (cgroup_dir() / "cgroup.procs").read_text()
            # a watcher may list (its own: none) but not exclude
            r = ctl(L, h, "exclude", "--", PYTHON, "-I", "-c", "print('RAN')", user=(uid_w, gid_w))
            assert r.returncode == 1 and "RAN" not in r.stdout
            assert f"members of group '{watchers}' may only watch tunnels" in r.stderr
            assert request_as(h.socket, uid_w, gid_w, "split_list")["ok"]["processes"] == []  # type: ignore[index]
            # a member's excluded app goes around the tunnel; the member sees only its own processes
            # (the system Python: the test's virtualenv lives where this user cannot exec it)
            command = [SYSTEM_PYTHON, "-I", "-c", ASK, "tcp", SERVER4, str(WHOAMI_PORT)]
            r = ctl(L, h, "exclude", "--", *command, user=(uid_a, gid))
            assert r.returncode == 0 and r.stdout.strip() == LAN4, r.stderr
            mine = L.client.popen(
                *argv_as(uid_a, gid, CLI, "--socket", str(h.socket), "exclude", "--", "sleep", "60",
                         preload=CLI_MODULES),
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )  # fmt: skip
            roots = L.client.popen(
                PYTHON, "-m", "wgdesk.cli", "--socket", str(h.socket), "exclude", "--", "sleep", "60",
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(ROOT)},
            )  # fmt: skip
            procs = cgroup_dir() / "cgroup.procs"
            assert wait_for(lambda: {str(mine.pid), str(roots.pid)} <= set(procs.read_text().split()), 10)
            seen = request_as(h.socket, uid_a, gid, "split_list")["ok"]["processes"]  # type: ignore[index]
            assert seen == [{"pid": mine.pid, "uid": uid_a, "command": "sleep", "mode": "exclude"}]
            everything = h.client().split_list()["processes"]
            assert {p["pid"] for p in everything} >= {mine.pid, roots.pid}
            for p in (mine, roots):
                p.kill()
                p.wait()
        finally:
            victim.kill()
            victim.wait()
        h.client().down(T)
