"""A fake Mac for the macOS backend's tests: a `Runner` that understands the commands the backend
generates (``ifconfig``, ``route``, ``netstat``, ``scutil`` scripts, ``pfctl``) and keeps the state
they would change — routes, addresses, dynamic-store keys, pf anchors and references — so a test
can drive bring-up, fail any command, undo, and compare the state with where it started.

What it answers is modelled on macOS's documented behaviour and its man pages, not recorded from a
Mac (there is none here): where it is wrong, so are the tests, and ``scripts/verify-macos`` on real
hardware is what settles it.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from wgdesk.platforms.commands import CommandError

NETSTAT4 = """Routing tables

Internet:
Destination        Gateway            Flags               Netif Expire
default            {gw4}        UGScg                 en0
127                127.0.0.1          UCS                   lo0
192.168.1          link#6             UCS                   en0      !
"""
NETSTAT6 = """Routing tables

Internet6:
Destination                             Gateway                       Flags               Netif Expire
default                                 {gw6}                   UGcg                  en0
::1                                     ::1                           UHL                   lo0
"""
ROUTE_GET = """   route to: default
destination: default
       mask: default
    gateway: {gw4}
  interface: en0
      flags: <UP,GATEWAY,DONE,STATIC,PRCLONING,GLOBAL>
 recvpipe  sendpipe  ssthresh  rtt,msec    rttvar  hopcount      mtu     expire
       0         0         0         0         0         0      1500         0
"""


@dataclass
class MacState:
    routes: set[tuple[str, str]] = field(default_factory=set)
    addresses: dict[str, set[str]] = field(default_factory=dict)
    mtu: dict[str, int] = field(default_factory=dict)
    up: set[str] = field(default_factory=set)
    store: dict[str, dict[str, Any]] = field(default_factory=dict)
    anchors: dict[str, str] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)


class FakeMac:
    """`wgdesk.platforms.darwin.runner.Runner` over a `MacState`. ``fail_at``: the index (among
    the commands that change something) of the one that fails."""

    def __init__(
        self, gw4: str = "192.168.1.1", gw6: str = "fe80::1%en0", fail_at: int | None = None
    ) -> None:
        self.gw4, self.gw6 = gw4, gw6
        self.state = MacState(
            routes={("default", f"gateway {gw4}")},
            store={
                "State:/Network/Global/IPv4": {"PrimaryService": "8A2C3F5E-0D41-4C6B-9E3A-1F2B3C4D5E6F"},
                "State:/Network/Service/8A2C3F5E-0D41-4C6B-9E3A-1F2B3C4D5E6F/DNS": {
                    "ServerAddresses": ["192.168.1.1"],
                    "SearchDomains": ["home.arpa"],
                },
            },
        )
        self.fail_at = fail_at
        self.changes = 0
        self.log: list[tuple[list[str], str | None]] = []
        self._next_token = 1000

    def utun_created(self, name: str) -> None:
        self.state.mtu[name] = 1500

    def utun_closed(self, name: str) -> None:
        """The engine's descriptor closed: macOS removes the interface, its addresses and routes."""
        self.state.mtu.pop(name, None)
        self.state.up.discard(name)
        self.state.addresses.pop(name, None)
        self.state.routes = {(d, v) for d, v in self.state.routes if v != f"interface {name}"}

    def snapshot(self) -> MacState:
        return copy.deepcopy(self.state)

    def __call__(
        self, argv: Sequence[str], stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.log.append((argv, stdin))
        program = argv[0].rsplit("/", 1)[-1]
        handler = getattr(self, "_" + program)
        code, out, err = handler(argv[1:], stdin)
        if check and code != 0:
            raise CommandError(argv, code, err)
        return subprocess.CompletedProcess(argv, code, out, err)

    def _change(self, argv: list[str]) -> None:
        """Count a command that changes something; the ``fail_at``-th fails before it changes it."""
        index = self.changes
        self.changes += 1
        if index == self.fail_at:
            raise CommandError(argv, 1, "injected failure")

    # -- programs ------------------------------------------------------------------------------

    def _ifconfig(self, args: list[str], stdin: str | None) -> tuple[int, str, str]:
        name, rest = args[0], args[1:]
        if not rest:
            if name not in self.state.mtu:
                return 1, "", f"ifconfig: interface {name} does not exist"
            return 0, f"{name}: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu {self.state.mtu[name]}\n", ""
        self._change(["ifconfig", *args])
        addrs = self.state.addresses.setdefault(name, set())
        if rest[0] == "mtu":
            self.state.mtu[name] = int(rest[1])
        elif rest[0] in ("up", "down"):
            (self.state.up.add if rest[0] == "up" else self.state.up.discard)(name)
        elif rest[-1] == "alias":
            addrs.add(rest[1].split("/")[0])
        elif rest[-1] == "-alias":
            addrs.discard(rest[1])
        if not addrs:
            del self.state.addresses[name]
        return 0, "", ""

    def _route(self, args: list[str], stdin: str | None) -> tuple[int, str, str]:
        words = [a for a in args if a not in ("-q", "-n")]
        if words[0] == "get":
            return self._route_get(words[1:])
        self._change(["route", *args])
        verb, dest = words[0], words[2]
        via = " ".join(w.lstrip("-") for w in words[3:])
        if verb == "add":
            if any(d == dest for d, _ in self.state.routes):
                return (
                    1,
                    "",
                    f"route: writing to routing socket: File exists\nadd net {dest}: gateway: File exists",
                )
            self.state.routes.add((dest, via))
            return 0, "", ""
        # XNU's RTM_DELETE finds the route by destination and mask; `-interface X` does not narrow it
        matching = {(d, v) for d, v in self.state.routes if d == dest}
        if not matching:
            return 1, "", f"route: writing to routing socket: not in table\ndelete net {dest}: not in table"
        self.state.routes -= matching
        return 0, "", ""

    def _route_get(self, words: list[str]) -> tuple[int, str, str]:
        """``route -n get [-inet|-inet6] DEST``: the default route, or exactly one of the routes added
        here (a prefix is an exact lookup) with the interface it was added through."""
        dest = words[-1]
        if dest == "default" or "/" not in dest:
            return 0, ROUTE_GET.format(gw4=self.gw4), ""
        for d, via in self.state.routes:
            if d == dest:
                interface = via.split()[1] if via.startswith("interface ") else "en0"
                text = ROUTE_GET.replace("default", dest.split("/")[0], 2).replace("en0", interface)
                return 0, text.format(gw4=self.gw4), ""
        return 1, "", f"route: writing to routing socket: not in table\nget net {dest}: not in table"

    def _netstat(self, args: list[str], stdin: str | None) -> tuple[int, str, str]:
        if args[-1] == "inet6":
            return 0, NETSTAT6.format(gw6=self.gw6), ""
        return 0, NETSTAT4.format(gw4=self.gw4), ""

    def _scutil(self, args: list[str], stdin: str | None) -> tuple[int, str, str]:
        out: list[str] = []
        pending: dict[str, Any] = {}
        for line in (stdin or "").splitlines():
            words = line.split()
            if not words or words[0] == "quit":
                continue
            if words[0] == "show":
                out.append(self._show(words[1]))
            elif words[0] == "d.init":
                pending = {}
            elif words[0] == "d.add":
                pending[words[1]] = words[3:] if len(words) > 2 and words[2] == "*" else words[2]
            elif words[0] == "set":
                self._change(["scutil", "set", words[1]])
                self.state.store[words[1]] = pending
            elif words[0] == "remove":
                self._change(["scutil", "remove", words[1]])
                self.state.store.pop(words[1], None)
            else:
                return 1, "", f"unknown command {words[0]}"
        return 0, "".join(out), ""

    def _show(self, key: str) -> str:
        value = self.state.store.get(key)
        if value is None:
            return "  No such key\n"
        lines = ["<dictionary> {"]
        for name, item in value.items():
            if isinstance(item, list):
                lines.append(f"  {name} : <array> {{")
                lines += [f"    {i} : {v}" for i, v in enumerate(item)]
                lines.append("  }")
            else:
                lines.append(f"  {name} : {item}")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _pfctl(self, args: list[str], stdin: str | None) -> tuple[int, str, str]:
        if args == ["-s", "rules"]:
            return 0, 'scrub-anchor "com.apple/*" all fragment reassemble\nanchor "com.apple/*" all\n', ""
        if args[0] == "-a" and args[2:] == ["-s", "rules"]:
            return 0, self.state.anchors.get(args[1], ""), ""
        self._change(["pfctl", *args])
        if args[0] == "-E":
            self._next_token += 1
            self.state.tokens.add(str(self._next_token))
            return 0, "", f"pf enabled\nToken : {self._next_token}\n"
        if args[0] == "-X":
            if args[1] not in self.state.tokens:
                return 1, "", "pfctl: DIOCSTOPREF: No such file or directory"
            self.state.tokens.discard(args[1])
            return 0, "", "pf disabled\n" if not self.state.tokens else ""
        if args[2:] == ["-f", "-"]:
            self.state.anchors[args[1]] = stdin or ""
        elif args[2:] == ["-F", "all"]:
            self.state.anchors.pop(args[1], None)
        return 0, "", ""

    def _dscacheutil(self, args: list[str], stdin: str | None) -> tuple[int, str, str]:
        return 0, "", ""

    def _killall(self, args: list[str], stdin: str | None) -> tuple[int, str, str]:
        return 0, "", ""
