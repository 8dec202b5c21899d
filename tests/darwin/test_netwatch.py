"""`NetworkWatch`'s thread over a real process standing in for ``route -n monitor``: a burst of
routing messages runs the actions once, after the quiet time; messages that cannot move the default
route run nothing."""

from __future__ import annotations

import sys
import time

from tests.netns import wait_for
from wgdesk.platforms.darwin.netwatch import QUIET, NetworkWatch

SCRIPT = """
import sys, time
def burst(kind, n):
    for _ in range(n):
        print("got message of size 124 on Mon Dec  7 22:41:05 2026")
        print(kind + ": Add Route: len 124, pid: 0, seq 0, errno 0, flags:<UP,GATEWAY,DONE>")
        print(" default 10.0.0.1 default", flush=True)
        time.sleep(0.01)
burst("RTM_ADD", 5)
time.sleep(1.5)
burst("RTM_LOSING", 3)
time.sleep(1.5)
burst("RTM_DELETE", 2)
time.sleep(30)
"""


def test_a_burst_runs_the_actions_once() -> None:
    calls: list[float] = []
    watch = NetworkWatch([lambda: calls.append(time.monotonic())], argv=(sys.executable, "-c", SCRIPT))
    started = time.monotonic()
    watch.start()
    try:
        assert wait_for(lambda: len(calls) == 2, 10), calls
        time.sleep(2 * QUIET)
        assert len(calls) == 2  # the RTM_LOSING burst ran nothing
        assert calls[0] - started >= QUIET
        assert watch.monitor.messages == 10
    finally:
        watch.stop()
