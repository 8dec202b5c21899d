"""One member of the helper's group attacking another through the control socket (issue 13).

Every test runs two throwaway accounts of the group against the real helper in the lab and
performs the attack as one of them; each failed against the helper before its fix.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.as_user import argv_as
from tests.helper.lab import SERVER_TUNNEL, SERVER_WAN, engine_pid, lab
from tests.helper.members import Member, two_members
from tests.helper.test_threats import throwaway_account
from tests.netns import unique_name, wait_for
from wgdesk.platforms.linux import cgroup as split

pytestmark = pytest.mark.root

T = unique_name("wgm")
ENDPOINT = f"{SERVER_WAN[0].split('/')[0]}:51820"


@pytest.mark.parametrize("name", ["-h", "-iwork", "--", "-"])
def test_a_tunnel_name_cannot_be_read_as_an_option(name: str) -> None:
    # `resolvectl dns -iwork …` took the name for an option; its rollback then reverted another link
    with two_members() as (L, victim, attacker):
        reply = attacker.request("up", name=name, config=L.config())
        assert "invalid" in reply, reply
        assert "must not start with -" in reply["invalid"]
        assert victim.ok("status") == {"tunnels": []}


def test_a_member_cannot_take_down_or_replace_a_tunnel_another_member_is_bringing_up() -> None:
    # the owner used to be recorded only once `up` returned: a `down` meanwhile passed the check
    # (and waited for the bring-up to finish), and `up` never checked the owner at all
    with two_members(settings="allow_scripts = true\n") as (L, victim, attacker):
        started = threading.Event()
        result: dict[str, object] = {}

        def bring_up() -> None:
            started.set()
            result.update(victim.request("up", name=T, config=L.config(extra_iface="PreUp = sleep 3")))

        t = threading.Thread(target=bring_up)
        t.start()
        assert started.wait(5)
        assert wait_for(lambda: T in victim.helper.log(), 10)  # the bring-up has begun
        reply = attacker.request("down", name=T)
        t.join(60)
        assert "ok" in result, result
        assert "denied" in reply, reply
        assert [x["state"] for x in victim.ok("status")["tunnels"]] == ["up"]
        assert L.ping(SERVER_TUNNEL[0], 2)
        # the victim's engine dies: the tunnel is `failed`, and still the victim's
        os.kill(engine_pid(victim.helper, T), signal.SIGKILL)
        assert wait_for(lambda: victim.ok("status")["tunnels"][0]["state"] == "failed", 10)
        reply = attacker.request("up", name=T, config=L.config())
        assert "denied" in reply and "another user" in reply["denied"], reply
        assert victim.ok("status")["tunnels"][0]["state"] == "failed"
        assert "up" in victim.ok("up", name=T, config=L.config())["state"]  # the owner may
        victim.ok("down", name=T)


def test_members_see_only_their_own_tunnels_and_an_admin_sees_all() -> None:
    with (
        throwaway_account() as (_w, uid_w, admins, gid_w),
        two_members(settings=f'admin_group = "{admins}"\nmonitor_group = "{admins}"\n') as (
            L,
            victim,
            attacker,
        ),
    ):
        admin = Member(uid_w, gid_w, victim.helper)
        events: list[dict[str, object]] = []
        sub = subscribe_as(victim.helper, attacker.uid, attacker.gid, events)
        try:
            victim.ok("up", name=T, config=L.config(dns=SERVER_TUNNEL[0]), kill_switch=False)
            assert L.ping(SERVER_TUNNEL[0], 2)
            assert [t["name"] for t in victim.ok("status")["tunnels"]] == [T]
            # the attacker learns nothing of it: no status, no log record, no diagnosis, no event
            assert attacker.ok("status") == {"tunnels": []}
            assert "not_found" in attacker.request("status", name=T)
            assert [r for r in attacker.ok("logs")["records"] if r["tunnel"] == T or T in r["message"]] == []
            assert attacker.ok("logs", name=T) == {"records": []}
            assert "not_found" in attacker.request("diagnose", name=T)
            # the control: the victim sees their own records, the administrator group everything
            assert any(r["tunnel"] == T for r in victim.ok("logs")["records"])
            assert [t["name"] for t in admin.ok("status")["tunnels"]] == [T]
            assert any(r["tunnel"] == T for r in admin.ok("logs")["records"])
            assert admin.ok("diagnose", name=T)["tunnel"]["name"] == T
        finally:
            time.sleep(1.0)
            sub.kill()
            sub.wait()
        assert [e for e in events if e.get("tunnel") == T] == [], events
        # the socket is open to everyone (monitor group): a flood of refused connections must not
        # push the victim's records out of the log or fill the system log
        before = victim.helper.log().count("refused a connection")
        subprocess.run(argv_as(65534, 65534, FLOOD, str(victim.helper.socket)), check=True, timeout=120)
        assert any(r["tunnel"] == T for r in victim.ok("logs")["records"])
        logged = victim.helper.log().count("refused a connection") - before
        assert 1 <= logged <= 20, logged
        assert "refusals not logged" in victim.helper.log()
        victim.ok("down", name=T)


FLOOD = """
import socket, sys
for _ in range(5000):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.recv(4096)
    s.close()
"""

SUBSCRIBE = """
import json, sys
from wgdesk.client import HelperClient
for ev in HelperClient(sys.argv[1]).subscribe():
    print(json.dumps(ev), flush=True)
"""


def subscribe_as(h, uid: int, gid: int, into: list[dict[str, object]]) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    p = subprocess.Popen(argv_as(uid, gid, SUBSCRIBE, str(h.socket)), stdout=subprocess.PIPE, text=True)

    def read() -> None:
        assert p.stdout is not None
        for line in p.stdout:
            into.append(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    time.sleep(1.0)
    return p


SETUID_ATTACK = """
import json, os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b'{"v":1,"id":1,"verb":"split_exclude"')  # unfinished: the helper waits for the rest
if os.fork() == 0:  # the child finishes the request once the connecting process runs setuid root
    time.sleep(1.0)
    s.sendall(b"}\\n")
    print(json.dumps({"pid": os.getppid(), "reply": json.loads(s.recv(65536))}), flush=True)
    os._exit(0)
os.execv(sys.argv[2], [sys.argv[2], "4"])
"""


def test_a_member_cannot_have_a_root_process_moved_into_the_bypass_cgroup() -> None:
    # the helper moves the process that connected; that one exec'd a setuid-root program meanwhile
    cgroup = f"wgdesk-test-{unique_name('s')}"
    with two_members(settings=f'split_tunnel_cgroup = "{cgroup}"\n') as (L, _victim, attacker):
        setuid_sleep = L.workdir / "sleep-as-root"
        shutil.copy("/usr/bin/sleep", setuid_sleep)
        os.chown(setuid_sleep, 0, 0)
        os.chmod(setuid_sleep, 0o4755)
        argv = argv_as(
            attacker.uid, attacker.gid, SETUID_ATTACK, str(attacker.helper.socket), str(setuid_sleep)
        )
        out = L.client.exec(*argv).stdout
        result = json.loads(out)
        assert result["reply"]["ok"] is False, result
        assert result["reply"]["error"]["code"] == "denied", result
        procs = split_members(cgroup)
        assert result["pid"] not in procs, procs
        # the control: the member's own process is moved
        moved = attacker.ok("split_exclude")
        assert moved["uid"] == attacker.uid


def split_members(cgroup: str) -> list[int]:
    mounts = split.cgroup2_mounts(Path("/proc/self/mountinfo").read_text())
    [root] = [point for point, inside in mounts if inside == "/"][:1]
    procs = root / cgroup / "cgroup.procs"
    return [int(p) for p in procs.read_text().split()] if procs.exists() else []


def other_config(L, allowed: str, address: str, extra: str = "") -> str:  # type: ignore[no-untyped-def]
    """A second member's own tunnel (no handshake needed for what these tests look at)."""
    return (
        f"[Interface]\nPrivateKey = {L.client_private}\nAddress = {address}\n{extra}\n"
        f"[Peer]\nPublicKey = {L.server_public}\nAllowedIPs = {allowed}\nEndpoint = {ENDPOINT}\n"
    )


def test_bringing_a_blocked_tunnel_up_again_leaves_another_members_journal_alone() -> None:
    # the replacement journal of blocked tunnel X was X.new.journal — the journal of a tunnel X.new
    x = unique_name("j")  # short: f"{x}.new" must fit in 15 characters however many names the run made
    with two_members() as (L, victim, attacker):
        original = victim.helper.resolv_conf.read_text()
        assert victim.ok("up", name=x, config=L.config(), kill_switch=True)["state"] == "up"
        victim.helper.kill9()
        victim.helper.start()
        assert [t["state"] for t in victim.ok("status")["tunnels"]] == ["blocked"]
        # the other member's tunnel X.new rewrites resolv.conf (journalled in X.new.journal)
        dns = other_config(L, "10.96.0.0/24", "10.96.0.2/32", "DNS = 10.96.0.53")
        assert attacker.ok("up", name=f"{x}.new", config=dns, kill_switch=False)["state"] == "up"
        assert "10.96.0.53" in victim.helper.resolv_conf.read_text()
        assert victim.ok("up", name=x, config=L.config(), kill_switch=True)["state"] == "up"
        # a crash now: recovery must find X.new's journal and put resolv.conf back
        victim.helper.kill9()
        victim.helper.start()
        assert victim.helper.resolv_conf.read_text() == original
        assert f"{x}.new" not in L.client.exec("ip", "link", "show").stdout


def test_a_power_loss_does_not_leave_a_members_dns_in_resolv_conf() -> None:
    with two_members() as (L, victim, _attacker):
        h = victim.helper
        original = h.resolv_conf.read_text()
        victim.ok("up", name=T, config=L.config(dns=SERVER_TUNNEL[0]), kill_switch=False)
        assert SERVER_TUNNEL[0] in h.resolv_conf.read_text()
        power_loss(h, T)
        h.start()
        assert h.resolv_conf.read_text() == original
        assert "power loss" in h.log()
        # a resolv.conf rewritten since (by a network manager at boot) is left alone
        victim.ok("up", name=T, config=L.config(dns=SERVER_TUNNEL[0]), kill_switch=False)
        power_loss(h, T)
        h.resolv_conf.write_text("nameserver 192.0.2.53\n")
        h.start()
        assert h.resolv_conf.read_text() == "nameserver 192.0.2.53\n"


def power_loss(h, name: str) -> None:  # type: ignore[no-untyped-def]
    """What a reboot leaves: no helper, no engine (nor its link), and /run (the journals) empty."""
    pid = engine_pid(h, name)
    h.kill9()
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10)
    shutil.rmtree(h.state_dir)


FAKE_HELPER = """
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(5)
data = b""
try:
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        data += chunk
        if chunk.endswith(b"\\n"):
            c.sendall(b'{"v":1,"id":1,"ok":true,"result":{}}\\n')
except OSError:
    pass
open(sys.argv[2], "wb").write(data)
"""

CLIENT_UP = """
import sys
from wgdesk.client import HelperClient, HelperError
try:
    HelperClient(sys.argv[1], timeout=5).up("home", sys.stdin.read())
    print("sent")
except HelperError as e:
    print(e.code, e.message)
"""


def test_the_client_sends_private_keys_only_to_a_helper_running_as_root() -> None:
    # $WGDESK_SOCKET (or --socket) pointing at another member's socket handed over the private key
    with two_members() as (L, victim, attacker):
        evil = L.workdir / "evil"
        evil.mkdir()
        os.chown(evil, attacker.uid, attacker.gid)
        sock, seen = evil / "helper.sock", evil / "seen"
        server = subprocess.Popen(
            argv_as(attacker.uid, attacker.gid, FAKE_HELPER, str(sock), str(seen)),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            answer = subprocess.run(
                argv_as(victim.uid, victim.gid, CLIENT_UP, str(sock)),
                input=L.config(), capture_output=True, text=True, timeout=30, check=True,
            ).stdout  # fmt: skip
            server.wait(15)
        finally:
            server.kill()
            server.wait()
        assert answer.startswith("untrusted"), answer
        assert f"served by uid {attacker.uid}, not by root" in answer
        assert L.client_private not in seen.read_text()
        # the control: the real helper (root) is still talked to
        assert victim.ok("status") == {"tunnels": []}


COMPROMISED_ENGINE = """#!/usr/bin/python3 -I
# An engine taken over through the network: it floods its output with one endless line, then
# answers UAPI `get` with a malformed errno (after the bring-up's own `get`, which it answers well).
import os, socket
listener = socket.socket(fileno=int(os.environ["WG_UAPI_FD"]))
out = os.fdopen(1, "wb")
chunk = b"x" * (1 << 20)
for _ in range({megabytes}):
    out.write(chunk)
out.write(b"\\nflood done\\n")
out.flush()
gets = 0
while True:
    c, _ = listener.accept()
    request = b""
    while not request.endswith(b"\\n\\n"):
        data = c.recv(65536)
        if not data:
            break
        request += data
    if request.startswith(b"get=1"):
        gets += 1
        c.sendall(b"listen_port=1\\nerrno=0\\n\\n" if gets == 1 else b"errno=banana\\n\\n")
    else:
        c.sendall(b"errno=0\\n\\n")
    c.close()
"""


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_compromised_engine_can_neither_exhaust_the_helper_nor_break_status_for_others() -> None:
    with lab() as L:
        engine = L.workdir / "compromised-engine"
        engine.write_text(COMPROMISED_ENGINE.format(megabytes=160))
        engine.chmod(0o755)
        with throwaway_account() as (_a, uid_a, group, gid), throwaway_account() as (_b, uid_b, _g, _gb):
            h = L.start_helper(settings=f'group = "{group}"\n', engine=str(engine))
            owner, other = Member(uid_a, gid, h), Member(uid_b, gid, h)  # owner: its engine is taken over
            before = peak_rss_kib(h.pid())
            assert owner.ok("up", name=T, config=L.config(), kill_switch=False)["state"] == "up"
            assert wait_for(
                lambda: any(r["message"] == "flood done" for r in owner.ok("logs")["records"]), 60
            )
            grown = peak_rss_kib(h.pid()) - before
            assert grown < 48 * 1024, f"the helper grew by {grown} KiB reading 160 MiB of engine output"
            # the engine's malformed answer is its own tunnel's problem, reported in its status
            [mine] = owner.ok("status")["tunnels"]
            assert "sent a malformed UAPI reply" in mine["message"]
            assert [t.name for t in h.client().status()] == [T]  # root's view of all tunnels
            assert other.ok("status") == {"tunnels": []}
            owner.ok("down", name=T)
