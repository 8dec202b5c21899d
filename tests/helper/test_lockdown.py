"""Lockdown (USERS.md #1 and #7): the kill switch blocks with no tunnel up, from helper start, and
keeps blocking while the helper is stopped, restarting or killed — in the T2 lab, real kernel.

"Blocked" is always shown two ways: the client gets no answer, and the router's client-facing
link sees none of the probes (each test first shows both the other way round without lockdown).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helper.lab import (
    ENGINES,
    HELPER,
    NFT,
    PUBLIC,
    PUBLIC6,
    ROOT,
    ROUTER_LAN,
    SERVER_TUNNEL,
    SERVER_WAN,
    Capture,
    Lab,
    json_links,
    lab,
    probe,
)
from tests.helper.test_threats import request_as, throwaway_account
from tests.netns import unique_name, wait_for
from wgdesk.client import HelperError, HelperPermissionDenied
from wgdesk.platforms.linux.firewall import KILL_SWITCH_TABLE

pytestmark = pytest.mark.root

T = unique_name("wgt")
FULL = "0.0.0.0/0, ::/0"
ROUTER, ROUTER6 = (a.split("/")[0] for a in ROUTER_LAN)
OUTSIDE = f"host {PUBLIC} or host {PUBLIC6}"


def ld(
    enabled: bool, policy: str, paused_until: float | None = None, pause_max: int | None = None
) -> dict[str, object]:
    """The ``lockdown`` object of ``version``; the most a pause may last defaults by policy (300 s,
    or 0 under ``always``)."""
    if pause_max is None:
        pause_max = 0 if policy == "always" else 300
    return {
        "enabled": enabled,
        "policy": policy,
        "paused_until": paused_until,
        "pause_max": pause_max,
        "error": None,  # the firewall is in place (no failsafe block)
    }


def settings(L: Lab, extra: str = "") -> str:
    """helper.toml for the lab: the lockdown file in the test's own directory."""
    return f'lockdown_file = "{state_file(L)}"\n{extra}'


def state_file(L: Lab) -> Path:
    return L.workdir / "lib" / "lockdown.json"


def table(L: Lab) -> str | None:
    """The kill-switch table in the client namespace, or None."""
    r = L.client.exec(NFT, "list", "table", "inet", KILL_SWITCH_TABLE, check=False)
    return r.stdout if r.returncode == 0 else None


def reach(L: Lab, host: str) -> bool:
    return L.ping(host, 1, timeout=1.0, attempts=2)


def outside_probes(L: Lab) -> None:
    """Pings and TCP connection attempts to the "internet" address, both families."""
    for host in (PUBLIC, PUBLIC6):
        L.ping(host, 1, timeout=0.5, attempts=1)
        probe(L.client, "tcp", host, 80, count=2)
        probe(L.client, "udp", host, 53, count=2)


def plaintext(L: Lab, action: object, bpf: str = OUTSIDE) -> int:
    cap = Capture(L.router, L.router_lan_if, bpf, L.workdir)
    action()  # type: ignore[operator]
    return cap.count()


def assert_blocked(L: Lab) -> None:
    assert not reach(L, PUBLIC) and not reach(L, PUBLIC6)
    assert plaintext(L, lambda: outside_probes(L)) == 0


def assert_open(L: Lab) -> None:
    assert reach(L, PUBLIC) and reach(L, PUBLIC6)
    assert plaintext(L, lambda: outside_probes(L)) >= 8  # 2 pings + 2×2 TCP + 2×2 UDP at least


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_lockdown_blocks_without_a_tunnel_and_lets_tunnels_through(engine: str) -> None:
    with lab() as L:
        h = L.start_helper(settings=settings(L), engine=ENGINES[engine])
        c = h.client()
        assert c.lockdown() == ld(False, "user")
        assert table(L) is None and not state_file(L).exists()
        assert_open(L)  # control
        assert reach(L, ROUTER)

        assert c.set_lockdown(True) == ld(True, "user")
        assert c.lockdown() == ld(True, "user")
        st = state_file(L).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
        assert json.loads(state_file(L).read_text()) == {"enabled": True}
        assert_blocked(L)
        assert not reach(L, ROUTER)  # the LAN too: allow_lan is off
        rules = table(L)
        assert rules is not None
        for needle in (
            "udp sport 68 udp dport 67 accept",  # DHCPv4
            "udp sport 546 udp dport 547 accept",  # DHCPv6
            "nd-neighbor-solicit",
            "nd-router-advert",
        ):
            assert needle in rules, needle
        assert T not in rules
        assert "turns lockdown on" in h.log()

        # a tunnel without a kill switch of its own: its traffic passes, nothing else does
        c.up(T, L.config(), kill_switch=False)
        assert f'"{T}"' in (table(L) or "")
        assert L.ping(SERVER_TUNNEL[0], 2) and L.ping(SERVER_TUNNEL[1], 2)
        assert_blocked(L)
        c.down(T)
        assert T not in (table(L) or "none")
        assert_blocked(L)

        # a full tunnel (kill switch on): the "internet" is reached through it, never in plaintext
        c.up(T, L.config(allowed=FULL))
        answered: list[bool] = []
        assert plaintext(L, lambda: answered.extend([L.ping(PUBLIC, 2), L.ping(PUBLIC6, 2)])) == 0
        assert answered == [True, True]
        c.down(T)
        assert table(L) is not None
        assert_blocked(L)

        assert c.set_lockdown(False) == ld(False, "user")
        assert table(L) is None
        assert json.loads(state_file(L).read_text()) == {"enabled": False}
        assert_open(L)


def test_lockdown_with_allow_lan_lets_the_lan_through_but_not_dns() -> None:
    with lab() as L:
        h = L.start_helper(settings=settings(L, "allow_lan = true\n"))
        c = h.client()
        dns = lambda: probe(L.client, "udp", ROUTER, 53)  # noqa: E731
        assert plaintext(L, dns, "port 53") >= 3  # control
        c.set_lockdown(True)
        assert reach(L, ROUTER) and reach(L, ROUTER6)
        assert plaintext(L, dns, "port 53") == 0
        assert_blocked(L)


def test_lockdown_keeps_blocking_across_helper_stop_restart_and_kill() -> None:
    with lab() as L:
        h = L.start_helper(settings=settings(L))
        c = h.client()
        c.set_lockdown(True)
        c.up(T, L.config(), kill_switch=False)
        assert L.ping(SERVER_TUNNEL[0], 2)

        # a background sender that tries the outside every 20 ms while the helper stops and starts
        sender = L.client.popen(
            sys.executable,
            "-I",
            "-c",
            "import socket, time\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for _ in range(100000):\n"
            "    try:\n"
            f"        s.sendto(b'x', ('{PUBLIC}', 9))\n"
            "    except OSError:\n"
            "        pass\n"
            "    time.sleep(0.02)\n",
        )
        try:

            def clean_restart() -> None:
                h.stop()
                # stopped: the tunnel is gone, the block is not
                assert T not in json_links(L.client)
                assert table(L) is not None
                assert not reach(L, PUBLIC) and not reach(L, PUBLIC6)
                outside_probes(L)
                h.start()

            assert plaintext(L, clean_restart) == 0
            assert "the kill switch stays in place while the helper is stopped" in h.log()
            c = h.client()
            assert c.lockdown() == ld(True, "user")
            assert c.status() == []

            # kill -9 with a full tunnel (kill switch on) up: recovery keeps blocking
            c.up(T, L.config(allowed=FULL))

            def crash_and_restart() -> None:
                h.kill9()
                outside_probes(L)
                h.start()
                outside_probes(L)

            assert plaintext(L, crash_and_restart) == 0
            c = h.client()
            assert c.lockdown()["enabled"] is True
            assert [t.state for t in c.status()] == ["blocked"]
            c.down(T)  # the blocked tunnel goes; lockdown stays
            assert_blocked(L)
        finally:
            sender.kill()
            sender.wait()

        # a reboot: the table is gone (nft state is not persistent); the helper puts it back
        # before it answers on its socket
        h.stop()
        L.client.exec(NFT, "delete", "table", "inet", KILL_SWITCH_TABLE)
        assert reach(L, PUBLIC)  # control: without the table the outside answers
        log_before = len(h.log())
        h.start()
        assert table(L) is not None
        assert_blocked(L)
        started = h.log()[log_before:]
        assert started.index("lockdown is on") < started.index("listening on")

        # off, then a restart: open, and it stays open
        h.client().set_lockdown(False)
        h.stop()
        h.start()
        assert table(L) is None
        assert h.client().lockdown()["enabled"] is False
        assert reach(L, PUBLIC)


def test_policy_always_forces_lockdown_and_refuses_the_verb() -> None:
    with lab() as L:
        h = L.start_helper(settings=settings(L, 'lockdown = "always"\n'))
        c = h.client()
        assert c.lockdown() == ld(True, "always")
        assert table(L) is not None  # from start, nobody asked
        assert_blocked(L)
        with pytest.raises(HelperPermissionDenied) as e:
            h.client().set_lockdown(False)
        assert 'forced on by the administrator (lockdown = "always"' in e.value.message
        assert table(L) is not None and not state_file(L).exists()
        # an endpoint name cannot be resolved through the block: the error says what to do
        endpoint = SERVER_WAN[0].split("/")[0]
        named = L.config().replace(f"Endpoint = {endpoint}:", "Endpoint = nowhere.lab.test:")
        with pytest.raises(HelperError) as err:
            h.client().up(T, named)
        assert "lockdown blocks DNS outside tunnels: give the endpoint as an IP address" in err.value.message
        h.stop()
        assert table(L) is not None


def test_policy_never_ignores_the_stored_choice_and_refuses_the_verb() -> None:
    with lab() as L:
        path = state_file(L)
        path.parent.mkdir()
        path.write_text('{"enabled": true}\n')
        path.chmod(0o600)
        h = L.start_helper(settings=settings(L, 'lockdown = "never"\n'))
        assert h.client().lockdown() == ld(False, "never")
        assert table(L) is None
        with pytest.raises(HelperPermissionDenied) as e:
            h.client().set_lockdown(True)
        assert "forced off by the administrator" in e.value.message
        assert table(L) is None
        assert reach(L, PUBLIC)


def test_an_untrustworthy_state_file_counts_as_on() -> None:
    with lab() as L:
        path = state_file(L)
        path.parent.mkdir()
        path.write_text("{not json")
        path.chmod(0o600)
        h = L.start_helper(settings=settings(L))
        assert h.client().lockdown()["enabled"] is True
        assert "keeping lockdown on" in h.log()
        h.client().set_lockdown(False)  # writes a good one
        h.stop()
        path.write_text('{"enabled": false}\n')
        path.chmod(0o666)  # writable by anyone: not trusted
        h.start()
        assert h.client().lockdown()["enabled"] is True
        assert table(L) is not None


def test_members_may_toggle_lockdown_and_watchers_may_not() -> None:
    with (
        throwaway_account() as (_m, uid_m, group, gid),
        throwaway_account() as (_w, uid_w, watchers, gid_w),
        lab() as L,
    ):
        h = L.start_helper(settings=settings(L, f'group = "{group}"\nmonitor_group = "{watchers}"\n'))
        r = request_as(h.socket, uid_w, gid_w, "set_lockdown", enabled=True)
        assert f"members of group '{watchers}' may only watch" in str(r["denied"])
        assert table(L) is None and not state_file(L).exists()
        # a watcher sees the state (version is a watch verb)
        assert request_as(h.socket, uid_w, gid_w, "version")["ok"]["lockdown"] == ld(False, "user")  # type: ignore[index]
        assert request_as(h.socket, uid_m, gid, "set_lockdown", enabled=True) == {"ok": ld(True, "user")}
        assert table(L) is not None
        assert f"uid {uid_m} turns lockdown on" in h.log()
        r = request_as(h.socket, uid_m, gid, "set_lockdown", enabled="yes")
        assert "enabled must be true or false" in str(r["invalid"])
        assert request_as(h.socket, uid_m, gid, "set_lockdown", enabled=False)["ok"] == ld(False, "user")
        assert table(L) is None


def test_helper_tells_systemd_it_is_ready_only_once_the_block_is_in_place() -> None:
    """Type=notify: READY=1 arrives after the table exists (the unit orders itself before
    network-pre.target, so network managers start only then)."""
    with lab() as L:
        state = state_file(L)
        state.parent.mkdir()
        state.write_text('{"enabled": true}\n')
        state.chmod(0o600)
        config = L.workdir / "helper.toml"
        config.write_text(f'dns_backend = "file"\n{settings(L)}')
        notify_path = L.workdir / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        notify.settimeout(30)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": str(ROOT),
            "NOTIFY_SOCKET": str(notify_path),
        }
        log = open(L.workdir / "notify-helper.log", "wb")  # noqa: SIM115
        proc = L.client.popen(
            HELPER,
            "--socket",
            str(L.workdir / "run" / "helper.sock"),
            "--state-dir",
            str(L.workdir / "state"),
            "--config",
            str(config),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            assert notify.recv(64) == b"READY=1"
            assert table(L) is not None
            assert (L.workdir / "run" / "helper.sock").is_socket()
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
            notify.close()
        # stopped cleanly with lockdown on: the table stays, and the test removes it
        assert table(L) is not None
        assert wait_for(lambda: not os.path.exists(L.workdir / "run" / "helper.sock"), 5)


def test_wgdeskctl_lockdown_shows_and_switches() -> None:
    from tests.test_cli import run

    with lab() as L:
        h = L.start_helper(settings=settings(L))
        sock = ("--socket", str(h.socket))
        r = run(*sock, "lockdown")
        assert (r.returncode, r.stdout.decode()) == (0, "lockdown: off\n")
        r = run(*sock, "lockdown", "on")
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode() == (
            "lockdown: on\n"
            "no tunnel is up: all traffic is blocked except loopback, DHCP and neighbour discovery\n"
        )
        assert table(L) is not None
        h.client().up(T, L.config(), kill_switch=False)
        r = run(*sock, "lockdown")
        assert r.stdout.decode().splitlines()[1].startswith("traffic leaves only through tunnels")
        h.client().down(T)
        r = run(*sock, "lockdown", "off", "--json")
        assert (r.returncode, json.loads(r.stdout)) == (0, ld(False, "user"))
        assert table(L) is None
        r = run(*sock, "lockdown", "maybe")
        assert r.returncode == 2 and b"invalid choice" in r.stderr
        h.stop()
        r = run(*sock, "lockdown", "on")
        assert r.returncode == 1 and r.stderr.decode().startswith("wgdeskctl lockdown: ")
        assert b"not running" in r.stderr


def test_wgdeskctl_lockdown_says_when_the_administrator_forces_it() -> None:
    from tests.test_cli import run

    with lab() as L:
        h = L.start_helper(settings=settings(L, 'lockdown = "always"\n'))
        r = run("--socket", str(h.socket), "lockdown")
        assert r.stdout.decode().splitlines()[0] == "lockdown: on (forced on by the administrator)"
        r = run("--socket", str(h.socket), "lockdown", "off")
        assert r.returncode == 1
        assert "forced on by the administrator" in r.stderr.decode()


def test_subscribers_hear_lockdown_changes() -> None:
    import threading

    with lab() as L:
        h = L.start_helper(settings=settings(L))
        events: list[dict[str, object]] = []
        heard = threading.Event()

        def listen() -> None:
            for ev in h.client().subscribe():
                if ev.get("event") == "lockdown":
                    events.append(ev)
                    heard.set()
                    return

        threading.Thread(target=listen, daemon=True).start()
        time.sleep(1.0)  # subscribed (the helper sends the tunnels' states first: there are none)
        h.client().set_lockdown(True)
        assert heard.wait(10)
        assert events == [{"event": "lockdown", **ld(True, "user")}]
        h.client().set_lockdown(False)


def test_a_table_left_in_lockdown_goes_when_lockdown_is_off_at_the_next_start() -> None:
    with lab() as L:
        h = L.start_helper(settings=settings(L))
        h.client().set_lockdown(True)
        h.stop()
        assert table(L) is not None
        # the administrator forbids lockdown while the helper is stopped
        never = 'lockdown = "never"\n'
        h.config.write_text(f'dns_backend = "file"\n{settings(L, never)}')
        h.start()
        assert table(L) is None
        assert "removed the kill switch a previous helper left in place" in h.log()
        assert reach(L, PUBLIC)
        # and with the choice back to the user, the stored "on" counts again
        h.stop()
        h.config.write_text(f'dns_backend = "file"\n{settings(L)}')
        h.start()
        assert table(L) is not None and h.client().lockdown()["enabled"] is True


BROKEN_NFT = '#!/bin/sh\necho "nft: broken for this test" >&2\nexit 1\n'


def test_lockdown_fails_closed_when_its_firewall_cannot_go_in_at_start() -> None:
    # nft failing at boot was logged, the helper reported ready and the network came up open
    with throwaway_account() as (_m, uid_m, group, gid), lab() as L:
        assert_open(L)  # control: nothing blocks before the helper starts
        state = state_file(L)
        state.parent.mkdir()
        state.write_text('{"enabled": true}\n')
        state.chmod(0o600)
        broken = L.workdir / "broken-nft"
        broken.write_text(BROKEN_NFT)
        broken.chmod(0o755)
        h = L.start_helper(settings=settings(L, f'group = "{group}"\n'), nft=broken)
        assert_blocked(L)
        assert not reach(L, ROUTER)
        state_seen = request_as(h.socket, uid_m, gid, "version")["ok"]["lockdown"]  # type: ignore[index]
        assert state_seen["enabled"] is True and "broken for this test" in state_seen["error"]
        assert "blocking all routed traffic" in h.log()
        # no tunnel can work around it either: a member's bring-up fails and says why
        r = request_as(h.socket, uid_m, gid, "up", name=T, config=L.config())
        assert "failed" in r and "nft" in str(r["failed"]), r
        assert_blocked(L)
        # turning lockdown off lifts the failsafe block too
        assert request_as(h.socket, uid_m, gid, "set_lockdown", enabled=False)["ok"]["error"] is None  # type: ignore[index]
        assert_open(L)
