"""`NetworkWatch`: the routing socket's messages that may move the default route, and the watch thread
that runs the actions once per burst (the helper's endpoint routes and DNS, the engine's interface
binding).

The routing messages are built by hand from ``<net/route.h>`` (``rt_msghdr`` starts with
``rtm_msglen``, ``rtm_version`` 5, ``rtm_type``; never compared with a Mac's); the routing socket is
one end of a socketpair (``AF_ROUTE`` 17 is a packet socket on Linux)."""

from __future__ import annotations

import socket
import struct
import time

from tests.netns import wait_for
from wgdesk.platforms.darwin.netwatch import QUIET, NetworkWatch, relevant_messages

RTM_ADD, RTM_DELETE, RTM_LOSING, RTM_IFINFO, RTM_NEWMADDR = 0x1, 0x2, 0x5, 0xE, 0xF
"""``<net/route.h>``, written out here."""


def rtm(kind: int, version: int = 5, length: int = 92) -> bytes:
    """A routing message: ``rt_msghdr`` (92 bytes on macOS) with only its first fields set."""
    return struct.pack("=HBB", length, version, kind) + bytes(max(0, length - 4))


CHANGE = rtm(RTM_DELETE) + rtm(RTM_ADD)
"""A default route replaced: two relevant messages in one read."""


def test_which_routing_messages_count() -> None:
    assert relevant_messages(CHANGE + rtm(RTM_IFINFO, length=112)) == 3
    assert relevant_messages(rtm(RTM_LOSING) + rtm(RTM_NEWMADDR)) == 0  # cannot move the default
    assert relevant_messages(rtm(RTM_ADD, version=4)) == 0  # another kernel's layout: not read
    assert relevant_messages(rtm(RTM_ADD)[:3]) == 0  # short read
    assert relevant_messages(rtm(RTM_ADD, length=2) + rtm(RTM_ADD)) == 0  # a bad length ends the scan
    assert (
        relevant_messages(rtm(RTM_ADD) + rtm(RTM_DELETE)[:40]) == 2
    )  # a truncated last one still says its type


def test_the_watch_thread_runs_once_per_burst_and_stops() -> None:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    runs: list[float] = []
    watch = NetworkWatch([lambda: runs.append(time.monotonic())], opener=lambda: ours)
    watch.start()
    try:
        for _ in range(5):
            kernel.send(CHANGE)
        kernel.send(rtm(RTM_LOSING))
        assert wait_for(lambda: len(runs) == 1, 10)
        time.sleep(2 * QUIET)
        assert len(runs) == 1 and watch.messages == 10
        kernel.send(rtm(RTM_LOSING))  # alone: nothing runs
        time.sleep(2 * QUIET)
        assert len(runs) == 1
    finally:
        watch.stop()
        kernel.close()
    assert watch._thread is not None and not watch._thread.is_alive()
    assert ours.fileno() == -1


def test_the_routing_socket_is_macos_only() -> None:
    """On Linux 17 is AF_PACKET: the default opener refuses rather than open that."""
    watch = NetworkWatch([])
    watch.start()  # logged, no thread
    assert watch._thread is None


def test_a_failing_action_is_logged_and_the_others_still_run(caplog) -> None:  # type: ignore[no-untyped-def]
    done: list[str] = []

    def fails() -> None:
        raise RuntimeError("route: writing to routing socket: not in table")

    watch = NetworkWatch([fails, lambda: done.append("dns")])
    watch.follow_messages(rtm(RTM_DELETE) + rtm(RTM_LOSING))
    assert (watch.runs, watch.messages, done) == (1, 1, ["dns"])
    assert "re-applying after a network change failed" in caplog.text
