"""The backend's `wgdesk.platforms.interface.Firewall` on Windows: the WFP plans of `wfp_plan` put in
place by `wfp.FilterEngine`.

The per-tunnel kill switch is a persistent plan of its own provider (`wfp_plan`): replacing it is one
transaction, removing it deletes every filter of that provider. A crashed helper leaves it in force,
as the nft table stays on Linux: the restarted helper's recovery either keeps the tunnel blocked
(`apply_kill_switch` then replaces what the old helper left — this object's previous plan is not
known after a restart, so the filters of the provider are enumerated) or, with nothing to protect,
finds it (`kill_switch_present`: its block filter, whose key names no tunnel) and removes it.
Lockdown and the failsafe block are the other persistent plan (with boot-time filters), which
survives a crash and a reboot until `unblock_all`. The kill switch lets DNS out only through the
tunnels' interfaces: `KillSwitch` does not carry the tunnels' DNS servers, so the plan is not
narrowed to them here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from wgdesk.platforms.interface import FullTunnel, KillSwitch, Recorder
from wgdesk.platforms.unsupported import MissingFirewall
from wgdesk.platforms.windows.devices import Source, luid_of
from wgdesk.platforms.windows.wfp import FilterEngine
from wgdesk.platforms.windows.wfp_plan import Plan, TunnelRules, plan

Opener = Callable[[bool], FilterEngine]
"""Opens the filtering engine (``True``: a dynamic session, which this backend no longer uses)."""


class WindowsFirewall(MissingFirewall):
    def __init__(self, source: Source, engine: str, open_engine: Opener = FilterEngine.load) -> None:
        super().__init__("win32")
        self.source = source
        self.engine = engine
        self.open_engine = open_engine
        self._plan: Plan | None = None
        """The kill switch this helper put in place (None: none, or not known — after a restart)."""

    def full_tunnel_on(self, tunnel: FullTunnel, record: Recorder) -> None:
        """Nothing: a full tunnel needs no packet-filter rule of its own on Windows (the engine's
        socket is pinned to the physical interface instead of marked)."""

    def apply_kill_switch(self, kill_switch: KillSwitch) -> None:
        """Block all but what the plan permits; a member whose adapter is gone (its engine died with a
        crashed helper: the tunnel stays *blocked*) gets no permit rule — nothing can leave through it."""
        tunnels = []
        for member in kill_switch.members:
            try:
                tunnels.append(TunnelRules(member.tunnel, luid_of(self.source.ip, member.ifname)))
            except FileNotFoundError:
                continue
        new = plan("kill-switch", self.engine, tunnels, kill_switch.lan)
        with self._persistent() as engine:
            engine.apply(new, previous=self._plan)
        self._plan = new

    def _kill_switch(self) -> Plan:
        """The kill switch without tunnels: its provider, sublayer and the filters no tunnel names."""
        return plan("kill-switch", self.engine, [])

    def remove_kill_switch(self) -> None:
        with self._persistent() as engine:
            engine.remove(self._plan or self._kill_switch())
        self._plan = None

    def kill_switch_present(self) -> bool:
        """In place — also one an earlier helper left (found by its block filter's key)."""
        return self._plan is not None or self._has_block(self._kill_switch())

    def _lockdown(self) -> Plan:
        return plan("lockdown", self.engine, [])

    @contextmanager
    def _persistent(self) -> Iterator[FilterEngine]:
        engine = self.open_engine(False)
        try:
            yield engine
        finally:
            engine.close()

    def block_all(self) -> None:
        with self._persistent() as engine:
            engine.apply(self._lockdown())

    def unblock_all(self) -> None:
        with self._persistent() as engine:
            engine.remove(self._lockdown())

    def blocking_all(self) -> bool:
        return self._has_block(self._lockdown())

    def _has_block(self, p: Plan) -> bool:
        block = next(f for f in p.filters if f.name == "block everything else")
        with self._persistent() as engine:
            return engine.has_filter(block.key)
