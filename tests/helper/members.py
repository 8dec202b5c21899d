"""Two unprivileged members of the helper's group (throwaway accounts) and a helper in the lab that
serves them: the attacker and the victim of the member-against-member tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.helper.lab import WIREGUARD_GO, HelperProcess, Lab, lab
from tests.helper.test_threats import request_as, throwaway_account
from wgdesk.helper.protocol import MAX_CONFIG_CHARS


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


def largest_config(private: str, public: str, endpoint: str) -> tuple[str, int]:
    """A config with as many /32 AllowedIPs as the protocol's size limit lets through (about
    26 000; the security review's had 27 000 in 392 KB): (its text, how many)."""
    head = f"[Interface]\nPrivateKey = {private}\nAddress = 10.97.0.2/32\n\n[Peer]\nPublicKey = {public}\n"
    tail = f"Endpoint = {endpoint}\n"
    lines: list[str] = []
    line: list[str] = []
    size, count = len(head) + len(tail), 0
    for i in range(1 << 20):
        net = f"10.{1 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}/32"
        if size + len(net) + 40 > MAX_CONFIG_CHARS:
            break
        line.append(net)
        size += len(net) + 2
        count += 1
        if len(line) == 100:
            lines.append("AllowedIPs = " + ", ".join(line) + "\n")
            size += len("AllowedIPs = \n")
            line = []
    if line:
        lines.append("AllowedIPs = " + ", ".join(line) + "\n")
    return head + "".join(lines) + tail, count
