"""Every fuzz target runs a short budget in the normal suite: the harness works, the seeds are valid, and
nothing the seeds and a few thousand mutations reach breaks an invariant. `scripts/fuzz` runs them long."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
RUNS = 3000


@pytest.mark.parametrize(
    "target", [pytest.param(t, marks=pytest.mark.root) if t == "uapi_request" else t for t in TARGETS]
)
def test_target_runs_clean(target: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="wgf-"))  # short: the targets bind UNIX sockets below it
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.run", target, "-n", str(RUNS), "--findings", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=170,
    )
    log = (tmp_path / f"{target}.log").read_text(errors="replace")[-3000:]
    assert proc.returncode == 0, proc.stdout + log
    row = next(line for line in proc.stdout.splitlines() if line.startswith(f"{target} "))
    inputs = int(row.split()[1])
    assert inputs == RUNS, row
    assert re.search(r"cov \d+ ft \d+", row), row  # coverage was measured: the code is instrumented
    assert list(scratch.iterdir()) == []  # the stores, sockets and engine directories it made are gone
