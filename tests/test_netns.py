"""The namespace fixtures themselves: created, connected, and removed without a trace."""

from __future__ import annotations

import pytest

from tests.netns import IP, namespaces, run, veth


@pytest.mark.root
def test_two_namespaces_ping_and_cleanup() -> None:
    with namespaces("nta", "ntb") as (a, b):
        veth(a, b, ["10.200.0.1/24", "fd00:200::1/64"], ["10.200.0.2/24", "fd00:200::2/64"])
        a.exec("ping", "-c1", "-w5", "10.200.0.2")
        a.exec("ping", "-6", "-c1", "-w5", "fd00:200::2")
        names = {a.name, b.name}
    listed = run([IP, "netns", "list"]).stdout
    assert not any(n in listed for n in names)
