"""The engine's protocol clock counts time the machine spends suspended (boot time, like the kernel module).

A suspend cannot be staged here, so the test runs the engine in a time namespace whose boot-time clock
is 200 000 s ahead of its monotonic clock — exactly the difference a long suspend leaves behind.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from tests.netns import namespaces, unique_name

pytestmark = pytest.mark.root

OFFSET = 200_000

DRIVER = textwrap.dedent(
    """
    import json, sys, time
    from wgdesk.engine.loop import Engine
    from wgdesk.engine import tun

    engine = Engine(tun.create(sys.argv[1]), None)
    try:
        print(json.dumps({
            "engine": engine.now(),
            "boot": time.clock_gettime(time.CLOCK_BOOTTIME),
            "monotonic": time.monotonic(),
        }))
    finally:
        engine.close()
    """
)


def test_the_protocol_clock_includes_suspended_time() -> None:
    with namespaces("ck") as (ns,):
        out = ns.exec(
            "unshare", "--time", "--boottime", str(OFFSET), "--fork",
            sys.executable, "-c", DRIVER, unique_name("wc"),
        ).stdout  # fmt: skip
    clocks = json.loads(out)
    # positive control: in this namespace boot time really runs OFFSET ahead of the monotonic clock
    assert clocks["boot"] - clocks["monotonic"] >= OFFSET - 1
    assert clocks["engine"] - clocks["monotonic"] >= OFFSET - 1
    assert abs(clocks["engine"] - clocks["boot"]) < 1.0
