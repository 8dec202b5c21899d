"""The errors of every OS backend: a leaf module, so the backends import it and not the package that
selects them."""

from __future__ import annotations


class PlatformError(Exception):
    """An operating-system operation failed; ``str()`` names the command and the OS's answer."""


class Unsupported(PlatformError):
    """The running operating system has no implementation of this operation yet."""
