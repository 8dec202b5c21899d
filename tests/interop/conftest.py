"""Fixtures for the interop suite: fresh namespaces per test, torn down whatever happens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.wgnet import Topology, build
from tests.netns import namespaces


@pytest.fixture
def t1(tmp_path: Path, wgdesk_datapath: str) -> Iterator[Callable[..., Topology]]:
    """Factory for T1 (see `wgnet.build`): `t1("wgdesk", "go", outer="6", psk=True)`.

    Each wgdesk engine's log must name the data path the test runs on."""
    expected = {"compiled": "compiled data path", "pure": "pure-Python data path"}[wgdesk_datapath]
    with namespaces("wa", "wb") as (na, nb):
        made: list[Topology] = []

        def factory(impl_a: str, impl_b: str, **kw: Any) -> Topology:
            topo = build(na, nb, impl_a, impl_b, tmp_path, **kw)
            made.append(topo)
            for iface, env in ((topo.a, kw.get("env_a")), (topo.b, kw.get("env_b"))):
                if iface.impl == "wgdesk" and (env or {}).get("LOG_LEVEL", "verbose") == "verbose":
                    assert expected in iface.log(), iface.log()[:2000]
            return topo

        try:
            yield factory
        finally:
            for topo in made:
                for iface in (topo.a, topo.b):
                    if iface.alive():
                        iface.proc.terminate()


DATAPATHS = {
    # the engine's data path, set through the environment every wgdesk-engine of the test inherits
    "compiled": {"WGDESK_PURE_PYTHON": "0"},
    "pure": {"WGDESK_PURE_PYTHON": "1"},
}


@pytest.fixture(autouse=True, params=list(DATAPATHS))
def wgdesk_datapath(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every interop test runs on both data paths: the compiled one (skipped, so under CI failed,
    when it was not built) and the pure-Python reference."""
    if request.param == "compiled":
        from wgdesk.fastpath import load_module

        try:
            load_module()
        except ImportError as exc:
            pytest.skip(f"the compiled data path is not built ({exc}): run scripts/install-test-deps")
    for name, value in DATAPATHS[request.param].items():
        monkeypatch.setenv(name, value)
    return str(request.param)
