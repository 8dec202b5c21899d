"""`WG_QUICK_USERSPACE_IMPLEMENTATION=wgdesk-engine wg-quick up ./IF.conf` inside a namespace.

wg-quick finds no kernel WireGuard, starts `wgdesk-engine IF` (daemonising, like wireguard-go),
configures it with `wg setconf`, adds addresses, MTU and routes; `wg-quick down` deletes the link,
and the engine notices, removes its socket and exits. No DNS= line, so resolv.conf is not touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.wgnet import VENV_BIN, WgInterface, genkey
from tests.netns import IP, Namespace, namespaces, socket_path, unique_name, veth, wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def pair() -> Iterator[tuple[Namespace, Namespace]]:
    with namespaces("wq", "wr") as (client, server):
        veth(client, server, ("10.101.0.1/24",), ("10.101.0.2/24",))
        yield client, server


def _engines(ns: Namespace) -> list[int]:
    found = []
    for pid in ns.pids():
        try:
            if b"wgdesk" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except FileNotFoundError:
            pass
    return found


def test_wg_quick_up_and_down(pair: tuple[Namespace, Namespace], tmp_path: Path) -> None:
    client, server_ns = pair
    server = WgInterface(server_ns, "go", tmp_path)
    name = unique_name("wq")
    private, public = genkey()
    server.set(
        "private-key",
        str(server.key_file),
        "listen-port",
        "51821",
        "peer",
        public,
        "allowed-ips",
        "10.203.0.2/32,fd00:203::2/128",
    )
    server.address("10.203.0.1/24", "fd00:203::1/64")
    server.up()
    conf = tmp_path / f"{name}.conf"
    conf.write_text(
        "[Interface]\n"
        f"PrivateKey = {private}\n"
        "Address = 10.203.0.2/24, fd00:203::2/64\n"
        "ListenPort = 51820\n\n"
        "[Peer]\n"
        f"PublicKey = {server.public}\n"
        "Endpoint = 10.101.0.2:51821\n"
        "AllowedIPs = 10.203.0.0/24, fd00:203::/64\n"
    )
    conf.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in ("WG_PROCESS_FOREGROUND", "LOG_LEVEL")}
    env["PATH"] = f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin"
    env["WG_QUICK_USERSPACE_IMPLEMENTATION"] = "wgdesk-engine"

    up = client.exec("wg-quick", "up", str(conf), env=env, check=False, timeout=60)
    assert up.returncode == 0, up.stderr
    assert f"[#] wgdesk-engine {name}" in up.stderr
    assert len(_engines(client)) == 1
    link = client.exec(IP, "-o", "link", "show", name).stdout
    assert "mtu 1420" in link and "UP" in link
    client.exec("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "10.203.0.1")
    client.exec("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "fd00:203::1")
    shown = client.exec("wg", "show", name).stdout
    assert "latest handshake" in shown and f"peer: {server.public}" in shown
    assert client.exec("wg", "showconf", name).stdout.count("[Peer]") == 1

    down = client.exec("wg-quick", "down", str(conf), env=env, check=False, timeout=60)
    assert down.returncode == 0, down.stderr
    assert wait_for(lambda: not _engines(client), 10)
    assert not socket_path(name).exists()
    assert client.exec(IP, "link", "show", name, check=False).returncode != 0
    assert "10.203.0" not in client.exec(IP, "route").stdout
