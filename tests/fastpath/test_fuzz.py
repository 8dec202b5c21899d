"""A short run of the fuzz target (tests/fastpath/fuzz.py) under AddressSanitizer in the suite;
`scripts/fuzz-fastpath` runs the full budget (10^6 inputs by default)."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

from tests.fastpath.fuzz import ROOT


def test_short_fuzz_run_under_address_sanitizer(fastpath: ModuleType) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.fastpath.fuzz", "--inputs", "30000", "--seed", "17"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    assert "no crash" in result.stdout
    assert "AddressSanitizer" not in result.stderr and "runtime error" not in result.stderr, result.stderr
