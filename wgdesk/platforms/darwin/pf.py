"""The kill switch, the full tunnel's guard and the failsafe block on macOS (a
`wgdesk.platforms.interface.Firewall`), as pf anchors.

macOS's stock ``/etc/pf.conf`` evaluates every anchor under ``com.apple/`` (``anchor
"com.apple/*"``), in name order. wgdesk loads its rules into anchors of its own there, so the
system's rules (and the main ruleset) are never touched:

* ``com.apple/248.wgdesk.failsafe`` — `block_all`: loopback only;
* ``com.apple/249.wgdesk.guard.utunN`` — per full tunnel: the CVE-2019-14899 guard (``block drop in
  quick on ! utunN to <tunnel address>``: no one on the LAN can probe or inject into connections
  inside the tunnel by sending to its address from outside) and, for a family the tunnel does not
  carry, a block of that family outside the tunnel (no native-IPv6 leak);
* ``com.apple/250.wgdesk.killswitch`` — loopback, DHCP, neighbour discovery, the engines' UDP on
  their listen ports and of their sockets' owner (both ways: a peer may initiate; `socketowner`),
  the tunnel interfaces, optionally the LAN; DNS outside the tunnels blocked (before the LAN is let
  through, so a LAN resolver cannot leak names); the rest dropped.

Each anchor enables pf with a reference (``pfctl -E`` prints a token) and releases it (``pfctl -X
TOKEN``) when it is flushed, so pf goes back to off only when nothing else holds a reference. Tokens
are kept in a file of the runtime directory, so a new helper releases an old one's.

Without the ``com.apple/*`` anchor in the main ruleset (an administrator's own pf.conf) the rules
would never be evaluated: `PfFirewall` refuses then, saying so, rather than pretend to protect.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_interface, ip_network
from pathlib import Path

from wgdesk.platforms.darwin.records import REGISTRY, UndoContext
from wgdesk.platforms.darwin.runner import PFCTL, Runner
from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.files import write_durably
from wgdesk.platforms.interface import FullTunnel, KillSwitch, Recorder
from wgdesk.undo import UndoRecord

PREFIX = "com.apple/"
FAILSAFE = PREFIX + "248.wgdesk.failsafe"
GUARD = PREFIX + "249.wgdesk.guard."
KILL_SWITCH = PREFIX + "250.wgdesk.killswitch"
_TOKEN = re.compile(r"^Token\s*:\s*(\d+)\s*$", re.MULTILINE)
_IFNAME = re.compile(r"[A-Za-z0-9]{1,15}")
_WILDCARD = 'anchor "com.apple/*"'
BOOT_RULES = Path("/Library/Application Support/wgdesk/boot-block.pf")
"""The kill switch left for the next boot (`boot_block_rules`); ``installers/macos/boot-block`` reads
it there."""


def _ifname(name: str) -> str:
    if not _IFNAME.fullmatch(name):
        raise PlatformError(f"invalid interface name {name!r}")
    return name


def _port(port: int) -> int:
    if not 0 < port < 65536:
        raise PlatformError(f"invalid UDP port {port}")
    return port


BASE = [
    "pass quick on lo0 all",
    "pass out quick inet proto udp from any port 68 to any port 67",
    "pass in quick inet proto udp from any port 67 to any port 68",
    "pass out quick inet6 proto udp from any port 546 to any port 547",
    "pass in quick inet6 proto udp from any port 547 to any port 546",
    "pass quick inet6 proto icmp6 all icmp6-type { neighbrsol, neighbradv, routersol, routeradv }",
]
"""What every blocking anchor lets through: loopback, DHCP (v4, v6), neighbour and router
discovery (without them the Mac loses its address and its gateway)."""


Owner = Callable[[int], int | None]
"""The uid that created the engine's sockets on a port (`socketowner.OwnerRecord.owner`)."""


def _unknown(port: int) -> int | None:
    return None


def kill_switch_rules(kill_switch: KillSwitch, owner: Owner = _unknown) -> str:
    """The kill switch's anchor (see the module docstring); the order is the point: pf stops at the
    first ``quick`` match. An engine's UDP is matched by its port and, where its sockets were created
    by an account other than root (``owner``), by that user too: pf's ``user`` is the socket's
    creator, so a root-made socket would make the rule "any root process"."""
    lines = ["# wgdesk kill switch (generated; loaded into " + KILL_SWITCH + ")", *BASE]
    for member in sorted(kill_switch.members, key=lambda m: m.tunnel):
        port = _port(member.listen_port)
        uid = owner(port)
        user = f" user {uid}" if uid else ""
        lines.append(f"pass out quick proto udp from any port {port} to any{user}")
        lines.append(f"pass in quick proto udp from any to any port {port}{user}")  # a peer may initiate
    for member in sorted(kill_switch.members, key=lambda m: m.tunnel):
        lines.append(f"pass quick on {_ifname(member.ifname)} all")
    lines.append("block drop out quick proto { tcp, udp } from any to any port 53")
    for network in kill_switch.lan:
        net = ip_network(network, strict=False)
        family = "inet6" if net.version == 6 else "inet"
        lines.append(f"pass out quick {family} from any to {net}")
        lines.append(f"pass in quick {family} from {net} to any")
    lines.append("block drop quick all")
    return "\n".join(lines) + "\n"


def boot_block_rules(kill_switch: KillSwitch) -> str:
    """What holds from boot until the helper starts (``installers/macos/boot-block`` loads it into the
    kill switch's anchor): the kill switch without tunnels — no engine runs yet, and a utun's name is
    not known before it exists — with the same LAN choice. The helper replaces it as it starts."""
    return kill_switch_rules(KillSwitch(lan=kill_switch.lan)).replace(
        "# wgdesk kill switch (generated;", "# wgdesk boot-time block (generated by the helper;", 1
    )


def guard_rules(tunnel: FullTunnel) -> str:
    """A full tunnel's guard anchor: CVE-2019-14899, and the family it does not carry blocked."""
    ifname = _ifname(tunnel.ifname)
    lines = [f"# wgdesk full-tunnel guard of {ifname} (generated; loaded into {GUARD}{ifname})"]
    for address in tunnel.addresses:
        ip = ip_interface(address).ip
        family = "inet6" if ip.version == 6 else "inet"
        # the Mac's own connections to its tunnel address arrive on lo0: not an attack
        lines.append(f"pass in quick on lo0 {family} from any to {ip}")
        lines.append(f"block drop in quick on ! {ifname} {family} from any to {ip}")
    for version, family in ((4, "inet"), (6, "inet6")):
        if version not in tunnel.families:
            lines.append(f"pass quick on lo0 {family} all")
            lines.append(f"block drop out quick on ! {ifname} {family} all")
    return "\n".join(lines) + "\n"


FAILSAFE_RULES = "# wgdesk failsafe (generated)\npass quick on lo0 all\nblock drop quick all\n"


@dataclass(frozen=True)
class PfAnchorLoaded(UndoRecord):
    """Rules were loaded into ``anchor`` and pf enabled for it (its token in the token file)."""

    kind = "darwin_pf_anchor"
    anchor: str


@REGISTRY.undoes(PfAnchorLoaded)
def _flush_anchor(record: PfAnchorLoaded, context: UndoContext) -> None:
    Pf(context.runner, context.options.state_dir).unload(record.anchor)


class Pf:
    """Loads and flushes wgdesk's anchors; keeps one pf reference (token) per loaded anchor."""

    def __init__(self, runner: Runner, state_dir: Path) -> None:
        self.runner = runner
        self.tokens = state_dir / "pf-tokens"

    def _tokens(self) -> dict[str, str]:
        try:
            lines = self.tokens.read_text().splitlines()
        except OSError:
            return {}
        tokens = {}
        for line in lines:
            token, sep, anchor = line.partition(" ")
            if sep and token.isdigit():
                tokens[anchor] = token
        return tokens

    def _save(self, tokens: dict[str, str]) -> None:
        text = "".join(f"{token} {anchor}\n" for anchor, token in sorted(tokens.items()))
        write_durably(self.tokens, text.encode(), 0o644)

    def check_wildcard(self) -> None:
        """Refuse when the main ruleset does not evaluate ``com.apple/*`` (our anchors would be dead)."""
        proc = self.runner([PFCTL, "-s", "rules"], check=False)
        if _WILDCARD not in proc.stdout:
            raise PlatformError(
                "pf's main ruleset has no 'anchor \"com.apple/*\"' (is /etc/pf.conf the stock one?):"
                " the kill switch's rules would never be evaluated"
            )

    def load(self, anchor: str, rules: str) -> None:
        """Replace ``anchor``'s rules and hold a reference that keeps pf enabled."""
        self.runner([PFCTL, "-a", anchor, "-f", "-"], stdin=rules)
        tokens = self._tokens()
        if anchor in tokens:
            return
        proc = self.runner([PFCTL, "-E"])
        found = _TOKEN.search(proc.stderr + proc.stdout)
        if found is None:
            raise PlatformError(f"pfctl -E printed no reference token: {proc.stderr.strip()!r}")
        tokens[anchor] = found.group(1)
        self._save(tokens)

    def unload(self, anchor: str) -> None:
        """Flush ``anchor`` and release its reference (harmless when neither is there)."""
        self.runner([PFCTL, "-a", anchor, "-F", "all"], check=False)
        tokens = self._tokens()
        token = tokens.pop(anchor, None)
        if token is not None:
            self.runner([PFCTL, "-X", token], check=False)
            self._save(tokens)

    def rules(self, anchor: str) -> str:
        return self.runner([PFCTL, "-a", anchor, "-s", "rules"], check=False).stdout


class PfFirewall:
    """The backend's `wgdesk.platforms.interface.Firewall`."""

    def __init__(
        self,
        runner: Runner,
        state_dir: Path,
        owner: Owner = _unknown,
        boot_rules: Path | None = None,
        interface_exists: Callable[[str], bool] = lambda ifname: True,
    ) -> None:
        self.pf = Pf(runner, state_dir)
        self.owner = owner
        self.boot_rules = boot_rules
        """Where the kill switch is left for the next boot (`boot_block_rules`; None: nowhere)."""
        self.interface_exists = interface_exists
        """Whether a member's utun is there (the backend: ``if_nametoindex``)."""

    def full_tunnel_on(self, tunnel: FullTunnel, record: Recorder) -> None:
        anchor = GUARD + _ifname(tunnel.ifname)
        rules = guard_rules(tunnel)
        self.pf.check_wildcard()
        record(PfAnchorLoaded(anchor))
        self.pf.load(anchor, rules)

    def apply_kill_switch(self, kill_switch: KillSwitch) -> None:
        """Load the kill switch; first leave its tunnel-less form for the next boot (a crash between
        the two leaves a block behind, never a gap). A member whose utun is gone (its engine died
        with a crashed helper: the tunnel stays *blocked*) gets no pass rule, neither on its
        interface nor for its engine's port: macOS gives ``utunN`` to the next utun anyone opens."""
        present = tuple(m for m in kill_switch.members if self.interface_exists(m.ifname))
        rules = kill_switch_rules(dataclasses.replace(kill_switch, members=present), self.owner)
        self.pf.check_wildcard()
        if self.boot_rules is not None:
            write_durably(self.boot_rules, boot_block_rules(kill_switch).encode(), 0o644)
        self.pf.load(KILL_SWITCH, rules)

    def remove_kill_switch(self) -> None:
        """Unload the kill switch, then forget it for the next boot."""
        self.pf.unload(KILL_SWITCH)
        if self.boot_rules is not None:
            try:
                self.boot_rules.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise PlatformError(
                    f"cannot remove the boot-time block {self.boot_rules}: {exc.strerror}"
                ) from exc

    def kill_switch_present(self) -> bool:
        return "block drop quick all" in self.pf.rules(KILL_SWITCH)

    def block_all(self) -> None:
        self.pf.check_wildcard()
        self.pf.load(FAILSAFE, FAILSAFE_RULES)

    def unblock_all(self) -> None:
        self.pf.unload(FAILSAFE)

    def blocking_all(self) -> bool:
        return "block drop quick all" in self.pf.rules(FAILSAFE)
