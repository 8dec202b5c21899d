"""nftables through the ``nft`` program: scripts applied as one transaction, tables deleted.

Why ``nft`` and not pyroute2 (which wgdesk uses for links, addresses, routes and rules): nf_tables
rules are register bytecode that ``nft`` compiles from its language, and pyroute2's nftables module
(0.9) builds only a few expressions — IPv4 address matches, masquerade, verdicts — not anonymous sets,
``socket cgroupv2``, ``fib``, conntrack marks or ``reject with icmpx``, all of which the kill switch and
the split-tunnel tables use. Writing those by hand would be writing nft's compiler. ``nft -f -`` also
applies a whole script as one transaction (the kill switch is replaced, never torn down first).
"""

from __future__ import annotations

from dataclasses import dataclass

from wgdesk.platforms.linux.programs import NFT, command
from wgdesk.platforms.linux.records import REGISTRY, UndoContext
from wgdesk.undo import UndoRecord

FAMILY = "inet"


def apply(script: str) -> None:
    """Apply an nft script as one atomic transaction (``nft -f -``)."""
    command([NFT, "-f", "-"], stdin=script)


def check(script: str) -> None:
    """Parse and validate without applying (``nft -c -f -``)."""
    command([NFT, "-c", "-f", "-"], stdin=script)


def table_exists(family: str, name: str) -> bool:
    return command([NFT, "list", "table", family, name], check=False).returncode == 0


def delete_table(family: str, name: str) -> None:
    if table_exists(family, name):
        command([NFT, "delete", "table", family, name])


def ruleset() -> str:
    return command([NFT, "list", "ruleset"], check=False).stdout


@dataclass(frozen=True)
class NftTable(UndoRecord):
    """An nft table of a tunnel (its full-tunnel rules, its excluded or included apps' rules).

    ``bypass`` and ``include`` are the kinds wgdesk 0.1 journalled the split-tunnel tables under
    (beside the helper's own record of the same line)."""

    kind = "nft_table"
    aliases = ("bypass", "include")
    family: str
    name: str


@REGISTRY.undoes(NftTable)
def _(record: NftTable, context: UndoContext) -> None:
    delete_table(record.family, record.name)
