"""T2 lab for the helper: client / router / server namespaces, a wireguard-go server, and the
helper itself running inside the client namespace (and its own mount namespace, with a private
/etc/resolv.conf bind-mounted over the real one), so nothing on the host changes.

    client ns  cl-veth 10.98.1.2 ── 10.98.1.1 router ns 10.98.2.1 ── 10.98.2.2 server ns
                fd98:1::2              fd98:1::1   fd98:2::1          fd98:2::2
                                                                      wireguard-go :51820
                                                                      tunnel 10.97.0.1 fd97::1
                                                                      "public" 198.51.100.7 (lo)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.as_user import argv_as
from tests.netns import IP, Namespace, namespaces, socket_path, unique_name, veth, wait_for
from wgdesk.client import HelperClient

WG = shutil.which("wg") or "/usr/bin/wg"
WIREGUARD_GO = shutil.which("wireguard-go") or "/usr/bin/wireguard-go"
NFT = shutil.which("nft") or "/usr/sbin/nft"
TCPDUMP = shutil.which("tcpdump") or "/usr/bin/tcpdump"
PYTHON = sys.executable
WGDESK_ENGINE = str(Path(sys.executable).parent / "wgdesk-engine")
HELPER = str(Path(sys.executable).parent / "wgdesk-helper")  # the console script, as installed
ENGINES = {"wireguard-go": WIREGUARD_GO, "wgdesk-engine": WGDESK_ENGINE}
ROOT = Path(__file__).resolve().parents[2]

CLIENT_LAN = ("10.98.1.2/24", "fd98:1::2/64")
ROUTER_LAN = ("10.98.1.1/24", "fd98:1::1/64")
ROUTER_WAN = ("10.98.2.1/24", "fd98:2::1/64")
SERVER_WAN = ("10.98.2.2/24", "fd98:2::2/64")
SERVER_TUNNEL = ("10.97.0.1", "fd97::1")
CLIENT_TUNNEL = ("10.97.0.2", "fd97::2")
PUBLIC = "198.51.100.7"
PUBLIC6 = "2001:db8:77::7"

# A "who am I" server for `PYTHON -I -c WHOAMI TCP_PORT UDP_PORT`: over TCP and UDP, IPv4 and IPv6, it answers
# with the address it sees the caller come from; prints "ready" once listening.
WHOAMI = """
import socket, sys, threading
def tcp(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, int(sys.argv[1])))
    s.listen(16)
    while True:
        c, peer = s.accept()
        c.sendall(peer[0].encode() + b"\\n")
        c.close()
def udp(fam, addr):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, int(sys.argv[2])))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(peer[0].encode(), peer)
for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    threading.Thread(target=tcp, args=(fam, addr), daemon=True).start()
    threading.Thread(target=udp, args=(fam, addr), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""
SERVER_PORT = 51820
RP_FILTER = 2  # the client namespace's IPv4 reverse-path filter: loose


def genkey() -> tuple[str, str]:
    private = subprocess.run([WG, "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    public = subprocess.run(
        [WG, "pubkey"], input=private, capture_output=True, text=True, check=True
    ).stdout.strip()
    return private, public


class Lab:
    """The three namespaces and the WireGuard server; see the module docstring."""

    def __init__(self, client: Namespace, router: Namespace, server: Namespace, workdir: Path) -> None:
        self.client, self.router, self.server = client, router, server
        self.workdir = workdir
        # A new namespace inherits IPv4 rp_filter from the host's (net.core.devconf_inherit_init_net=0), so
        # the lab would behave differently on a host with strict filtering (1), where a first handshake
        # can be dropped (see test_tunnels' strict rp_filter test). Pinned to loose (2), the systemd default,
        # before the veth exists so it takes "default" too.
        for key in ("all", "default"):
            client.exec("sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter={RP_FILTER}")
        self.client_if, self.router_lan_if = veth(client, router, CLIENT_LAN, ROUTER_LAN)
        self.router_wan_if, self.server_if = veth(router, server, ROUTER_WAN, SERVER_WAN)
        router.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
        router.exec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        client.exec(IP, "route", "add", "default", "via", ROUTER_LAN[0].split("/")[0])
        client.exec(IP, "-6", "route", "add", "default", "via", ROUTER_LAN[1].split("/")[0])
        server.exec(IP, "route", "add", "default", "via", ROUTER_WAN[0].split("/")[0])
        server.exec(IP, "-6", "route", "add", "default", "via", ROUTER_WAN[1].split("/")[0])
        server.exec(IP, "addr", "add", f"{PUBLIC}/32", "dev", "lo")
        server.exec(IP, "addr", "add", f"{PUBLIC6}/128", "dev", "lo")
        router.exec(IP, "route", "add", f"{PUBLIC}/32", "via", SERVER_WAN[0].split("/")[0])
        router.exec(IP, "-6", "route", "add", f"{PUBLIC6}/128", "via", SERVER_WAN[1].split("/")[0])
        self.server_private, self.server_public = genkey()
        self.client_private, self.client_public = genkey()
        self.server_wg = unique_name("wgs")
        self._server_log = open(workdir / "server-wg.log", "wb")  # noqa: SIM115
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "WG_PROCESS_FOREGROUND": "1", "LOG_LEVEL": "verbose"}
        self.server_proc = server.popen(
            WIREGUARD_GO, "-f", self.server_wg, env=env, stdout=self._server_log, stderr=subprocess.STDOUT
        )
        assert wait_for(lambda: socket_path(self.server_wg).exists(), 15), "server wireguard-go did not start"
        key = workdir / "server.key"
        key.write_text(self.server_private + "\n")
        key.chmod(0o600)
        server.exec(
            WG,
            "set",
            self.server_wg,
            "listen-port",
            str(SERVER_PORT),
            "private-key",
            str(key),
            "peer",
            self.client_public,
            "allowed-ips",
            f"{CLIENT_TUNNEL[0]}/32,{CLIENT_TUNNEL[1]}/128",
        )
        server.exec(IP, "addr", "add", f"{SERVER_TUNNEL[0]}/24", "dev", self.server_wg)
        server.exec(IP, "addr", "add", f"{SERVER_TUNNEL[1]}/64", "dev", self.server_wg, "nodad")
        server.exec(IP, "link", "set", self.server_wg, "up")
        self.helper: HelperProcess | None = None
        for ns in (client, router, server):
            assert wait_for(lambda ns=ns: _addresses_settled(ns), 10)

    def config(
        self,
        allowed: str = "10.97.0.0/24, fd97::/64",
        dns: str | None = None,
        extra_iface: str = "",
        extra_peer: str = "",
        keepalive: int | None = None,
    ) -> str:
        lines = [
            "[Interface]",
            f"PrivateKey = {self.client_private}",
            f"Address = {CLIENT_TUNNEL[0]}/32, {CLIENT_TUNNEL[1]}/128",
        ]
        if dns:
            lines.append(f"DNS = {dns}")
        if extra_iface:
            lines.append(extra_iface)
        lines += [
            "",
            "[Peer]",
            f"PublicKey = {self.server_public}",
            f"AllowedIPs = {allowed}",
            f"Endpoint = {SERVER_WAN[0].split('/')[0]}:{SERVER_PORT}",
        ]
        if keepalive is not None:
            lines.append(f"PersistentKeepalive = {keepalive}")
        if extra_peer:
            lines.append(extra_peer)
        return "\n".join(lines) + "\n"

    # --- system state of the client namespace -----------------------------------------------------

    def snapshot(self) -> dict[str, str]:
        """What up/down must leave byte-identical."""
        c = self.client
        snap = {
            "rule4": c.exec(IP, "-4", "rule", "show").stdout,
            "rule6": c.exec(IP, "-6", "rule", "show").stdout,
            "route4": c.exec(IP, "-4", "route", "show", "table", "all").stdout,
            "route6": c.exec(IP, "-6", "route", "show", "table", "all").stdout,
            "nft": c.exec(NFT, "list", "ruleset").stdout,
            "links": " ".join(sorted(json_links(c))),
        }
        if self.helper is not None:
            snap["resolv.conf"] = self.helper.resolv_conf.read_text()
        return snap

    def ping(self, target: str, count: int = 1, timeout: float = 2.0, attempts: int = 3) -> bool:
        """True if ``target`` answers from the client namespace (retried: a loaded CI machine may
        lose the first probes to a slow handshake)."""
        for _ in range(attempts):
            r = self.client.exec(
                "ping",
                "-n",
                "-c",
                str(count),
                "-W",
                str(timeout),
                "-i",
                "0.2",
                target,
                check=False,
                timeout=timeout * count + 10,
            )
            if r.returncode == 0:
                return True
        return False

    def start_helper(self, **kw: Any) -> HelperProcess:
        self.helper = HelperProcess(self, **kw)
        return self.helper


def _addresses_settled(ns: Namespace) -> bool:
    out = ns.exec(IP, "-6", "addr").stdout
    return "fe80" in out and "tentative" not in out


def json_links(ns: Namespace) -> list[str]:
    out = ns.exec(IP, "-j", "link", "show").stdout
    return [link["ifname"] for link in json.loads(out)]


class HelperProcess:
    """``wgdesk-helper`` inside the client namespace and a private mount namespace."""

    def __init__(
        self,
        lab: Lab,
        settings: str = "",
        engine: str = WIREGUARD_GO,
        state_dir: Path | None = None,
        resolv_conf: Path | None = None,
        nft: Path | None = None,
        program: tuple[str, ...] = (HELPER,),
    ) -> None:
        self.lab = lab
        self.program = program
        """What runs as the helper (the installed console script; a test may wrap it)."""
        self.dir = lab.workdir
        self.socket = self.dir / "run" / "helper.sock"
        self.state_dir = state_dir or self.dir / "state"
        self.config = self.dir / "helper.toml"
        # persistent state (the resolv.conf undo record, lockdown) in the lab's directory, never the host's;
        # cgroups of its own: the cgroup2 hierarchy is the machine's, and a helper of another test run that
        # shuts down removes a shared "wgdesk-bypass" while this one's nft rules name it
        defaults = {
            "persistent_dir": self.dir / "var",
            "lockdown_file": self.dir / "lib" / "lockdown.json",
            "split_tunnel_cgroup": f"wgdesk-test-{unique_name('x')}",
            "split_tunnel_include_cgroup": f"wgdesk-test-{unique_name('i')}",
        }
        own = "".join(f'{k} = "{v}"\n' for k, v in defaults.items() if f"{k} =" not in settings)
        self.config.write_text('dns_backend = "file"\n' + own + settings)
        self.engine = engine
        if resolv_conf is None:
            resolv_conf = self.dir / "resolv.conf"
            if not resolv_conf.exists():
                resolv_conf.write_text("# the lab's own resolv.conf\nnameserver 10.98.1.1\nsearch lab.test\n")
        self.resolv_conf = resolv_conf
        self.nft = nft
        """A program the helper finds as ``nft`` instead of the real one (a failure test)."""
        self.log_path = self.dir / "helper.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115
        hosts = self.dir / "hosts"  # the helper resolves endpoint names with the lab's own hosts file
        hosts.write_text(f"127.0.0.1 localhost\n{SERVER_WAN[0].split('/')[0]} vpn.lab.test\n")
        script = (
            'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && '
            '{ [ "$3" = - ] || mount --bind "$3" "$4"; } && shift 4 && exec "$@"'
        )
        argv = [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            str(self.resolv_conf),
            str(hosts),
            str(self.nft) if self.nft else "-",
            NFT,
            *self.program,
            "--socket",
            str(self.socket),
            "--state-dir",
            str(self.state_dir),
            "--config",
            str(self.config),
            "--engine",
            self.engine,
            "--log-level",
            "debug",
        ]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(ROOT)}
        self.proc = self.lab.client.popen(*argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        ok = wait_for(lambda: self._answers() or self.proc is None or self.proc.poll() is not None, 20)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError(f"helper did not start:\n{self.log()}")

    def _answers(self) -> bool:
        try:
            with HelperClient(self.socket, timeout=2) as c:
                c.version()
            return True
        except Exception:
            return False

    def client(self) -> HelperClient:
        return HelperClient(self.socket, timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pid(self) -> int:
        """The pid of the Python helper (the process `ip netns exec … unshare … sh` became)."""
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def lab() -> Iterator[Lab]:
    with (
        namespaces("hcl", "hrt", "hsv") as (client, router, server),
        tempfile.TemporaryDirectory(prefix="wgdesk-helper-") as tmp,
    ):
        os.chmod(tmp, 0o755)
        work = Path(tmp)
        the_lab = Lab(client, router, server, work)
        try:
            yield the_lab
        finally:
            if the_lab.helper is not None:
                the_lab.helper.stop()
            with suppress(Exception):
                subprocess.run(
                    [IP, "netns", "exec", server.name, IP, "link", "del", the_lab.server_wg],
                    capture_output=True,
                    check=False,
                )
            the_lab._server_log.close()


class Capture:
    """tcpdump in a namespace; `count()` stops it and returns how many packets matched.

    Stopping is deterministic on Ethernet links (veths): `count()` sends a sentinel frame (an
    experimental ethertype, a source MAC of its own) out of the interface, waits until tcpdump has
    written it, and only then stops tcpdump, which writes packets in order. A fixed pause before the
    stop lost packets a starved tcpdump had not read yet (5 of 15 stops at once under CPU starvation),
    which fails a positive control or, worse, hides a leak. The sentinel is filtered out again when
    the capture is read. Other links (a tunnel) still get the old fixed pause.
    """

    SENTINEL_TYPE = 0x88B5  # IEEE 802 local experimental ethertype

    def __init__(self, ns: Namespace, iface: str, bpf: str, workdir: Path) -> None:
        self.path = workdir / f"cap-{unique_name('c')}.pcap"
        self.ns, self.iface, self.bpf = ns, iface, bpf
        link = json.loads(ns.exec(IP, "-j", "link", "show", iface).stdout)[0]
        self.ethernet = link.get("link_type") == "ether"
        self.mac = "02:77:" + ":".join(f"{b:02x}" for b in os.urandom(4))
        capture_filter = f"({bpf}) or (ether proto {self.SENTINEL_TYPE} and ether src {self.mac})"
        self.proc = ns.popen(
            TCPDUMP,
            "-i",
            iface,
            "-n",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-w",
            str(self.path),
            capture_filter if self.ethernet else bpf,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        # tcpdump prints "listening on …" once the filter is attached
        line = self.proc.stderr.readline()
        assert b"listening" in line, line

    def _read(self, bpf: str) -> list[str]:
        out = subprocess.run(
            [TCPDUMP, "-n", "-r", str(self.path), bpf], capture_output=True, text=True, check=False
        )
        return [ln for ln in out.stdout.splitlines() if ln.strip()]

    def _sentinel_written(self) -> bool:
        return bool(self._read(f"ether proto {self.SENTINEL_TYPE} and ether src {self.mac}"))

    def count(self) -> int:
        if self.proc.poll() is None:
            if self.ethernet:
                self.ns.exec(PYTHON, "-I", "-c", SENTINEL, self.iface, self.mac, str(self.SENTINEL_TYPE))
                assert wait_for(self._sentinel_written, 30), "tcpdump did not write the sentinel frame"
            else:
                time.sleep(0.3)
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(10)
        return len(self.lines())

    def lines(self) -> list[str]:
        return self._read(self.bpf)


SENTINEL = """
import socket, sys
iface, mac, ethertype = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
s.send(b"\\xff" * 6 + mac + ethertype.to_bytes(2, "big") + b"wgdesk capture sentinel".ljust(46, b"\\0"))
"""


PROBE = """
import socket, sys
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
for _ in range(int(sys.argv[4]) if len(sys.argv) > 4 else 3):
    if kind == "udp":
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            s.sendto(b"wgdesk-probe", (host, port))
        except OSError:
            pass
    else:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect((host, port))
        except OSError:
            pass
    s.close()
"""


def probe(ns: Namespace, kind: str, host: str, port: int, count: int = 3, user: str | None = None) -> None:
    """Send ``count`` UDP datagrams or TCP SYNs from ``ns`` (optionally as an unprivileged user)."""
    argv = [PYTHON, "-I", "-c", PROBE, kind, host, str(port), str(count)]
    if user is not None:
        argv = argv_as(int(user), int(user), PROBE, kind, host, str(port), str(count))
    ns.exec(*argv, timeout=30)


INJECT = """
import socket, struct, sys
src, dst, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
def csum(b):
    if len(b) % 2:
        b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(count):
    sport, dport = 80, 40000 + i
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1000 + i, 2000, 5 << 4, 0x12, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i, 0, 64, 6, 0, socket.inet_aton(src),
                     socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.sendto(ip + tcp, (dst, 0))
"""


def inject_synack(ns: Namespace, src: str, dst: str, count: int = 3) -> None:
    """Send ``count`` forged TCP SYN/ACKs from ``ns`` (spoofed source ``src``) to ``dst``."""
    ns.exec(PYTHON, "-I", "-c", INJECT, src, dst, str(count), timeout=30)


def engine_pid(helper: HelperProcess, name: str) -> int:
    """The engine's pid, read from the helper's undo journal."""
    for line in (helper.state_dir / "journal" / f"{name}.journal").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("kind") == "process":
            return int(entry["pid"])
    raise AssertionError("no engine in the journal")
