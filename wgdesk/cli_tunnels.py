"""`wgdeskctl up`, `update`, `down`, `show`, `mtu` and `diagnostics`: the commands that talk to the helper.

``up NAME`` sends the stored tunnel (with its keys from the keyring); ``up FILE`` sends a .conf file
as it is, named after the file. ``update`` applies an edited config to a running tunnel without
reconnecting it (or says which keys need a reconnect). ``show --json`` prints ``{"tunnels": [...]}``.
``mtu NAME`` probes the path MTU through a running tunnel (``--apply`` lowers the interface MTU to
what crosses). ``diagnostics`` writes the redacted bundle for a bug report (`wgdesk.diagnostics`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from wgdesk.client import HelperClient, HelperError, RestartRequired
from wgdesk.snapshots import TunnelSnapshot

PROG = "wgdeskctl"


def register(subparsers: Any) -> None:
    """Add ``up``, ``update``, ``down``, ``show``, ``mtu`` and ``diagnostics`` to wgdeskctl's subcommands."""
    p = subparsers.add_parser(
        "up",
        help="bring a tunnel up through the helper",
        description="Bring a stored tunnel (NAME) or a .conf file (FILE) up.",
    )
    p.add_argument("target", metavar="NAME|FILE")
    p.add_argument(
        "--full-tunnel",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="route all traffic through the tunnel (default: when a peer has 0.0.0.0/0 or ::/0)",
    )
    p.add_argument(
        "--kill-switch",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="block all traffic outside the tunnel while it is up (default: the helper's "
        "setting, normally on for full tunnels)",
    )
    p.set_defaults(func=cmd_up)
    p = subparsers.add_parser(
        "update",
        help="apply an edited config to a running tunnel without reconnecting",
        description="Apply the stored tunnel NAME (or a .conf FILE) to the running tunnel of that name: "
        "peers, endpoints, keepalive, preshared keys and AllowedIPs change live; other keys need "
        "`down` + `up`.",
    )
    p.add_argument("target", metavar="NAME|FILE")
    p.set_defaults(func=cmd_update)
    p = subparsers.add_parser("down", help="take a tunnel down", description="Take tunnel NAME down.")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_down)
    p = subparsers.add_parser(
        "show",
        help="live status of tunnels that are up (like `wg show`)",
        description="Live status from the helper; --json for scripts.",
    )
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--json", action="store_true", help='print {"tunnels": [...]} as JSON')
    p.set_defaults(func=cmd_show)
    p = subparsers.add_parser(
        "mtu",
        help="find the largest packet that crosses a running tunnel (MTU black holes)",
        description="Send don't-fragment pings of several sizes through tunnel NAME to an address "
        "inside it and report the largest that comes back. The target defaults to the config's "
        "first DNS server inside AllowedIPs, else its first /32 or /128. --apply lowers the "
        "interface MTU to that size until the tunnel goes down.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--target", metavar="IP", help="an address inside the tunnel that answers pings")
    p.add_argument("--apply", action="store_true", help="lower the tunnel's MTU to the size found")
    p.add_argument("--json", action="store_true", help="print the helper's answer as JSON")
    p.set_defaults(func=cmd_mtu)
    p = subparsers.add_parser(
        "diagnostics",
        help="save a redacted diagnostics bundle (.zip) to attach to a bug report",
        description="Collect versions, the stored tunnels, the helper's status and logs and this "
        "machine's network view into one .zip without any private or preshared key; public IP "
        "addresses and endpoint host names are replaced by aliases unless --keep-addresses.",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write the bundle (default: wgdesk-diagnostics-DATE-TIME.zip in the current directory)",
    )
    p.add_argument(
        "--keep-addresses",
        action="store_true",
        help="do not replace public IP addresses, endpoint host names and MAC addresses by aliases",
    )
    p.set_defaults(func=cmd_diagnostics)


def _client(args: argparse.Namespace) -> HelperClient:
    return HelperClient(getattr(args, "socket", None))


def _err(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 1


def _load(target: str) -> tuple[str, str]:
    """(tunnel name, full config text with secrets) for NAME or FILE."""
    path = Path(target)
    if path.suffix == ".conf" or "/" in target or path.is_file():
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise HelperError(f"{target}: {e.strerror}") from e
        return path.stem, text
    from wgdesk.config import write
    from wgdesk.tunnels import TunnelStore

    cfg = TunnelStore().load(target, with_secrets=True)
    if not cfg.interface.private_key:
        raise HelperError(f"tunnel {target} has no private key in the keyring; import it again or set one")
    return target, write(cfg)


def cmd_up(args: argparse.Namespace) -> int:
    try:
        name, text = _load(args.target)
        with _client(args) as c:
            result = c.up(name, text, full_tunnel=args.full_tunnel, kill_switch=args.kill_switch)
    except HelperError as e:
        return _err(e.message)
    for w in result.get("warnings", []):
        print(f"{PROG}: warning: {w}", file=sys.stderr)
    print(
        f"{name} is up (full tunnel {'on' if result.get('full_tunnel') else 'off'}, "
        f"kill switch {'on' if result.get('kill_switch') else 'off'})"
    )
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    try:
        name, text = _load(args.target)
        with _client(args) as c:
            result = c.update(name, text)
    except RestartRequired as e:
        return _err(f"{e.message} (needs a reconnect: {', '.join(e.keys)}); nothing was changed")
    except HelperError as e:
        return _err(e.message)
    peers = result.get("peers", {})
    routes = result.get("routes", {})
    print(
        f"{name} updated live: {len(peers.get('added', []))} peer(s) added, "
        f"{len(peers.get('removed', []))} removed, {len(peers.get('changed', []))} changed; "
        f"{len(routes.get('added', []))} route(s) added, {len(routes.get('removed', []))} removed"
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    try:
        with _client(args) as c:
            c.down(args.name)
    except HelperError as e:
        return _err(e.message)
    print(f"{args.name} is down")
    return 0


def _ago(t: int | float | None) -> str:
    if t is None:
        return "never"
    s = max(0, int(time.time() - t))
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size:
            parts.append(f"{s // size} {unit}{'s' if s // size != 1 else ''}")
            s %= size
    if s or not parts:
        parts.append(f"{s} second{'s' if s != 1 else ''}")
    return ", ".join(parts) + " ago"


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.2f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"


def format_show(tunnels: list[TunnelSnapshot]) -> str:
    """`wg show`-like text for the helper's tunnels."""
    out: list[str] = []
    for t in tunnels:
        if out:
            out.append("")
        out.append(f"interface: {t.interface}")
        out.append(f"  tunnel: {t.name} ({t.state})")
        if t.message:
            out.append(f"  note: {t.message}")
        if t.listen_port:
            out.append(f"  listening port: {t.listen_port}")
        if t.fwmark:
            out.append(f"  fwmark: {hex(t.fwmark)}")
        if t.mtu:
            out.append(f"  mtu: {t.mtu}")
        full, kill = ("on" if flag else "off" for flag in (t.full_tunnel, t.kill_switch))
        out.append(f"  full tunnel: {full}, kill switch: {kill}")
        for p in t.peers:
            out.append("")
            out.append(f"peer: {p.public_key}")
            if p.endpoint:
                out.append(f"  endpoint: {p.endpoint}")
            out.append(f"  allowed ips: {', '.join(p.allowed_ips) or '(none)'}")
            out.append(f"  latest handshake: {_ago(p.latest_handshake)}")
            out.append(f"  transfer: {_bytes(p.rx_bytes)} received, {_bytes(p.tx_bytes)} sent")
            if p.persistent_keepalive:
                out.append(f"  persistent keepalive: every {p.persistent_keepalive} seconds")
    return "\n".join(out)


def cmd_show(args: argparse.Namespace) -> int:
    try:
        with _client(args) as c:
            tunnels = c.status(args.name)
    except HelperError as e:
        return _err(e.message)
    if args.json:
        print(json.dumps({"tunnels": [t.to_wire() for t in tunnels]}, indent=2))
    elif tunnels:
        print(format_show(tunnels))
    return 0


def format_mtu(name: str, result: dict[str, Any]) -> str:
    """The probe table and the verdict of a ``probe_mtu`` answer."""
    out = [f"probing {name} to {result['target']} (interface MTU {result['mtu_before']})", "  size  result"]
    for size, ok in result.get("probes", []):
        out.append(f"  {size:>4}  {'ok' if ok else 'lost'}")
    before, largest = result["mtu_before"], result["largest_working"]
    seconds = f"{len(result.get('probes', []))} probes in {float(result.get('seconds', 0)):.1f} s"
    if largest is None:
        out.append(
            f"no answer from {result['target']} even at 1280 bytes ({seconds}): is the handshake done, "
            "and does the target answer pings?"
        )
    elif largest >= before:
        out.append(f"packets of {before} bytes cross: the MTU {before} is fine ({seconds})")
    else:
        out.append(
            f"only packets up to {largest} bytes cross, the interface MTU is {before}: an MTU black "
            f"hole on the way ({seconds}); recommended MTU {result['recommended_mtu']}"
        )
        if result.get("applied"):
            out.append(f"MTU of {name} lowered to {result['recommended_mtu']} until the tunnel goes down")
        else:
            out.append(
                f"run `{PROG} mtu {name} --apply` to use it now, or set MTU = "
                f"{result['recommended_mtu']} in the tunnel's [Interface] to keep it"
            )
    return "\n".join(out)


def cmd_mtu(args: argparse.Namespace) -> int:
    try:
        with HelperClient(getattr(args, "socket", None), timeout=120) as c:
            result = c.probe_mtu(args.name, target=args.target, apply=args.apply)
    except HelperError as e:
        return _err(e.message)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_mtu(args.name, result))
    return 0 if result.get("largest_working") is not None else 1


def cmd_diagnostics(args: argparse.Namespace) -> int:
    from wgdesk.diagnostics import HELPER_TIMEOUT, default_filename, write_bundle

    path = Path(args.output) if args.output else Path(default_filename())
    socket = getattr(args, "socket", None)
    try:
        bundle = write_bundle(
            path,
            client_factory=lambda: HelperClient(socket, timeout=HELPER_TIMEOUT),
            redact_addresses=not args.keep_addresses,
        )
    except OSError as e:
        return _err(f"{path}: {e.strerror or e}")
    print(path)
    print(bundle.summary)
    return 0
