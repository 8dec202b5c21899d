"""``wgdesk-helper``: the privileged daemon (systemd service, Windows service, or ``sudo wgdesk-helper``
for development), hosted as the OS's service manager wants it (`Service.host`)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from wgdesk.helper.events import Events
from wgdesk.helper.logbook import LogBook
from wgdesk.helper.server import ControlServer, HelperAlreadyRunning, default_socket
from wgdesk.helper.settings import Settings, SettingsError, load
from wgdesk.helper.tunnels import TunnelManager
from wgdesk.platforms import PlatformError, backend
from wgdesk.platforms.interface import Service, StopHook


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wgdesk-helper", description="wgdesk privileged helper")
    p.add_argument(
        "--socket",
        type=Path,
        default=Path(os.environ.get("WGDESK_SOCKET") or default_socket()),
        help="control socket path (default $WGDESK_SOCKET or %(default)s)",
    )
    paths = backend().service.paths  # the OS's places (Windows: under %ProgramData%, never C:\\run)
    p.add_argument(
        "--state-dir",
        type=Path,
        default=paths.state,
        help="runtime state: undo journals, lock (default %(default)s)",
    )
    p.add_argument("--config", type=Path, default=paths.settings, help="settings file (default %(default)s)")
    p.add_argument("--engine", help="engine executable (development and tests; overrides engine_path)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: list[str] | None = None) -> int:
    return backend().service.host(run, list(sys.argv[1:] if argv is None else argv))


def _settings(args: argparse.Namespace, service: Service) -> Settings | None:
    """The administrator's settings, once the helper is known to run privileged and its state
    directory to be sound (on Windows the settings file is in the directory checked); None, with the
    reason on stderr, when it must not start."""
    if not service.privileged():
        print(
            "wgdesk-helper: must run as root (sudo wgdesk-helper, or the wgdesk-helper service)",
            file=sys.stderr,
        )
        return None
    os.umask(0o022)
    try:
        service.prepare_directory(args.state_dir)
        settings = load(args.config)
    except (PlatformError, SettingsError) as e:
        print(f"wgdesk-helper: {e}", file=sys.stderr)
        return None
    if args.engine:
        settings = dataclasses.replace(settings, engine_path=args.engine)
    logging.basicConfig(
        level=getattr(logging, (args.log_level or settings.log_level).upper()),
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    return settings


def run(argv: list[str], stop_hook: StopHook | None = None) -> int:
    """The helper until it is stopped: by SIGTERM/SIGINT, or through ``stop_hook`` (a Windows
    service's stop request, which arrives on another thread, where signals cannot be used)."""
    args = build_parser().parse_args(argv)
    service = backend().service
    settings = _settings(args, service)
    if settings is None:
        return 1
    state_dir: Path = args.state_dir
    # One member's large bring-up (parsing, netlink batches) runs Python for seconds on one thread;
    # every other connection's thread waits for the GIL meanwhile. Hand it over every 1 ms, not 5.
    sys.setswitchinterval(0.001)
    lock = service.lock(state_dir)  # held for the process lifetime
    if lock is None:
        print(f"wgdesk-helper: another helper is running with state directory {state_dir}", file=sys.stderr)
        return 1
    logbook = LogBook()
    events = Events()
    manager = TunnelManager(settings, state_dir, logbook, events)
    try:
        manager.lockdown.enforce()  # before the socket: a helper started at boot blocks at once
    except Exception as e:
        # neither the firewall nor the failsafe routing block: do not report ready at all
        print(f"wgdesk-helper: lockdown is on but nothing can block traffic: {e}", file=sys.stderr)
        return 1
    server = ControlServer(args.socket, settings, manager, logbook, events)
    try:
        server.bind()
    except (HelperAlreadyRunning, PermissionError) as e:
        print(f"wgdesk-helper: {e}", file=sys.stderr)
        return 1
    manager.recover()
    stop_monitor = threading.Event()
    monitor = manager.reports.monitor
    threading.Thread(target=monitor, args=(stop_monitor,), daemon=True, name="monitor").start()
    threading.Thread(target=manager.reresolver.run, daemon=True, name="reresolve").start()

    stopping = threading.Event()

    def stop() -> None:
        stopping.set()
        server.stop()

    if stop_hook is None:
        signal.signal(signal.SIGTERM, lambda _signum, _frame: stop())
        signal.signal(signal.SIGINT, lambda _signum, _frame: stop())
        if hasattr(signal, "SIGPIPE"):  # a client that hangs up is an error on its socket, not a signal
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    else:
        stop_hook(stop)  # a service's thread: no signals here (nor SIGPIPE on Windows)
    logbook.info(None, f"listening on {args.socket}")
    error = manager.lockdown.error
    service.notify_ready(f"lockdown firewall failed, blocking by the failsafe: {error}" if error else None)
    try:
        server.serve_forever()
    finally:
        server.stop()
        stop_monitor.set()
        manager.reresolver.stop()
        manager.shutdown()
        logbook.info(None, "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
