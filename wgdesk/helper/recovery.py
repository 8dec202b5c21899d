"""Crash recovery: what a previous helper left behind, undone at start from its journals.

Why its own module: recovery reads journals that an older helper may have written (the file format
of wgdesk 0.1 included: no owner means root's), and decides per journal what stays — a tunnel that
had a kill switch keeps blocking (state ``blocked``) until its owner brings it up again or takes it
down, because a crash must not open what the kill switch closed. Everything else goes, newest first,
through the same undo registry a rollback uses. The firewall's side (lockdown, a failsafe block or a
kill-switch table left by a helper stopped in lockdown) is the `LockdownController`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from wgdesk.helper.journal import Entry, Journal, find
from wgdesk.helper.state import Tunnel, TunnelState
from wgdesk.platforms.interface import KillSwitchMember

if TYPE_CHECKING:
    from wgdesk.helper.lockdown import LockdownController
    from wgdesk.helper.logbook import LogBook
    from wgdesk.helper.split_tunnel import SplitTunnels
    from wgdesk.platforms.interface import Platform


class Recovering(Protocol):
    """What recovery uses of the tunnel manager (whose lock the caller holds)."""

    journal_dir: Path
    tunnels: dict[str, Tunnel]
    log: LogBook
    platform: Platform
    lockdown: LockdownController
    split_tunnel: SplitTunnels

    def undo(self, tunnel: Tunnel | None, journal: Journal, keep: frozenset[str] = frozenset()) -> None: ...


def recover(m: Recovering) -> None:
    """Undo what a crashed helper left behind; keep blocking for tunnels that had a kill switch."""
    for path in find(m.journal_dir):
        try:
            journal = Journal.load(path)
        except (OSError, ValueError) as e:
            m.log.error(None, f"unreadable journal {path.name}: {e}")
            continue
        name = str(journal.header.get("name", path.stem))
        owner = int(journal.header.get("owner", 0))  # journals of wgdesk 0.1: root's
        ks = [e for e in journal.entries if e["kind"] == "killswitch"]
        m.log.own(name, owner)
        m.log.warning(name, "found the journal of a previous helper run: restoring the system")
        m.undo(None, journal, keep=frozenset({"killswitch"}))
        if ks and journal.replacing and name in m.tunnels:
            journal.delete()
        elif ks:
            _keep_blocking(m, journal, name, owner, ks[-1])
        else:
            journal.delete()
            m.log.disown(name)
    m.platform.dns.restore_left()
    m.split_tunnel.recover_include_guard()
    m.lockdown.after_restart()


def _keep_blocking(m: Recovering, journal: Journal, name: str, owner: int, entry: Entry) -> None:
    """The tunnel of ``journal`` had a kill switch (its last entry ``entry``): it stays, blocked,
    with only that entry left in its journal."""
    journal.keep_only({"killswitch"})
    if journal.replacing:
        journal.take_place_of(None)
    journal.update_header(state=TunnelState.BLOCKED)
    tunnel = Tunnel(
        name,
        str(entry["ifname"]),
        TunnelState.BLOCKED,
        journal,
        kill_switch=True,
        fwmark=int(entry["fwmark"]),
        owner=owner,
        message="the helper stopped unexpectedly; the kill "
        "switch keeps blocking traffic. Bring the tunnel up again, or run "
        f"`wgdeskctl down {name}` to stop blocking.",
    )
    m.tunnels[name] = tunnel
    m.lockdown.members[name] = KillSwitchMember(
        name, str(entry["ifname"]), int(entry["fwmark"]), int(entry.get("listen_port", 0))
    )
    m.log.warning(name, tunnel.message or "")
