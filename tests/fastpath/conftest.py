"""The compiled data path for tests: skipped (and so, under CI=true, failed) when it was not built."""

from __future__ import annotations

from types import ModuleType

import pytest

from wgdesk.fastpath import load_module


@pytest.fixture(scope="session")
def fastpath() -> ModuleType:
    try:
        return load_module()
    except ImportError as exc:
        pytest.skip(f"the compiled data path is not built ({exc}): run scripts/install-test-deps")
