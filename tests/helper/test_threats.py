"""Privileged-helper threats of TESTING.md §6, against the real helper in a test namespace."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.as_user import argv_as
from tests.helper.lab import ROOT, SERVER_TUNNEL, HelperProcess, engine_pid, lab
from tests.netns import unique_name
from wgdesk.client import HelperClient, HelperError

pytestmark = pytest.mark.root

T = unique_name("wgt")  # tunnel (= interface) names are unique per run: /var/run/wireguard is shared

WGDESK_ENGINE = str(Path(sys.executable).parent / "wgdesk-engine")

AS_USER = """
import json, select, sys, time
from wgdesk.client import HelperClient, HelperPermissionDenied
client = HelperClient(sys.argv[1], timeout=5)
if len(sys.argv) > 2:  # "late": write the request only after the helper has answered and hung up
    assert select.select([client._connect()], [], [], 5)[0]
    time.sleep(0.2)
try:
    print(json.dumps({"ok": [t.to_wire() for t in client.status()]}))
except HelperPermissionDenied as e:
    print(json.dumps({"denied": e.message}))
"""


AS_USER_VERB = """
import json, sys
from wgdesk.client import HelperClient, HelperError
verb, wait, args = sys.argv[2], float(sys.argv[3]), json.loads(sys.stdin.read())
try:
    print(json.dumps({"ok": HelperClient(sys.argv[1], timeout=wait).request(verb, **args)}))
except HelperError as e:
    print(json.dumps({e.code: e.message}))
"""


def request_as(
    sock: Path, uid: int, gid: int, verb: str, *, wait: float = 30.0, **args: object
) -> dict[str, object]:
    """One request as ``uid`` (primary group ``gid``), answered within ``wait`` seconds; {"ok": result}
    or {error code: message}."""
    proc = subprocess.run(
        argv_as(uid, gid, AS_USER_VERB, str(sock), verb, str(wait)),
        input=json.dumps(args), capture_output=True, text=True, timeout=wait + 30, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


@contextmanager
def throwaway_account() -> Iterator[tuple[str, int, str, int]]:
    """A system user and a system group created for this test and removed afterwards."""
    user, group = unique_name("wgdu"), unique_name("wgdg")
    subprocess.run(["groupadd", "--system", group], check=True)
    try:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user], check=True
        )
        try:
            import grp
            import pwd

            yield user, pwd.getpwnam(user).pw_uid, group, grp.getgrnam(group).gr_gid
        finally:
            subprocess.run(["userdel", user], check=False)
    finally:
        subprocess.run(["groupdel", group], check=False)


def status_as(sock: Path, uid: int, gid: int, groups: list[int], late: bool = False) -> dict[str, object]:
    argv = argv_as(uid, gid, AS_USER, str(sock), *(["late"] if late else []), groups=groups)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    result: dict[str, object] = json.loads(out)
    return result


def test_second_unprivileged_uid_is_refused_and_group_members_are_allowed() -> None:
    with throwaway_account() as (_user, uid, group, gid), lab() as L:
        h = L.start_helper(settings=f'group = "{group}"\n')
        st = h.socket.stat()
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0 and st.st_gid == gid
        assert stat.S_IMODE(h.socket.parent.stat().st_mode) == 0o755
        # not in the group: the socket's permissions already refuse it
        nogroup = 65534
        assert "denied" in status_as(h.socket, uid, nogroup, [])
        # even with the socket opened to everyone, SO_PEERCRED refuses it before any parsing
        os.chmod(h.socket, 0o666)
        r = status_as(h.socket, uid, nogroup, [])
        assert "only root and members of group" in str(r["denied"])
        # ... and the refused caller learns why even when the helper hung up before the request went out
        r = status_as(h.socket, uid, nogroup, [], late=True)
        assert "only root and members of group" in str(r["denied"])
        assert f"refused a connection from uid {uid}" in h.log()
        # positive control: the same uid with the group as a supplementary group is served
        assert status_as(h.socket, uid, nogroup, [gid]) == {"ok": []}
        assert status_as(h.socket, uid, gid, []) == {"ok": []}
        # one member cannot take every connection: the 9th of the same uid is turned away, root is not
        held = [hold_as(h.socket, uid, gid) for _ in range(8)]
        try:
            assert busy_as(h.socket, uid, gid)
            assert h.client().status() == []
        finally:
            for p in held:
                p.kill()
                p.wait()


def test_each_verb_is_authorised_watchers_only_watch_and_tunnels_belong_to_who_started_them() -> None:
    with (
        throwaway_account() as (_a, uid_a, group, gid),
        throwaway_account() as (_b, uid_b, _gb, _gidb),
        throwaway_account() as (_w, uid_w, watchers, gid_w),
        lab() as L,
    ):
        h = L.start_helper(settings=f'group = "{group}"\nmonitor_group = "{watchers}"\n')
        # the watchers must reach the socket: it is open to everyone, SO_PEERCRED decides
        assert stat.S_IMODE(h.socket.stat().st_mode) == 0o666
        assert "only root and members of group" in str(status_as(h.socket, uid_b, 65534, [])["denied"])
        config = L.config()
        # a watcher sees status and logs, and cannot bring a tunnel up
        assert request_as(h.socket, uid_w, gid_w, "status") == {"ok": {"tunnels": []}}
        assert "ok" in request_as(h.socket, uid_w, gid_w, "logs")
        r = request_as(h.socket, uid_w, gid_w, "up", name=T, config=config)
        assert f"members of group '{watchers}' may only watch tunnels" in str(r["denied"])
        assert h.client().status() == []
        # member A brings it up; member B (same group) neither sees it nor may change or stop it
        assert request_as(h.socket, uid_a, gid, "up", name=T, config=config)["ok"]["state"] == "up"  # type: ignore[index]
        assert L.ping(SERVER_TUNNEL[0], 3)
        assert request_as(h.socket, uid_b, gid, "status") == {"ok": {"tunnels": []}}
        for verb, args in (("down", {"name": T}), ("update", {"name": T, "config": config})):
            r = request_as(h.socket, uid_b, gid, verb, **args)
            assert f"tunnel {T} was brought up by another user (uid {uid_a})" in str(r["denied"]), r
        assert request_as(h.socket, uid_w, gid_w, "down", name=T).keys() == {"denied"}
        assert [t.name for t in h.client().status()] == [T]  # still up
        assert f"refused down from uid {uid_b}" in h.log()
        # positive controls: the owner may change and stop it; root may stop anyone's
        assert "ok" in request_as(h.socket, uid_a, gid, "update", name=T, config=config)
        assert "ok" in request_as(h.socket, uid_a, gid, "down", name=T)
        assert request_as(h.socket, uid_a, gid, "up", name=T, config=config).keys() == {"ok"}
        h.client().down(T)
        assert h.client().status() == []
        # once down, the name is free again: B may bring it up
        assert request_as(h.socket, uid_b, gid, "up", name=T, config=config).keys() == {"ok"}
        assert "ok" in request_as(h.socket, uid_b, gid, "down", name=T)


HOLD = """
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b'{"v":1,"id":1,"verb":"version"}\\n')
s.recv(4096)
print("held", flush=True)
time.sleep(60)
"""


def hold_as(sock: Path, uid: int, gid: int) -> subprocess.Popen[str]:
    """A process of ``uid`` that keeps one authorised connection open."""
    p = subprocess.Popen(
        argv_as(uid, gid, HOLD, str(sock)),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def busy_as(sock: Path, uid: int, gid: int) -> bool:
    code = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print(s.recv(4096))"
    out = subprocess.run(
        argv_as(uid, gid, code, str(sock)),
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    return '"busy"' in out


def raw(h: HelperProcess) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(str(h.socket))
    return s


def read_line(s: socket.socket) -> dict[str, object]:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    reply: dict[str, object] = json.loads(buf)
    return reply


def error_code(reply: dict[str, object]) -> str:
    assert reply["ok"] is False, reply
    return str(reply["error"]["code"])  # type: ignore[index]


GARBAGE = [
    (b"\xff\xfe garbage\n", "malformed"),
    (b"[1, 2, 3]\n", "malformed"),
    (b'{"v": 1, "verb": "status"}\n', "malformed"),
    (b'{"v": 2, "id": 1, "verb": "status"}\n', "unsupported_version"),
    (b'{"v": 1, "id": 1, "verb": "shell", "args": {}}\n', "unknown_verb"),
    (b'{"v": 1, "id": 1, "verb": "down", "args": {"name": "wg0\\n"}}\n', "invalid"),
    (b'{"v": 1, "id": 1, "verb": "down", "args": {"name": "../../etc"}}\n', "invalid"),
    (b'{"v": 1, "id": 1, "verb": "down", "args": {"name": "wg\\u0000"}}\n', "invalid"),
    (b'{"v": 1, "id": 1, "verb": "down", "args": {"name": "x", "path": "/etc/shadow"}}\n', "invalid"),
    (
        b'{"v": 1, "id": 1, "verb": "up", "args": {"name": "x", "config": "[Interface]\\u001b[2J"}}\n',
        "invalid",
    ),
    (b'{"v": 1, "id": 1, "verb": "up", "args": {"name": "x", "config": "a\\u0000b"}}\n', "invalid"),
    (
        b'{"v": 1, "id": 1, "verb": "up", "args": {"name": "x", "config": "", "kill_switch": "yes"}}\n',
        "invalid",
    ),
    (b'{"v": 1, "id": 1, "verb": "logs", "args": {"since": "yesterday"}}\n', "invalid"),
    (b"[" * 100000 + b"\n", "malformed"),
]


def test_garbage_and_control_characters_are_refused_and_the_helper_carries_on() -> None:
    with lab() as L:
        h = L.start_helper()
        for line, code in GARBAGE:
            with raw(h) as s:
                s.sendall(line)
                assert error_code(read_line(s)) == code, line[:80]
            assert h.client().status() == []


def test_oversized_slow_and_flooding_clients_do_not_wedge_the_helper() -> None:
    with lab() as L:
        h = L.start_helper()
        # oversized: refused once the bound is passed, without waiting for a newline
        big = raw(h)
        with pytest.raises(OSError):
            for _ in range(64):
                big.sendall(b"x" * 65536)
        # (the helper answered and closed; the reply may or may not still be readable)
        # slow senders: partial requests that never end
        slow = []
        for _ in range(20):
            s = raw(h)
            s.sendall(b'{"v": 1, "id": 1, "verb": ')
            slow.append(s)
        # a reader that never reads: thousands of pipelined requests
        flood = raw(h)
        stop = threading.Event()

        def pump() -> None:
            try:
                while not stop.is_set():
                    flood.sendall(b'{"v":1,"id":1,"verb":"version"}\n' * 200)
            except OSError:
                pass

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        t0 = time.monotonic()
        assert h.client().version()["protocol"] == 1
        assert time.monotonic() - t0 < 2.0
        # the slow senders are cut off after the request deadline, with a reason
        time.sleep(11)
        for s in slow:
            assert error_code(read_line(s)) == "timeout"
            s.close()
        t.join(10)  # the flooding reader was dropped, which ended its sendall
        assert not t.is_alive()
        stop.set()
        flood.close()
        big.close()
        assert h.client().status() == []


def test_a_second_helper_cannot_take_over_the_socket_or_state() -> None:
    with lab() as L:
        h = L.start_helper()
        other = L.client.exec(
            sys.executable,
            "-m",
            "wgdesk.helper.main",
            "--socket",
            str(h.socket),
            "--state-dir",
            str(L.workdir / "state2"),
            "--config",
            str(h.config),
            check=False,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/sbin:/usr/bin"},
        )
        assert other.returncode == 1 and "another wgdesk-helper answers" in other.stderr
        other = L.client.exec(
            sys.executable,
            "-m",
            "wgdesk.helper.main",
            "--socket",
            str(L.workdir / "b.sock"),
            "--state-dir",
            str(h.state_dir),
            "--config",
            str(h.config),
            check=False,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/sbin:/usr/bin"},
        )
        assert other.returncode == 1 and "another helper is running" in other.stderr
        # a socket directory someone else owns (could be swapped under us) is refused
        foreign = L.workdir / "foreign"
        foreign.mkdir()
        os.chown(foreign, 65534, 65534)
        other = L.client.exec(
            sys.executable,
            "-m",
            "wgdesk.helper.main",
            "--socket",
            str(foreign / "helper.sock"),
            "--state-dir",
            str(L.workdir / "state3"),
            "--config",
            str(h.config),
            check=False,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/sbin:/usr/bin"},
        )
        assert other.returncode == 1 and "must be owned by root" in other.stderr
        assert h.client().version()["protocol"] == 1


def test_the_helper_refuses_to_run_without_root(tmp_path: Path) -> None:
    r = subprocess.run(
        argv_as(
            65534,
            65534,
            "import sys\nfrom wgdesk.helper.main import main\nsys.exit(main(sys.argv[1:]))",
            "--socket",
            str(tmp_path / "s.sock"),
            "--state-dir",
            str(tmp_path / "state"),
            # the OS backend's concept modules are imported on first use
            preload=(
                "wgdesk.platforms.linux.identity",
                "wgdesk.platforms.linux.service",
                "wgdesk.platforms.unix.control",
            ),
        ),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 1 and "must run as root" in r.stderr
    assert not (tmp_path / "s.sock").exists()


@pytest.mark.parametrize("allow", [False, True])
def test_hooks_run_only_when_the_administrator_allows_them(allow: bool, tmp_path: Path) -> None:
    marker = tmp_path / "hook-ran"
    hooks = "\n".join(f"{k} = touch {marker}-{k}-%i" for k in ("PreUp", "PostUp", "PreDown", "PostDown"))
    with lab() as L:
        h = L.start_helper(settings=f"allow_scripts = {'true' if allow else 'false'}\n")
        c = h.client()
        r = c.up(T, L.config(extra_iface=hooks), kill_switch=False)
        c.down(T)
        ran = sorted(p.name for p in tmp_path.iterdir())
        if allow:  # the control: these hooks do run when allowed
            assert ran == [f"hook-ran-{k}-{T}" for k in ("PostDown", "PostUp", "PreDown", "PreUp")]
        else:
            assert ran == []
            assert any("hooks not run" in w for w in r["warnings"])


def engine_identity(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def test_wgdesk_engine_runs_without_root_or_capabilities_and_no_key_is_ever_logged_or_returned() -> None:
    with lab() as L:
        psk = subprocess.run(["wg", "genpsk"], capture_output=True, text=True, check=True).stdout.strip()
        psk_file = L.workdir / "psk"
        psk_file.write_text(psk + "\n")
        L.server.exec("wg", "set", L.server_wg, "peer", L.client_public, "preshared-key", str(psk_file))
        h = L.start_helper(engine=WGDESK_ENGINE)
        c = h.client()
        transcript = [
            c.up(
                T,
                L.config(allowed="0.0.0.0/0, ::/0", dns="10.97.0.1", extra_peer=f"PresharedKey = {psk}"),
            )
        ]
        assert L.ping(SERVER_TUNNEL[0], 3)  # the PSK is in use: the handshake needs it
        ident = engine_identity(engine_pid(h, T))
        assert all(int(u) != 0 for u in ident["Uid"].split())
        assert all(int(g) != 0 for g in ident["Gid"].split())
        assert ident["Groups"] == ""
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(ident[cap], 16) == 0, (cap, ident[cap])
        assert ident["NoNewPrivs"] == "1"
        transcript += [[t.to_wire() for t in c.status()], c.logs(None), c.diagnose(T).to_wire(), c.down(T)]
        text = json.dumps(transcript) + h.log()
        import base64

        for secret in (L.client_private, psk):
            assert secret not in text
            assert base64.b64decode(secret).hex() not in text
        assert L.server_public in json.dumps(transcript)  # the control: the transcript has real content


def test_wireguard_go_engine_logs_no_secret_either() -> None:
    with lab() as L:
        h = L.start_helper()
        c = h.client()
        transcript = [
            c.up(T, L.config()),
            [t.to_wire() for t in c.status()],
            c.logs(T),
            c.diagnose(T).to_wire(),
            c.down(T),
        ]
        text = json.dumps(transcript) + h.log()
        import base64

        assert L.client_private not in text
        assert base64.b64decode(L.client_private).hex() not in text
        assert "Updating private key" in h.log()  # the engine's log is really in there


def test_client_reports_a_missing_helper_with_advice(tmp_path: Path) -> None:
    with pytest.raises(HelperError) as e:
        HelperClient(tmp_path / "nope.sock").status()
    assert "not running" in e.value.message and "wgdesk-helper" in e.value.message
