"""Linux networking: TUN, bound UDP sockets, peer credentials, and the `ip`/`nft`/sysctl/DNS steps.

External programs are run by absolute path, as a list argv, with a clean environment; nothing here
ever builds a shell string. Every function either succeeds or raises `CommandError` (a
`PlatformError`) whose message names the command and quotes the OS's answer.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import os
import socket
import stat
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any

from wgdesk.platforms import NetworkIdentity, PlatformError
from wgdesk.platforms.commands import CommandError, run

CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def _find(name: str, *dirs: str) -> str:
    for d in dirs:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return os.path.join(dirs[0], name)


IP = _find("ip", "/usr/sbin", "/sbin", "/usr/bin", "/bin")
NFT = _find("nft", "/usr/sbin", "/sbin", "/usr/bin")
RESOLVECTL = _find("resolvectl", "/usr/bin", "/bin")
RESOLVCONF = _find("resolvconf", "/usr/sbin", "/sbin", "/usr/bin")
NMCLI = _find("nmcli", "/usr/bin", "/bin")
IW = _find("iw", "/usr/sbin", "/sbin", "/usr/bin")
SYS_CLASS_NET = Path("/sys/class/net")

Network = IPv4Network | IPv6Network


def command(
    argv: Sequence[str], stdin: str | None = None, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (absolute program path) with a clean environment; raise `CommandError` on failure."""
    return run(argv, CLEAN_ENV, stdin=stdin, check=check, timeout=timeout)


def _family_flag(net: Network | str) -> str:
    return "-6" if ":" in str(net) else "-4"


# --- TUN and sockets ----------------------------------------------------------------------

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_IFF_VNET_HDR = 0x4000


def open_tun(name: str, packet_info: bool = False, vnet_hdr: bool = False) -> int:
    """Create the TUN interface ``name`` (``IFF_TUN|IFF_NO_PI``) and return its open fd.

    ``packet_info`` keeps the 4-byte packet-information header (no ``IFF_NO_PI``): what
    wireguard-go up to 2022 assumes of a TUN fd handed to it in ``WG_TUN_FD``.
    ``vnet_hdr`` adds ``IFF_VNET_HDR``: wgdesk-engine then writes a stream's decrypted TCP
    segments to the kernel as one large packet (see `wgdesk.engine.offload`).
    The interface is not persistent: it disappears when the last fd is closed.
    """
    flags = _IFF_TUN | (0 if packet_info else _IFF_NO_PI) | (_IFF_VNET_HDR if vnet_hdr else 0)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), flags))
    except OSError as e:
        os.close(fd)
        raise PlatformError(f"cannot create TUN interface {name}: {e.strerror}") from e
    return fd


def bind_udp(port: int, fwmark: int) -> tuple[socket.socket | None, socket.socket | None, int]:
    """Bind an IPv4 and an IPv6 (v6-only) UDP socket on the same port with ``SO_MARK`` set.

    ``port`` 0 picks a free port. Either socket is None when its family is unavailable.
    Returns (v4, v6, port).
    """
    mark = struct.pack("I", fwmark)  # unsigned: as an int, marks from 2**31 on raise TypeError
    for _attempt in range(20):
        s4: socket.socket | None = None
        s6: socket.socket | None = None
        try:
            s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if fwmark:
                s4.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
            s4.bind(("0.0.0.0", port))
            chosen = s4.getsockname()[1]
            try:
                s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if fwmark:
                    s6.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
                s6.bind(("::", chosen))
            except OSError as e:
                if s6 is not None:
                    s6.close()
                s6 = None
                if e.errno == errno.EADDRINUSE and port == 0:
                    s4.close()
                    continue
                if e.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    raise
            return s4, s6, chosen
        except OSError as e:
            if s4 is not None:
                s4.close()
            raise PlatformError(f"cannot bind UDP port {port}: {e.strerror}") from e
    raise PlatformError("cannot find a UDP port free for both IPv4 and IPv6")


@dataclass(frozen=True)
class PeerCredentials:
    """Kernel-provided identity of the process at the other end of a UNIX socket."""

    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...]


_SO_PEERGROUPS = 59


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """``SO_PEERCRED`` plus ``SO_PEERGROUPS`` (supplementary groups at connect time)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    groups: tuple[int, ...] = ()
    try:
        graw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 1024)  # Python caps buflen at 1024
        groups = struct.unpack(f"{len(graw) // 4}I", graw[: len(graw) // 4 * 4])
    except OSError:
        pass
    return PeerCredentials(pid, uid, gid, tuple(groups))


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), to tell a pid from a reused one."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = data.rsplit(")", 1)[1].split()
    return int(rest[19])


PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAPABILITY_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def account_ids(user: str) -> tuple[int, int]:
    """The uid and primary gid of account ``user``. Raises `KeyError` when there is none."""
    import pwd

    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def drop_privileges(uid: int, gid: int) -> None:
    """Become ``uid``:``gid`` for good: no supplementary groups, every capability set empty (the
    bounding and ambient sets too, so not even an exec of a setuid-root program regains one),
    no_new_privs, and not dumpable (other processes of the same uid — other engines — cannot ptrace
    this one or read its memory, i.e. its keys).

    For a process started as root that has opened and loaded everything it needs: starting as root is
    what lets wgdesk run from wherever it and its Python are installed (a venv or pyenv in a private
    home, a PyInstaller bundle); dropping before the first untrusted input is what makes that safe.
    Raises `PlatformError` when the result is not exactly that (checked in /proc/self/status)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

    def prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
        if libc.prctl(option, arg, arg3, 0, 0) != 0:
            code = ctypes.get_errno()
            raise PlatformError(f"prctl({option}, {arg}): {os.strerror(code)}")

    try:
        last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        if os.geteuid() == 0:
            for cap in range(last_cap + 1):
                prctl(PR_CAPBSET_DROP, cap)
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        if os.getgroups() or os.getresgid() != (gid, gid, gid):
            os.setgroups([])
            os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        # setresuid away from uid 0 empties the permitted and effective sets, not the inheritable one
        header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
        data = (ctypes.c_uint32 * 6)()
        if libc.capset(header, data) != 0:
            raise PlatformError(f"capset: {os.strerror(ctypes.get_errno())}")
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_DUMPABLE, 0)
    except OSError as e:
        raise PlatformError(f"cannot become uid {uid}, gid {gid}: {e.strerror or e}") from e
    status = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    wrong = [
        f"{key} {status.get(key, '?').strip()}"
        for key in _CAPABILITY_SETS
        if int(status.get(key, "1").strip(), 16) != 0
    ]
    if set(status["Uid"].split()) != {str(uid)} or set(status["Gid"].split()) != {str(gid)}:
        wrong.append(f"Uid {status['Uid'].split()} Gid {status['Gid'].split()}")
    if status.get("Groups", "").strip() or status.get("NoNewPrivs", "").strip() != "1":
        wrong.append("supplementary groups or no_new_privs")
    if wrong:
        raise PlatformError(f"privileges not fully dropped: {', '.join(wrong)}")


# --- links, addresses, routes, rules ---------------------------------------------------------


def link_exists(ifname: str) -> bool:
    return command([IP, "link", "show", "dev", ifname], check=False).returncode == 0


def link_set(ifname: str, up: bool | None = None, mtu: int | None = None) -> None:
    argv = [IP, "link", "set", "dev", ifname]
    if mtu is not None:
        argv += ["mtu", str(mtu)]
    if up is not None:
        argv.append("up" if up else "down")
    command(argv)


def link_delete(ifname: str) -> None:
    if link_exists(ifname):
        command([IP, "link", "delete", "dev", ifname], check=False)


def addr_add(ifname: str, address: str) -> None:
    argv = [IP, _family_flag(address), "address", "add", address, "dev", ifname]
    if ":" in address:
        argv.append("nodad")
    command(argv)


def addr_del(ifname: str, address: str) -> None:
    command([IP, _family_flag(address), "address", "del", address, "dev", ifname], check=False)


def addresses(ifname: str) -> list[str]:
    out = command([IP, "-j", "address", "show", "dev", ifname], check=False).stdout
    result = []
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            result.append(f"{a['local']}/{a['prefixlen']}")
    return result


def local_networks() -> list[Network]:
    """The networks of this machine's interfaces that are up: no loopback, no tunnel (a link without a
    link layer, as TUN and WireGuard devices are), no link-local or single-host prefix."""
    out = command([IP, "-j", "address", "show", "up"]).stdout
    found: list[Network] = []
    for link in json.loads(out or "[]"):
        if link.get("link_type") in ("loopback", "none"):
            continue
        for a in link.get("addr_info", []):
            net = ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
            if net.is_link_local or net.prefixlen == net.max_prefixlen or net in found:
                continue
            found.append(net)
    return found


def route_to(address: str) -> dict[str, str] | None:
    """How the kernel routes a packet to ``address`` (`ip route get`): ``dev``, and when present
    ``gateway``, ``source`` (the preferred source address), ``table`` (absent: main) and ``type``
    (absent: unicast); None when it has no route."""
    proc = command([IP, "-j", _family_flag(address), "route", "get", address], check=False)
    if proc.returncode != 0:
        return None
    try:
        found = json.loads(proc.stdout)[0]
    except (ValueError, IndexError, KeyError):
        return None
    names = {"dev": "dev", "gateway": "gateway", "prefsrc": "source", "table": "table", "type": "type"}
    return {mine: str(found[theirs]) for theirs, mine in names.items() if found.get(theirs) is not None}


# --- the network we are on -------------------------------------------------------------------

# wgdesk's engines and wireguard-go run on TUN links, the kernel module on "wireguard" ones
_TUNNEL_KINDS = ("tun", "wireguard")
_NO_ADDRESS = ("FAILED", "INCOMPLETE")


def current_network() -> NetworkIdentity | None:
    """The network carrying the main table's default route (IPv4 first, lowest metric; routes over TUN or
    WireGuard links and policy tables are left out, so a full tunnel does not hide the network under it).
    Wi-Fi: the SSID from NetworkManager (`nmcli`), else `iw`; otherwise the gateway's MAC address from the
    neighbour table, labelled with NetworkManager's connection name when there is one. None when there is
    no such route, its link is down, or the gateway's MAC is not known yet."""
    links = {
        str(link.get("ifname")): link for link in _json(command([IP, "-j", "-d", "link", "show"]).stdout)
    }
    route = _default_route(links)
    if route is None:
        return None
    dev, gateway = str(route["dev"]), route.get("gateway")
    wireless = (SYS_CLASS_NET / dev / "wireless").exists() or (SYS_CLASS_NET / dev / "phy80211").exists()
    if wireless:
        ssid = _ssid(dev)
        if ssid:
            return NetworkIdentity.identify("wifi", dev, ssid=ssid)
    kind = "wifi" if wireless else "wired" if links[dev].get("link_type") == "ether" else "other"
    mac = _neighbour(str(gateway), dev) if gateway else None
    if gateway and mac is None:
        return None
    return NetworkIdentity.identify(
        kind, dev, str(gateway) if gateway else None, mac, name=_nm_connection(dev)
    )


def _json(text: str) -> list[dict[str, Any]]:
    try:
        found = json.loads(text or "[]")
    except ValueError:
        return []
    return [x for x in found if isinstance(x, dict)] if isinstance(found, list) else []


def _default_route(links: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    for family in ("-4", "-6"):
        proc = command([IP, "-j", family, "route", "show", "default", "table", "main"], check=False)
        usable = []
        for r in _json(proc.stdout):
            link = links.get(str(r.get("dev")))
            flags = r.get("flags") or []
            if link is None or {"linkdown", "dead"} & set(flags) or r.get("type", "unicast") != "unicast":
                continue
            if (link.get("linkinfo") or {}).get("info_kind") in _TUNNEL_KINDS:
                continue
            usable.append(r)
        if usable:
            return min(usable, key=lambda r: int(r.get("metric") or 0))
    return None


def _neighbour(address: str, dev: str) -> str | None:
    """The link-layer address the kernel has for ``address`` on ``dev`` (also a stale one: the gateway
    rarely changes its MAC without the link going down, and a link going down flushes its entries)."""
    proc = command([IP, "-j", "neigh", "show", "to", address, "dev", dev], check=False)
    for entry in _json(proc.stdout):
        if entry.get("lladdr") and not set(entry.get("state") or ()) & set(_NO_ADDRESS):
            return str(entry["lladdr"])
    return None


def _ssid(dev: str) -> str | None:
    """The SSID ``dev`` is associated with: NetworkManager's answer (from its last scan, never a new
    one), else `iw`'s; None when neither knows."""
    if os.access(NMCLI, os.X_OK):
        argv = [NMCLI, "-t", "-f", "ACTIVE,SSID", "device", "wifi", "list", "--rescan", "no", "ifname", dev]
        proc = command(argv, check=False, timeout=5)
        if proc.returncode == 0:
            for line in proc.stdout.splitlines():
                fields = nmcli_fields(line)
                if len(fields) == 2 and fields[0] == "yes" and fields[1]:
                    return fields[1]
    if os.access(IW, os.X_OK):
        proc = command([IW, "dev", dev, "link"], check=False, timeout=5)
        for line in proc.stdout.splitlines():
            if line.lstrip().startswith("SSID: "):
                return iw_unescape(line.lstrip()[len("SSID: ") :])
    return None


def _nm_connection(dev: str) -> str | None:
    """NetworkManager's name for the connection active on ``dev`` ("Wired connection 1"), if it runs."""
    if not os.access(NMCLI, os.X_OK):
        return None
    argv = [NMCLI, "--escape", "no", "--get-values", "GENERAL.CONNECTION", "device", "show", dev]
    proc = command(argv, check=False, timeout=5)
    name = proc.stdout.strip() if proc.returncode == 0 else ""
    return name if name and name != "--" else None


def nmcli_fields(line: str) -> list[str]:
    """One line of `nmcli -t` output split into its fields (``\\:`` is a colon inside a field,
    ``\\\\`` a backslash)."""
    fields, current, escaped = [], [], False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


def iw_unescape(text: str) -> str:
    """An SSID as `iw` prints it (bytes that are not printable, a backslash, and leading or trailing
    spaces as ``\\xNN``) back to text (UTF-8; bytes that are not become U+FFFD)."""
    raw, i = bytearray(), 0
    while i < len(text):
        if text.startswith("\\x", i) and len(text) >= i + 4:
            try:
                raw.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
            except ValueError:
                pass
        raw.extend(text[i].encode())
        i += 1
    return raw.decode("utf-8", errors="replace")


def route_add(dst: Network, ifname: str, table: str = "main") -> None:
    command([IP, _family_flag(dst), "route", "add", str(dst), "dev", ifname, "table", table])


def route_del(dst: Network | str, ifname: str, table: str = "main") -> None:
    command([IP, _family_flag(dst), "route", "del", str(dst), "dev", ifname, "table", table], check=False)


def routes_add(dsts: Sequence[Network], ifname: str, table: str = "main") -> None:
    """Add routes to ``dsts`` through ``ifname`` in one netlink conversation (`netlink`); raises
    `PlatformError` naming the first route the kernel refused (the others stay: the caller's journal
    lists them all)."""
    from wgdesk.platforms import netlink

    try:
        refused = netlink.routes_change(True, dsts, ifname, table)
    except netlink.NetlinkError as e:
        raise PlatformError(str(e)) from e
    if refused:
        raise PlatformError(f"cannot add route {netlink.describe(refused)} via {ifname} (table {table})")


def routes_del(dsts: Sequence[Network], ifname: str, table: str = "main") -> None:
    """Delete routes to ``dsts`` through ``ifname`` (those already gone are fine)."""
    from wgdesk.platforms import netlink

    try:
        answers = netlink.routes_change(False, dsts, ifname, table)
    except netlink.NetlinkError as e:
        raise PlatformError(str(e)) from e
    refused = [r for r in answers if r[1] not in netlink.MISSING]
    if refused:
        raise PlatformError(f"cannot delete route {netlink.describe(refused)} via {ifname} (table {table})")


def route_mtu(dst: str) -> int | None:
    """MTU of the interface the kernel would use to reach ``dst`` (None if unroutable)."""
    proc = command([IP, "-j", _family_flag(dst), "route", "get", dst], check=False)
    if proc.returncode != 0:
        return None
    try:
        routes = json.loads(proc.stdout)
        dev = routes[0]["dev"]
        if "mtu" in routes[0]:
            return int(routes[0]["mtu"])
        links = json.loads(command([IP, "-j", "link", "show", "dev", dev]).stdout)
        return int(links[0]["mtu"])
    except (ValueError, KeyError, IndexError, CommandError):
        return None


def default_route_mtu() -> int | None:
    for fam in ("-4", "-6"):
        proc = command([IP, "-j", fam, "route", "show", "default"], check=False)
        try:
            routes = json.loads(proc.stdout or "[]")
        except ValueError:
            continue
        for r in routes:
            if "dev" in r:
                links = json.loads(command([IP, "-j", "link", "show", "dev", r["dev"]]).stdout)
                return int(links[0]["mtu"])
    return None


def table_in_use(table: int) -> bool:
    """True if routing table ``table`` has any IPv4 or IPv6 route."""
    for fam in ("-4", "-6"):
        if command([IP, fam, "route", "show", "table", str(table)], check=False).stdout.strip():
            return True
    return False


def fwmark_in_use(mark: int) -> bool:
    """True if any policy rule mentions fwmark or table ``mark``."""
    for fam in ("-4", "-6"):
        out = command([IP, fam, "rule", "show"], check=False).stdout
        for line in out.splitlines():
            words = line.replace("/0xffffffff", "").split()
            for i, w in enumerate(words[:-1]):
                if w in ("fwmark", "lookup", "table") and words[i + 1] in (str(mark), hex(mark)):
                    return True
    return False


def rule_add(family: int, spec: Sequence[str]) -> None:
    command([IP, f"-{family}", "rule", "add", *spec])


def rule_del(family: int, spec: Sequence[str]) -> None:
    command([IP, f"-{family}", "rule", "del", *spec], check=False)


def sysctl_read(key: str) -> str:
    return Path("/proc/sys", *key.split(".")).read_text().strip()


def sysctl_write(key: str, value: str) -> None:
    try:
        Path("/proc/sys", *key.split(".")).write_text(value + "\n")
    except OSError as e:
        raise PlatformError(f"cannot set sysctl {key}={value}: {e.strerror}") from e


# --- nftables ------------------------------------------------------------------------------


def nft_apply(script: str) -> None:
    """Apply an nft script as one atomic transaction (``nft -f -``)."""
    command([NFT, "-f", "-"], stdin=script)


def nft_check(script: str) -> None:
    """Parse and validate without applying (``nft -c -f -``)."""
    command([NFT, "-c", "-f", "-"], stdin=script)


def nft_table_exists(family: str, name: str) -> bool:
    return command([NFT, "list", "table", family, name], check=False).returncode == 0


def nft_delete_table(family: str, name: str) -> None:
    if nft_table_exists(family, name):
        command([NFT, "delete", "table", family, name])


def nft_ruleset() -> str:
    return command([NFT, "list", "ruleset"], check=False).stdout


# --- DNS -----------------------------------------------------------------------------------


def dns_backend(preference: str = "auto") -> str:
    """``resolved``, ``resolvconf`` or ``file``: what `set_dns` will use."""
    if preference != "auto":
        return preference
    if os.path.exists("/run/systemd/resolve/io.systemd.Resolve") and os.access(RESOLVECTL, os.X_OK):
        return "resolved"
    if os.access(RESOLVCONF, os.X_OK):
        return "resolvconf"
    return "file"


def resolv_conf_text(servers: Sequence[str], search: Sequence[str]) -> str:
    lines = ["# written by wgdesk-helper; the original is restored when the tunnel goes down"]
    lines += [f"nameserver {s}" for s in servers]
    if search:
        lines.append("search " + " ".join(search))
    return "\n".join(lines) + "\n"


def resolved_set(ifname: str, servers: Sequence[str], search: Sequence[str]) -> None:
    """Per-link DNS through systemd-resolved, with ``~.`` so every query uses this link.

    ``--`` ends resolvectl's options (it permutes its arguments, so a link name anywhere could be
    read as one); names cannot start with ``-`` either (`wgdesk.config.is_interface_name`)."""
    command([RESOLVECTL, "--", "dns", ifname, *servers])
    command([RESOLVECTL, "--", "domain", ifname, "~.", *search])
    command([RESOLVECTL, "--", "default-route", ifname, "true"], check=False)


def resolved_revert(ifname: str) -> None:
    command([RESOLVECTL, "--", "revert", ifname], check=False)


def resolvconf_set(ifname: str, servers: Sequence[str], search: Sequence[str]) -> None:
    command([RESOLVCONF, "-a", f"tun.{ifname}", "-m", "0", "-x"], stdin=resolv_conf_text(servers, search))


def resolvconf_revert(ifname: str) -> None:
    command([RESOLVCONF, "-d", f"tun.{ifname}", "-f"], check=False)


def is_mount_point(path: str) -> bool:
    """True if ``path`` itself is a mount point (a bind-mounted file counts)."""
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and fields[4].encode().decode("unicode_escape") == real:
                    return True
    except OSError:
        pass
    return os.path.ismount(real)


def file_snapshot(path: str) -> dict[str, Any]:
    """What `file_restore` needs to put ``path`` back byte for byte (content, mode, symlink)."""
    if os.path.islink(path):
        return {"path": path, "symlink": os.readlink(path), "content": None, "mode": None}
    try:
        st = os.stat(path)
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return {"path": path, "symlink": None, "content": None, "mode": None, "missing": True}
    return {
        "path": path,
        "symlink": None,
        "content": base64.b64encode(data).decode(),
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def file_replace(path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
    """Replace ``path``: in place when it is a mount point (rename would fail), else atomically."""
    if not os.path.islink(path) and os.path.exists(path) and is_mount_point(path):
        with open(path, "r+b") as f:
            f.truncate(0)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".wgdesk-", dir=directory)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        os.fchown(fd, uid, gid)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with _suppress_oserror():
            os.close(fd)
        with _suppress_oserror():
            os.unlink(tmp)
        raise


def file_restore(snapshot: dict[str, Any]) -> None:
    path = snapshot["path"]
    if snapshot.get("symlink") is not None:
        if os.path.islink(path) and os.readlink(path) == snapshot["symlink"]:
            return
        tmp = os.path.join(os.path.dirname(path), f".wgdesk-link-{os.getpid()}")
        with _suppress_oserror():
            os.unlink(tmp)
        os.symlink(snapshot["symlink"], tmp)
        os.replace(tmp, path)
        return
    if snapshot.get("missing"):
        with _suppress_oserror():
            os.unlink(path)
        return
    file_replace(
        path,
        base64.b64decode(snapshot["content"]),
        snapshot["mode"],
        snapshot.get("uid", 0),
        snapshot.get("gid", 0),
    )


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)  # type: ignore[arg-type]


def network(text: str) -> Network:
    return ip_network(text, strict=False)


def is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True
