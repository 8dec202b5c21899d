"""One member cannot stall the helper for everyone else (issue 13, item 3).

A config at the protocol's size limit carries about 26 000 AllowedIPs; planning it took 45 s and
adding its routes one ``ip`` process each minutes more — all under the manager's lock, so every other
member's ``status``, ``down`` and a lockdown pause's end waited. Timings are generous bounds for a
loaded machine; `benchmarks/helper_scale.py` measures them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.helper.lab import NFT
from tests.helper.members import largest_config, two_members
from tests.netns import unique_name, wait_for
from wgdesk.platforms.linux.firewall import KILL_SWITCH_TABLE

pytestmark = pytest.mark.root

BIG, SECOND, THIRD = unique_name("wgl"), unique_name("wgl"), unique_name("wgl")


def in_background(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        out["reply"] = call()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_a_members_largest_bring_up_does_not_stall_the_others_and_limits_say_why() -> None:
    settings = "max_tunnels_per_user = 2\nmax_routes_per_user = 30000\n"
    with two_members(settings=settings) as (L, other, member):
        text, count = largest_config(L.client_private, L.server_public, "10.98.2.2:51820")
        assert count > 25000
        other.ok("status")
        thread, out = in_background(lambda: member.request("up", name=BIG, config=text, kill_switch=False))
        slowest = 0.0
        while thread.is_alive():
            t0 = time.monotonic()
            assert other.ok("status") == {"tunnels": []}
            slowest = max(slowest, time.monotonic() - t0)
            thread.join(0.05)
        assert "ok" in out["reply"], out
        assert slowest < 3.0, slowest  # it waited for the whole bring-up before (minutes)
        routes = L.client.exec("ip", "-4", "route", "show", "dev", BIG).stdout.count("\n")
        assert routes == count
        # the member's second tunnel would pass the route limit: refused with the reason
        reply = member.request("up", name=SECOND, config=text, kill_switch=False)
        assert "limit" in reply and "max_routes_per_user = 30000" in reply["limit"], reply
        small = L.config(allowed="10.96.0.0/24")
        assert (
            member.ok("up", name=SECOND, config=small.replace("10.97.0.2/32", "10.96.0.2/32"))["state"]
            == "up"
        )
        reply = member.request("up", name=THIRD, config=small.replace("10.97.0.2/32", "10.95.0.2/32"))
        assert "limit" in reply and "max_tunnels_per_user = 2" in reply["limit"], reply
        # the limits are per user: the other member is not affected
        mine = L.config(allowed="10.93.0.0/24").replace("10.97.0.2/32, fd97::2/128", "10.93.0.2/32")
        assert other.ok("up", name=THIRD, config=mine, kill_switch=False)["state"] == "up"
        t0 = time.monotonic()
        member.ok("down", name=BIG)
        assert time.monotonic() - t0 < 60
        assert L.client.exec("ip", "-4", "route", "show", "table", "all").stdout.count("10.1.") == 0
        for name, who in ((SECOND, member), (THIRD, other)):
            who.ok("down", name=name)


def test_a_lockdown_pause_ends_on_time_while_a_bring_up_holds_the_manager() -> None:
    with two_members(settings="allow_scripts = true\n") as (L, other, member):
        other.ok("set_lockdown", enabled=True)
        slow = L.config(extra_iface="PreUp = sleep 6")
        thread, out = in_background(lambda: member.request("up", name=BIG, config=slow, kill_switch=False))
        assert wait_for(lambda: BIG in member.helper.log(), 10)
        t0 = time.monotonic()
        assert other.ok("pause_lockdown", seconds=1)["paused_until"] is not None
        assert time.monotonic() - t0 < 2.0  # pausing does not wait for the bring-up either
        assert wait_for(lambda: table(L) is None, 3)
        assert wait_for(lambda: table(L) is not None, 4)  # the block is back within the second
        assert time.monotonic() - t0 < 4.0 and thread.is_alive()  # ... while the bring-up still runs
        thread.join(60)
        assert "ok" in out["reply"], out
        member.ok("down", name=BIG)
        other.ok("set_lockdown", enabled=False)


def table(L) -> str | None:  # type: ignore[no-untyped-def]
    r = L.client.exec(NFT, "list", "table", "inet", KILL_SWITCH_TABLE, check=False)
    return r.stdout if r.returncode == 0 else None
