"""The macOS backend driven through a tunnel's bring-up on a fake Mac (`tests.darwin.fakemac`): what it
runs is compared with golden files, then every command that changes something is made to fail in
turn and the journal is undone — the fake Mac must be back exactly where it started (routes,
addresses, DNS keys, pf anchors and references, the ``NAME.name`` record).

The steps and their order are the helper's (`wgdesk.helper.tunnels`: create the device, the full
tunnel's packet filter, the kill switch, addresses, MTU and up, routes, the full tunnel, DNS). The
backend's own records go through a JSON round trip and `DarwinPlatform.load_record` before they are
undone, as after a helper crash; the helper's own journal entries (addresses, routes, the kill
switch) are undone here with the backend calls the helper makes for them.

Golden files: ``WGDESK_UPDATE_GOLDEN=1`` rewrites them (then read the diff).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from ipaddress import ip_network
from pathlib import Path

import pytest

from tests.darwin.fakemac import FakeMac
from tests.darwin.test_netwatch import RTM_ADD, RTM_DELETE, RTM_LOSING, rtm
from wgdesk.platforms.darwin import DarwinPlatform
from wgdesk.platforms.darwin.netwatch import routing_socket
from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import FullTunnel, KillSwitch, KillSwitchMember, PlatformOptions
from wgdesk.undo import UndoRecord

GOLDEN = Path(__file__).parent / "golden"

FULL = FullTunnel(
    ifname="utun7",
    fwmark=0,
    addresses=("10.8.0.2/32", "fd00:8::2/128"),
    families=frozenset({4, 6}),
    lan=("192.168.1.0/24",),
    endpoints=("203.0.113.5", "2001:db8::5"),
)
KILL = KillSwitch(members=(KillSwitchMember("office", "utun7", 0, 51820),), lan=("192.168.1.0/24",))


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("WGDESK_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.read_text() == text, (
        f"{name} differs from the golden file (WGDESK_UPDATE_GOLDEN=1 rewrites it)"
    )


def transcript(mac: FakeMac) -> str:
    lines = []
    for argv, stdin in mac.log:
        lines.append("$ " + " ".join(argv))
        if stdin:
            lines += ["  | " + line for line in stdin.splitlines()]
    return "\n".join(lines) + "\n"


class Journal:
    """The helper's journal as far as these steps go: backend records (serialised) and its own."""

    def __init__(self, platform: DarwinPlatform) -> None:
        self.platform = platform
        self.entries: list[str | Callable[[], None]] = []

    def record(self, record: UndoRecord) -> None:
        self.entries.append(json.dumps({"kind": record.kind, **record.fields()}))

    def own(self, undo: Callable[[], None]) -> None:
        self.entries.append(undo)

    def undo(self) -> None:
        for entry in reversed(self.entries):
            if callable(entry):
                entry()
                continue
            loaded = self.platform.load_record(json.loads(entry))
            assert loaded is not None, entry
            self.platform.undo(loaded)


def bring_up(platform: DarwinPlatform, journal: Journal, mac: FakeMac) -> None:
    rec = journal.record
    device = platform.tunnels.create("office", packet_info=False, offload=True, record=rec)
    os.close(device.handle)
    ifname = device.name
    journal.own(lambda: mac.utun_closed(ifname))  # the helper's "process": stopping the engine
    platform.firewall.full_tunnel_on(FULL, rec)
    journal.own(platform.firewall.remove_kill_switch)
    platform.firewall.apply_kill_switch(KILL)
    journal.own(lambda: platform.tunnels.delete_addresses(ifname, FULL.addresses))
    platform.tunnels.add_addresses(ifname, FULL.addresses)
    platform.tunnels.configure(ifname, mtu=1420, up=True)
    allowed = [ip_network("10.8.0.0/24"), ip_network("fd00:8::/64")]
    journal.own(lambda: platform.routing.delete_routes(ifname, allowed, "main"))
    platform.routing.add_routes(ifname, allowed, "main")
    platform.routing.full_tunnel_on(FULL, rec)
    platform.dns.set(ifname, ["10.8.0.1", "fd00:8::1"], ["corp.example"], rec)


def _platform(tmp_path: Path, mac: FakeMac) -> DarwinPlatform:
    def opener(unit: int) -> tuple[int, str]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        b.close()
        mac.utun_created("utun7")
        return a.detach(), "utun7"

    platform = DarwinPlatform(
        PlatformOptions(state_dir=tmp_path / "state"),
        runner=mac,
        run_dir=tmp_path / "wireguard",
        follows_network=False,
        boot_rules=tmp_path / "boot-block.pf",
    )
    platform.tunnels.opener = opener
    platform.tunnels.exists = lambda name: name in mac.state.mtu  # type: ignore[method-assign]
    return platform


def test_bring_up_runs_the_golden_commands(tmp_path: Path) -> None:
    mac = FakeMac()
    platform = _platform(tmp_path, mac)
    journal = Journal(platform)
    bring_up(platform, journal, mac)
    golden("bringup.txt", transcript(mac))
    golden("journal.txt", "".join(e + "\n" for e in journal.entries if isinstance(e, str)))
    state = mac.state
    assert (tmp_path / "wireguard" / "office.name").read_text() == "utun7\n"
    assert {("0.0.0.0/1", "interface utun7"), ("128.0.0.0/1", "interface utun7")} <= state.routes
    assert {("::/1", "interface utun7"), ("8000::/1", "interface utun7")} <= state.routes
    assert ("203.0.113.5", "gateway 192.168.1.1") in state.routes
    assert ("2001:db8::5", "gateway fe80::1%en0") in state.routes
    assert state.addresses["utun7"] == {"10.8.0.2", "fd00:8::2"}
    assert state.mtu["utun7"] == 1420 and "utun7" in state.up
    dns = state.store["State:/Network/Service/8A2C3F5E-0D41-4C6B-9E3A-1F2B3C4D5E6F/DNS"]
    assert dns["ServerAddresses"] == ["10.8.0.1", "fd00:8::1"]
    assert len(state.tokens) == 2  # the guard's and the kill switch's references
    assert platform.firewall.kill_switch_present()
    done = len(mac.log)
    journal.undo()
    mac.log = mac.log[done:]
    golden("teardown.txt", transcript(mac))


def test_every_failure_is_undone(tmp_path: Path) -> None:
    """Fail each changing command in turn: the undo restores the fake Mac exactly."""
    total = FakeMac()
    counting = _platform(tmp_path / "count", total)
    bring_up(counting, Journal(counting), total)
    assert total.changes > 15
    for index in range(total.changes + 1):  # the last: no failure, then a full tear-down
        mac = FakeMac(fail_at=index)
        before = mac.snapshot()
        platform = _platform(tmp_path / str(index), mac)
        journal = Journal(platform)
        if index < total.changes:
            with pytest.raises(PlatformError):
                bring_up(platform, journal, mac)
        else:
            bring_up(platform, journal, mac)
        mac.fail_at = None
        journal.undo()
        assert mac.snapshot() == before, (index, mac.log[-1])
        assert not (tmp_path / str(index) / "wireguard" / "office.name").exists()
        assert not platform.dns.active
        assert not platform.routing.endpoint_routes.endpoints
        mac.gw4 = "10.0.0.1"  # a network change after the undo moves nothing back in
        assert platform.routing.endpoint_routes.reapply() == [] and platform.dns.reassert() == []
        assert mac.snapshot() == before


def test_undo_twice_is_harmless(tmp_path: Path) -> None:
    mac = FakeMac()
    before = mac.snapshot()
    platform = _platform(tmp_path, mac)
    journal = Journal(platform)
    bring_up(platform, journal, mac)
    journal.undo()
    journal.undo()  # after a crash during the first undo, a new helper replays it all
    assert mac.snapshot() == before


def test_network_change_moves_endpoint_routes_and_reasserts_dns(tmp_path: Path) -> None:
    mac = FakeMac()
    platform = _platform(tmp_path, mac)
    bring_up(platform, Journal(platform), mac)
    mac.gw4 = "10.0.0.1"  # another network; configd rewrote the service's DNS
    key = "State:/Network/Service/8A2C3F5E-0D41-4C6B-9E3A-1F2B3C4D5E6F/DNS"
    mac.state.store[key] = {"ServerAddresses": ["10.0.0.1"]}
    assert platform.network_watch.opener is routing_socket  # the helper reads no `route -n monitor`
    platform.network_watch.follow_messages(rtm(RTM_DELETE))  # the old default route went away
    assert platform.network_watch.runs == 1
    assert ("203.0.113.5", "gateway 10.0.0.1") in mac.state.routes
    assert mac.state.store[key]["ServerAddresses"] == ["10.8.0.1", "fd00:8::1"]
    platform.network_watch.follow_messages(rtm(RTM_LOSING) + rtm(RTM_ADD))  # only the second counts
    assert platform.network_watch.runs == 2
    mac.state.store[key] = {"ServerAddresses": ["10.0.0.1"]}
    mac.gw4 = "10.0.0.254"
    assert platform.routing.endpoint_routes.reapply() == ["203.0.113.5"]
    assert ("203.0.113.5", "gateway 10.0.0.254") in mac.state.routes
    assert not {r for r in mac.state.routes if r[0] == "203.0.113.5" and r[1] != "gateway 10.0.0.254"}
    assert platform.dns.reassert() == [key]
    assert mac.state.store[key]["ServerAddresses"] == ["10.8.0.1", "fd00:8::1"]
    assert platform.routing.endpoint_routes.reapply() == []
    assert platform.dns.reassert() == []


def test_pf_refuses_without_the_com_apple_anchor(tmp_path: Path) -> None:
    mac = FakeMac()
    platform = _platform(tmp_path, mac)
    original = mac._pfctl

    def without_wildcard(args: list[str], stdin: str | None) -> tuple[int, str, str]:
        if args == ["-s", "rules"]:
            return 0, 'anchor "custom" all\n', ""
        return original(args, stdin)

    mac._pfctl = without_wildcard  # type: ignore[method-assign]
    with pytest.raises(PlatformError, match=r"com\.apple/\*"):
        platform.firewall.apply_kill_switch(KILL)
    assert not mac.state.anchors and not mac.state.tokens


def test_a_route_that_was_there_before_the_tunnel_survives_its_undo(tmp_path: Path) -> None:
    """The tunnel's AllowedIPs include the LAN, whose route is already there: `add_routes` accepts
    "File exists", the journal still lists the LAN, and `route delete` matches by destination only —
    so the undo must delete only what goes through the tunnel, or the user loses the LAN route."""
    mac = FakeMac()
    mac.state.routes.add(("192.168.1.0/24", "interface en0"))
    platform = _platform(tmp_path, mac)
    mine = [ip_network("10.8.0.0/24"), ip_network("192.168.1.0/24")]
    platform.routing.add_routes("utun7", mine, "main")
    assert ("10.8.0.0/24", "interface utun7") in mac.state.routes
    platform.routing.delete_routes("utun7", mine, "main")
    assert ("192.168.1.0/24", "interface en0") in mac.state.routes
    assert not {r for r in mac.state.routes if r[1] == "interface utun7"}
