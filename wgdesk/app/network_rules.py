"""Rules by network: connect chosen tunnels on untrusted networks, take them down again on trusted ones.

Pure decision logic (no Qt, no I/O, no clock): the controller feeds it what it observed — the network
the machine is on, which networks the user trusts, which tunnels carry the flag "Connect automatically
on untrusted networks", which tunnels are up — and carries out the answer.

The rules, in order:

* No network (none, or not identified yet): nothing happens, and nothing is forgotten.
* On an untrusted network every flagged tunnel that is down is connected — once per network: a tunnel
  that fails, drops, or that the user disconnects by hand is not connected again until the network
  changes (another network; for "failed/dropped" also the same network becoming trusted and untrusted
  again).
* On a trusted network the tunnels the rule connected are taken down. Tunnels the user connected (by
  hand, or "restore tunnels at start") are never taken down by a rule; a rule-connected tunnel the user
  disconnects and connects again becomes the user's.
* Clearing a tunnel's flag leaves it as it is, and the rule no longer manages it.

With "restore tunnels at start" (the controller's side): the tunnels a rule connected are remembered
across restarts (they stay up when the app quits) and are never in the restore list, so at the next start
the rule alone decides for them — up on an untrusted network, down on a trusted one. Restored tunnels are
the user's: restore runs before the rules first look, and no rule takes them down.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass

from wgdesk.platforms import NetworkIdentity


@dataclass(frozen=True)
class RuleActions:
    """What the rules ask for after one observation (names sorted), and on which network."""

    connect: tuple[str, ...] = ()
    disconnect: tuple[str, ...] = ()
    network: NetworkIdentity | None = None
    trusted: bool = False


class NetworkRules:
    """The state the rules need between observations: which tunnels a rule connected (persisted by the
    caller, see :attr:`rule_connected`), which it already tried on this network, which the user
    disconnected on it."""

    def __init__(self, rule_connected: Iterable[str] = ()) -> None:
        self._brought_up: set[str] = set(rule_connected)
        self._key: str | None = None  # the last network seen
        self._trusted: bool | None = None  # whether it was trusted then
        self._tried: set[str] = set()  # connected by the rule on this network (and this trust)
        self._held: set[str] = set()  # disconnected by the user on this network

    @property
    def rule_connected(self) -> frozenset[str]:
        """The tunnels a rule brought up that are still its to take down."""
        return frozenset(self._brought_up)

    def decide(
        self,
        network: NetworkIdentity | None,
        trusted: Set[str],
        flagged: Set[str],
        active: Set[str],
    ) -> RuleActions:
        """One observation: the current ``network``, the ``trusted`` identity keys, the ``flagged``
        tunnels, and the ``active`` ones (up or coming up). Returns what to connect and disconnect; the
        caller must do it (the rules already count it as done)."""
        if network is None:
            return RuleActions()
        is_trusted = network.key in trusted
        if network.key != self._key:
            self._key = network.key
            self._held.clear()
            self._tried.clear()
        elif is_trusted != self._trusted:
            self._tried.clear()
        self._trusted = is_trusted
        self._brought_up &= set(active)  # gone down on its own, failed, or deleted: not ours any more
        if is_trusted:
            down = tuple(sorted(self._brought_up))
            self._brought_up.clear()
            return RuleActions(disconnect=down, network=network, trusted=True)
        up = tuple(sorted(set(flagged) - set(active) - self._tried - self._held))
        self._tried.update(up)
        self._brought_up.update(up)
        return RuleActions(connect=up, network=network, trusted=False)

    def user_connected(self, name: str) -> None:
        """The user connected *name*: it is theirs, no rule takes it down."""
        self._brought_up.discard(name)
        self._held.discard(name)

    def user_disconnected(self, name: str) -> None:
        """The user disconnected *name*: no rule connects it again on this network."""
        self._brought_up.discard(name)
        self._held.add(name)

    def stop_managing(self, name: str) -> None:
        """*name* lost its flag, or was renamed or deleted: leave it as it is from now on."""
        self._brought_up.discard(name)
        self._tried.discard(name)
        self._held.discard(name)
