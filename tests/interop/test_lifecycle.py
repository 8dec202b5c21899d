"""Scenario 12 (TESTING.md §4): 50 up/down cycles leave nothing behind.

In-process: 50 engines created, configured, used and stopped in one Python process keep its file
descriptor and thread counts flat. As processes: 50 `wgdesk-engine` runs, stopped in turn by SIGTERM,
SIGINT and `ip link del`, leave no process, link, socket, route or rule behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.wgnet import WG, WGDESK_ENGINE, engine_env
from tests.netns import IP, RUN_ID, Namespace, namespaces, socket_path, unique_name, veth, wait_for

pytestmark = pytest.mark.root

CYCLES = 50
DRIVER = str(Path(__file__).with_name("lifecycle_driver.py"))
ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture
def ns() -> Iterator[Namespace]:
    with namespaces("wl", "wm") as (n, other):
        link, _ = veth(n, other, ("10.99.0.1/24",), ("10.99.0.2/24",))

        def settled() -> bool:  # the kernel adds the veth's link-local address (and its route) later
            out = n.exec(IP, "-6", "addr", "show", "dev", link, "scope", "link").stdout
            return "fe80" in out and "tentative" not in out

        assert wait_for(settled, 10)
        yield n


def _state(ns: Namespace) -> dict[str, object]:
    return {
        "links": ns.exec(IP, "-o", "link", "show").stdout.count("\n"),
        "routes4": ns.exec(IP, "-4", "route", "show", "table", "all").stdout,
        "routes6": ns.exec(IP, "-6", "route", "show", "table", "all").stdout,
        "rules4": ns.exec(IP, "-4", "rule").stdout,
        "rules6": ns.exec(IP, "-6", "rule").stdout,
        "udp": ns.exec("ss", "-Hanu").stdout,
        "unix": ns.exec("ss", "-Hanx").stdout.count("/var/run/wireguard"),
    }


def test_fifty_cycles_in_one_process_leak_no_fds_or_threads(ns: Namespace) -> None:
    key, peer = os.urandom(32).hex(), os.urandom(32).hex()
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = ns.exec(sys.executable, DRIVER, f"lc{RUN_ID}", str(CYCLES), key, peer, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts["after"] == counts["before"], counts


def test_fifty_engine_runs_leave_nothing_behind(ns: Namespace) -> None:
    before = _state(ns)
    key_file = Path(f"/tmp/wgdesk-lifecycle-{RUN_ID}.key")
    key_file.write_text(subprocess.run([WG, "genkey"], capture_output=True, text=True).stdout)
    try:
        names = []
        for i in range(CYCLES):
            name = unique_name("wl")
            names.append(name)
            proc = ns.popen(WGDESK_ENGINE, "-f", name, env=engine_env(LOG_LEVEL="error"))
            assert wait_for(lambda n=name: socket_path(n).exists(), 15), name
            ns.exec(WG, "set", name, "private-key", str(key_file), "listen-port", "0")
            ns.exec(IP, "addr", "add", "10.97.0.1/24", "dev", name)
            ns.exec(IP, "link", "set", name, "up")
            how = i % 3
            if how == 0:
                proc.send_signal(signal.SIGTERM)
            elif how == 1:
                proc.send_signal(signal.SIGINT)
            else:
                ns.exec(IP, "link", "del", name)
            assert proc.wait(10) == 0, (name, how)
        assert ns.pids() == []
        assert _state(ns) == before
        leftovers = [n for n in names if socket_path(n).exists() or Path(f"/sys/class/net/{n}").exists()]
        assert leftovers == []
    finally:
        key_file.unlink()
