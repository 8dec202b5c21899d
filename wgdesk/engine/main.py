"""`wgdesk-engine [-f] IFNAME`: userspace WireGuard, command-line compatible with wireguard-go.

Environment: `WG_PROCESS_FOREGROUND=1` (like `-f`), `LOG_LEVEL=verbose|error|silent`,
`WG_TUN_FD` / `WG_UAPI_FD` (already open TUN / UAPI listener), `WGDESK_UDP_FDS=FD4,FD6`
(already bound UDP sockets, either may be `-`), `WGDESK_RUN_AS=UID:GID` (started as root with those
fds: become that user, with no capabilities, before the first packet or UAPI request is read — see
`drop_to`), `WGDESK_TIME_SCALE` (test knob: speeds up the protocol clock; never set it in production),
`WGDESK_PURE_PYTHON=1` (run the pure-Python data path even when the compiled one is built),
`WGDESK_PORTABLE=1` (the portable I/O of macOS and Windows: no vnet header, no GSO/GRO, one packet
per system call).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import signal
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from wgdesk import __version__
from wgdesk.engine import logger
from wgdesk.engine.logger import log
from wgdesk.platforms import PlatformError

if TYPE_CHECKING:
    from wgdesk.engine.loop import Engine
    from wgdesk.fastpath import Choice
    from wgdesk.platforms.interface import EngineIO, Tun, UapiListener, UdpGuard

USAGE = "Usage: wgdesk-engine [-f/--foreground] INTERFACE-NAME"
EXIT_SETUP_FAILED = 1


def _parse(argv: list[str]) -> tuple[bool, str] | None:
    if len(argv) == 1 and not argv[0].startswith("-"):
        return False, argv[0]
    if len(argv) == 2 and argv[0] in ("-f", "--foreground"):
        return True, argv[1]
    return None


def _fd_env(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise ValueError(f"{name} must be a file descriptor number, not {value!r}")
    return int(value)


class _Stopper:
    """SIGTERM/SIGINT handler: stops the engine, or remembers the request until it exists."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.pending = ""

    def __call__(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.engine is not None:
            self.engine.stop(name)
        else:
            self.pending = name


class _SetupFailed(Exception):
    """Setup stopped: the reason is logged and what setup had opened is closed."""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-v"]):
        from wgdesk.fastpath import choose

        print(
            f"wgdesk-engine v{__version__}\n\nUserspace WireGuard daemon of wgdesk.\n"
            f"Data path: {choose().describe()}"
        )
        return 0
    parsed = _parse(args)
    if parsed is None:
        print(USAGE, file=sys.stderr)
        return EXIT_SETUP_FAILED
    foreground, ifname = parsed
    foreground = foreground or os.environ.get("WG_PROCESS_FOREGROUND") == "1"
    level_name = os.environ.get("LOG_LEVEL")
    level = logger.configure(ifname, level_name)
    stopper = _Stopper()
    if foreground:
        signal.signal(signal.SIGTERM, stopper)
        signal.signal(signal.SIGINT, stopper)
    quiet = level_name is None or level >= logger.LEVELS["silent"]
    try:
        return _run(ifname, foreground, quiet, stopper)
    except _SetupFailed:
        return EXIT_SETUP_FAILED


def _run(ifname: str, foreground: bool, quiet: bool, stopper: _Stopper) -> int:
    """Device, UAPI listener, then either a background child or the engine's loop here."""
    # Imported here so `--version` and usage errors stay fast.
    from wgdesk import platforms

    io = platforms.backend().engine_io
    datapath = _datapath(io)
    try:
        tun_fd = _fd_env("WG_TUN_FD")
        uapi_fd = _fd_env("WG_UAPI_FD")
    except ValueError as exc:
        log.error("%s", exc)
        raise _SetupFailed from None
    log.debug("Starting wgdesk-engine version %s: %s", __version__, datapath.describe())
    tun = _open_device(ifname, tun_fd, datapath)
    listener, path = _open_uapi(io, tun, uapi_fd)
    if not foreground:
        _daemonize(tun, listener, path, quiet)
        return 0
    engine = _engine(io, tun, listener, path, datapath)
    run_as = os.environ.get("WGDESK_RUN_AS")
    if run_as:
        try:
            drop_to(run_as, engine.choice.module)
        except (ValueError, RuntimeError, PlatformError) as exc:
            log.error("Failed to drop privileges: %s", exc)
            engine.close()
            raise _SetupFailed from None
        log.debug("Running as uid %s, gid %s, without capabilities", *run_as.split(":"))
    stopper.engine = engine
    if stopper.pending:
        engine.stop(stopper.pending)
    log.debug("UAPI listener started")
    engine.run()
    log.debug("Shutting down (%s)", engine.exit_reason)
    return 0


def _datapath(io: EngineIO) -> Choice:
    from wgdesk.fastpath import Choice, choose

    datapath = choose()
    if datapath.compiled and not io.compiled_reads_device:
        reason = "the compiled path cannot read this system's tunnel device"
        datapath = Choice(None, reason, datapath.portable, datapath.io_thread)
    return datapath


def _open_device(ifname: str, tun_fd: int | None, datapath: Choice) -> Tun:
    """The device the helper handed over, or one made here (``wgdesk-engine IFNAME`` by hand)."""
    from wgdesk.engine import tun as tun_device
    from wgdesk.engine.tun import TunError

    try:
        if tun_fd is not None:
            return tun_device.adopt(tun_fd)
        return tun_device.create(ifname, vnet_hdr=not datapath.portable)
    except TunError as exc:
        log.error("Failed to create TUN device: %s", exc)
        raise _SetupFailed from None


def _open_uapi(io: EngineIO, tun: Tun, uapi_fd: int | None) -> tuple[UapiListener, Path | None]:
    """The UAPI listener the helper handed over, or one made here, named after the device."""
    from wgdesk import platforms

    try:
        if uapi_fd is not None:
            handed = socket.socket(fileno=uapi_fd)
            handed.set_inheritable(False)
            return handed, Path(platforms.backend().uapi.path(tun.name))
        return io.listen_uapi(tun.name)
    except (PlatformError, OSError) as exc:
        log.error("UAPI listen error: %s", exc)
        tun.close()
        raise _SetupFailed from None


def _daemonize(tun: Tun, listener: UapiListener, path: Path | None, quiet: bool) -> None:
    from wgdesk.engine.daemon import spawn_background

    if not isinstance(listener, socket.socket):  # a Windows pipe cannot be handed to a child
        log.error("This system's engine runs in the foreground only: use -f")
        _close_all(listener, path, tun)
        raise _SetupFailed
    try:
        spawn_background(tun, listener, tun.name, quiet=quiet)
    except OSError as exc:
        log.error("Failed to daemonize: %s", exc)
        listener.close()
        with_suppress_unlink(path)
        raise _SetupFailed from None


def _engine(io: EngineIO, tun: Tun, listener: UapiListener, path: Path | None, datapath: Choice) -> Engine:
    """The engine over the device, the listener and the UDP sockets (handed over, or bound later)."""
    from wgdesk.engine.bind import Bind, BindError
    from wgdesk.engine.loop import Engine

    try:
        time_scale = float(os.environ.get("WGDESK_TIME_SCALE") or 1)
        if not 0 < time_scale < 1e6:
            raise ValueError
    except ValueError:
        log.error("WGDESK_TIME_SCALE must be a positive number (a test knob; unset it)")
        _close_all(listener, path, tun)
        raise _SetupFailed from None
    guard: UdpGuard | None = None
    try:
        udp_fds = os.environ.get("WGDESK_UDP_FDS")
        bind = Bind.from_fds(udp_fds, offload=not datapath.portable) if udp_fds else None
        guard = io.guard_udp(tun)
        return Engine(
            tun, listener, path, bind=bind, time_scale=time_scale, datapath=datapath, udp_guard=guard
        )
    except (BindError, PlatformError, OSError) as exc:
        log.error("Failed to bind UDP: %s", exc)
        if guard is not None:
            guard.close()
        _close_all(listener, path, tun)
        raise _SetupFailed from None


def drop_to(run_as: str, datapath: ModuleType | None = None) -> None:
    """Become ``UID:GID`` for good (the backend's `EngineHost.drop_privileges`), after loading every module
    the running engine can need — its own, and what the libraries load on first use (`rehearsal`): from
    then on it may not be able to read the directory it was started from (a venv in a private home), so
    nothing may be imported later. Raises `ValueError`, `PlatformError` or `RehearsalFailed`."""
    uid, sep, gid = run_as.partition(":")
    if not (uid.isdigit() and sep and gid.isdigit()):
        raise ValueError(f"WGDESK_RUN_AS must be UID:GID, not {run_as!r}")
    import wgdesk.engine
    import wgdesk.proto

    for package in (wgdesk.proto, wgdesk.engine):
        for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    importlib.import_module("wgdesk.uapi")
    from wgdesk.engine.rehearsal import rehearse
    from wgdesk.platforms import backend

    rehearse(datapath)  # loads what the libraries (and the compiled data path) load on first use

    backend().engine.drop_privileges(int(uid), int(gid))
    sys.meta_path.insert(0, _LateImport())


class _LateImport:
    """Logs every import after `drop_to` (it may fail: the files may no longer be readable), so a
    module missing from the preload shows up in the log instead of as a mystery."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        log.error("Module %s imported after dropping privileges", fullname)


def with_suppress_unlink(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def _close_all(listener: UapiListener, path: Path | None, tun: Tun) -> None:
    """Undo a start that failed half way: the UAPI listener (and its socket file), the device."""
    listener.close()
    with_suppress_unlink(path)
    tun.close()


if __name__ == "__main__":
    sys.exit(main())
