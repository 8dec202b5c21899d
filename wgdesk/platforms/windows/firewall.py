"""The backend's `wgdesk.platforms.interface.Firewall` on Windows: the WFP plans of `wfp_plan` put in
place by `wfp.FilterEngine`.

The per-tunnel kill switch lives in a dynamic session this object holds open: replacing it is one
transaction, removing it is closing the handle. As issue 16 asks, a crashed helper therefore leaves
no kill switch behind (on Linux the nft table stays); lockdown and the failsafe block are the
persistent plan (with boot-time filters), which survives a crash and a reboot until `unblock_all`.
The kill switch lets DNS out only through the tunnels' interfaces: `KillSwitch` does not carry the
tunnels' DNS servers, so the plan is not narrowed to them here.
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
"""Opens the filtering engine (``True``: a dynamic session)."""


class WindowsFirewall(MissingFirewall):
    def __init__(self, source: Source, engine: str, open_engine: Opener = FilterEngine.load) -> None:
        super().__init__("win32")
        self.source = source
        self.engine = engine
        self.open_engine = open_engine
        self._session: FilterEngine | None = None
        self._plan: Plan | None = None

    def full_tunnel_on(self, tunnel: FullTunnel, record: Recorder) -> None:
        """Nothing: a full tunnel needs no packet-filter rule of its own on Windows (the engine's
        socket is pinned to the physical interface instead of marked)."""

    def apply_kill_switch(self, kill_switch: KillSwitch) -> None:
        tunnels = [TunnelRules(m.tunnel, luid_of(self.source.ip, m.ifname)) for m in kill_switch.members]
        new = plan("kill-switch", self.engine, tunnels, kill_switch.lan)
        if self._session is None:
            self._session = self.open_engine(True)
        self._session.apply(new, previous=self._plan)
        self._plan = new

    def remove_kill_switch(self) -> None:
        if self._session is not None:
            self._session.close()  # a dynamic session's filters go with its handle
        self._session = None
        self._plan = None

    def kill_switch_present(self) -> bool:
        return self._plan is not None

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
        block = next(f for f in self._lockdown().filters if f.name == "block everything else")
        with self._persistent() as engine:
            return engine.has_filter(block.key)
