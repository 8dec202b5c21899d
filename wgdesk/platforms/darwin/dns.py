"""DNS on macOS (a `wgdesk.platforms.interface.Dns`) through the dynamic store with ``scutil``.

macOS's resolver takes the DNS servers of the primary network service from the dynamic store key
``State:/Network/Service/ID/DNS`` (ID: ``PrimaryService`` of ``State:/Network/Global/IPv4``). The
tunnel's servers and search domains replace that key's dictionary; the previous dictionary goes
into the undo journal first (`DnsReplaced`), and undo writes it back (or removes the key when there
was none). Nothing is written to the persistent ``Setup:`` keys or to ``networksetup``'s
preferences, so a reboot clears what a crashed helper left. configd rewrites the key when the
network changes (DHCP renewal, another Wi-Fi): `ScutilDns.reassert` notices and writes ours again.

Every value that goes into a scutil script is validated first (IP addresses, host-name characters):
a script is a line-oriented command language, and a newline in a search domain would be a command.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address

from wgdesk.platforms.darwin.records import REGISTRY, UndoContext
from wgdesk.platforms.darwin.runner import DSCACHEUTIL, KILLALL, SCUTIL, Runner
from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import Recorder
from wgdesk.undo import UndoRecord

GLOBAL_IPV4 = "State:/Network/Global/IPv4"
_SERVICE_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_DOMAIN = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?")
_TOKEN = re.compile(r"[^\s\"'\\]{1,255}")
"""What a restored value may be: one word scutil reads back as itself."""

Value = str | list[str]


def service_key(service: str) -> str:
    if not _SERVICE_ID.fullmatch(service):
        raise PlatformError(f"unexpected network service id {service!r}")
    return f"State:/Network/Service/{service}/DNS"


def parse_show(text: str) -> dict[str, Value] | None:
    """The dictionary ``scutil``'s ``show KEY`` printed (strings and arrays of strings; nested
    dictionaries are skipped); None for ``No such key``."""
    if "No such key" in text or "<dictionary>" not in text:
        return None
    result: dict[str, Value] = {}
    array: list[str] | None = None
    depth = 0
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith("<dictionary> {") and depth >= 1:
            depth += 1
            continue
        if line.startswith("<dictionary> {"):
            depth = 1
            continue
        if line == "}":
            if array is not None:
                array = None
            else:
                depth -= 1
            continue
        if depth != 1:
            continue
        key, sep, value = line.partition(" : ")
        if not sep:
            continue
        if array is not None:
            array.append(value)
        elif value == "<array> {":
            array = []
            result[key] = array
        else:
            result[key] = value
    return result


@dataclass(frozen=True)
class Resolver:
    """One resolver of ``scutil --dns``."""

    nameservers: tuple[str, ...]
    search: tuple[str, ...]
    domain: str
    interface: str


def parse_scutil_dns(text: str) -> list[Resolver]:
    """The resolvers of ``scutil --dns`` before its scoped section, in order: resolver #1 without a
    ``domain`` is the one every name goes to (what `verify-macos` and the doctor look at)."""
    resolvers: list[Resolver] = []
    current: dict[str, list[str]] | None = None

    def close() -> None:
        if current is not None:
            resolvers.append(
                Resolver(
                    tuple(current.get("nameserver", [])),
                    tuple(current.get("search domain", [])),
                    (current.get("domain") or [""])[0],
                    (current.get("if_index") or [""])[0],
                )
            )

    for line in text.splitlines():
        if line.startswith("DNS configuration (for scoped"):
            break
        if line.startswith("resolver #"):
            close()
            current = {}
            continue
        key, sep, value = line.strip().partition(" : ")
        if current is None or not sep:
            continue
        name = key.split("[", 1)[0].strip()
        if name == "if_index":
            value = value.partition("(")[2].rstrip(")")
        current.setdefault(name, []).append(value.strip())
    close()
    return resolvers


def _check_servers(servers: Sequence[str]) -> list[str]:
    checked = []
    for server in servers:
        try:
            checked.append(str(ip_address(server.split("%")[0])))
        except ValueError:
            raise PlatformError(f"DNS server {server!r} is not an IP address") from None
    return checked


def _check_domains(domains: Sequence[str]) -> list[str]:
    for domain in domains:
        if not _DOMAIN.fullmatch(domain):
            raise PlatformError(f"search domain {domain!r} is not a domain name")
    return list(domains)


def set_script(key: str, servers: Sequence[str], search: Sequence[str]) -> str:
    """The scutil script that makes ``key`` hold ``servers`` and ``search`` (validated)."""
    lines = ["d.init", "d.add ServerAddresses * " + " ".join(_check_servers(servers))]
    domains = _check_domains(search)
    if domains:
        lines += ["d.add SearchDomains * " + " ".join(domains), "d.add DomainName " + domains[0]]
    lines += [f"set {key}", "quit"]
    return "\n".join(lines) + "\n"


def restore_script(key: str, previous: dict[str, Value] | None) -> str:
    """The scutil script that puts ``previous`` back in ``key`` (removes it when None). A value that
    scutil could not read back as written (spaces, quotes) is left out rather than mangled."""
    if previous is None:
        return f"remove {key}\nquit\n"
    lines = ["d.init"]
    for name, value in sorted(previous.items()):
        if not _TOKEN.fullmatch(name):
            continue
        if isinstance(value, list):
            words = [v for v in value if _TOKEN.fullmatch(v)]
            if words:
                lines.append(f"d.add {name} * " + " ".join(words))
        elif _TOKEN.fullmatch(value):
            lines.append(f"d.add {name} {value}")
    lines += [f"set {key}", "quit"]
    return "\n".join(lines) + "\n"


def flush_commands() -> list[list[str]]:
    """What makes macOS forget cached answers after the servers changed."""
    return [[DSCACHEUTIL, "-flushcache"], [KILLALL, "-HUP", "mDNSResponder"]]


@dataclass(frozen=True)
class DnsReplaced(UndoRecord):
    """Dynamic-store key ``key`` held ``previous`` (JSON of its dictionary; empty: no such key)."""

    kind = "darwin_dns"
    key: str
    previous: str


@REGISTRY.undoes(DnsReplaced)
def _restore_dns(record: DnsReplaced, context: UndoContext) -> None:
    previous = json.loads(record.previous) if record.previous else None
    context.dns_restored(record.key)  # first: reassert must not write ours back
    context.runner([SCUTIL], stdin=restore_script(record.key, previous))
    for argv in flush_commands():
        context.runner(argv, check=False)


class ScutilDns:
    """Tunnel DNS as the primary service's dynamic-store DNS dictionary."""

    backend = "scutil"
    exclusive = True
    """One dictionary per service: the last tunnel that sets DNS wins until it is undone."""

    def __init__(self, runner: Runner, on_active: Callable[[], None] = lambda: None) -> None:
        self.runner = runner
        self.active: dict[str, tuple[list[str], list[str]]] = {}
        """Key → (servers, search) wgdesk put there."""
        self.lock = threading.Lock()
        """Held while keys are written or forgotten (the helper's thread, the network watch)."""
        self.on_active = on_active

    def show(self, key: str) -> dict[str, Value] | None:
        return parse_show(self.runner([SCUTIL], stdin=f"show {key}\nquit\n").stdout)

    def primary_service(self) -> str:
        found = self.show(GLOBAL_IPV4) or {}
        service = found.get("PrimaryService")
        if not isinstance(service, str):
            raise PlatformError("macOS reports no primary network service: is the Mac on a network?")
        return service

    def set(self, ifname: str, servers: Sequence[str], search: Sequence[str], record: Recorder) -> None:
        key = service_key(self.primary_service())
        script = set_script(key, servers, search)  # validated before anything is journalled
        previous = self.show(key)
        record(DnsReplaced(key, json.dumps(previous, sort_keys=True) if previous is not None else ""))
        with self.lock:
            self.runner([SCUTIL], stdin=script)
            self.active[key] = (list(servers), list(search))
        for argv in flush_commands():
            self.runner(argv, check=False)
        self.on_active()

    def reassert(self) -> list[str]:
        """Write ours again where configd replaced them; returns the keys rewritten."""
        rewritten = []
        with self.lock:
            for key, (servers, search) in self.active.items():
                current = self.show(key) or {}
                if current.get("ServerAddresses") != _check_servers(servers):
                    self.runner([SCUTIL], stdin=set_script(key, servers, search))
                    rewritten.append(key)
        return rewritten

    def forget(self, key: str) -> None:
        with self.lock:
            self.active.pop(key, None)

    def restore_left(self) -> None:
        """Nothing survives a reboot in the dynamic store: there is nothing to restore at start."""
        return None
