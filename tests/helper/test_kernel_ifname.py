"""The helper names kernel objects by the interface name the backend's `create` returned, and the
tunnel by its own name: on macOS the kernel picks ``utunN`` whatever the tunnel is called.

On Linux the two are equal, so here the real helper (in the lab's client namespace, against a
wireguard-go server) runs with a Linux backend whose `create` gives the device another name and logs
every call into the backend's kernel-facing parts (`tests/helper/renaming_helper.py`). Every call
that changes the kernel — addresses, MTU, routes, the full tunnel's policy routing and packet
filter, the kill switch, DNS, hooks' ``%i`` — must name the device, none the tunnel, and so does the
engine's UAPI socket (wireguard-go, handed the device, watches ``IFNAME.sock`` and exits when that is
not its socket); the tunnel's name stays its identity (journal, status, kill-switch member). A
helper killed with ``kill -9`` and started
again recovers from that journal: the blocked tunnel keeps its kill switch on the device's name, and
``down`` leaves the namespace as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helper.lab import ENGINES, PYTHON, SERVER_TUNNEL, lab
from tests.netns import unique_name

pytestmark = pytest.mark.root

T = unique_name("wgn")
K = "k" + T[1:]  # renaming_helper.kernel_name
WRAPPER = str(Path(__file__).with_name("renaming_helper.py"))
KERNEL_FACING = {
    "tunnels.add_addresses",
    "tunnels.configure",
    "routing.add_routes",
    "routing.full_tunnel_on",
    "firewall.full_tunnel_on",
    "firewall.apply_kill_switch",
    "dns.set",
    "service.run_hook",
}
"""Calls a full tunnel with DNS, a kill switch and a PostUp hook makes, each naming the device."""


def calls(log: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_kernel_facing_call_uses_the_kernel_name_and_recovery_follows_it(engine: str) -> None:
    with lab() as L:
        log = L.workdir / "calls.jsonl"
        hook = L.workdir / "hook.out"
        program = (PYTHON, WRAPPER, str(log))
        h = L.start_helper(settings="allow_scripts = true\n", engine=ENGINES[engine], program=program)
        before = L.snapshot()
        c = h.client()
        hooked = f"PostUp = echo %i > {hook}"
        up = c.up(T, L.config(allowed="0.0.0.0/0, ::/0", dns="10.97.0.1", extra_iface=hooked))
        assert (up["name"], up["interface"], up["kill_switch"], up["full_tunnel"]) == (T, K, True, True)
        assert L.ping(SERVER_TUNNEL[0], 3)  # through the device, configured over its UAPI socket

        # the kernel and the engine know the device by its own name only
        links = L.snapshot()["links"].split()
        assert K in links and T not in links
        assert Path(f"/var/run/wireguard/{K}.sock").exists()
        assert not Path(f"/var/run/wireguard/{T}.sock").exists()
        assert "10.97.0.2/32" in L.client.exec("ip", "-4", "addr", "show", "dev", K).stdout
        assert f"dev {K}" in L.client.exec("ip", "-4", "route", "show", "table", str(up["fwmark"])).stdout
        assert f'"{K}"' in L.client.exec("nft", "list", "table", "inet", "wgdesk-killswitch").stdout
        assert hook.read_text().strip() == K
        [status] = c.status(T)
        assert status.interface == K and status.peers[0].latest_handshake is not None

        made = calls(log)
        named = {call["call"] for call in made if f"'{K}'" in call["args"]}
        assert named >= KERNEL_FACING, KERNEL_FACING - named
        # the tunnel's name reaches the backend only where it is asked for a device and as the kill
        # switch member's identity (KillSwitchMember(tunnel=T, ifname=K))
        wrong = [
            call
            for call in made
            if f"'{T}'" in call["args"].replace(f"tunnel='{T}'", "")
            and call["call"] not in ("tunnels.create", "tunnels.exists")
        ]
        assert wrong == []
        [created] = [call for call in made if call["call"] == "tunnels.create"]
        assert f"'{T}'" in created["args"]

        journal = (h.state_dir / "journal" / f"{T}.journal").read_text().splitlines()
        header, entries = json.loads(journal[0]), [json.loads(line) for line in journal[1:]]
        assert header["name"] == T and header["ifname"] == K
        assert {e["ifname"] for e in entries if "ifname" in e} == {K}

        # a crash: the journal written under both names is recovered
        h.kill9()
        h.start()
        [blocked] = h.client().status(T)
        assert (blocked.state, blocked.interface) == ("blocked", K)
        assert f'"{K}"' in L.client.exec("nft", "list", "table", "inet", "wgdesk-killswitch").stdout
        assert K not in L.snapshot()["links"].split()
        h.client().down(T)
        assert L.snapshot() == before
