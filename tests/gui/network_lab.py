"""Moving a test namespace from one network to another, and running the network detector inside it.

A "network" here is the gateway behind the client's link, told apart by its MAC address (as
`platforms.current_network()` does on a wired LAN). Only namespaces the test created are touched."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from tests.netns import IP, Namespace, wait_for
from wgdesk.platforms import NetworkIdentity

PYTHON = sys.executable
DETECT = (
    "import dataclasses, json; from wgdesk.platforms import current_network; "
    "n = current_network(); print(json.dumps(n and dataclasses.asdict(n)))"
)


def detect(ns: Namespace) -> NetworkIdentity | None:
    """`platforms.current_network()` run in its own process inside ``ns``."""
    found = json.loads(ns.exec(PYTHON, "-c", DETECT).stdout)
    return NetworkIdentity(**found) if found else None


def _carrier(ns: Namespace, ifname: str) -> bool:
    out = ns.exec(IP, "-j", "link", "show", "dev", ifname).stdout
    return "LOWER_UP" in json.loads(out)[0].get("flags", [])


def switch_gateway(client: Namespace, client_if: str, router: Namespace, router_if: str, mac: str) -> None:
    """What changing networks looks like to the client: its link loses carrier (which flushes its
    neighbour entries) and comes back with another gateway (``mac``) behind it."""
    router.exec(IP, "link", "set", "dev", router_if, "down")
    assert wait_for(lambda: not _carrier(client, client_if), 10), "the client's link kept its carrier"
    router.exec(IP, "link", "set", "dev", router_if, "address", mac)
    router.exec(IP, "link", "set", "dev", router_if, "up")
    assert wait_for(lambda: _carrier(client, client_if), 10), "the client's link did not come back"


def talk_to(ns: Namespace, address: str) -> None:
    """Traffic to the gateway (DHCP and DNS do this at once on a real network), so its MAC is known."""
    ns.exec("ping", "-n", "-c", "1", "-W", "2", address, check=False)


def probe_in(ns: Namespace) -> Callable[[], NetworkIdentity | None]:
    """A network probe for `TunnelController` that runs the real detector inside ``ns``."""
    return lambda: detect(ns)
