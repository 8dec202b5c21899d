"""Per-application split tunnelling on Linux: the bypass and the include cgroup.

Processes in one cgroup v2 directory, a direct child of the cgroup2 root (setting
``split_tunnel_cgroup``, default ``wgdesk-bypass``), are sent around a full tunnel by the rules of
`firewall.bypass_script`, which match ``socket cgroupv2 level 1 "<name>"``; those of a second one
(``split_tunnel_include_cgroup``) only through a tunnel (`firewall.include_script`, and the guard
`firewall.include_guard_script` while no tunnel serves them). A socket belongs to the
cgroup of the process that created it, so a process must be moved *before* it opens sockets:
``wgdeskctl exclude -- COMMAND`` asks the helper to move the calling process (the kernel names it:
``SO_PEERPIDFD``, never a pid the client sends) and then execs COMMAND.

The kernel's answer names the process that *connected*, not necessarily what it is now: it may have
exec'd a setuid program since, or (before Linux 6.5, where the helper opens the pid of
``SO_PEERCRED`` itself) exited and left its pid to someone else's process. So at the moment of the
move the process must still be the caller's own — every uid (real, effective, saved, filesystem)
the caller's, no capabilities — checked before and after writing it into the cgroup; a process that
fails the check afterwards is put back where it was and the request is refused.

The cgroup2 hierarchy is found in /proc/self/mountinfo; when the helper's mount namespace has none
(``ip netns exec`` remounts /sys), the helper mounts cgroup2 itself under its state directory. The
directory is created on first use and removed at shutdown when empty.

nftables (1.0.6) resolves the cgroup path only below the fixed /sys/fs/cgroup, so when the cgroup2
root is elsewhere the script is applied by ``nft`` in a private mount namespace with cgroup2
mounted there (`BypassGroup.nft_apply`).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from pathlib import Path

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import (
    GROUP_NAME,
    Bypass,
    Connection,
    Include,
    Notes,
    PlatformOptions,
    Recorder,
    SplitError,
    SplitProcess,
)
from wgdesk.platforms.linux import firewall, nft
from wgdesk.platforms.linux.identity import peer_credentials
from wgdesk.platforms.linux.nft import FAMILY, NftTable
from wgdesk.platforms.linux.programs import MOUNT, NFT, SH, UMOUNT, UNSHARE, command

NFT_CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where nft looks up cgroup paths (hard-coded in nftables)."""
_SO_PEERPIDFD = 77
"""``SO_PEERPIDFD`` (Linux 6.5): a pidfd of the process that connected; not in Python 3.11's socket."""
_NFT_IN_PRIVATE_MOUNT = 'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$0" "$@"'
MODES = ("exclude", "include")


def cgroup2_mounts(mountinfo: str) -> list[tuple[Path, str]]:
    """(mount point, root inside the hierarchy) of every cgroup2 mount in a mountinfo text."""
    found: list[tuple[Path, str]] = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split() or right.split()[0] != "cgroup2":
            continue
        point = fields[4].encode().decode("unicode_escape")  # \040 for a space, as the kernel writes
        found.append((Path(point), fields[3]))
    return found


def _pidfd_pid(pidfd: int) -> int:
    """The pid a pidfd refers to (-1 once the process is gone), from /proc/self/fdinfo."""
    for line in Path(f"/proc/self/fdinfo/{pidfd}").read_text().splitlines():
        if line.startswith("Pid:"):
            return int(line.split()[1])
    raise SplitError("failed", "this kernel does not show the pid of a pidfd")


def _alive(pidfd: int) -> bool:
    """True while the process of ``pidfd`` has not exited (a pidfd polls readable on exit)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return not poller.poll(0)


class BypassGroup:
    """The helper's bypass cgroup: found or mounted, created lazily, listed, removed at shutdown.

    With ``mode="include"`` the same for the include cgroup (``split_tunnel_include_cgroup``), whose
    processes are sent *only* through a tunnel (`firewall.include_script`); it shares the cgroup2
    root of ``shares_root`` (the bypass group), which must be closed after it."""

    def __init__(
        self,
        options: PlatformOptions,
        log: Notes,
        mode: str = "exclude",
        shares_root: BypassGroup | None = None,
    ) -> None:
        setting = "split_tunnel_cgroup" if mode == "exclude" else "split_tunnel_include_cgroup"
        name = options.split_exclude_cgroup if mode == "exclude" else options.split_include_cgroup
        if not GROUP_NAME.fullmatch(name):
            raise SplitError("invalid", f"{setting} must be 1 to 64 letters, digits, _ or -")
        self.name = name
        self.mode = mode
        self._shares_root = shares_root
        self._what = "outside the tunnel" if mode == "exclude" else "only through the tunnel"
        self.allowed = options.allow_split_tunnel
        self._configured_root = options.cgroup_root
        self._mount_point = options.state_dir / "cgroup2"
        self.log = log
        self._lock = threading.RLock()
        self._root: Path | None = None
        self._mounted = False
        self._nft_ok: bool | None = None
        self._created = False

    # --- the cgroup --------------------------------------------------------------------------------

    def refusal(self) -> tuple[str, str] | None:
        """Why processes cannot be excluded here, as (code, message), or None."""
        if not self.allowed:
            return (
                "denied",
                f"running apps {self._what} is switched off by the administrator "
                "(allow_split_tunnel = false in /etc/wgdesk/helper.toml)",
            )
        try:
            self.path()
        except SplitError as e:
            return e.code, e.message
        return None

    def root(self) -> Path:
        """The cgroup2 mount point (found, configured, or mounted by us)."""
        if self._shares_root is not None:
            return self._shares_root.root()
        with self._lock:
            if self._root is None:
                self._root = self._find_root()
            return self._root

    def _find_root(self) -> Path:
        mounts = cgroup2_mounts(Path("/proc/self/mountinfo").read_text())
        if self._configured_root:
            wanted = Path(self._configured_root)
            if not any(point == wanted and root == "/" for point, root in mounts):
                raise SplitError(
                    "unsupported",
                    f"apps cannot run {self._what}: {wanted} (split_tunnel_cgroup_root) is not "
                    "the root of a cgroup2 mount",
                )
            return wanted
        for point, root in mounts:
            if root == "/":
                return point
        # none in this mount namespace (e.g. under `ip netns exec`): mount one privately
        point = self._mount_point
        point.mkdir(mode=0o700, exist_ok=True)
        try:
            command([MOUNT, "-t", "cgroup2", "cgroup2", str(point)])
        except PlatformError as e:
            raise SplitError(
                "unsupported",
                f"apps cannot run {self._what}: this system has no cgroup v2 ({e})",
            ) from e
        self._mounted = True
        self.log.info(f"mounted cgroup2 at {point} for split tunnelling")
        return point

    def path(self) -> Path:
        """The bypass cgroup directory, created (and checked against nft) on first use."""
        directory = self.root() / self.name
        with self._lock:
            if not directory.is_dir():
                try:
                    directory.mkdir(mode=0o755)
                except FileExistsError:
                    pass
                except OSError as e:
                    raise SplitError(
                        "unsupported", f"apps cannot run {self._what}: cannot create {directory}: {e}"
                    ) from e
                self._created = True
            if self._nft_ok is None:
                self._nft_ok = self._nft_matches()
            if not self._nft_ok:
                raise SplitError(
                    "unsupported",
                    f"apps cannot run {self._what}: nftables here cannot match sockets by cgroup v2 "
                    "(needs nftables 0.9.3+ and Linux 5.13+ with nft_socket)",
                )
        return directory

    def _nft_matches(self) -> bool:
        probe = (
            "table inet wgdesk-bypass-probe {\n  chain c {\n    type filter hook output priority 0;\n"
            f'    socket cgroupv2 level 1 "{self.name}" accept\n  }}\n}}\n'
        )
        try:
            self._nft(["-c", "-f", "-"], probe)
        except PlatformError as e:
            self.log.warning(f"nft cannot match the bypass cgroup: {e}")
            return False
        return True

    # --- moving and listing --------------------------------------------------------------------

    def exclude_peer(self, conn: socket.socket, uid: int) -> SplitProcess:
        """Move the process at the other end of ``conn`` (the kernel's answer, never a pid a client
        names) into the bypass cgroup. ``uid`` is the connection's SO_PEERCRED uid."""
        refusal = self.refusal()
        if refusal is not None:
            raise SplitError(*refusal)
        procs = self.path() / "cgroup.procs"
        try:
            pidfd = conn.getsockopt(socket.SOL_SOCKET, _SO_PEERPIDFD)
        except OSError:
            pidfd = -1
        if pidfd < 0:  # before Linux 6.5: the pid of SO_PEERCRED, opened as a pidfd now
            pid = peer_credentials(conn).pid
            try:
                pidfd = os.pidfd_open(pid)
            except OSError as e:
                raise SplitError("failed", f"the calling process {pid} is gone") from e
        try:
            pid = _pidfd_pid(pidfd)
            if pid <= 0 or not _alive(pidfd):
                raise SplitError("failed", "the calling process exited")
            _check_owned(pid, uid)
            before = self._cgroup_of(pid)
            try:
                procs.write_text(f"{pid}\n")
            except OSError as e:
                raise SplitError("failed", f"cannot move process {pid} into {procs.parent}: {e}") from e
            try:
                if not _alive(pidfd):
                    # it exited meanwhile: the pid may have been reused by another process
                    raise SplitError("failed", "the calling process exited")
                _check_owned(pid, uid)
            except SplitError:
                if before is not None:  # put it back
                    with contextlib.suppress(OSError):
                        (self.root() / before.lstrip("/") / "cgroup.procs").write_text(f"{pid}\n")
                raise
        finally:
            os.close(pidfd)
        excluded = SplitProcess(pid, uid, _command(pid), self.mode)
        self.log.info(
            f"process {pid} ({excluded.command}) of uid {uid} now "
            + ("bypasses full tunnels" if self.mode == "exclude" else "goes only through the tunnel"),
            uid,  # the caller's record (others do not learn of its processes)
        )
        return excluded

    @staticmethod
    def _cgroup_of(pid: int) -> str | None:
        try:
            for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
                if line.startswith("0::"):
                    return line[3:]
        except OSError:
            pass
        return None

    def members(self, uid: int | None = None) -> list[SplitProcess]:
        """Processes in the bypass cgroup (only those of ``uid`` when given); empty when it does
        not exist yet."""
        with self._lock:
            root = self._root if self._shares_root is None else self._shares_root._root
        if root is None or not (root / self.name).is_dir():
            return []
        try:
            pids = [int(p) for p in (root / self.name / "cgroup.procs").read_text().split()]
        except OSError:
            return []
        out = []
        for pid in pids:
            owner = _uid(pid)
            if owner is None or (uid is not None and owner != uid):
                continue
            out.append(SplitProcess(pid, owner, _command(pid), self.mode))
        return out

    # --- nft -----------------------------------------------------------------------------------

    def nft_apply(self, script: str) -> None:
        """Apply an nft script that names the bypass cgroup (see the module docstring)."""
        self.path()
        self._nft(["-f", "-"], script)

    def _nft(self, args: list[str], script: str) -> None:
        root = self.root()
        if root == NFT_CGROUP_ROOT:
            command([NFT, *args], stdin=script)
            return
        command(
            [UNSHARE, "-m", "--propagation", "private", SH, "-c", _NFT_IN_PRIVATE_MOUNT, NFT, *args],
            stdin=script,
        )

    # --- shutdown ------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the cgroup when empty and unmount what we mounted (helper shutdown)."""
        with self._lock:
            root = self._root if self._shares_root is None else self._shares_root._root
            if root is None:
                self._nft_ok = None
                return
            directory = root / self.name
            try:
                if directory.is_dir():
                    directory.rmdir()
            except OSError as e:
                self.log.info(f"left {directory} in place: {e.strerror} (processes still in it)")
            if self._mounted and self._shares_root is None:
                try:
                    command([UMOUNT, str(root)])
                    root.rmdir()
                except (PlatformError, OSError) as e:
                    self.log.warning(f"cannot unmount {root}: {e}")
                self._mounted = False
            self._root = None
            self._nft_ok = None


def _check_owned(pid: int, uid: int) -> None:
    """Refuse (``denied``) to move process ``pid`` for ``uid`` unless it is that user's own and
    unprivileged: all four uids ``uid``, no permitted capabilities (root may move its own processes,
    which are root's anyway)."""
    fields: dict[str, list[str]] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.split()
    except OSError as e:
        raise SplitError("failed", "the calling process exited") from e
    uids = [int(u) for u in fields.get("Uid", [])]
    if len(uids) != 4 or any(u != uid for u in uids):
        raise SplitError(
            "denied", f"process {pid} is not (any more) a process of uid {uid} alone: it is not moved"
        )
    if uid != 0 and int((fields.get("CapPrm") or ["0"])[0], 16):
        raise SplitError("denied", f"process {pid} has capabilities: it is not moved")


def _uid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


class LinuxSplitTunnel:
    """The backend's `wgdesk.platforms.interface.SplitTunnel`: the two cgroups and their nft tables."""

    def __init__(self, options: PlatformOptions, notes: Notes) -> None:
        self.exclude = BypassGroup(options, notes)
        self.include = BypassGroup(options, notes, mode="include", shares_root=self.exclude)

    def _group(self, mode: str) -> BypassGroup:
        if mode not in MODES:
            raise ValueError(f"split mode {mode!r}")
        return self.exclude if mode == "exclude" else self.include

    def group(self, mode: str) -> str:
        return self._group(mode).name

    def refusal(self, mode: str) -> tuple[str, str] | None:
        return self._group(mode).refusal()

    def locate(self, mode: str) -> None:
        self._group(mode).root()

    def move_peer(self, connection: Connection, uid: int, mode: str) -> SplitProcess:
        if not isinstance(connection, socket.socket):
            raise SplitError("failed", "not a UNIX socket connection")
        return self._group(mode).exclude_peer(connection, uid)

    def members(self, mode: str, uid: int | None = None) -> list[SplitProcess]:
        return self._group(mode).members(uid)

    def bypass_on(self, bypass: Bypass, record: Recorder) -> None:
        record(NftTable(FAMILY, firewall.bypass_table(bypass.ifname)))
        self.exclude.nft_apply(
            firewall.bypass_script(
                bypass.ifname, self.exclude.name, bypass.fwmark, bypass.addresses, bypass.dns_servers
            )
        )

    def include_on(self, include: Include, record: Recorder) -> None:
        record(NftTable(FAMILY, firewall.include_table(include.ifname)))
        self.include.nft_apply(
            firewall.include_script(
                include.ifname, self.include.name, include.mark, include.families, include.owner
            )
        )

    def guard_on(self) -> None:
        self.include.nft_apply(firewall.include_guard_script(self.include.name))

    def guard_off(self) -> None:
        nft.delete_table(FAMILY, firewall.INCLUDE_GUARD_TABLE)

    def guard_present(self) -> bool:
        return nft.table_exists(FAMILY, firewall.INCLUDE_GUARD_TABLE)

    def close(self) -> None:
        self.include.close()
        self.exclude.close()
