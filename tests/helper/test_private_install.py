"""The helper starts its unprivileged engine from a private (0700) directory: wgdesk in a venv in a home
that the engine's account cannot enter — Ubuntu's 0750 homes, root's 0700 home, a pyenv Python.

The engine, its venv (with the third-party packages it imports) and a copy of the `wgdesk` package are
placed in a root-owned 0700 directory; the helper runs it there, and the tunnel must come up and carry
traffic with the engine running as the unprivileged account, nothing imported after the switch.
"""

from __future__ import annotations

import importlib.util
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.as_user import argv_as
from tests.helper.lab import ROOT, SERVER_TUNNEL, engine_pid, lab
from tests.netns import unique_name

pytestmark = pytest.mark.root

T = unique_name("wgp")
ENGINE_PACKAGES = ("cryptography", "nacl", "cffi", "_cffi_backend")
"""The third-party modules the engine imports (and what they load)."""


def private_install(top: Path) -> Path:
    """A venv under the 0700 directory ``top`` with what the engine needs; returns its engine launcher."""
    venv = top / "home" / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)  # type: ignore[attr-defined]
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-I", "-c", purelib], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    for name in ENGINE_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        origin = Path(spec.origin)
        if spec.submodule_search_locations:
            shutil.copytree(origin.parent, site / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, site / origin.name)
    shutil.copytree(ROOT / "wgdesk", site / "wgdesk", ignore=shutil.ignore_patterns("__pycache__"))
    engine = venv / "bin" / "wgdesk-engine"
    engine.write_text(
        f"#!{venv}/bin/python -I\nimport sys\nfrom wgdesk.engine.main import main\nsys.exit(main())\n"
    )
    engine.chmod(0o755)
    return engine


def test_the_engine_runs_from_a_directory_its_account_cannot_enter(tmp_path: Path) -> None:
    top = tmp_path / "private"
    top.mkdir(mode=0o700)
    engine = private_install(top)
    assert stat.S_IMODE(top.stat().st_mode) == 0o700 and top.stat().st_uid == 0
    with lab() as L:
        h = L.start_helper(engine=str(engine))
        c = h.client()
        c.up(T, L.config(), kill_switch=False)
        assert L.ping(SERVER_TUNNEL[0], 3)
        pid = engine_pid(h, T)
        uid = int(Path(f"/proc/{pid}/status").read_text().split("\nUid:")[1].split()[0])
        assert uid != 0
        assert str(engine) in Path(f"/proc/{pid}/cmdline").read_text()
        # the control: this account really cannot read the install
        cannot = "import os, sys\nsys.exit(0 if not os.access(sys.argv[1], os.R_OK) else 1)"
        assert subprocess.run(argv_as(uid, 65534, cannot, str(engine)), check=False).returncode == 0
        peers = c.status()[0].peers
        assert peers[0].latest_handshake and peers[0].rx_bytes > 0
        engine_log = "\n".join(entry["message"] for entry in c.logs(T) if entry["source"] == "engine")
        c.down(T)
        assert f"Running as uid {uid}" in engine_log
        assert "after dropping privileges" not in engine_log + h.log()
