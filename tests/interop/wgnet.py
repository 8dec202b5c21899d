"""WireGuard interfaces in test namespaces: wireguard-go or wgdesk-engine, configured with `wg`.

`Topology` builds T1 (two namespaces joined by a veth, IPv4 + IPv6 outer addresses) and puts one
WireGuard interface in each; `WgInterface` wraps one implementation process and the `wg` tool.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.netns import IP, Namespace, socket_path, unique_name, veth, wait_for

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
WG = shutil.which("wg") or "/usr/bin/wg"
WIREGUARD_GO = shutil.which("wireguard-go") or "/usr/bin/wireguard-go"
WGDESK_ENGINE = str(VENV_BIN / "wgdesk-engine")
IMPLEMENTATIONS = {"go": WIREGUARD_GO, "wgdesk": WGDESK_ENGINE}

OUTER4 = ("10.101.0.1", "10.101.0.2")
OUTER6 = ("fd00:101::1", "fd00:101::2")
INNER4 = ("10.201.0.1", "10.201.0.2")
INNER6 = ("fd00:201::1", "fd00:201::2")
PORTS = (51820, 51821)


def genkey() -> tuple[str, str]:
    """A fresh (private, public) key pair in base64, from `wg genkey` / `wg pubkey`."""
    private = subprocess.run([WG, "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    public = subprocess.run(
        [WG, "pubkey"], input=private, capture_output=True, text=True, check=True
    ).stdout.strip()
    return private, public


def genpsk() -> str:
    return subprocess.run([WG, "genpsk"], capture_output=True, text=True, check=True).stdout.strip()


def engine_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    env["WG_PROCESS_FOREGROUND"] = "1"
    env["LOG_LEVEL"] = "verbose"
    env.update(extra)
    return env


class WgInterface:
    """One WireGuard interface served by `impl` ("go" or "wgdesk") inside `ns`."""

    def __init__(
        self,
        ns: Namespace,
        impl: str,
        workdir: Path,
        env: dict[str, str] | None = None,
        launcher: Sequence[str] = (),
    ) -> None:
        self.ns = ns
        self.impl = impl
        self.name = unique_name("wg")
        self.workdir = workdir
        self.private, self.public = genkey()
        self.log_path = workdir / f"{self.name}-{impl}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        argv = [*launcher, IMPLEMENTATIONS[impl], "-f", self.name]
        self.proc = ns.popen(*argv, env=engine_env(**(env or {})), stdout=self._log, stderr=subprocess.STDOUT)
        if not wait_for(lambda: socket_path(self.name).exists() or self.proc.poll() is not None, 15):
            raise RuntimeError(f"{impl} did not create {socket_path(self.name)}:\n{self.log()}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"{impl} exited with {self.proc.returncode}:\n{self.log()}")
        self.key_file = workdir / f"{self.name}.key"
        self.key_file.write_text(self.private + "\n")
        self.key_file.chmod(0o600)

    # -- the wg tool ---------------------------------------------------------------------------

    def wg(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        result = self.ns.exec(WG, *args, check=False, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"wg {' '.join(args)} failed ({result.returncode}): {result.stderr}\n"
                f"--- {self.impl} log ---\n{self.log()[-3000:]}"
            )
        return result

    def set(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.wg("set", self.name, *args, check=check)

    def set_private_key(self, private: str) -> None:
        self.private = private
        self.public = subprocess.run(
            [WG, "pubkey"], input=private, capture_output=True, text=True, check=True
        ).stdout.strip()
        self.key_file.write_text(private + "\n")
        self.set("private-key", str(self.key_file))

    def show(self, what: str = "") -> str:
        return self.wg("show", self.name, *([what] if what else [])).stdout

    def dump(self) -> dict[str, dict[str, str]]:
        """`wg show IF dump` as {public key: {endpoint, allowed_ips, handshake, rx, tx, keepalive, psk}}."""
        lines = self.wg("show", self.name, "dump").stdout.splitlines()
        peers: dict[str, dict[str, str]] = {}
        for line in lines[1:]:
            pub, psk, endpoint, allowed, handshake, rx, tx, keepalive = line.split("\t")
            peers[pub] = {
                "psk": psk,
                "endpoint": endpoint,
                "allowed_ips": allowed,
                "handshake": handshake,
                "rx": rx,
                "tx": tx,
                "keepalive": keepalive,
            }
        return peers

    def peer(self, public: str) -> dict[str, str]:
        return self.dump()[public]

    # -- the interface -------------------------------------------------------------------------

    def address(self, *cidrs: str) -> None:
        for cidr in cidrs:
            self.ns.exec(IP, "addr", "add", cidr, "dev", self.name, *(["nodad"] if ":" in cidr else []))

    def up(self, mtu: int | None = None) -> None:
        if mtu:
            self.ns.exec(IP, "link", "set", self.name, "mtu", str(mtu))
        self.ns.exec(IP, "link", "set", self.name, "up")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.impl} ignored signal {sig}:\n{self.log()[-3000:]}") from None
        self._log.close()
        return self.proc.returncode


@dataclass
class Topology:
    """T1: namespaces `na`, `nb` joined by a veth; WireGuard interfaces `a`, `b` peered with each other."""

    na: Namespace
    nb: Namespace
    a: WgInterface
    b: WgInterface
    veth: tuple[str, str]
    psk: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def sides(self) -> tuple[tuple[Namespace, WgInterface, int], tuple[Namespace, WgInterface, int]]:
        return (self.na, self.a, 0), (self.nb, self.b, 1)

    def ping(
        self,
        src: int,
        dst_addr: str,
        count: int = 3,
        deadline: float = 10,
        interval: float = 0.2,
        size: int | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        ns = (self.na, self.nb)[src]
        args = ["ping", "-n", "-c", str(count), "-i", str(interval), "-w", str(deadline)]
        if size is not None:
            args += ["-s", str(size)]
        result = ns.exec(*args, dst_addr, check=False, timeout=deadline + 10)
        if check and result.returncode != 0:
            raise AssertionError(
                f"ping {dst_addr} from side {src} failed:\n{result.stdout}{result.stderr}\n"
                f"--- a ({self.a.impl}) ---\n{self.a.log()[-2500:]}\n"
                f"--- b ({self.b.impl}) ---\n{self.b.log()[-2500:]}"
            )
        return result


def build(
    na: Namespace,
    nb: Namespace,
    impl_a: str,
    impl_b: str,
    workdir: Path,
    *,
    outer: str = "4",
    psk: bool = False,
    endpoints: Sequence[int] = (0, 1),
    keepalive: int = 0,
    env_a: dict[str, str] | None = None,
    env_b: dict[str, str] | None = None,
    launcher_a: Sequence[str] = (),
    launcher_b: Sequence[str] = (),
) -> Topology:
    """Join `na`/`nb`, start the two implementations, and peer them.

    `outer` is "4" or "6" (the family of the endpoints); `endpoints` lists the sides that are told
    the other's endpoint (a side without one can only answer, which pins who initiates).
    """
    ifs = veth(na, nb, (f"{OUTER4[0]}/24", f"{OUTER6[0]}/64"), (f"{OUTER4[1]}/24", f"{OUTER6[1]}/64"))
    a = WgInterface(na, impl_a, workdir, env_a, launcher_a)
    b = WgInterface(nb, impl_b, workdir, env_b, launcher_b)
    key = genpsk() if psk else None
    psk_file = workdir / "psk"
    if key:
        psk_file.write_text(key + "\n")
    outer_addr = OUTER4 if outer == "4" else OUTER6
    for me, other, i in ((a, b, 0), (b, a, 1)):
        j = 1 - i
        args = [
            "private-key",
            str(me.key_file),
            "listen-port",
            str(PORTS[i]),
            "peer",
            other.public,
            "allowed-ips",
            f"{INNER4[j]}/32,{INNER6[j]}/128",
        ]
        if i in endpoints:
            host = outer_addr[j]
            args += ["endpoint", f"[{host}]:{PORTS[j]}" if ":" in host else f"{host}:{PORTS[j]}"]
        if key:
            args += ["preshared-key", str(psk_file)]
        if keepalive:
            args += ["persistent-keepalive", str(keepalive)]
        me.set(*args)
        me.address(f"{INNER4[i]}/24", f"{INNER6[i]}/64")
        me.up()
    return Topology(na, nb, a, b, ifs, key)


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="wgdesk-interop-"))


def wait_handshake(iface: WgInterface, public: str, timeout: float = 10) -> int:
    """Wait until `iface` reports a handshake with `public`; returns its time (Unix seconds)."""
    assert wait_for(lambda: iface.peer(public)["handshake"] != "0", timeout), iface.show()
    return int(iface.peer(public)["handshake"])


def now() -> float:
    return time.time()


def _listening(ns: Namespace, port: int) -> bool:
    out = ns.exec("ss", "-Hltn", f"sport = :{port}", check=False).stdout
    return bool(out.strip())


def iperf(
    topo: Topology, client: int, tcp_addr: str, udp_addr: str, seconds: int = 3, udp_rate: str = "20M"
) -> dict[str, float]:
    """Run iperf3 TCP (to `tcp_addr`) and UDP (to `udp_addr`) at the same time from side `client`.

    Returns bytes and bits/s received for each, and the UDP loss in percent.
    """
    import json

    server_ns = (topo.na, topo.nb)[1 - client]
    client_ns = (topo.na, topo.nb)[client]
    servers = [
        server_ns.popen(
            "iperf3", "-s", "-1", "-p", str(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for port in (5201, 5202)
    ]
    assert wait_for(lambda: _listening(server_ns, 5201) and _listening(server_ns, 5202), 10)
    tcp = client_ns.popen(
        "iperf3",
        "-c",
        tcp_addr,
        "-p",
        "5201",
        "-t",
        str(seconds),
        "-J",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    udp = client_ns.popen(
        "iperf3",
        "-c",
        udp_addr,
        "-p",
        "5202",
        "-t",
        str(seconds),
        "-u",
        "-b",
        udp_rate,
        "-l",
        "1200",
        "-J",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out_tcp, _ = tcp.communicate(timeout=seconds + 30)
    out_udp, _ = udp.communicate(timeout=seconds + 30)
    for server in servers:
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    rt, ru = json.loads(out_tcp), json.loads(out_udp)
    assert "error" not in rt, rt.get("error")
    assert "error" not in ru, ru.get("error")
    return {
        "tcp_bytes": rt["end"]["sum_received"]["bytes"],
        "tcp_bps": rt["end"]["sum_received"]["bits_per_second"],
        "udp_bytes": ru["end"]["sum"]["bytes"],
        "udp_bps": ru["end"]["sum"]["bits_per_second"],
        "udp_lost_percent": ru["end"]["sum"]["lost_percent"],
    }
