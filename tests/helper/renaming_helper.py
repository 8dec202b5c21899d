"""``wgdesk-helper`` with a Linux backend whose `TunnelDevices.create` gives the device another name
than the tunnel's, as macOS does (``utunN``), and which logs every call into the backend's
kernel-facing parts. For `tests/helper/test_kernel_ifname.py`; run as
``python renaming_helper.py CALL_LOG HELPER-ARGS...``.

The kernel name is the tunnel's name with its first letter replaced by ``k`` (same length, so unique
per test run as the tunnel name is).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from wgdesk.platforms import linux
from wgdesk.platforms.interface import TunnelDevice

LinuxPlatform = linux.LinuxPlatform
CALL_LOG = sys.argv.pop(1)


def kernel_name(name: str) -> str:
    return "k" + name[1:]


class Logged:
    """One part of the backend (``tunnels``, ``routing``, ...) with each call logged as
    ``{"call": "part.method", "args": repr}`` before it runs."""

    def __init__(self, part: str, target: Any) -> None:
        self._part = part
        self._target = target

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            with open(CALL_LOG, "a") as log:
                log.write(json.dumps({"call": f"{self._part}.{attr}", "args": repr((args, kwargs))}) + "\n")
            return value(*args, **kwargs)

        return call


class RenamingDevices(Logged):
    def create(self, name: str, **kw: Any) -> TunnelDevice:
        with open(CALL_LOG, "a") as log:
            log.write(json.dumps({"call": "tunnels.create", "args": repr(((name,), kw))}) + "\n")
        device: TunnelDevice = self._target.create(kernel_name(name), **kw)
        return device


class RenamingPlatform(LinuxPlatform):
    """The Linux backend, its kernel-facing parts logged and its devices renamed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the parts are cached properties: made here once, logged, in their place
        self.__dict__["tunnels"] = RenamingDevices("tunnels", LinuxPlatform.tunnels.func(self))  # type: ignore[attr-defined]
        for part in ("routing", "firewall", "dns", "split", "service"):
            self.__dict__[part] = Logged(part, getattr(LinuxPlatform, part).func(self))


linux.LinuxPlatform = RenamingPlatform  # type: ignore[misc]

from wgdesk.helper.main import main  # noqa: E402  (after the backend is replaced)

sys.exit(main())
