"""The undo journal: one file per tunnel in the state directory, one JSON object per line.

The first line is a header (tunnel name, interface, options). Every later line describes how to
undo one system change, and is written and fsynced *before* the change is made, so that after a
crash at any point the journal covers everything that might have been done. Undoing an entry whose
change never happened is harmless. `down`, a failed `up`, and a helper restarting after a crash all
undo a journal the same way: newest entry first.

A tunnel's journal is ``NAME.journal``. Bringing a blocked tunnel up again writes a second one,
``NAME~new.journal`` (``~`` cannot occur in a tunnel name, so it is never another tunnel's journal),
which takes the first one's place once the bring-up is done. Which tunnel a journal belongs to is in
its header; the file name says only whether it is such a replacement (`replacing`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from wgdesk.platforms.files import NOFOLLOW, append_durably
from wgdesk.undo import UndoRecord

Entry = dict[str, Any]


class Journal:
    """Append-only undo log of one tunnel."""

    def __init__(self, path: Path, header: Entry, entries: list[Entry] | None = None) -> None:
        self.path = path
        self.header = header
        self.entries: list[Entry] = list(entries or [])

    @classmethod
    def create(cls, directory: Path, name: str, header: Entry, replacing: bool = False) -> Journal:
        """A new journal for tunnel ``name`` (``replacing``: beside the one it will replace)."""
        path = directory / (f"{name}{REPLACEMENT}.journal" if replacing else f"{name}.journal")
        journal = cls(path, {"journal": 1, "name": name, **header})
        journal._rewrite()
        return journal

    @property
    def replacing(self) -> bool:
        """Whether this is the journal of a bring-up that replaces a blocked tunnel's (a name other
        than ``NAME.journal``: ``NAME~new.journal``, or ``NAME.new.journal`` as wgdesk 0.1 wrote it)."""
        return self.path.name != f"{self.header.get('name')}.journal"

    def take_place_of(self, old: Journal | None) -> None:
        """Become ``NAME.journal`` (``old``, the journal replaced, is deleted first if given)."""
        if old is not None:
            old.delete()
        target = self.path.with_name(f"{self.header['name']}.journal")
        os.replace(self.path, target)
        self.path = target

    @classmethod
    def load(cls, path: Path) -> Journal:
        """Read a journal; a torn last line (crash mid-write) is ignored."""
        lines = path.read_text(encoding="utf-8").splitlines()
        records: list[Entry] = []
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)
        if not records or records[0].get("journal") != 1:
            raise ValueError(f"{path}: not a wgdesk journal")
        return cls(path, records[0], records[1:])

    def record(self, kind: str, **fields: Any) -> Entry:
        """Durably append an undo entry; call before making the change it undoes."""
        entry = {"kind": kind, **fields}
        append_durably(self.path, (json.dumps(entry, separators=(",", ":")) + "\n").encode())
        self.entries.append(entry)
        return entry

    def add(self, record: UndoRecord) -> Entry:
        """Durably append a typed undo record (`record` of its kind and fields)."""
        return self.record(record.kind, **record.fields())

    def recorder(self) -> Callable[[UndoRecord], None]:
        """What an OS backend journals its own changes through (`wgdesk.platforms.interface.Recorder`)."""

        def record(entry: UndoRecord) -> None:
            self.add(entry)

        return record

    def update_header(self, **fields: Any) -> None:
        self.header.update(fields)
        self._rewrite()

    def keep_only(self, kinds: set[str]) -> None:
        """Drop every entry not of ``kinds`` (after the others were undone)."""
        self.entries = [e for e in self.entries if e["kind"] in kinds]
        self._rewrite()

    def drop(self, entry: Entry) -> None:
        """Forget one entry whose change was undone on its own (routes a failed live update removed)."""
        self.entries = [e for e in self.entries if e is not entry]
        self._rewrite()

    def forget_routes(self, ifname: str, table: str, dsts: set[str]) -> None:
        """Forget routes ``dsts`` through ``ifname`` in ``table`` that a live update removed (one
        rewrite, however many)."""
        kept: list[Entry] = []
        for e in self.entries:
            if e["kind"] == "routes" and e["ifname"] == ifname and e["table"] == table:
                left = [d for d in e["dsts"] if d not in dsts]
                if left:
                    kept.append({**e, "dsts": left})
            elif not (
                e["kind"] == "route" and e["ifname"] == ifname and e["table"] == table and e["dst"] in dsts
            ):
                kept.append(e)
        self.entries = kept
        self._rewrite()

    def newest_first(self) -> Iterator[Entry]:
        return reversed(list(self.entries))

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW, 0o600)  # close-on-exec: PEP 446
        try:
            text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in [self.header, *self.entries])
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)


REPLACEMENT = "~new"


def find(directory: Path) -> list[Path]:
    """Journals left in ``directory`` (by a previous run of the helper)."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.journal"))
