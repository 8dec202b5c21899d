"""The .deb's prerm/postrm, run for real: removing the package never leaves lockdown's kill-switch
table behind (a stopped helper keeps it on purpose), an upgrade does.

Each run happens in its own network namespace (where the test loads the table) and mount
namespace, with /etc, /var/lib and /run overlaid on throwaway directories and /run/systemd hidden,
so what the scripts write (deb-systemd-helper's masks, the purge's rm -rf) never reaches the host.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging.artifacts import ROOT
from wgdesk.platforms.linux.firewall import KILL_SWITCH_TABLE, KillSwitchMember, kill_switch_script

pytestmark = pytest.mark.root

DEBIAN = ROOT / "installers" / "linux" / "debian"
NFT = shutil.which("nft") or "/usr/sbin/nft"

SANDBOX = r"""
set -e
work=$1; script=$2; shift 2
for d in /etc /var/lib /run; do
	mkdir -p "$work$d/u" "$work$d/w"
	mount -t overlay overlay -o "lowerdir=$d,upperdir=$work$d/u,workdir=$work$d/w" "$d"
done
if [ -d /run/systemd ]; then mount -t tmpfs tmpfs /run/systemd; fi
nft -f "$work/ruleset.nft"
set +e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin sh "$script" "$@" 2>"$work/stderr"
echo "rc=$?"
nft list tables
"""


def run(tmp_path: Path, script: str, *args: str, ruleset: str) -> tuple[int, list[str], str]:
    """Run a maintainer script in the sandbox; (exit status, nft tables after it, its stderr)."""
    (tmp_path / "ruleset.nft").write_text(ruleset)
    proc = subprocess.run(
        ["unshare", "-m", "-n", "--propagation", "private", "sh", "-c", SANDBOX, "sandbox",
         str(tmp_path), str(DEBIAN / script), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    rc = int(next(x for x in lines if x.startswith("rc="))[3:])
    tables = [x for x in lines if x.startswith("table ")]
    return rc, tables, (tmp_path / "stderr").read_text()


LOCKDOWN = kill_switch_script([])  # what a stopped helper in lockdown leaves
WITH_TUNNEL = kill_switch_script([KillSwitchMember("home", "home", 51820, 51820)])
OTHER = (
    "table inet someone-else {\n  chain c {\n    type filter hook output priority 0; policy accept;\n  }\n}\n"
)
OURS = f"table inet {KILL_SWITCH_TABLE}"
REMOVALS = [("prerm", "remove"), ("postrm", "remove"), ("postrm", "purge")]


@pytest.mark.parametrize(("script", "action"), REMOVALS)
@pytest.mark.parametrize("table", [LOCKDOWN, WITH_TUNNEL], ids=["lockdown", "with-tunnel"])
def test_removing_the_package_deletes_the_kill_switch_table(
    tmp_path: Path, script: str, action: str, table: str
) -> None:
    rc, tables, err = run(tmp_path, script, action, ruleset=OTHER + table)
    assert rc == 0, err
    assert tables == ["table inet someone-else"]  # ours is gone, nobody else's is touched
    assert "could not remove" not in err


@pytest.mark.parametrize(("script", "action"), REMOVALS)
def test_no_table_is_not_an_error(tmp_path: Path, script: str, action: str) -> None:
    rc, tables, err = run(tmp_path, script, action, ruleset=OTHER)
    assert rc == 0, err
    assert tables == ["table inet someone-else"]
    assert "table" not in err.lower()


@pytest.mark.parametrize(("script", "action"), [("prerm", "upgrade"), ("postrm", "upgrade")])
def test_an_upgrade_keeps_blocking(tmp_path: Path, script: str, action: str) -> None:
    rc, tables, err = run(tmp_path, script, action, ruleset=LOCKDOWN)
    assert rc == 0, err
    assert tables == [OURS]


def test_the_sandbox_really_runs_nft(tmp_path: Path) -> None:
    """Control: without the scripts' delete, the table is listed (so an empty list means deleted)."""
    (tmp_path / "noop").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "ruleset.nft").write_text(LOCKDOWN)
    proc = subprocess.run(
        ["unshare", "-m", "-n", "--propagation", "private", "sh", "-c", SANDBOX, "sandbox",
         str(tmp_path), str(tmp_path / "noop")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert OURS in proc.stdout.splitlines()
