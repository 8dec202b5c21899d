"""Links and addresses through pyroute2 (`wgdesk.platforms.linux.iproute`) leave an interface exactly as
the ``ip`` commands they replace did, and refuse with the messages ``ip`` gave. Run inside a namespace the
test creates, on two TUN interfaces side by side: one set up by wgdesk, one by ``ip``."""

from __future__ import annotations

import json
import sys

import pytest

from tests.netns import IP, namespaces

pytestmark = pytest.mark.root

CODE = """
import json, subprocess, sys
from wgdesk.platforms.linux import iproute
from wgdesk.platforms.errors import PlatformError
ip, addresses = sys.argv[1], ["10.9.0.2/32", "fd09::2/128", "10.9.1.1/24"]
def sh(*argv):
    return subprocess.run([ip, *argv], capture_output=True, text=True, check=True).stdout
for dev in ("ours", "theirs"):
    sh("tuntap", "add", "dev", dev, "mode", "tun")
iproute.addrs_add("ours", addresses)
iproute.link_set("ours", mtu=1380, up=True)
for a in addresses:
    sh("-6" if ":" in a else "-4", "addr", "add", a, "dev", "theirs", *(["nodad"] if ":" in a else []))
sh("link", "set", "dev", "theirs", "mtu", "1380", "up")
shown = {d["ifname"]: d for d in json.loads(sh("-j", "addr"))}
errors = []
for call in (lambda: iproute.addrs_add("ours", ["10.9.0.2/32"]), lambda: iproute.link_set("nope", mtu=1300),
             lambda: iproute.link_set("ours", mtu=10)):
    try:
        call()
    except PlatformError as e:
        errors.append(str(e))
mtu, exists = iproute.link_mtu("ours"), iproute.link_exists("ours")
iproute.addrs_del("ours", ["10.9.0.2/32", "10.9.9.9/32"])  # one of them never there
after_del = [a["local"] for a in json.loads(sh("-j", "addr", "show", "dev", "ours"))[0]["addr_info"]]
iproute.link_delete("ours")
iproute.link_delete("ours")  # gone already: fine
print(json.dumps({"shown": shown, "errors": errors, "mtu": mtu, "exists": exists, "after_del": after_del,
                  "gone": not iproute.link_exists("ours")}))
"""


def _comparable(link: dict[str, object]) -> object:
    keep = ("flags", "mtu", "operstate", "link_type")
    addresses = [
        {k: v for k, v in a.items() if k not in ("label",)}
        for a in link["addr_info"]  # type: ignore[attr-defined]
    ]
    return {k: link.get(k) for k in keep}, addresses


def test_links_and_addresses_through_pyroute2_match_ip() -> None:
    with namespaces("ipr") as (ns,):
        out = json.loads(ns.exec(sys.executable, "-c", CODE, IP).stdout)
    ours, theirs = out["shown"]["ours"], out["shown"]["theirs"]
    assert _comparable(ours) == _comparable(theirs)
    assert out["errors"] == [
        "cannot add address 10.9.0.2/32 to ours: File exists",
        'cannot find device "nope"',
        "cannot set ours mtu 10: Invalid argument",
    ]
    assert out["mtu"] == 1380 and out["exists"] is True
    assert out["after_del"] == ["10.9.1.1", "fd09::2"]
    assert out["gone"] is True
