"""The machine settings that traffic marked by the helper needs, set and put back in one place.

A full tunnel and an include tunnel mark packets (the engine's own UDP, included apps') and route
them by that mark; Linux's reverse-path check must then use the mark for replies restored from
conntrack (``net.ipv4.conf.all.src_valid_mark``). Such a setting is machine-wide and several tunnels
may need it at once, so it is journalled with its old value by the first tunnel that changes it, and
its undo hands that old value on to a tunnel still needing it instead of writing it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from wgdesk.helper.records import SettingChanged

if TYPE_CHECKING:
    from wgdesk.helper.journal import Journal
    from wgdesk.helper.state import Tunnel
    from wgdesk.platforms.interface import Routing


def set_for(routing: Routing, families: Iterable[int], journal: Journal) -> None:
    """The settings marked traffic of ``families`` needs, each journalled with its old value before
    it changes (one already right is left alone and not journalled)."""
    for setting in routing.mark_settings(frozenset(families)):
        old = routing.read_setting(setting.key)
        if old != setting.value:
            journal.add(SettingChanged(setting.key, old))
            routing.write_setting(setting.key, setting.value)


def restore(routing: Routing, tunnels: Iterable[Tunnel], tunnel: Tunnel | None, e: SettingChanged) -> None:
    """Undo ``e`` of ``tunnel`` (None: a crashed helper's journal): when another live tunnel still
    needs the setting, it gets our saved original instead, and the value stays."""
    for other in tunnels:
        if other is tunnel:
            continue
        for oe in other.journal.entries:
            if oe["kind"] == "sysctl" and oe["key"] == e.key:
                oe["old"] = e.old
                other.journal.keep_only({x["kind"] for x in other.journal.entries})
                return
        needed = {s.key for s in routing.mark_settings(frozenset({4, 6}))}
        if other.full_tunnel and e.key in needed and other.state == "up":
            other.journal.add(e)
            return
    routing.write_setting(e.key, e.old)
