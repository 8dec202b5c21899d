"""``wgdesk-helper``: the privileged daemon (systemd service, or ``sudo wgdesk-helper`` for development)."""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from wgdesk.helper.logbook import LogBook
from wgdesk.helper.server import DEFAULT_SOCKET, ControlServer, HelperAlreadyRunning
from wgdesk.helper.settings import DEFAULT_PATH, SettingsError, load
from wgdesk.helper.tunnels import Events, TunnelManager

DEFAULT_STATE_DIR = Path("/run/wgdesk")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wgdesk-helper", description="wgdesk privileged helper")
    p.add_argument(
        "--socket",
        type=Path,
        default=Path(os.environ.get("WGDESK_SOCKET") or DEFAULT_SOCKET),
        help="control socket path (default $WGDESK_SOCKET or %(default)s)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="runtime state: undo journals, lock (default %(default)s)",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_PATH, help="settings file (default %(default)s)")
    p.add_argument("--engine", help="engine executable (development and tests; overrides engine_path)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    return p


def notify_ready(status: str | None = None) -> None:
    """Tell systemd (``Type=notify``) that the helper is ready: lockdown blocks (its table, or the
    failsafe rules — ``status`` then says so in `systemctl status`) and the socket listens. Nothing
    happens without ``$NOTIFY_SOCKET``; a failure is only logged."""
    path = os.environ.pop("NOTIFY_SOCKET", "")  # not inherited by engines or hooks
    if not path or path[0] not in "/@":
        return
    address = "\0" + path[1:] if path[0] == "@" else path
    message = "READY=1" + (f"\nSTATUS={status}" if status else "")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(message.encode())
    except OSError as e:
        logging.getLogger(__name__).warning("could not notify systemd on %s: %s", path, e)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load(args.config)
    except SettingsError as e:
        print(f"wgdesk-helper: {e}", file=sys.stderr)
        return 1
    if args.engine:
        settings = dataclasses.replace(settings, engine_path=args.engine)
    logging.basicConfig(
        level=getattr(logging, (args.log_level or settings.log_level).upper()),
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if os.geteuid() != 0:
        print(
            "wgdesk-helper: must run as root (sudo wgdesk-helper, or the wgdesk-helper service)",
            file=sys.stderr,
        )
        return 1
    os.umask(0o022)
    # One member's large bring-up (parsing, netlink batches) runs Python for seconds on one thread;
    # every other connection's thread waits for the GIL meanwhile. Hand it over every 1 ms, not 5.
    sys.setswitchinterval(0.001)
    state_dir: Path = args.state_dir
    state_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    lock = open(state_dir / "helper.lock", "a")  # noqa: SIM115 - held for the process lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"wgdesk-helper: another helper is running with state directory {state_dir}", file=sys.stderr)
        return 1
    logbook = LogBook()
    events = Events()
    manager = TunnelManager(settings, state_dir, logbook, events)
    try:
        manager.enforce_lockdown()  # before the socket: a helper started at boot blocks at once
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
    threading.Thread(target=manager.monitor, args=(stop_monitor,), daemon=True, name="monitor").start()
    threading.Thread(target=manager.reresolver.run, daemon=True, name="reresolve").start()

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    logbook.info(None, f"listening on {args.socket}")
    error = manager.lockdown.error
    notify_ready(f"lockdown firewall failed, blocking by routing rules: {error}" if error else None)
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
