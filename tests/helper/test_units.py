"""Settings, journal, nft script builders and the packaged resources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.netns import namespaces
from wgdesk.helper.journal import Journal
from wgdesk.helper.settings import PRIVATE_LAN_RANGES, Settings, SettingsError, load
from wgdesk.platforms.linux import firewall

ROOT = Path(__file__).resolve().parents[2]


def test_settings_defaults_and_the_shipped_example_agree(tmp_path: Path) -> None:
    assert load(tmp_path / "missing.toml") == Settings()
    assert load(ROOT / "resources" / "helper.toml") == Settings()
    assert Settings().allow_scripts is False


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("allow_scripts = 1\n", "allow_scripts must be a bool"),
        ('allow_scripts = "yes"\n', "allow_scripts must be a bool"),
        ('kill_switch = "sometimes"\n', "kill_switch must be one of"),
        ('plugin = "/tmp/x.so"\n', "unknown setting 'plugin'"),
        ("allow_scripts = \n", "helper.toml"),
        ('split_tunnel_include_cgroup = "../x"\n', "split_tunnel_include_cgroup must be 1 to 64 letters"),
        (
            'split_tunnel_include_cgroup = "wgdesk-bypass"\n',
            "split_tunnel_include_cgroup must differ from split_tunnel_cgroup",
        ),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    p = tmp_path / "helper.toml"
    p.write_text(text)
    with pytest.raises(SettingsError) as e:
        load(p)
    assert fragment in str(e.value)


def test_engine_kind_follows_the_executable() -> None:
    assert not Settings(engine_path="/usr/bin/wireguard-go").engine_takes_udp_fds()
    assert Settings(engine_path="/usr/bin/wireguard-go").engine_account() == "root"
    s = Settings(engine_path="/opt/wgdesk/wgdesk-engine", engine_user="nobody")
    assert s.engine_takes_udp_fds() and s.engine_account() == "nobody"


def test_journal_survives_a_torn_last_line_and_undoes_newest_first(tmp_path: Path) -> None:
    j = Journal.create(tmp_path, "wg0", {"name": "wg0"})
    j.record("link", ifname="wg0")
    j.record("addr", ifname="wg0", address="10.0.0.2/32")
    with open(j.path, "a") as f:
        f.write('{"kind": "route", "dst"')  # crash in the middle of a write
    loaded = Journal.load(j.path)
    assert loaded.header["name"] == "wg0"
    assert [e["kind"] for e in loaded.newest_first()] == ["addr", "link"]
    assert oct(os.stat(j.path).st_mode & 0o777) == "0o600"
    loaded.keep_only({"link"})
    assert [e["kind"] for e in Journal.load(j.path).entries] == ["link"]


def test_lan_ranges_are_fixed_private_ranges_only() -> None:
    import ipaddress

    for net in PRIVATE_LAN_RANGES:
        n = ipaddress.ip_network(net)
        assert n.is_private and not n.is_global


names = st.from_regex(r"[a-zA-Z0-9_=+.-]{1,15}", fullmatch=True)


@pytest.mark.root
@settings(max_examples=25, deadline=None)
@given(
    st.lists(names, min_size=1, max_size=3, unique=True),
    st.integers(1, 2**31 - 1),
    st.integers(1, 65535),
    st.booleans(),
)
def test_generated_nft_scripts_are_accepted_by_nft_and_names_stay_quoted(
    ifnames: list[str], mark: int, port: int, lan: bool
) -> None:
    members = [firewall.KillSwitchMember(n, n, mark, port) for n in ifnames]
    ks = firewall.kill_switch_script(members, PRIVATE_LAN_RANGES if lan else ())
    ft = firewall.full_tunnel_script(ifnames[0], mark, ["10.0.0.2/32", "fd00::2/128"], block_ipv6=True)
    for n in ifnames:
        assert f'"{n}"' in ks
    nft = shutil.which("nft") or "/usr/sbin/nft"
    with namespaces("hnf") as (ns,):
        for script in (ks, ft, ks):  # applying the kill switch twice replaces it
            r = subprocess.run(
                ns.argv(nft, "-f", "-"), input=script, capture_output=True, text=True, check=False
            )
            assert r.returncode == 0, (script, r.stderr)
        listed = ns.exec(nft, "list", "tables").stdout.split("\n")
        assert sorted(x for x in listed if x) == sorted(
            ["table inet wgdesk-killswitch", f"table inet {firewall.full_tunnel_table(ifnames[0])}"]
        )


def _chain(script: str, name: str) -> list[str]:
    lines = [line.strip() for line in script.splitlines()]
    start = lines.index(f"chain {name} {{")
    return lines[start + 1 : lines.index("}", start)]


def test_kill_switch_forward_chain_sends_public_destinations_only_through_a_tunnel() -> None:
    members = [firewall.KillSwitchMember("a", "wg0", 51820, 1), firewall.KillSwitchMember("b", "wg1", 7, 2)]
    chain = _chain(firewall.kill_switch_script(members), "forward")
    assert chain[0] == "type filter hook forward priority filter - 10; policy accept;"
    assert chain[1] == 'oifname { "wg0", "wg1" } accept'
    assert chain[2] == "ct direction reply accept"
    assert chain[-1] == "reject with icmpx type admin-prohibited"  # nothing after the reject
    assert len(chain) == 6
    # the same chain whatever allow_lan says, and with excluded apps' marks
    assert _chain(firewall.kill_switch_script(members, PRIVATE_LAN_RANGES, [9]), "forward") == chain


def _forward_allows(address: str) -> bool:
    import ipaddress

    chain = _chain(firewall.kill_switch_script([firewall.KillSwitchMember("a", "wg0", 1, 1)]), "forward")
    addr = ipaddress.ip_address(address)
    for rule in chain:
        fam, _, rest = rule.partition(" daddr { ")
        if fam in ("ip", "ip6") and rest.endswith(" } accept"):
            nets = [ipaddress.ip_network(n) for n in rest.removesuffix(" } accept").split(", ")]
            if any(addr.version == n.version and addr in n for n in nets):
                return True
    return False


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.1.2.3", True),
        ("172.17.0.2", True),  # docker's default bridge
        ("172.31.255.255", True),
        ("192.168.122.10", True),  # libvirt's default NAT network
        ("169.254.1.1", True),
        ("100.64.0.1", True),
        ("100.127.255.255", True),
        ("224.0.0.251", True),
        ("239.255.255.250", True),
        ("255.255.255.255", True),  # a bridged guest's DHCP request (br_netfilter)
        ("fd00::1", True),
        ("fe80::1", True),
        ("ff02::fb", True),
        ("8.8.8.8", False),
        ("198.51.100.7", False),
        ("172.32.0.1", False),
        ("100.128.0.1", False),
        ("192.169.0.1", False),
        ("240.0.0.1", False),
        ("2001:db8::1", False),
        ("2606:4700::1111", False),
        ("fe00::1", False),
    ],
)
def test_kill_switch_forwards_to_private_and_special_ranges_only(address: str, allowed: bool) -> None:
    assert _forward_allows(address) is allowed


def test_forward_ranges_extend_the_one_private_list() -> None:
    assert firewall.FORWARD_PRIVATE_RANGES[: len(PRIVATE_LAN_RANGES)] == PRIVATE_LAN_RANGES
    assert len(set(firewall.FORWARD_PRIVATE_RANGES)) == len(firewall.FORWARD_PRIVATE_RANGES)


@pytest.mark.root
def test_nft_accepts_the_kill_switch_and_hooks_its_forward_chain() -> None:
    members = [firewall.KillSwitchMember("a", "wg0", 51820, 51821)]
    script = firewall.kill_switch_script(members, PRIVATE_LAN_RANGES, [7])
    nft = shutil.which("nft") or "/usr/sbin/nft"
    with namespaces("hnf") as (ns,):
        for argv in ([nft, "-c", "-f", "-"], [nft, "-f", "-"]):
            r = subprocess.run(ns.argv(*argv), input=script, capture_output=True, text=True, check=False)
            assert r.returncode == 0, (script, r.stderr)
        listed = ns.exec(nft, "-j", "list", "chain", "inet", firewall.KILL_SWITCH_TABLE, "forward").stdout
        [chain] = [x["chain"] for x in json.loads(listed)["nftables"] if "chain" in x]
        hooked = (chain["type"], chain["hook"], chain["prio"], chain["policy"])
        assert hooked == ("filter", "forward", -10, "accept")
        # and nft really checks: a chain with a hook it does not know is refused
        bad = script.replace("hook forward", "hook sideways")
        r = subprocess.run(ns.argv(nft, "-c", "-f", "-"), input=bad, capture_output=True, text=True)
        assert r.returncode != 0


@pytest.mark.root
def test_kill_switch_with_no_members_is_valid_and_blocks_all_but_the_basics() -> None:
    """Lockdown with no tunnel up: no empty interface set (nft refuses ``oifname { }``)."""
    script = firewall.kill_switch_script([], PRIVATE_LAN_RANGES)
    assert "{ }" not in script and "oifname {" not in script and "iifname {" not in script
    assert _chain(script, "output")[:2] == [
        "type filter hook output priority filter - 10; policy drop;",
        'oifname "lo" accept',
    ]
    assert _chain(script, "forward")[1] == "ct direction reply accept"
    nft = shutil.which("nft") or "/usr/sbin/nft"
    with namespaces("hnf") as (ns,):
        for argv in ([nft, "-c", "-f", "-"], [nft, "-f", "-"]):
            for s in (script, firewall.kill_switch_script([])):
                r = subprocess.run(ns.argv(*argv), input=s, capture_output=True, text=True, check=False)
                assert r.returncode == 0, (s, r.stderr)
        # and nft does refuse the empty set this avoids
        bad = script.replace('oifname "lo" accept', 'oifname "lo" accept\n    oifname { } accept', 1)
        r = subprocess.run(ns.argv(nft, "-c", "-f", "-"), input=bad, capture_output=True, text=True)
        assert r.returncode != 0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('lockdown = "sometimes"\n', "lockdown must be one of user, always, never"),
        ("lockdown = true\n", "lockdown must be a str"),
        ('lockdown_file = "lockdown.json"\n', "lockdown_file must be the absolute path of a file"),
        ('lockdown_file = "/var/lib/wgdesk/"\n', "lockdown_file must be the absolute path of a file"),
    ],
)
def test_bad_lockdown_settings_name_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    p = tmp_path / "helper.toml"
    p.write_text(text)
    with pytest.raises(SettingsError) as e:
        load(p)
    assert fragment in str(e.value)
    p.write_text('lockdown = "always"\nlockdown_file = "/srv/x.json"\n')
    assert (load(p).lockdown, load(p).lockdown_file) == ("always", "/srv/x.json")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("lockdown_pause_max = -1\n", "lockdown_pause_max must be a whole number of seconds from 0 to 86400"),
        (
            "lockdown_pause_max = 86401\n",
            "lockdown_pause_max must be a whole number of seconds from 0 to 86400",
        ),
        ("lockdown_pause_max = 60.0\n", "lockdown_pause_max must be a int"),
        ("lockdown_pause_max = true\n", "lockdown_pause_max must be a int"),
    ],
)
def test_bad_lockdown_pause_max_names_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    p = tmp_path / "helper.toml"
    p.write_text(text)
    with pytest.raises(SettingsError) as e:
        load(p)
    assert fragment in str(e.value)


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("", 300),  # not set: 300 under the user's policy
        ('lockdown = "never"\n', 300),
        ('lockdown = "always"\n', 0),  # a forced lockdown is not paused unless the administrator says so
        ('lockdown = "always"\nlockdown_pause_max = 120\n', 120),
        ("lockdown_pause_max = 0\n", 0),
        ("lockdown_pause_max = 86400\n", 86400),
    ],
)
def test_the_longest_lockdown_pause_depends_on_the_policy_unless_set(
    tmp_path: Path, text: str, limit: int
) -> None:
    p = tmp_path / "helper.toml"
    p.write_text(text)
    assert load(p).lockdown_pause_limit() == limit


def test_systemd_unit_starts_before_the_network_and_keeps_state() -> None:
    """Lockdown at boot: ordered like a firewall service before network-pre.target (which network
    managers start after), ready only once the block is in place, state outside /run."""
    import configparser

    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "resources" / "wgdesk-helper.service", encoding="utf-8")
    u, s = unit["Unit"], unit["Service"]
    assert "network-pre.target" in u["Before"].split() and "network-pre.target" in u["Wants"].split()
    assert "network-pre.target" not in u.get("After", "").split()
    assert u["DefaultDependencies"] == "no"
    assert "shutdown.target" in u["Conflicts"].split() and "shutdown.target" in u["Before"].split()
    assert s["Type"] == "notify"
    assert s["StateDirectory"] == "wgdesk"
    assert Settings().lockdown_file.startswith("/var/lib/wgdesk/")


def test_systemd_unit_is_valid_and_hardened(tmp_path: Path) -> None:
    text = (ROOT / "resources" / "wgdesk-helper.service").read_text()
    for needle in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=CAP_NET_ADMIN",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    ):
        assert needle in text
    unit = tmp_path / "wgdesk-helper.service"
    unit.write_text(text.replace("ExecStart=/opt/wgdesk/wgdesk-helper", "ExecStart=/bin/true"))
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed to check the unit"
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_file_replace_and_restore_give_back_the_same_bytes_mode_and_symlink(tmp_path: Path) -> None:
    from wgdesk.platforms.linux import dns as linux

    regular = tmp_path / "resolv.conf"
    regular.write_bytes(b"nameserver 192.0.2.1\n# no newline at end")
    regular.chmod(0o640)
    snap = linux.file_snapshot(str(regular))
    linux.file_replace(str(regular), b"nameserver 10.0.0.1\n")
    assert regular.read_bytes() == b"nameserver 10.0.0.1\n"
    linux.file_restore(snap)
    assert regular.read_bytes() == b"nameserver 192.0.2.1\n# no newline at end"
    assert oct(regular.stat().st_mode & 0o777) == "0o640"

    link = tmp_path / "linked.conf"
    link.symlink_to("../run/systemd/resolve/stub-resolv.conf")
    snap = linux.file_snapshot(str(link))
    linux.file_replace(str(link), b"nameserver 10.0.0.1\n")
    assert not link.is_symlink() and link.read_bytes() == b"nameserver 10.0.0.1\n"
    linux.file_restore(snap)
    assert link.is_symlink() and os.readlink(link) == "../run/systemd/resolve/stub-resolv.conf"

    missing = tmp_path / "absent.conf"
    snap = linux.file_snapshot(str(missing))
    linux.file_replace(str(missing), b"x\n")
    linux.file_restore(snap)
    assert not missing.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linked.conf", "resolv.conf"]  # no temp files left
    assert linux.resolv_conf_text(["10.0.0.1", "fd00::1"], ["corp.test"]).splitlines()[1:] == [
        "nameserver 10.0.0.1",
        "nameserver fd00::1",
        "search corp.test",
    ]


def fake_program(tmp_path: Path, name: str) -> tuple[str, Path]:
    """An executable that appends its argv and stdin to a log (systemd-resolved and resolvconf are not
    installed on the test machines; the exact commands are what we can check)."""
    log = tmp_path / f"{name}.log"
    prog = tmp_path / name
    prog.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nif [ "$1" = "-a" ]; then cat >> {log}; fi\n')
    prog.chmod(0o755)
    return str(prog), log


def test_resolved_and_resolvconf_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wgdesk.platforms.linux import dns as linux

    resolvectl, rlog = fake_program(tmp_path, "resolvectl")
    resolvconf, clog = fake_program(tmp_path, "resolvconf")
    monkeypatch.setattr(linux, "RESOLVECTL", resolvectl)
    monkeypatch.setattr(linux, "RESOLVCONF", resolvconf)
    linux.resolved_set("wg0", ["10.0.0.1", "fd00::1"], ["corp.test"])
    linux.resolved_revert("wg0")
    assert rlog.read_text().splitlines() == [  # `--`: nothing after it is read as an option
        "-- dns wg0 10.0.0.1 fd00::1",
        "-- domain wg0 ~. corp.test",
        "-- default-route wg0 true",
        "-- revert wg0",
    ]
    linux.resolvconf_set("wg0", ["10.0.0.1"], [])
    linux.resolvconf_revert("wg0")
    lines = clog.read_text().splitlines()
    assert lines[0] == "-a tun.wg0 -m 0 -x"
    assert lines[2:] == ["nameserver 10.0.0.1", "-d tun.wg0 -f"]
    assert linux.backend_for("file") == "file"


def test_an_engine_the_helper_cannot_run_is_named_with_what_to_do(tmp_path: Path) -> None:
    from wgdesk.helper.engine_process import EngineError, start_engine
    from wgdesk.helper.logbook import LogBook

    def start(executable: str) -> str:
        with pytest.raises(EngineError) as e:
            start_engine(executable, "wgx", "nobody", -1, -1, None, LogBook(), "x", lambda _: None)
        return str(e.value)

    assert start(str(tmp_path / "missing")) == (
        f"engine {tmp_path / 'missing'} does not exist (set engine_path in helper.toml)"
    )
    plain = tmp_path / "wgdesk-engine"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    message = start(str(plain))
    assert message.startswith(f"engine {plain} cannot be run by root (not an executable file, or on a file")
    assert "set engine_path in helper.toml" in message


def test_a_replacement_journal_is_never_another_tunnels_journal(tmp_path: Path) -> None:
    # NAME.new.journal used to be both "NAME being brought up again" and tunnel NAME.new's journal
    other = Journal.create(tmp_path, "x.new", {"ifname": "x.new"})
    other.record("addr", ifname="x.new", address="10.0.0.2/32")
    replacement = Journal.create(tmp_path, "x", {"ifname": "x"}, replacing=True)
    assert replacement.path.name == "x~new.journal" and replacement.replacing and not other.replacing
    assert Journal.load(other.path).entries == other.entries  # untouched
    old = Journal.create(tmp_path, "x", {"ifname": "x"})
    replacement.take_place_of(old)
    assert replacement.path.name == "x.journal" and not replacement.replacing
    assert sorted(p.name for p in tmp_path.glob("*.journal")) == ["x.journal", "x.new.journal"]
    # a wgdesk 0.1 replacement journal (x.new.journal with name x in its header) is recognised too
    legacy = Journal(tmp_path / "y.new.journal", {"journal": 1, "name": "y"})
    assert legacy.replacing


def test_journal_forgets_routes_a_live_update_removed_in_one_rewrite(tmp_path: Path) -> None:
    j = Journal.create(tmp_path, "t", {"ifname": "t"})
    j.record("routes", ifname="t", table="main", dsts=["10.0.0.0/24", "10.1.0.0/24"])
    j.record("route", ifname="t", table="main", dst="10.2.0.0/24")  # as wgdesk 0.1 wrote them
    j.record("routes", ifname="t", table="51820", dsts=["10.0.0.0/24"])
    j.forget_routes("t", "main", {"10.0.0.0/24", "10.2.0.0/24"})
    assert Journal.load(j.path).entries == [
        {"kind": "routes", "ifname": "t", "table": "main", "dsts": ["10.1.0.0/24"]},
        {"kind": "routes", "ifname": "t", "table": "51820", "dsts": ["10.0.0.0/24"]},
    ]


def test_each_owner_has_a_log_ring_of_their_own() -> None:
    from wgdesk.helper.logbook import LogBook

    book = LogBook(size=3)
    book.own("a", 1000)
    book.own("b", 1001)
    book.info("a", "a's first")
    for i in range(10):  # b floods
        book.info("b", f"b {i}")
    book.info(None, "helper-wide")
    assert [r["message"] for r in book.records(reader=1000)] == ["a's first"]
    assert [r["message"] for r in book.records(reader=1001)] == ["b 7", "b 8", "b 9"]
    assert [r["message"] for r in book.records()][-1] == "helper-wide"  # root and admins read all
    book.disown("a")
    book.info("a", "later")  # a later tunnel of the name does not write into the old owner's ring
    assert [r["message"] for r in book.records(reader=1000)] == ["a's first"]


def test_the_refusal_throttle_lets_a_few_through_then_says_how_many_it_held_back() -> None:
    from wgdesk.helper.logbook import Throttle

    now = [0.0]
    t = Throttle("refusals", burst=2, total=3, per=60, clock=lambda: now[0])
    assert [t.check("u1") for _ in range(2)] == [(True, None), (True, None)]
    assert t.check("u1") == (False, "further refusals not logged for up to 60 s")
    assert t.check("u2") == (True, None)
    assert t.check("u3") == (False, None)  # the total is reached
    now[0] = 61.0
    assert t.check("u1") == (True, "2 refusals not logged in the last 60 s")


def test_engine_output_is_read_in_bounded_lines() -> None:
    import io

    from wgdesk.helper.engine_process import bounded_lines

    stream = io.BufferedReader(io.BytesIO(b"short\n" + b"x" * 100_000 + b"\nnext\nlast"))  # type: ignore[arg-type]
    lines = list(bounded_lines(stream, limit=4096))
    assert lines == ["short", "x" * 2000, "next", "last"]


def test_a_malformed_uapi_errno_is_an_engine_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket as socketlib
    import threading

    from wgdesk.helper import engine_process
    from wgdesk.platforms.unix import uapi

    monkeypatch.setattr(uapi, "SOCKET_DIRECTORY", tmp_path)
    listener = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    listener.bind(str(tmp_path / "wgx.sock"))
    listener.listen(1)

    def answer() -> None:
        c, _ = listener.accept()
        c.recv(4096)
        c.sendall(b"errno=banana\n\n")
        c.close()

    threading.Thread(target=answer, daemon=True).start()
    with pytest.raises(engine_process.EngineError, match="malformed UAPI reply status 'errno=banana'"):
        engine_process.uapi_request("wgx", "get=1\n\n", timeout=5)
    listener.close()


def test_resolv_conf_record_restores_only_what_the_helper_wrote(tmp_path: Path) -> None:
    from wgdesk.helper.logbook import HelperNotes, LogBook
    from wgdesk.platforms.linux import dns as linux
    from wgdesk.platforms.linux.dns import ResolvRecord

    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.1\n")
    record = ResolvRecord(tmp_path / "lib", HelperNotes(LogBook()))
    for changed_since in (False, True):
        snapshot = linux.file_snapshot(str(resolv))
        record.save(snapshot, b"nameserver 10.0.0.53\n")
        assert (record.path.stat().st_mode & 0o777) == 0o600
        linux.file_replace(str(resolv), b"nameserver 10.0.0.53\n")
        if changed_since:
            resolv.write_text("nameserver 198.51.100.53\n")  # a network manager after the reboot
        record.restore_left()
        expected = "nameserver 198.51.100.53\n" if changed_since else "nameserver 192.0.2.1\n"
        assert resolv.read_text() == expected
        assert not record.path.exists()


def test_the_client_knows_who_serves_its_socket() -> None:
    import socket as socketlib

    from wgdesk.platforms.unix.control import peer_uid

    a, b = socketlib.socketpair()
    with a, b:
        assert peer_uid(a) == os.getuid()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 32), st.integers(0, 2**128 - 1), st.integers(0, 128))
def test_batched_route_messages_are_what_pyroute2_encodes(v4: int, p4: int, v6: int, p6: int) -> None:
    from ipaddress import IPv4Network, IPv6Network

    from wgdesk.platforms.linux import netlink

    for kind, flags, table in ((24, 0x605, 254), (25, 0x5, 51820)):
        messages = netlink._Messages(kind, flags, 7, table)
        for seq, dst in enumerate(
            [IPv4Network((v4, p4), strict=False), IPv6Network((v6, p6), strict=False)], start=1
        ):
            assert messages.encode(seq, dst) == netlink._encode(kind, flags, seq, dst, 7, table)


ROUTES_IN_NS = """
import ipaddress, json, subprocess, sys
sys.path.insert(0, sys.argv[1])
from wgdesk.platforms import PlatformError, backend
routing = backend().routing
def show():
    out = []
    for family in ("-4", "-6"):
        argv = ["ip", "-d", family, "route", "show", "table", "all"]
        out.append(subprocess.run(argv, capture_output=True, text=True).stdout)
    return out
def ip(verb, n):
    subprocess.run(["ip", f"-{n.version}", "route", verb, str(n), "dev", "nl0", "table", "51821"], check=True)
nets = [ipaddress.ip_network(n) for n in ("10.1.0.0/16", "10.2.3.4/32", "fd01::/64", "0.0.0.0/1")]
out = {"before": show()}
for n in nets:
    ip("add", n)
out["ip"] = show()
for n in nets:
    ip("del", n)
routing.add_routes("nl0", nets, "51821")
out["netlink"] = show()
try:
    routing.add_routes("nl0", nets[:1], "51821")
except PlatformError as e:
    out["again"] = str(e)
routing.delete_routes("nl0", nets, "51821")
routing.delete_routes("nl0", nets, "51821")  # already gone: fine
out["after"] = show()
print(json.dumps(out))
"""


def test_netlink_batches_make_the_routes_ip_makes() -> None:
    import sys

    with namespaces("hnl") as (ns,):
        ns.exec("ip", "tuntap", "add", "nl0", "mode", "tun")
        ns.exec("ip", "link", "set", "nl0", "up")
        out = json.loads(ns.exec(sys.executable, "-I", "-c", ROUTES_IN_NS, str(ROOT)).stdout)
    assert out["netlink"] == out["ip"] and "10.2.3.4" in out["ip"][0] and "fd01::/64" in out["ip"][1]
    assert out["again"] == "cannot add route 10.1.0.0/16 (File exists) via nl0 (table 51821)"
    assert out["after"] == out["before"]


def test_the_control_server_answers_exactly_the_protocols_verbs_from_its_table() -> None:
    """The verb table is the only way a request reaches the manager: every verb the protocol lets
    through has an entry (``subscribe`` turns the connection into a stream instead), and nothing
    else does — a manager method named like an unlisted verb is unreachable."""
    from wgdesk.helper import protocol
    from wgdesk.helper.server import ControlServer

    server = object.__new__(ControlServer)
    server.manager = object()  # type: ignore[assignment]  # the table only closes over it
    assert set(server._verbs()) == protocol.VERBS - {"subscribe"}


def test_tunnel_states_move_only_as_the_transition_table_says() -> None:
    """Every state is in the table, and a move it does not list is refused (a stopped tunnel
    reported as up would mislead the user)."""
    from wgdesk.helper.state import BORN, TRANSITIONS, IllegalTransition, TunnelState, move

    assert set(TRANSITIONS) == set(TunnelState)
    assert move(TunnelState.STARTING, TunnelState.UP) == "up"  # the wire name
    with pytest.raises(IllegalTransition):
        move(TunnelState.DOWN, TunnelState.UP)
    with pytest.raises(IllegalTransition):
        move(TunnelState.STOPPING, TunnelState.UP)
    # every state is reachable from a state a tunnel is born in
    reached, todo = set(BORN), list(BORN)
    while todo:
        for to in TRANSITIONS[todo.pop()] - reached:
            reached.add(to)
            todo.append(to)
    assert reached == set(TunnelState)


def test_every_helper_record_has_its_undo_and_reads_back_from_its_journal_line() -> None:
    """A record type without an undo would be journalled and then never reversed (a leak after a
    crash); each must also survive the round trip through a journal line."""
    import dataclasses
    import inspect

    from wgdesk.helper import records
    from wgdesk.helper.bringup import STEPS, UNDO
    from wgdesk.undo import UndoRecord

    types = [
        t
        for _, t in inspect.getmembers(records, inspect.isclass)
        if issubclass(t, UndoRecord) and t is not UndoRecord
    ]
    assert len(types) >= 10
    for t in types:
        values = {
            f.name: (1 if "int" in str(f.type) else ("a", "b") if "tuple" in str(f.type) else "x")
            for f in dataclasses.fields(t)
        }
        record = t(**values)
        assert UNDO.knows(record), t
        assert UNDO.load(json.loads(json.dumps({"kind": t.kind, **record.fields()}))) == record
    assert len({s.name for s in STEPS}) == len(STEPS)
