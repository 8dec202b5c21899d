"""The boot-time block: the helper leaves its kill switch, without tunnels, for the next boot
(`pf.PfFirewall` writes ``boot-block.pf`` before loading the anchor and removes it after unloading),
and ``installers/macos/boot-block`` — run by the LaunchDaemon before the helper — loads it into the
kill switch's anchor with a pf reference the helper then takes over.

The script runs here under ``/bin/sh`` with a fake ``pfctl`` (a shell script that logs its arguments
and answers as the documented output says; written by hand, never compared with a Mac's) and temporary
paths for its files; the test asserts the exact ``pfctl`` calls, the token line, and that the helper
is started whatever happens."""

from __future__ import annotations

import os
import plistlib
import subprocess
from pathlib import Path

import pytest

from tests.darwin.fakemac import FakeMac
from tests.darwin.pfmodel import Packet, verdict
from tests.darwin.test_bringup import KILL, golden
from wgdesk.platforms.darwin import pf, service
from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import KillSwitch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "installers" / "macos" / "boot-block"
ANCHOR = "com.apple/250.wgdesk.killswitch"

FAKE_PFCTL = r"""#!/bin/sh
# fake pfctl: logs argv (and the content of a file given to -f) to $LOG
echo "pfctl $*" >>"$LOG"
case "$1" in
-s) [ -n "${MAIN_RULES:-}" ] && printf '%s\n' "$MAIN_RULES"; exit 0 ;;
-E) printf 'No ALTQ support in kernel\npf enabled\nToken : 18446744073709551\n' >&2; exit 0 ;;
-a) cp "$4" "$LOADED"; exit "${LOAD_STATUS:-0}" ;;
-f) exit 0 ;;
esac
exit 9
"""
STOCK_MAIN = 'scrub-anchor "com.apple/*" all fragment reassemble\nanchor "com.apple/*" all'


class Boot:
    """One run of the boot script with fake pfctl and temporary files."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pfctl = tmp / "pfctl"
        self.pfctl.write_text(FAKE_PFCTL)
        self.pfctl.chmod(0o755)
        self.rules = tmp / "boot-block.pf"
        self.tokens = tmp / "run" / "wgdesk" / "pf-tokens"
        self.pf_conf = tmp / "pf.conf"
        self.pf_conf.write_text(
            'scrub-anchor "com.apple/*"\nanchor "com.apple/*"\n'
            'load anchor "com.apple" from "/etc/pf.anchors/com.apple"\n'
        )
        self.log = tmp / "log"
        self.loaded = tmp / "loaded"
        self.started = tmp / "started"

    def run(self, main_rules: str = STOCK_MAIN, **extra: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "WGDESK_PFCTL": str(self.pfctl),
            "WGDESK_BOOT_RULES": str(self.rules),
            "WGDESK_PF_TOKENS": str(self.tokens),
            "WGDESK_PF_CONF": str(self.pf_conf),
            "LOG": str(self.log),
            "LOADED": str(self.loaded),
            "MAIN_RULES": main_rules,
            **extra,
        }
        helper = ["/bin/sh", "-c", f'echo "$@" >{self.started}', "helper", "--log-level", "debug"]
        return subprocess.run(
            ["/bin/sh", str(SCRIPT), *helper], env=env, capture_output=True, text=True, timeout=30
        )

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def helper_started(self) -> bool:
        return self.started.exists() and self.started.read_text() == "--log-level debug\n"


def test_the_boot_ruleset_is_the_kill_switch_without_tunnels() -> None:
    rules = pf.boot_block_rules(KILL)
    golden("boot-block.pf", rules)
    assert "51820" not in rules and "utun7" not in rules  # no engine, no utun at boot
    anchors = {ANCHOR: rules}
    assert (
        verdict(anchors, Packet("out", "en0", "tcp", "192.168.1.23", "93.184.216.34", 50000, 443)) == "block"
    )
    assert verdict(anchors, Packet("out", "en0", "udp", "192.168.1.23", "192.168.1.1", 5353, 53)) == "block"
    assert verdict(anchors, Packet("out", "en0", "udp", "0.0.0.0", "255.255.255.255", 68, 67)) == "pass"
    assert verdict(anchors, Packet("out", "en0", "tcp", "192.168.1.23", "192.168.1.50", 50000, 445)) == "pass"
    no_lan = {ANCHOR: pf.boot_block_rules(KillSwitch(members=KILL.members))}
    assert verdict(no_lan, Packet("out", "en0", "tcp", "192.168.1.23", "192.168.1.50", 50000, 445)) == "block"


class Watching(FakeMac):
    """The fake Mac, noting whether the boot file existed when the anchor was loaded or flushed."""

    def __init__(self, boot: Path) -> None:
        super().__init__()
        self.boot = boot
        self.seen: list[tuple[str, str | None]] = []

    def __call__(self, argv, stdin=None, check=True):  # type: ignore[no-untyped-def]
        if argv[1:3] == ["-a", ANCHOR] and argv[3] in ("-f", "-F"):
            self.seen.append((argv[3], self.boot.read_text() if self.boot.exists() else None))
        return super().__call__(argv, stdin, check)


def test_the_helper_leaves_the_block_before_loading_and_forgets_it_after_unloading(tmp_path: Path) -> None:
    boot = tmp_path / "persistent" / pf.BOOT_RULES.name
    mac = Watching(boot)
    firewall = pf.PfFirewall(mac, tmp_path / "run", boot_rules=boot)
    firewall.apply_kill_switch(KILL)
    assert mac.seen == [("-f", pf.boot_block_rules(KILL))]
    assert oct(boot.stat().st_mode & 0o777) == "0o644"
    firewall.remove_kill_switch()
    assert mac.seen[1] == ("-F", pf.boot_block_rules(KILL)) and not boot.exists()
    firewall.remove_kill_switch()  # already gone: fine


def test_no_block_is_left_when_the_kill_switch_cannot_be_evaluated(tmp_path: Path) -> None:
    class NoWildcard(FakeMac):
        def _pfctl(self, args: list[str], stdin: str | None) -> tuple[int, str, str]:
            return (0, "", "") if args == ["-s", "rules"] else super()._pfctl(args, stdin)

    boot = tmp_path / pf.BOOT_RULES.name
    with pytest.raises(PlatformError):
        pf.PfFirewall(NoWildcard(), tmp_path / "run", boot_rules=boot).apply_kill_switch(KILL)
    assert not boot.exists()


def test_the_script_loads_the_block_and_records_the_reference(tmp_path: Path) -> None:
    b = Boot(tmp_path)
    b.rules.write_text(pf.boot_block_rules(KILL))
    proc = b.run()
    assert proc.returncode == 0, proc.stderr
    assert b.calls() == ["pfctl -s rules", f"pfctl -a {ANCHOR} -f {b.rules}", "pfctl -E"]
    assert b.loaded.read_text() == pf.boot_block_rules(KILL)
    assert b.tokens.read_text() == f"18446744073709551 {ANCHOR}\n"
    assert oct(b.tokens.parent.stat().st_mode & 0o777) == "0o755"
    assert b.helper_started()
    # the helper reads that reference as its own
    assert pf.Pf(FakeMac(), b.tokens.parent)._tokens() == {ANCHOR: "18446744073709551"}


def test_the_script_loads_the_stock_main_ruleset_when_pf_has_none(tmp_path: Path) -> None:
    b = Boot(tmp_path)
    b.rules.write_text(pf.boot_block_rules(KILL))
    assert b.run(main_rules="").returncode == 0
    assert b.calls() == [
        "pfctl -s rules",
        f"pfctl -f {b.pf_conf}",
        f"pfctl -a {ANCHOR} -f {b.rules}",
        "pfctl -E",
    ]
    assert b.helper_started()


def test_the_script_starts_the_helper_when_it_cannot_block(tmp_path: Path) -> None:
    b = Boot(tmp_path)
    b.rules.write_text(pf.boot_block_rules(KILL))
    b.pf_conf.write_text("# an administrator's own pf.conf without Apple's anchors\n")
    proc = b.run(main_rules="")
    assert b.calls() == ["pfctl -s rules"] and not b.tokens.exists()
    assert "cannot block before the helper starts" in proc.stderr
    assert b.helper_started()
    b.pf_conf.write_text('anchor "com.apple/*"\n')
    proc = b.run(main_rules="", LOAD_STATUS="1")  # the rules do not load: no reference taken
    assert "loading" in proc.stderr and not b.tokens.exists() and b.helper_started()


def test_the_script_does_nothing_without_rules_or_once_the_anchor_has_a_reference(tmp_path: Path) -> None:
    b = Boot(tmp_path)
    assert b.run().returncode == 0
    assert b.calls() == [] and b.helper_started()  # no kill switch was left: nothing to block
    b.rules.write_text(pf.boot_block_rules(KILL))
    b.tokens.parent.mkdir(parents=True)
    b.tokens.write_text(f"4242 {ANCHOR}\n")  # the helper (restarted by launchd) holds the anchor
    b.started.unlink()
    assert b.run().returncode == 0
    assert b.calls() == [] and b.helper_started()
    assert b.tokens.read_text() == f"4242 {ANCHOR}\n"


def test_the_helper_takes_the_boot_blocks_anchor_over_and_releases_its_reference(tmp_path: Path) -> None:
    boot = tmp_path / pf.BOOT_RULES.name
    boot.write_text(pf.boot_block_rules(KILL))
    run = tmp_path / "run"
    run.mkdir()
    (run / "pf-tokens").write_text(f"777 {ANCHOR}\n")  # as the script left it
    mac = FakeMac()
    mac.state.anchors[ANCHOR] = pf.boot_block_rules(KILL)
    mac.state.tokens.add("777")
    firewall = pf.PfFirewall(mac, run, boot_rules=boot)
    firewall.apply_kill_switch(KILL)
    assert mac.state.anchors[ANCHOR] == pf.kill_switch_rules(KILL)
    assert mac.state.tokens == {"777"}  # no second reference
    firewall.remove_kill_switch()
    assert mac.state.tokens == set() and ANCHOR not in mac.state.anchors and not boot.exists()


def test_the_launch_daemon_runs_the_script_before_the_helper_and_the_pkg_ships_it() -> None:
    daemon = service.launch_daemon()
    assert daemon["ProgramArguments"] == [service.BOOT_BLOCK, service.HELPER]
    assert daemon["RunAtLoad"] is True
    installed = plistlib.loads((ROOT / "installers" / "macos" / "org.wgdesk.helper.plist").read_bytes())
    assert installed == daemon
    assert os.access(SCRIPT, os.X_OK)
    build = (ROOT / "installers" / "macos" / "build-pkg").read_text()
    staged = f'"$STAGE/root{service.BOOT_BLOCK}"'
    assert f'install -m 0755 "$HERE/boot-block" {staged}' in build
    # the boot file is in the directory the uninstall script removes
    assert (
        'STATE="/Library/Application Support/wgdesk"'
        in (ROOT / "installers" / "macos" / "uninstall").read_text()
    )
    assert str(Path(service.BOOT_BLOCK).parent) == "/Library/Application Support/wgdesk"
