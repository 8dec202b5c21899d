"""Which data path the engine runs: the compiled module, or the pure-Python reference.

`_fastpath` (C, `_fastpath.c`, built by `pip install` from setup.py against OpenSSL's libcrypto)
seals and opens runs of transport packets and makes the batched system calls around them; every
protocol decision stays in `wgdesk.proto.Device`, which hands it keypairs and takes counters back
(aioquic's split: protocol logic in Python, a small C module where per-packet cost matters).
It is optional. `choose()` returns the compiled module unless

* `WGDESK_PURE_PYTHON=1` asks for the reference path,
* the module was not built (no compiler or OpenSSL headers when installing) or fails to load,

and says which path runs and why; the engine logs that line and `wgdesk-engine --version` prints it.

Independently of the language, the I/O can be the *offload* path (Linux: `IFF_VNET_HDR` TUN with
TSO/USO superframes, UDP GSO/GRO) or the *portable* path (one packet per system call, no vnet
header: what macOS and Windows run, always); `WGDESK_PORTABLE=1` forces the portable one on Linux. The
compiled path with portable I/O makes its sends and TUN writes on a second thread
(`WGDESK_IO_THREAD=0` turns that off, `=1` turns it on for offload I/O too).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

from wgdesk.platforms import system

PURE_ENV = "WGDESK_PURE_PYTHON"
PORTABLE_ENV = "WGDESK_PORTABLE"
THREAD_ENV = "WGDESK_IO_THREAD"


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Choice:
    """The data path chosen: `module` is the compiled module, or None for the pure-Python path."""

    module: ModuleType | None
    reason: str
    portable: bool = False
    io_thread: bool | None = None
    """Sends and TUN writes on the compiled module's writer thread; None: with portable I/O."""

    @property
    def compiled(self) -> bool:
        return self.module is not None

    @property
    def threaded(self) -> bool:
        """Whether the compiled path runs its writer thread."""
        wanted = self.portable if self.io_thread is None else self.io_thread
        return self.module is not None and wanted

    def describe(self) -> str:
        """One line for the log and `--version`."""
        io = "portable I/O (one packet per system call)" if self.portable else "offload I/O"
        if self.module is not None:
            thread = ", sends and TUN writes on a second thread" if self.threaded else ""
            return f"compiled data path ({self.module.OPENSSL_VERSION}), {io}{thread}"
        return f"pure-Python data path ({self.reason}), {io}"


def load_module() -> ModuleType:
    """Import the compiled module and register the exception its AEAD raises; ImportError if absent."""
    from cryptography.exceptions import InvalidTag

    module: ModuleType = importlib.import_module("wgdesk.fastpath._fastpath")
    module.set_invalid_tag(InvalidTag)
    return module


def choose(environ: Mapping[str, str] | None = None) -> Choice:
    """The data path for this process, from the environment and what is installed."""
    env = os.environ if environ is None else environ
    # Offload I/O (vnet header, UDP GSO/GRO) exists only on Linux: elsewhere the portable path runs.
    portable = _flag(env, PORTABLE_ENV) or system() != "linux"
    thread = env.get(THREAD_ENV, "").strip()
    io_thread = None if not thread else _flag(env, THREAD_ENV)
    if _flag(env, PURE_ENV):
        return Choice(None, f"{PURE_ENV}=1", portable, io_thread)
    try:
        return Choice(load_module(), "built", portable, io_thread)
    except ImportError as exc:
        return Choice(None, f"compiled module not available: {exc}", portable, io_thread)
    except Exception as exc:  # a broken build must not take the engine down: the reference path runs
        return Choice(None, f"compiled module failed to load: {exc!r}", portable, io_thread)


__all__ = ["PORTABLE_ENV", "PURE_ENV", "THREAD_ENV", "Choice", "choose", "load_module"]
