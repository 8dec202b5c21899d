"""`wgdeskctl`: keys, config checks and the user's tunnel collection from the command line.

Subcommands register themselves with `set_defaults(func=HANDLER)`, where `HANDLER(args) -> int`
returns the exit status. The tunnel commands that talk to the helper (`up`, `down`, `show`) live in
`wgdesk.cli_tunnels`, whose `register(subparsers)` is called when that module exists; they read the
global `--socket` option as `args.socket`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

from wgdesk import __version__
from wgdesk.config import (
    PRIVATE_LAN_RANGES,
    Config,
    ConfigError,
    Interface,
    LintWarning,
    allowed_ips,
    is_valid_key,
    lint,
    parse_bytes,
    strip,
    write,
)
from wgdesk.config.parser import InvalidValue, check_address, check_dns, check_port
from wgdesk.config.routing import explain_status
from wgdesk.keystore import KeyringUnavailable
from wgdesk.platforms import addresses_of, local_networks, route_to, system
from wgdesk.proto import keys
from wgdesk.tunnels import MAX_CONF_BYTES, TunnelError, TunnelStore, write_export

__all__ = ["build_parser", "main", "public_key_of"]

PROG = "wgdeskctl"
IPAddress = IPv4Address | IPv6Address


def public_key_of(private_key: str) -> str:
    """The base64 public key of a base64 private key."""
    return keys.to_base64(keys.public_key(keys.from_base64(private_key)))


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


# --- keys, byte-compatible with `wg genkey|genpsk|pubkey` ---------------------------------------


def _warn_world_accessible_stdout() -> None:
    try:
        st = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError):
        return
    if stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_IRWXO:
        _err(
            "Warning: writing to world accessible file.\nConsider setting the umask to 077 and trying again."
        )


def cmd_genkey(args: argparse.Namespace) -> int:
    _warn_world_accessible_stdout()
    _out(keys.to_base64(keys.generate_private_key(os.urandom)) + "\n")
    return 0


def cmd_genpsk(args: argparse.Namespace) -> int:
    _warn_world_accessible_stdout()
    _out(keys.to_base64(keys.generate_preshared_key(os.urandom)) + "\n")
    return 0


def cmd_pubkey(args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read(64 * 1024)
    head, trailing = data[:44], data[44:]
    if len(head) != 44:
        _err(f"{PROG}: Key is not the correct length or format")
        return 1
    if trailing.strip(b" \t\n\v\f\r\0"):
        _err(f"{PROG}: Trailing characters found after key")
        return 1
    text = head.decode("ascii", errors="replace")
    if not is_valid_key(text):
        _err(f"{PROG}: Key is not the correct length or format")
        return 1
    _out(public_key_of(text) + "\n")
    return 0


# --- files ----------------------------------------------------------------------------------------


def _format_warning(filename: str, warning: LintWarning) -> str:
    where = f"{filename}:{warning.line}" if warning.line is not None else filename
    text = f"{where}: {warning.severity.value}: {warning.message} [{warning.code}]\n"
    if warning.fix is not None:
        text += f"    fix: {warning.fix.description}\n"
    return text


def _own_public_key(cfg: Config) -> str | None:
    if cfg.interface.private_key is None:
        return None
    return public_key_of(cfg.interface.private_key)


def _other_tunnels(store: TunnelStore, stored: dict[str, Config], path: Path) -> dict[str, Config]:
    """The user's tunnels but `path` itself (when it is one of them), for overlap warnings."""
    try:
        same = path.resolve().parent == store.directory.resolve()
    except OSError:
        same = False
    return {name: cfg for name, cfg in stored.items() if not (same and name == path.stem)}


def _read_config(name: str) -> bytes:
    """The contents of config file `name` (a pipe is fine); raises OSError, or ConfigError when it is
    larger than any tunnel config (reading /dev/zero must not exhaust memory)."""
    with open(name, "rb") as f:
        data = f.read(MAX_CONF_BYTES + 1)
    if len(data) > MAX_CONF_BYTES:
        raise ConfigError(name, None, None, "larger than 1 MiB; not a tunnel config")
    return data


def cmd_check(args: argparse.Namespace) -> int:
    status = 0
    store = TunnelStore()
    stored: dict[str, Config] | None = None  # read once, when the first file parses
    for name in args.files:
        path = Path(name)
        try:
            cfg = parse_bytes(_read_config(name), filename=name)
            mode = path.stat().st_mode
        except OSError as exc:
            _out(f"{name}: {exc.strerror or exc}\n")
            status = 1
            continue
        except ConfigError as exc:
            _out(f"{exc}\n")
            status = 1
            continue
        if stored is None:
            stored = store.configs()
            lans = local_networks()
        found = lint(
            cfg,
            own_public_key=_own_public_key(cfg),
            other_tunnels=_other_tunnels(store, stored, path),
            file_mode=mode,
            local_networks=lans,
            platform=system(),
        )
        for warning in found:
            _out(_format_warning(name, warning))
    return status


def cmd_strip(args: argparse.Namespace) -> int:
    try:
        data = _read_config(args.file)
    except OSError as exc:
        _err(f"{PROG}: `{args.file}': {exc.strerror or exc}")
        return 1
    except ConfigError as exc:
        _err(f"{PROG}: {exc}")
        return 1
    text = data.decode("utf-8", errors="surrogateescape")
    try:
        stripped = strip(text, filename=args.file)
    except ConfigError as exc:
        _err(f"{PROG}: {exc}")
        return 1
    sys.stdout.buffer.write(stripped.encode("utf-8", errors="surrogateescape"))
    sys.stdout.flush()
    return 0


def cmd_allowed_ips(args: argparse.Namespace) -> int:
    exclude = [*(PRIVATE_LAN_RANGES if args.exclude_private else ()), *(args.exclude or ())]
    networks = allowed_ips(args.include, exclude)
    if not networks:
        _err(f"{PROG}: nothing is left: the excluded ranges cover everything included")
        return 1
    _out(", ".join(str(n) for n in networks) + "\n")
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    from wgdesk.client import HelperClient, HelperError, HelperUnavailable

    try:
        targets = addresses_of(args.target)
    except (OSError, UnicodeError) as exc:
        _err(f"{PROG}: cannot resolve {args.target}: {exc}")
        return 1
    stored = TunnelStore().configs()
    try:
        with HelperClient(args.socket, timeout=10) as client:
            status = client.status()
    except HelperUnavailable:
        _err(f"{PROG}: note: the helper is not running: every tunnel counts as down")
        status = []
    except HelperError as exc:
        _err(f"{PROG}: note: no status from the helper ({exc.message}): every tunnel counts as down")
        status = []
    local = local_networks()
    if not _is_ip(args.target):
        _out(f"{args.target} resolves to {', '.join(str(a) for a in targets)}\n")
    for addr in targets:
        explanation = explain_status(addr, stored, status, local)
        lines = explanation.lines(route_to(str(addr)), kernel_checked=True)
        _out("\n".join(lines) + "\n")
    return 0


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


# --- the tunnel store -----------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    store = TunnelStore()
    if args.files == ["-"]:
        if not args.name:
            _err(f"{PROG}: importing from standard input needs --name NAME")
            return 2
        report = store.import_text(sys.stdin.buffer.read(MAX_CONF_BYTES + 1), args.name)
    elif "-" in args.files or args.name:
        _err(f"{PROG}: --name goes with a single `-` (standard input)")
        return 2
    else:
        report = store.import_files(args.files)
    for line in report.lines():
        _out(line + "\n")
    for tunnel in report.imported:
        for warning in tunnel.warnings:
            _out(_format_warning(tunnel.name, warning))
    return 1 if report.rejected else 0


def cmd_export(args: argparse.Namespace) -> int:
    store = TunnelStore()
    if args.with_secrets and args.output is None:
        _warn_world_accessible_stdout()  # as genkey: keys are about to land in that file
    if args.all:
        if args.name is not None:
            _err(f"{PROG}: give a tunnel name or --all, not both")
            return 2
        data = store.export_zip(with_secrets=args.with_secrets)
        if args.output is None:
            if sys.stdout.isatty():
                _err(f"{PROG}: --all writes a .zip archive; use -o FILE.zip or redirect the output")
                return 2
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            write_export(args.output, data, secret=args.with_secrets)
        return 0
    if args.name is None:
        _err(f"{PROG}: give a tunnel name or --all")
        return 2
    cfg = store.load(args.name, with_secrets=args.with_secrets)
    if args.with_secrets and cfg.interface.private_key is None:
        _err(f"{PROG}: note: the keyring holds no private key for `{args.name}`; the export has none")
    text = write(cfg)
    if args.output is None:
        _out(text)
    else:
        write_export(args.output, text.encode(), secret=args.with_secrets)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for name in TunnelStore().list():
        _out(name + "\n")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    TunnelStore().rename(args.old, args.new)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    store = TunnelStore()
    for name in args.names:
        store.delete(name)
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    store = TunnelStore()
    if store.exists(args.name):
        _err(f"{PROG}: a tunnel named `{args.name}` already exists")
        return 1
    private_key = keys.to_base64(keys.generate_private_key(os.urandom))
    interface = Interface(private_key=private_key)
    try:
        addresses = tuple(check_address(a) for a in _split(args.address))
        dns = [check_dns(d) for d in _split(args.dns)]
        port = check_port("ListenPort", args.listen_port) if args.listen_port is not None else None
    except InvalidValue as exc:
        _err(f"{PROG}: {exc}")
        return 2
    interface = replace(
        interface,
        addresses=addresses,
        dns=tuple(d for d in dns if not isinstance(d, str)),
        dns_search=tuple(d for d in dns if isinstance(d, str)),
        listen_port=port,
    )
    store.save(args.name, Config(interface=interface))
    _out(public_key_of(private_key) + "\n")
    return 0


def _split(values: Sequence[str] | None) -> list[str]:
    return [entry for value in values or () for entry in value.replace(",", " ").split()]


# --- split tunnelling: apps outside a full tunnel ---------------------------------------------------


_SPLIT_WHERE = {"exclude": "outside the tunnel", "include": "only through the tunnel"}


def _split_run(args: argparse.Namespace, mode: str) -> int:
    """Ask the helper to move this process into its bypass (``exclude``) or include cgroup, then
    exec COMMAND (same pid)."""
    import shutil

    from wgdesk.client import HelperClient, HelperError

    verb, where = mode, _SPLIT_WHERE[mode]
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        _err(f"{PROG} {verb}: name the program to run {where}: {PROG} {verb} -- COMMAND [ARGS...]")
        return 2
    if "/" not in argv[0] and shutil.which(argv[0]) is None:
        _err(f"{PROG} {verb}: {argv[0]}: command not found")
        return 127
    try:
        with HelperClient(args.socket) as client:
            result = client.split_exclude() if mode == "exclude" else client.split_include()
    except HelperError as exc:
        _err(f"{PROG} {verb}: cannot run {argv[0]} {where}: {exc.message}")
        return 1
    if not result.get("active"):
        if mode == "exclude":
            _err(
                f"{PROG} exclude: no full tunnel is up; {argv[0]} uses normal routing now and will "
                "bypass a full tunnel once one is up"
            )
        else:
            _err(
                f"{PROG} include: no tunnel of yours takes included apps now (one must be up with full "
                f"tunnel off and AllowedIPs 0.0.0.0/0 or ::/0); {argv[0]} gets nothing out until one is up"
            )
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        _err(f"{PROG} {verb}: cannot run {argv[0]}: {exc.strerror}")
        return 127
    return 0  # not reached


def cmd_exclude(args: argparse.Namespace) -> int:
    """Ask the helper to move this process into its bypass cgroup, then exec COMMAND (same pid)."""
    return _split_run(args, "exclude")


def cmd_include(args: argparse.Namespace) -> int:
    """Ask the helper to move this process into its include cgroup, then exec COMMAND (same pid)."""
    return _split_run(args, "include")


def _split_listing(args: argparse.Namespace, mode: str) -> int:
    """List the processes of one split-tunnel cgroup (yours only, unless you are root)."""
    import json

    from wgdesk.client import HelperClient, HelperError

    verb = "excluded" if mode == "exclude" else "included"
    try:
        with HelperClient(args.socket) as client:
            result = client.split_list()
    except HelperError as exc:
        _err(f"{PROG} {verb}: {exc.message}")
        return 1
    if args.json:
        _out(json.dumps(result, indent=2) + "\n")
        return 0
    state = result if mode == "exclude" else result.get("include") or {}
    if not result.get("available"):
        _out(f"apps cannot run {_SPLIT_WHERE[mode]} here: {result.get('reason')}\n")
    elif mode == "exclude" and state.get("active"):
        _out(f"excluded apps bypass full tunnel {state.get('tunnel')}\n")
    elif mode == "exclude":
        _out("no full tunnel is up: excluded apps use normal routing\n")
    elif state.get("active"):
        _out(f"included apps go only through tunnel {state.get('tunnel')}\n")
    else:
        _out("no tunnel takes included apps: they get nothing out until one is up\n")
    processes = [p for p in result.get("processes") or [] if p.get("mode", "exclude") == mode]
    if not processes:
        _out(f"no {verb} processes\n")
        return 0
    _out(f"{'PID':>8}  {'UID':>6}  COMMAND\n")
    for p in processes:
        _out(f"{p['pid']:>8}  {p['uid']:>6}  {p['command']}\n")
    return 0


def cmd_excluded(args: argparse.Namespace) -> int:
    """List the processes that bypass full tunnels (yours only, unless you are root)."""
    return _split_listing(args, "exclude")


def cmd_included(args: argparse.Namespace) -> int:
    """List the processes that go only through the tunnel (yours only, unless you are root)."""
    return _split_listing(args, "include")


# --- lockdown: block everything while no tunnel is connected ------------------------------------------


def cmd_lockdown(args: argparse.Namespace) -> int:
    """Show lockdown, turn it on/off, or pause/resume it (`wgdeskctl lockdown [on|off|pause|resume]`)."""
    import json

    from wgdesk.client import PAUSE_SECONDS, HelperClient, HelperError, minutes_seconds, pause_left

    if args.seconds is not None and args.state != "pause":
        _err(f"{PROG} lockdown: SECONDS goes with `pause` only")
        return 2
    try:
        with HelperClient(args.socket) as client:
            if args.state is None:
                state = client.lockdown()
            elif args.state == "pause":
                state = client.pause_lockdown(PAUSE_SECONDS if args.seconds is None else args.seconds)
            elif args.state == "resume":
                state = client.resume_lockdown()
            else:
                state = client.set_lockdown(args.state == "on")
            tunnels = client.status() if not args.json else []
    except HelperError as exc:
        _err(f"{PROG} lockdown: {exc.message}")
        return 1
    if args.json:
        _out(json.dumps(state) + "\n")
        return 0
    forced = {"always": " (forced on by the administrator)", "never": " (forced off by the administrator)"}
    _out(f"lockdown: {'on' if state.get('enabled') else 'off'}{forced.get(str(state.get('policy')), '')}\n")
    left = pause_left(state)
    if left is not None:
        _out(
            f"paused: {minutes_seconds(left)} left — traffic flows outside tunnels until then "
            f"(tunnels with their own kill switch still block); `{PROG} lockdown resume` ends it now\n"
        )
    elif state.get("enabled"):
        if any(t.state == "up" for t in tunnels):
            _out("traffic leaves only through tunnels (and to loopback, DHCP, neighbour discovery)\n")
        else:
            _out("no tunnel is up: all traffic is blocked except loopback, DHCP and neighbour discovery\n")
    return 0


# --- parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """``wgdeskctl``'s commands and options.

    Long because it is one table of the command line, in the order ``--help`` shows it."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="WireGuard tunnels from the command line: keys, config checks, the tunnel collection.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=None,
        help="the helper's control socket (default: $WGDESK_SOCKET or the platform's standard path)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    add("genkey", cmd_genkey, "print a new private key (like `wg genkey`)")
    add("genpsk", cmd_genpsk, "print a new preshared key (like `wg genpsk`)")
    add("pubkey", cmd_pubkey, "read a private key on stdin, print its public key (like `wg pubkey`)")
    p = add(
        "check",
        cmd_check,
        "validate .conf files: errors and warnings as FILE:LINE: message; exit 1 on errors",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p = add("strip", cmd_strip, "print FILE without wg-quick-only settings (like `wg-quick strip`)")
    p.add_argument("file", metavar="FILE")
    p = add(
        "allowed-ips",
        cmd_allowed_ips,
        "print the fewest AllowedIPs ranges that cover INCLUDE but not the excluded ranges",
    )
    p.add_argument(
        "include", nargs="+", metavar="INCLUDE", help="ranges to route, e.g. 0.0.0.0/0 ::/0 (commas are fine)"
    )
    p.add_argument(
        "--exclude",
        action="extend",
        nargs="+",
        metavar="CIDR",
        help="ranges to keep out of the tunnel (repeatable)",
    )
    p.add_argument(
        "--exclude-private",
        action="store_true",
        help="also keep local networks out: " + ", ".join(PRIVATE_LAN_RANGES),
    )
    p = add(
        "route",
        cmd_route,
        "explain where packets to an address or host name go: which tunnel and peer, or straight out",
    )
    p.add_argument("target", metavar="ADDRESS|NAME", help="an IPv4/IPv6 address or a host name")
    p = add("import", cmd_import, "import .conf files or .zip archives of them into your tunnels")
    p.add_argument("files", nargs="+", metavar="FILE", help="a .conf or .zip file, or - for standard input")
    p.add_argument("--name", metavar="NAME", help="the tunnel name when reading standard input")
    p = add("export", cmd_export, "print a tunnel as .conf (or all as .zip), without secrets unless asked")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--all", action="store_true", help="export every tunnel as a .zip archive")
    p.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of standard output")
    p.add_argument(
        "--with-secrets",
        action="store_true",
        help="include the private and preshared keys from the keyring (the output file is made 0600)",
    )
    add("list", cmd_list, "list your tunnels")
    p = add("rename", cmd_rename, "rename a tunnel (its file and keyring items)")
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p = add("delete", cmd_delete, "delete tunnels and their keyring items")
    p.add_argument("names", nargs="+", metavar="NAME")
    p = add("new", cmd_new, "create a tunnel with a fresh key pair and print its public key")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--address", action="append", metavar="ADDR", help="Address entries (repeatable)")
    p.add_argument("--dns", action="append", metavar="DNS", help="DNS servers or search domains (repeatable)")
    p.add_argument("--listen-port", metavar="PORT")

    p = add(
        "exclude",
        cmd_exclude,
        "run COMMAND outside the full tunnel (its connections take the normal route; "
        "the kill switch lets them through)",
    )
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    p = add("excluded", cmd_excluded, "list the processes that run outside full tunnels")
    p.add_argument("--json", action="store_true", help="print the helper's answer as JSON")
    p = add(
        "include",
        cmd_include,
        "run COMMAND only through the tunnel that is up with full tunnel off and AllowedIPs 0.0.0.0/0 "
        "or ::/0 (everything it sends goes through it; nothing leaves in the clear if it fails)",
    )
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    p = add("included", cmd_included, "list the processes that run only through the tunnel")
    p.add_argument("--json", action="store_true", help="print the helper's answer as JSON (both lists)")
    p = add(
        "lockdown",
        cmd_lockdown,
        "show lockdown, turn it on/off, or pause it for a Wi-Fi login page: while on, all traffic is "
        "blocked unless it goes through a tunnel, even with no tunnel connected (from boot, and while "
        "the helper is stopped)",
    )
    p.add_argument(
        "state",
        nargs="?",
        choices=["on", "off", "pause", "resume"],
        help="turn lockdown on or off; pause it (to sign in to a Wi-Fi login page: traffic flows with no "
        "tunnel until the pause ends), or resume it early",
    )
    p.add_argument(
        "seconds",
        nargs="?",
        type=int,
        help="with pause: how long, in seconds (default 120; the administrator sets the most)",
    )
    p.add_argument("--json", action="store_true", help="print the helper's answer as JSON")

    try:
        cli_tunnels = importlib.import_module("wgdesk.cli_tunnels")
    except ModuleNotFoundError as exc:
        if exc.name != "wgdesk.cli_tunnels":
            raise
    else:
        cli_tunnels.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `wgdeskctl`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except (ConfigError, TunnelError, KeyringUnavailable) as exc:
        _err(f"{PROG}: {exc}")
        return 1
    except BrokenPipeError:
        return 1
    except OSError as exc:
        _err(f"{PROG}: {exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
