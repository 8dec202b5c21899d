"""Network namespaces for tests: unique names per run, always removed afterwards.

Tests send traffic only inside namespaces created here. Nothing in this module touches the
routes, rules, firewall or DNS of the namespace the test runner itself lives in.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

IP = shutil.which("ip") or "/usr/sbin/ip"
_counter = itertools.count()
RUN_ID = f"{os.getpid() % 100000:05d}"


def unique_name(prefix: str) -> str:
    """A name unique to this test run, at most 15 characters (an interface name limit)."""
    name = f"{prefix}{RUN_ID}{next(_counter)}"
    if len(name) > 15:
        raise ValueError(f"name too long for an interface: {name}")
    return name


def run(argv: Sequence[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


class Namespace:
    """One network namespace with loopback up; `exec` runs a command inside it."""

    def __init__(self, prefix: str = "wgt") -> None:
        self.name = unique_name(prefix)
        run([IP, "netns", "add", self.name])
        self.procs: list[subprocess.Popen[bytes]] = []
        self.exec(IP, "link", "set", "lo", "up")

    def argv(self, *args: str) -> list[str]:
        return [IP, "netns", "exec", self.name, *args]

    def exec(
        self, *args: str, check: bool = True, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), check=check, capture_output=True, text=True, timeout=timeout, env=env
        )

    def popen(self, *args: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.argv(*args), env=env, **kw)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        out = run([IP, "netns", "pids", self.name], check=False).stdout.split()
        return [int(p) for p in out if p.isdigit()]

    def delete(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in self.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run([IP, "netns", "del", self.name], check=False)


def veth(
    a: Namespace,
    b: Namespace,
    a_addrs: Sequence[str] = (),
    b_addrs: Sequence[str] = (),
    mtu: int | None = None,
) -> tuple[str, str]:
    """Join two namespaces with a veth pair; returns the interface names (in a, in b)."""
    ia, ib = unique_name("va"), unique_name("vb")
    run([IP, "link", "add", ia, "netns", a.name, "type", "veth", "peer", "name", ib, "netns", b.name])
    for ns, ifname, addrs in ((a, ia, a_addrs), (b, ib, b_addrs)):
        for addr in addrs:
            ns.exec(IP, "addr", "add", addr, "dev", ifname, *(["nodad"] if ":" in addr else []))
        if mtu:
            ns.exec(IP, "link", "set", ifname, "mtu", str(mtu))
        ns.exec(IP, "link", "set", ifname, "up")
    return ia, ib


@contextmanager
def namespaces(*prefixes: str) -> Iterator[list[Namespace]]:
    """Create namespaces, yield them, and delete them whatever happens."""
    made: list[Namespace] = []
    try:
        for p in prefixes:
            made.append(Namespace(p))
        yield made
    finally:
        for ns in reversed(made):
            ns.delete()


def wait_for(predicate: object, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return bool(predicate())  # type: ignore[operator]


def socket_path(ifname: str) -> Path:
    return Path("/var/run/wireguard") / f"{ifname}.sock"
