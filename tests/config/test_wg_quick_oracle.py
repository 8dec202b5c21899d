"""wg-quick's own keys (`Address`, `MTU`, `Table`) against the real `wg-quick up`, in a network namespace
this test creates (with wireguard-go as the interface, since the kernel has no WireGuard module).

The parser should accept a value exactly when `wg-quick up` (really: `ip`) does, and mean the same
thing by it; the deliberate differences are listed and checked to still be differences.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from ipaddress import ip_interface
from pathlib import Path

import pytest

from tests.netns import Namespace, namespaces, unique_name
from wgdesk.config import ConfigError, parse

K = "2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y="
P = "NKODD3gqzjAFl5CBPuaiq+vn5BBAW6d9LN/QYCd2QjQ="  # not the public key of K: wireguard-go drops such a peer

CASES = [
    ("Address", "10.77.0.2/24"),
    ("Address", "10.77.0.2"),
    ("Address", "fd77::2/64"),
    ("Address", "10.77.0.2/24, fd77::2/64"),
    ("Address", "10.77.0.2/24 10.77.1.2/24"),
    ("Address", "10.77.0.300/24"),
    ("Address", "10.77.0.2/33"),
    ("Address", "fd77::2/129"),
    ("Address", "10.77.0.2/024"),
    ("Address", "010.77.0.2/24"),
    ("Address", "10.77/16"),
    ("Address", "10.77.0.2/"),
    ("MTU", "1280"),
    ("MTU", "68"),
    ("MTU", "65535"),
    ("MTU", "67"),
    ("MTU", "65536"),
    ("MTU", "huge"),
    ("MTU", "01280"),
    ("MTU", "01200"),
    ("MTU", "0x500"),
    ("Table", "0042"),
    ("Table", "0x10"),
    ("Table", "off"),
    ("Table", "auto"),
    ("Table", "1234"),
    ("Table", "main"),
    ("Table", "auto off"),
]

# Values `ip` takes that wgdesk refuses, because `ip` reads them surprisingly (strtoul base 0,
# BSD inet_aton forms) and a user almost certainly meant something else.
STRICTER = {
    ("Address", "10.77.0.2/024"),
    ("Address", "010.77.0.2/24"),
    ("Address", "10.77/16"),
    ("MTU", "01200"),  # octal: 640 (01280 is not octal, so ip refuses that one too)
    ("MTU", "0x500"),
    ("Table", "0042"),  # octal: 34
    ("Table", "0x10"),
}


@pytest.fixture(scope="module")
def namespace() -> Iterator[Namespace]:
    with namespaces("wqo") as (ns,):
        yield ns


def wg_quick_up(ns: Namespace, directory: Path, key: str, value: str) -> tuple[bool, str]:
    """Bring a tunnel up with wg-quick in `ns`; returns (accepted, addresses shown by `ip`), and takes it
    down again."""
    name = unique_name("wq")
    path = directory / f"{name}.conf"
    path.write_text(
        f"[Interface]\nPrivateKey = {K}\n{key} = {value}\n\n"
        f"[Peer]\nPublicKey = {P}\nAllowedIPs = 10.78.0.0/24\n"
    )
    path.chmod(0o600)
    env = {"PATH": os.environ["PATH"], "WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go"}
    up = ns.exec("wg-quick", "up", str(path), check=False, env=env)
    if up.returncode != 0:
        ns.exec("ip", "link", "delete", name, check=False)
        return False, up.stderr
    shown = ns.exec("ip", "-o", "address", "show", "dev", name).stdout
    shown += ns.exec("ip", "-o", "route", "show", "table", "all", "10.78.0.0/24").stdout
    ns.exec("wg-quick", "down", str(path), check=False, env=env)
    return True, shown


@pytest.mark.root
@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_same_verdict_and_meaning_as_wg_quick(
    namespace: Namespace, tmp_path: Path, key: str, value: str
) -> None:
    text = f"[Interface]\n{key} = {value}\n"
    try:
        cfg = parse(text)
    except ConfigError:
        cfg = None
    accepted, shown = wg_quick_up(namespace, tmp_path, key, value)
    if (key, value) in STRICTER:
        assert accepted and cfg is None, shown
        return
    assert accepted == (cfg is not None), shown
    if cfg is not None and key == "Address":
        # the addresses the kernel got are the ones the model holds
        kernel = {
            ip_interface(line.split()[3])
            for line in shown.splitlines()
            if line.split()[2:3] in (["inet"], ["inet6"])
        }
        kernel = {a for a in kernel if not a.ip.is_link_local}
        assert kernel == set(cfg.interface.addresses)


def test_the_wg_quick_binary_is_the_real_one() -> None:
    assert "wg-quick" in subprocess.run(["wg-quick", "--help"], capture_output=True, text=True).stderr


@pytest.mark.root
@pytest.mark.parametrize(
    ("value", "table"), [("off", None), ("auto", "main"), ("1234", "1234"), ("main", "main")]
)
def test_table_means_what_wg_quick_does(
    namespace: Namespace, tmp_path: Path, value: str, table: str | None
) -> None:
    assert parse(f"[Interface]\nTable = {value}\n").interface.table == value
    accepted, shown = wg_quick_up(namespace, tmp_path, "Table", value)
    assert accepted
    routes = [line for line in shown.splitlines() if line.startswith("10.78.0.0/24")]
    if table is None:
        assert routes == []
    else:
        (route,) = routes
        assert ("table " + table) in route or (table == "main" and " table " not in route)
