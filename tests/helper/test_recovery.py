"""Crash recovery of a journal written by an older helper: the kinds and fields wgdesk 0.1 and the
helper before the platform backend (issue 14) journalled, replayed by today's helper at start-up
against real kernel objects in the lab's client namespace."""

from __future__ import annotations

import json
import time

import pytest

from tests.helper.lab import NFT, lab
from tests.netns import IP, unique_name

pytestmark = pytest.mark.root

T = unique_name("wgr")
MARK = 51999


def old_journal(name: str) -> list[dict[str, object]]:
    """A journal exactly as the helper before this change wrote it (``journal: 1`` header, one JSON
    object per line), with the kinds it no longer writes: ``route`` (one route, wgdesk 0.1),
    ``bypass`` and ``include`` (the split-tunnel nft tables, now an ``nft_table`` of the backend)."""
    return [
        {
            "journal": 1,
            "name": name,
            "ifname": name,
            "owner": 0,
            "full_tunnel": True,
            "kill_switch": False,
            "fwmark": MARK,
            "state": "up",
            "time": time.time(),
            "listen_port": 0,
        },
        {"kind": "link", "ifname": name},
        {"kind": "addr", "ifname": name, "address": "10.77.0.2/32"},
        {"kind": "route", "ifname": name, "dst": "10.77.1.0/24", "table": "main"},
        {"kind": "routes", "ifname": name, "table": str(MARK), "dsts": ["0.0.0.0/0", "10.77.2.0/24"]},
        {"kind": "rule", "family": 4, "spec": ["not", "fwmark", str(MARK), "table", str(MARK)]},
        {"kind": "rule", "family": 4, "spec": ["table", "main", "suppress_prefixlength", "0"]},
        {"kind": "nft_table", "family": "inet", "name": f"wgdesk-old-{name}"},
        {"kind": "bypass", "family": "inet", "name": f"wgdesk-oldbypass-{name}"},
        {"kind": "include", "family": "inet", "name": f"wgdesk-oldinclude-{name}", "mark": MARK},
    ]


def test_a_journal_of_the_previous_format_is_undone_at_start() -> None:
    with lab() as L:
        c = L.client
        before = L.snapshot()
        # what the crashed helper had done, made for real
        c.exec(IP, "tuntap", "add", "dev", T, "mode", "tun")
        c.exec(IP, "addr", "add", "10.77.0.2/32", "dev", T)
        c.exec(IP, "link", "set", T, "up")
        c.exec(IP, "route", "add", "10.77.1.0/24", "dev", T)
        c.exec(IP, "route", "add", "0.0.0.0/0", "dev", T, "table", str(MARK))
        c.exec(IP, "route", "add", "10.77.2.0/24", "dev", T, "table", str(MARK))
        c.exec(IP, "-4", "rule", "add", "not", "fwmark", str(MARK), "table", str(MARK))
        c.exec(IP, "-4", "rule", "add", "table", "main", "suppress_prefixlength", "0")
        for table in ("old", "oldbypass", "oldinclude"):
            c.exec(NFT, "add", "table", "inet", f"wgdesk-{table}-{T}")
        assert L.snapshot() != before
        journal_dir = L.workdir / "state" / "journal"
        journal_dir.mkdir(parents=True, mode=0o700)
        path = journal_dir / f"{T}.journal"
        path.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in old_journal(T)))
        path.chmod(0o600)

        h = L.start_helper()
        assert h.client().status() == []
        assert not path.exists()
        after = L.snapshot()
        after.pop("resolv.conf", None)
        assert after == before
        log = h.log()
        assert "found the journal of a previous helper run" in log and "undo of" not in log
