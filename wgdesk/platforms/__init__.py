"""OS specifics behind one interface.

This is the only module that branches on ``sys.platform``; everything else imports
``wgdesk.platforms.current`` (the module for the running OS) or the names re-exported here.
"""

from __future__ import annotations

import sys
from types import ModuleType


class PlatformError(Exception):
    """An operating-system operation failed; ``str()`` names the command and the OS's answer."""


class Unsupported(PlatformError):
    """The running operating system has no implementation of this operation yet."""


def _select() -> ModuleType:
    if sys.platform.startswith("linux"):
        from wgdesk.platforms import linux

        return linux
    if sys.platform == "darwin":
        from wgdesk.platforms import darwin

        return darwin
    if sys.platform == "win32":
        from wgdesk.platforms import windows

        return windows
    raise Unsupported(f"wgdesk does not support {sys.platform}")


current: ModuleType = _select()

__all__ = ["PlatformError", "Unsupported", "current"]
