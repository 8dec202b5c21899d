"""Who is asking: a connection's uid (from the kernel) and what it may see and change.

Tunnels belong to the uid whose `up` started them (root's and recovered tunnels of an unknown owner
to root). A member changes and sees only their own; root changes everything, and root and members
of the administrator group (``admin_group``) see everything (docs/threat-model.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    uid: int
    sees_all: bool = False
    """Root, or a member of ``admin_group``: status, logs, diagnosis and events of every tunnel."""

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def sees(self, owner: int) -> bool:
        """Whether this caller may see a tunnel (or record) of ``owner``."""
        return self.sees_all or self.is_root or owner == self.uid

    def may_change(self, owner: int) -> bool:
        """Whether this caller may change or stop a tunnel of ``owner``."""
        return self.is_root or owner == self.uid

    @property
    def reader(self) -> int | None:
        """The log rings this caller reads: None for all of them, else its own uid."""
        return None if self.sees_all or self.is_root else self.uid


ROOT = Caller(0, sees_all=True)
"""The helper itself (shutdown, the status monitor) and root's connections."""
