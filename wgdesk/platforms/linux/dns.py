"""DNS of a tunnel on Linux: systemd-resolved per link, resolvconf, or a rewritten resolv.conf.

The ``file`` backend rewrites /etc/resolv.conf and journals the original (`DnsFile`). Undo journals
live under /run, a tmpfs: after a power loss they are gone, but the rewritten file is on disk and would
point at a tunnel's DNS servers for good. So before the file is rewritten the original (the journal
record's snapshot) and a hash of what is about to be written are also kept in ``persistent_dir``
(/var/lib/wgdesk), fsynced, root-only (`ResolvRecord`). The ordinary undo deletes that record; a
helper that starts and still finds it, with no journal left to cover it, restores the original — but
only while resolv.conf is still what the helper wrote: a file someone has rewritten since (a network
manager at boot) is left alone and the record dropped.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wgdesk.platforms import files
from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import Notes, PlatformOptions, Recorder, SilentNotes
from wgdesk.platforms.linux.programs import RESOLVCONF, RESOLVECTL, command
from wgdesk.platforms.linux.records import REGISTRY, UndoContext
from wgdesk.undo import UndoRecord

RECORD_NAME = "resolv.conf.undo.json"


def backend_for(preference: str = "auto") -> str:
    """``resolved``, ``resolvconf`` or ``file``: what `LinuxDns.set` will use."""
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


# --- systemd-resolved and resolvconf ---------------------------------------------------------------


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


@dataclass(frozen=True)
class DnsResolved(UndoRecord):
    kind = "dns_resolved"
    ifname: str


@REGISTRY.undoes(DnsResolved)
def _(record: DnsResolved, context: UndoContext) -> None:
    resolved_revert(record.ifname)


@dataclass(frozen=True)
class DnsResolvconf(UndoRecord):
    kind = "dns_resolvconf"
    ifname: str


@REGISTRY.undoes(DnsResolvconf)
def _(record: DnsResolvconf, context: UndoContext) -> None:
    resolvconf_revert(record.ifname)


# --- the file -------------------------------------------------------------------------------------


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
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def file_restore(snapshot: Mapping[str, Any]) -> None:
    path = snapshot["path"]
    if snapshot.get("symlink") is not None:
        if os.path.islink(path) and os.readlink(path) == snapshot["symlink"]:
            return
        tmp = os.path.join(os.path.dirname(path), f".wgdesk-link-{os.getpid()}")
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        os.symlink(snapshot["symlink"], tmp)
        os.replace(tmp, path)
        return
    if snapshot.get("missing"):
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    file_replace(
        path,
        base64.b64decode(snapshot["content"]),
        snapshot["mode"],
        snapshot.get("uid", 0),
        snapshot.get("gid", 0),
    )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ResolvRecord:
    """The one power-loss record of a rewritten resolv.conf (only one tunnel at a time may rewrite it)."""

    def __init__(self, directory: Path, notes: Notes | None = None) -> None:
        self.path = directory / RECORD_NAME
        self.notes = notes or SilentNotes()

    def save(self, snapshot: Mapping[str, Any], written: bytes) -> None:
        """Keep ``snapshot`` (`file_snapshot` of the original) before ``written`` replaces it."""
        files.write_durably(
            self.path, json.dumps({"snapshot": dict(snapshot), "written": _digest(written)}).encode()
        )

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def restore_left(self) -> None:
        """At start, after the journals were undone: a record still here means resolv.conf was
        rewritten before a power loss (or a crash that lost /run); put the original back."""
        try:
            data = files.read_root_owned(self.path, 1 << 22)
        except FileNotFoundError:
            return
        except OSError as e:
            self.notes.error(f"unreadable {self.path} ({e}); resolv.conf left as it is")
            data = None
        try:
            record = json.loads(data.decode()) if data is not None else None
        except ValueError as e:
            self.notes.error(f"unreadable {self.path} ({e}); resolv.conf left as it is")
            record = None
        try:
            if isinstance(record, dict) and isinstance(record.get("snapshot"), dict):
                self._restore(record)
        finally:
            self.forget()

    def _restore(self, record: dict[str, Any]) -> None:
        path = str(record["snapshot"].get("path"))
        try:
            current = Path(path).read_bytes()
        except OSError:
            current = None
        if current is None or _digest(current) != record.get("written"):
            self.notes.warning(
                f"{path} was rewritten by a tunnel before the helper last stopped, and has changed since; "
                "left as it is"
            )
            return
        file_restore(record["snapshot"])
        self.notes.warning(
            f"{path} still had a tunnel's DNS servers from before a power loss or crash: restored"
        )


@dataclass(frozen=True)
class DnsFile(UndoRecord):
    """The resolv.conf as it was (`file_snapshot`), before the helper rewrote it."""

    kind = "dns_file"
    snapshot: Mapping[str, Any]


@REGISTRY.undoes(DnsFile)
def _(record: DnsFile, context: UndoContext) -> None:
    file_restore(record.snapshot)
    ResolvRecord(context.options.persistent_dir).forget()


class LinuxDns:
    """The backend's `wgdesk.platforms.interface.Dns`."""

    def __init__(self, options: PlatformOptions, notes: Notes) -> None:
        self.options = options
        self.notes = notes

    @property
    def backend(self) -> str:
        return backend_for(self.options.dns_backend)

    @property
    def exclusive(self) -> bool:
        return self.backend == "file"

    def set(self, ifname: str, servers: Sequence[str], search: Sequence[str], record: Recorder) -> None:
        backend = self.backend
        if backend == "resolved":
            record(DnsResolved(ifname))
            resolved_set(ifname, servers, search)
        elif backend == "resolvconf":
            record(DnsResolvconf(ifname))
            resolvconf_set(ifname, servers, search)
        elif backend == "file":
            path = self.options.resolv_conf
            snapshot = file_snapshot(path)
            text = resolv_conf_text(servers, search).encode()
            record(DnsFile(snapshot))
            # the journal is on a tmpfs: this survives a reboot
            ResolvRecord(self.options.persistent_dir, self.notes).save(snapshot, text)
            file_replace(path, text)
        else:
            raise PlatformError(f"unknown DNS backend {backend!r}")

    def restore_left(self) -> None:
        ResolvRecord(self.options.persistent_dir, self.notes).restore_left()
