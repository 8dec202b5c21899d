"""What uninstalling wgdesk removes that the installer's file list does not: every WFP object of ours
and the Wintun driver.

The helper service is stopped first, and waited for until its process has ended
(`service_stop.stop_and_wait`: ``sc.exe stop`` alone returns while the helper still takes its
tunnels down), which ends every engine (their job object closes with the helper) and with them every
Wintun adapter (an adapter lives as long as the handle of the process that created it). If it does
not stop in time nothing is removed (exit status 1). What remains is what was made to survive: the
persistent WFP objects of both plans, and the driver, which Wintun removes once no adapter uses it.

Both persistent plans go: lockdown's (by its name-based keys, boot-time filters included) and the
per-tunnel kill switch's, whose filters name tunnels nobody remembers — `wfp.FilterEngine.remove`
deletes every filter of the plan's provider it finds by enumeration (``FwpmFilterEnum0``) before
the sublayer, which cannot be deleted while a filter still uses it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.windows import wintun
from wgdesk.platforms.windows.service_stop import ControlModules
from wgdesk.platforms.windows.service_stop import main as stop_service
from wgdesk.platforms.windows.wfp import FilterEngine
from wgdesk.platforms.windows.wfp_plan import plan
from wgdesk.platforms.windows.wintun import Wintun

ENGINE_EXECUTABLE = "wgdesk-engine.exe"


def remove_everything(
    open_engine: Callable[[bool], FilterEngine], engine: str, wintun: Wintun | None
) -> list[str]:
    """Remove our persistent WFP objects and the Wintun driver; returns what was done, for the log.
    Objects already gone are fine (running it twice is harmless)."""
    done = []
    filters = open_engine(False)
    try:
        filters.remove(plan("lockdown", engine, []))
        filters.remove(plan("kill-switch", engine, []))
        done.append("removed wgdesk's persistent WFP providers, sublayers and filters")
    finally:
        filters.close()
    if wintun is not None:
        removed = wintun.delete_driver()
        done.append(
            "removed the Wintun driver" if removed else "the Wintun driver stays (another adapter uses it)"
        )
    return done


def engine_executable() -> str:
    """The engine beside the running program (the helper's), as the firewall names it."""
    return str(Path(sys.executable).with_name(ENGINE_EXECUTABLE))


def main(
    open_engine: Callable[[bool], FilterEngine] = FilterEngine.load,
    control: Callable[[], ControlModules] | None = None,
) -> int:
    """``wgdesk-helper --uninstall``, run by the uninstaller: stops the service and waits until its
    process has ended, then prints what it removed; exit status 1 when the service would not stop
    (nothing removed) or the WFP objects could not be removed (they would keep blocking)."""
    if stop_service(control, "--uninstall"):
        return 1  # nothing removed: the helper may still use it
    try:
        driver: Wintun | None = wintun.load()
    except PlatformError as exc:
        print(f"wgdesk-helper --uninstall: the Wintun driver stays: {exc}", file=sys.stderr)
        driver = None
    try:
        done = remove_everything(open_engine, engine_executable(), driver)
    except PlatformError as exc:
        print(f"wgdesk-helper --uninstall: {exc}", file=sys.stderr)
        return 1
    for line in done:
        print(line)
    return 0
