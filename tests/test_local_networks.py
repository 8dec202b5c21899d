"""`platforms.local_networks()` and the linter's `overlap-lan`, in a namespace with known interfaces."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.netns import IP, namespaces, run, unique_name, veth

pytestmark = pytest.mark.root

PYTHON = sys.executable
WGDESKCTL = str(Path(sys.executable).parent / "wgdeskctl")
PEER = "GS0v7jt5I//6d0J95VmF+w4czLnO5PaAHC3SCPiFbUk="
KEY = "2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y="


def test_only_up_interfaces_with_a_link_layer_count() -> None:
    with namespaces("ln", "lm") as (ns, other):
        veth(ns, other, ("192.168.77.10/24", "fd77::10/64", "10.9.9.9/32"), ("192.168.77.11/24",))
        down, peer = unique_name("dn"), unique_name("dp")
        run([IP, "link", "add", down, "netns", ns.name, "type", "veth", "peer", peer, "netns", other.name])
        ns.exec(IP, "addr", "add", "172.30.0.1/16", "dev", down)  # down: not a network we are on
        tun = unique_name("tn")
        ns.exec(IP, "tuntap", "add", "dev", tun, "mode", "tun")
        ns.exec(IP, "addr", "add", "10.66.0.2/24", "dev", tun)  # a tunnel's own address, no link layer
        ns.exec(IP, "link", "set", tun, "up")
        out = ns.exec(
            PYTHON, "-c", "from wgdesk.platforms import local_networks; print(*local_networks())"
        ).stdout.split()
        # not: lo's 127.0.0.0/8 and ::1, the /32 host address, fe80::/64, the link that is down, the TUN
        assert out == ["192.168.77.0/24", "fd77::/64"]
        # positive control: once that link is up, its network counts
        ns.exec(IP, "link", "set", down, "up")
        out = ns.exec(
            PYTHON, "-c", "from wgdesk.platforms import local_networks; print(*local_networks())"
        ).stdout.split()
        assert sorted(out) == ["172.30.0.0/16", "192.168.77.0/24", "fd77::/64"]


def test_check_warns_when_allowed_ips_take_over_the_lan(tmp_path: Path) -> None:
    text = (
        f"[Interface]\nPrivateKey = {KEY}\nAddress = 10.66.0.2/32\n\n"
        f"[Peer]\nPublicKey = {PEER}\nAllowedIPs = 192.168.77.0/25, 10.0.0.0/8\n"
        "Endpoint = 198.51.100.1:51820\n"
    )
    path = tmp_path / "office.conf"
    path.write_text(text)
    path.chmod(0o600)
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    with namespaces("ln", "lm") as (ns, other):
        before = ns.exec(WGDESKCTL, "check", str(path), env=env).stdout
        assert "overlap-lan" not in before  # no LAN here yet
        veth(ns, other, ("192.168.77.10/24",), ("192.168.77.11/24",))
        after = ns.exec(WGDESKCTL, "check", str(path), env=env).stdout
    assert (
        "warning: AllowedIPs 192.168.77.0/25 lies inside the local network 192.168.77.0/24: "
        "those local hosts become unreachable while the tunnel is up [overlap-lan]"
    ) in after
    assert after.count("[overlap-lan]") == 1  # 10.0.0.0/8 is no local network
