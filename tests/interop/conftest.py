"""Fixtures for the interop suite: fresh namespaces per test, torn down whatever happens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.wgnet import Topology, build
from tests.netns import namespaces


@pytest.fixture
def t1(tmp_path: Path) -> Iterator[Callable[..., Topology]]:
    """Factory for T1 (see `wgnet.build`): `t1("wgdesk", "go", outer="6", psk=True)`."""
    with namespaces("wa", "wb") as (na, nb):
        made: list[Topology] = []

        def factory(impl_a: str, impl_b: str, **kw: Any) -> Topology:
            topo = build(na, nb, impl_a, impl_b, tmp_path, **kw)
            made.append(topo)
            return topo

        try:
            yield factory
        finally:
            for topo in made:
                for iface in (topo.a, topo.b):
                    if iface.alive():
                        iface.proc.terminate()
