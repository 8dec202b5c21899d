"""Session fixtures for the packaging tests: the bundle (built once, cached by source hash) and the .deb."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging.artifacts import Bundle, build_bundle, build_deb


@pytest.fixture(scope="session")
def bundle() -> Bundle:
    return build_bundle()


@pytest.fixture(scope="session")
def deb(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_deb(bundle, tmp_path_factory.mktemp("deb"))
