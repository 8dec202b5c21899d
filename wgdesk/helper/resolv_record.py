"""The resolv.conf undo record, which survives a power loss (``dns_backend = "file"``).

Undo journals live under /run, a tmpfs: after a power loss they are gone, but a rewritten
/etc/resolv.conf is on disk and would point at a tunnel's DNS servers for good. So before the helper
rewrites the file it also keeps, in ``persistent_dir`` (/var/lib/wgdesk), the original (the journal
entry's snapshot) and a hash of what it is about to write — fsynced, root-only. The ordinary undo
(`down`, a rollback, recovery from a journal) deletes the record; a helper that starts and still
finds it, with no journal left to cover it, restores the original — but only while resolv.conf is
still what the helper wrote: a file that someone has rewritten since (a network manager at boot) is
left alone and the record dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import suppress
from pathlib import Path
from typing import Any

from wgdesk.helper.logbook import LogBook
from wgdesk.platforms import current as platform

NAME = "resolv.conf.undo.json"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ResolvRecord:
    """The one record (only one tunnel at a time may rewrite resolv.conf)."""

    def __init__(self, directory: Path, log: LogBook) -> None:
        self.path = directory / NAME
        self.log = log

    def save(self, snapshot: dict[str, Any], written: bytes) -> None:
        """Keep ``snapshot`` (`platform.file_snapshot` of the original) before ``written`` replaces it."""
        self.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{NAME}.tmp")
        with suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps({"snapshot": snapshot, "written": _digest(written)}).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def forget(self) -> None:
        with suppress(FileNotFoundError):
            self.path.unlink()

    def restore_left(self) -> None:
        """At start, after the journals were undone: a record still here means resolv.conf was
        rewritten before a power loss (or a crash that lost /run); put the original back."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            st = os.fstat(fd)
            record = json.loads(os.read(fd, 1 << 22).decode()) if st.st_uid == 0 else None
        except (OSError, ValueError) as e:
            self.log.error(None, f"unreadable {self.path} ({e}); resolv.conf left as it is")
            record = None
        finally:
            os.close(fd)
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
            self.log.warning(
                None,
                f"{path} was rewritten by a tunnel before the helper last stopped, and has changed since; "
                "left as it is",
            )
            return
        platform.file_restore(record["snapshot"])
        self.log.warning(
            None, f"{path} still had a tunnel's DNS servers from before a power loss or crash: restored"
        )
