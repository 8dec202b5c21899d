"""Split tunnelling's building blocks: the nft scripts, settings, the mountinfo parser, the verbs' schema."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns import unique_name
from wgdesk.helper import protocol
from wgdesk.helper.settings import SettingsError, load
from wgdesk.platforms.linux import cgroup as split
from wgdesk.platforms.linux import firewall

IFNAME = "wg-home"
MARK = 51820
ADDRESSES = ["10.97.0.2/32", "fd97::2/128"]


def rules(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines()]


def test_bypass_script_marks_the_cgroup_keeps_dns_inside_restores_and_masquerades() -> None:
    script = firewall.bypass_script(IFNAME, "wgdesk-bypass", MARK, ADDRESSES, ["10.97.0.1", "fd97::53"])
    r = rules(script)
    assert r[0] == f"table inet {firewall.bypass_table(IFNAME)} {{"
    assert firewall.bypass_table(IFNAME) == "wgdesk-bypass-wg-home"
    assert "type route hook output priority mangle; policy accept;" in r
    group = 'socket cgroupv2 level 1 "wgdesk-bypass"'
    mark = f"meta mark set {MARK} ct mark set {MARK}"
    assert f"{group} ip daddr != {{ 10.97.0.1 }} {mark}" in r
    assert f"{group} ip6 daddr != {{ fd97::53 }} {mark}" in r
    assert "type filter hook prerouting priority mangle; policy accept;" in r
    assert f"ct mark {MARK} meta mark set ct mark" in r
    assert "type nat hook postrouting priority srcnat; policy accept;" in r
    assert f'meta mark {MARK} oifname != "{IFNAME}" ip saddr {{ 10.97.0.2 }} masquerade' in r
    assert f'meta mark {MARK} oifname != "{IFNAME}" ip6 saddr {{ fd97::2 }} masquerade' in r
    assert len([line for line in r if "masquerade" in line]) == 2


def test_bypass_script_without_dns_or_ipv6_address() -> None:
    r = rules(firewall.bypass_script(IFNAME, "g", MARK, ["10.97.0.2/32"], []))
    mark = f"meta mark set {MARK} ct mark set {MARK}"
    # every packet of the cgroup is marked, both families (IPv6 leaves natively, not blocked)
    assert f'socket cgroupv2 level 1 "g" meta nfproto ipv4 {mark}' in r
    assert f'socket cgroupv2 level 1 "g" meta nfproto ipv6 {mark}' in r
    assert not any("ip6 saddr" in line for line in r)


@pytest.mark.parametrize(
    "bad",
    [["10.0.0.1 } accept; flush ruleset; {"], ["example.org"], ["10.0.0.1\nflush ruleset"]],
)
def test_bypass_script_takes_only_addresses(bad: list[str]) -> None:
    with pytest.raises(ValueError):
        firewall.bypass_script(IFNAME, "g", MARK, ADDRESSES, bad)
    with pytest.raises(ValueError):
        firewall.bypass_script(IFNAME, "g", MARK, bad, [])


def test_kill_switch_lets_bypass_marks_out_and_their_replies_in() -> None:
    member = firewall.KillSwitchMember("home", IFNAME, MARK, 0)
    plain = rules(firewall.kill_switch_script([member]))
    assert not any("ct mark" in line for line in plain)
    assert f"meta mark {{ {MARK} }} accept" not in plain
    r = rules(firewall.kill_switch_script([member], (), [MARK]))
    assert f"meta mark {{ {MARK} }} accept" in r
    assert f"ct state {{ established, related }} ct mark {{ {MARK} }} accept" in r
    # both before the chains' final reject / policy drop
    out_end = r.index("reject with icmpx type admin-prohibited")
    assert r.index(f"meta mark {{ {MARK} }} accept") < out_end


def test_ipv6_leak_block_exempts_the_tunnels_mark() -> None:
    r = firewall.full_tunnel_script(IFNAME, MARK, ADDRESSES, block_ipv6=True)
    [block] = [line for line in rules(r) if "reject" in line]
    assert f"meta mark != {MARK}" in block and 'oifname != { "lo", "wg-home" }' in block


@pytest.fixture
def scratch_cgroup() -> Iterator[str]:
    """A throwaway cgroup (unique name) in this machine's cgroup2 hierarchy, removed afterwards."""
    mounts = split.cgroup2_mounts(Path("/proc/self/mountinfo").read_text())
    roots = [point for point, inside in mounts if inside == "/"]
    assert roots, "this machine has no cgroup2 mount"
    name = f"wgdesk-test-{unique_name('r')}"
    path = roots[0] / name
    path.mkdir()
    try:
        yield name
    finally:
        path.rmdir()


@pytest.mark.root
def test_nft_accepts_the_scripts(scratch_cgroup: str) -> None:
    """nft itself (check mode, cgroup2 mounted where nft looks) parses what the builders produce."""
    member = firewall.KillSwitchMember("home", IFNAME, MARK, 51821)
    for script in (
        firewall.bypass_script(IFNAME, scratch_cgroup, MARK, ADDRESSES, ["10.97.0.1"]),
        firewall.bypass_script(IFNAME, scratch_cgroup, MARK, ["10.97.0.2/32"], []),
        firewall.kill_switch_script([member], ("10.0.0.0/8", "fd00::/8"), [MARK]),
        firewall.full_tunnel_script(IFNAME, MARK, ADDRESSES, block_ipv6=True),
    ):
        r = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             "mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec nft -c -f -"],
            input=script, capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        assert r.returncode == 0, f"{r.stderr}\n{script}"
    # and a name that is not a cgroup is refused by nft: the check above is real
    bad = firewall.bypass_script(IFNAME, scratch_cgroup + "-missing", MARK, ADDRESSES, [])
    r = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         "mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec nft -c -f -"],
        input=bad, capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert r.returncode != 0


def test_settings_of_split_tunnelling(tmp_path: Path) -> None:
    path = tmp_path / "helper.toml"
    path.write_text("")
    s = load(path)
    assert s.allow_split_tunnel is True and s.split_tunnel_cgroup == "wgdesk-bypass"
    assert s.split_tunnel_cgroup_root == ""
    path.write_text('allow_split_tunnel = false\nsplit_tunnel_cgroup = "apps_out-2"\n')
    s = load(path)
    assert s.allow_split_tunnel is False and s.split_tunnel_cgroup == "apps_out-2"
    for bad in ('"a b"', '"../x"', '"x\\"; flush ruleset"', '""', '"cgroup.procs"', '"' + "x" * 65 + '"'):
        path.write_text(f"split_tunnel_cgroup = {bad}\n")
        with pytest.raises(SettingsError, match="split_tunnel_cgroup must be 1 to 64 letters"):
            load(path)
    path.write_text('split_tunnel_cgroup_root = "sys/fs/cgroup"\n')
    with pytest.raises(SettingsError, match="must be an absolute path"):
        load(path)
    path.write_text('allow_split_tunnel = "yes"\n')
    with pytest.raises(SettingsError, match="allow_split_tunnel must be a bool"):
        load(path)


MOUNTINFO = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 25 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
90 30 0:38 /user.slice /mnt/my\\040cg rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
"""


def test_cgroup2_mounts_are_read_from_mountinfo() -> None:
    assert split.cgroup2_mounts(MOUNTINFO) == [
        (Path("/sys/fs/cgroup/unified"), "/"),
        (Path("/mnt/my cg"), "/user.slice"),
    ]
    assert split.cgroup2_mounts("") == []


def test_split_verbs_take_no_arguments() -> None:
    for verb in ("split_exclude", "split_list"):
        req = protocol.decode_request(f'{{"v":1,"id":3,"verb":"{verb}"}}'.encode())
        assert req.verb == verb and req.args == {}
        with pytest.raises(protocol.ProtocolError) as e:
            protocol.decode_request(
                f'{{"v":1,"id":4,"verb":"{verb}","args":{{"pid":{os.getpid()}}}}}'.encode()
            )
        assert e.value.code == "invalid" and "unknown argument 'pid'" in e.value.message
