"""Two unprivileged members of the helper's group (throwaway accounts) and a helper in the lab that
serves them: the attacker and the victim of the member-against-member tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.helper.lab import WIREGUARD_GO, HelperProcess, Lab, lab
from tests.helper.test_threats import request_as, throwaway_account


@dataclass(frozen=True)
class Member:
    """One throwaway account in the helper's group; `request` speaks to the helper as it."""

    uid: int
    gid: int
    helper: HelperProcess

    def request(self, verb: str, **args: Any) -> dict[str, Any]:
        """{"ok": result} or {error code: message}, from a process of this uid."""
        return request_as(self.helper.socket, self.uid, self.gid, verb, **args)  # type: ignore[return-value]

    def ok(self, verb: str, **args: Any) -> Any:
        reply = self.request(verb, **args)
        assert "ok" in reply, reply
        return reply["ok"]


@contextmanager
def two_members(settings: str = "", engine: str = WIREGUARD_GO) -> Iterator[tuple[Lab, Member, Member]]:
    """The lab with a helper whose group has two members, (victim, attacker)."""
    with (
        throwaway_account() as (_a, uid_a, group, gid),
        throwaway_account() as (_b, uid_b, _gb, _gidb),
        lab() as L,
    ):
        h = L.start_helper(settings=f'group = "{group}"\n' + settings, engine=engine)
        yield L, Member(uid_a, gid, h), Member(uid_b, gid, h)
