"""The suite's own guarantees: CI turns skips into failures."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_inner(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_skipped():
                pytest.skip("dependency missing")
            """
        )
    )
    env = dict(os.environ, CI=ci)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "/dev/null", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_skip_fails_under_ci(tmp_path: Path) -> None:
    result = _run_inner(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "not allowed" in result.stdout


def test_skip_is_a_skip_outside_ci(tmp_path: Path) -> None:
    result = _run_inner(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
