"""Administrator settings of the helper: ``/etc/wgdesk/helper.toml`` (Windows:
``%ProgramData%\\wgdesk\\helper.toml``; the service's `~wgdesk.platforms.interface.HelperPaths`).

Only root (Windows: SYSTEM and Administrators) can write that file; nothing the unprivileged side
sends can change these values. The defaults of the places the helper keeps files are the running
OS's (`default_paths`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from wgdesk.config import PRIVATE_LAN_RANGES as PRIVATE_LAN_RANGES  # what "allow LAN" opens
from wgdesk.platforms.interface import GROUP_NAME, HelperPaths


def default_paths() -> HelperPaths:
    """The running OS's default places for the helper's files (settings, state, persistent)."""
    from wgdesk.platforms import backend

    return backend().service.paths


DEFAULT_PAUSE_MAX = 300
"""`Settings.lockdown_pause_max` when not set and the policy is ``user``."""
MAX_PAUSE = 86400
"""Highest `Settings.lockdown_pause_max` accepted (a day)."""


class SettingsError(Exception):
    """helper.toml is unreadable or holds a wrong value; the message names the key."""


@dataclass(frozen=True)
class Settings:
    """Values of helper.toml, with their defaults."""

    group: str = "wgdesk"
    """Members of this group (and root) may use the control socket."""
    monitor_group: str = ""
    """Members of this group may only watch (status, logs, diagnose); empty = no such group. Setting it
    opens the socket to every local user (0666): the kernel credentials of each connection decide."""
    admin_group: str = ""
    """Members of this group see every user's tunnels (status, logs, diagnose, events); others see
    only their own. It gives no control: combine it with `group` or `monitor_group`."""
    max_tunnels_per_user: int = 8
    """Tunnels one user other than root may have at once (0: none)."""
    max_routes_per_user: int = 32768
    """AllowedIPs entries (each one a route, and an entry of the engine's table) one user other than
    root may have over all their tunnels."""
    allow_scripts: bool = False
    """Run PreUp/PostUp/PreDown/PostDown from tunnel configs. Off: hooks are ignored with a warning."""
    kill_switch: str = "full-tunnel"
    """Default kill switch when the client does not say: "always", "never" or "full-tunnel"."""
    allow_lan: bool = False
    """Kill switch lets through traffic to the fixed private ranges in PRIVATE_LAN_RANGES."""
    engine_path: str = ""
    """The engine executable; empty = wgdesk-engine next to the helper's Python."""
    engine_kind: str = "auto"
    """"wgdesk" (takes bound UDP fds, runs unprivileged), "wireguard-go" (binds its own socket, runs as
    root) or "auto" (by the executable's name)."""
    engine_user: str = "auto"
    """User the engine runs as: "auto" = wgdesk-engine if it exists, else nobody."""
    dns_backend: str = "auto"
    """"auto", "resolved", "resolvconf" or "file"."""
    resolv_conf: str = "/etc/resolv.conf"
    log_level: str = "info"
    reresolve_endpoints: bool = True
    """Resolve a peer's endpoint host name again while its tunnel runs (dynamic DNS), as
    wireguard-tools' reresolve-dns.sh does."""
    reresolve_interval: float = 30.0
    """Seconds between two checks, and the least time between two resolutions of one peer's name."""
    reresolve_after: float = 135.0
    """A peer's name is resolved again only when its latest handshake is older than this (or none)."""
    probe_mtu_on_up: bool = False
    """After each bring-up, probe the path MTU through the tunnel (DF pings, `wgdesk.helper.mtu`) and
    lower its MTU when a black hole is found. Off by default: it sends probe traffic."""
    allow_split_tunnel: bool = True
    """Users may run applications outside a full tunnel (`wgdeskctl exclude -- COMMAND`). Off: the
    helper refuses, for administrators who must forbid it."""
    split_tunnel_cgroup: str = "wgdesk-bypass"
    """Name of the cgroup v2 directory (a direct child of the cgroup2 root) whose processes bypass a
    full tunnel. Letters, digits, ``_`` and ``-`` only."""
    split_tunnel_include_cgroup: str = "wgdesk-include"
    """Name of the cgroup v2 directory whose processes go *only* through a tunnel up with full
    tunnel off whose peers allow 0.0.0.0/0 and/or ::/0 (`wgdeskctl include -- COMMAND`). Same
    rules as `split_tunnel_cgroup`, and it must differ from it."""
    split_tunnel_cgroup_root: str = ""
    """Where cgroup2 is mounted; empty = found in /proc/self/mountinfo, or mounted by the helper
    under its state directory when there is none."""
    lockdown: str = "user"
    """Lockdown (the kill switch blocks even with no tunnel up): "user" = root and members of `group`
    may turn it on and off; "always" = forced on; "never" = forced off."""
    lockdown_file: str = field(default_factory=lambda: str(default_paths().lockdown_file))
    """Where the helper keeps the lockdown choice (persistent: not under /run). Default
    ``/var/lib/wgdesk/lockdown.json`` (macOS: under ``/Library/Application Support/wgdesk``,
    Windows: ``%ProgramData%\\wgdesk``)."""
    persistent_dir: str = field(default_factory=lambda: str(default_paths().persistent))
    """Where the helper keeps what must be undone even after a power loss (the original
    /etc/resolv.conf while a tunnel rewrites it); the undo journals live under /run, a tmpfs.
    Default ``/var/lib/wgdesk`` (macOS, Windows: see `lockdown_file`)."""
    lockdown_pause_max: int = -1
    """Longest pause of lockdown, in seconds (`pause_lockdown`, for captive portals); 0 forbids
    pausing. Not set (-1): 300 with ``lockdown = "user"``, 0 with ``"always"`` — a forced lockdown can
    be paused only when the administrator sets a maximum explicitly."""
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    def lockdown_pause_limit(self) -> int:
        """The effective `lockdown_pause_max` (its default depends on the `lockdown` policy)."""
        if self.lockdown_pause_max >= 0:
            return self.lockdown_pause_max
        return 0 if self.lockdown == "always" else DEFAULT_PAUSE_MAX

    def engine_executable(self) -> str:
        if self.engine_path:
            return self.engine_path
        beside = Path(sys.executable).parent / "wgdesk-engine"
        if beside.exists():
            return str(beside)
        return shutil.which("wgdesk-engine") or str(beside)

    def engine_takes_udp_fds(self) -> bool:
        kind = self.engine_kind
        if kind == "auto":
            kind = (
                "wireguard-go" if os.path.basename(self.engine_executable()) == "wireguard-go" else "wgdesk"
            )
        return kind == "wgdesk"

    def engine_account(self) -> str:
        """The account the engine runs as ("root" only for an engine that binds its own socket)."""
        if not self.engine_takes_udp_fds():
            return "root"
        if self.engine_user != "auto":
            return self.engine_user
        from wgdesk.platforms import backend

        try:
            backend().identity.account_ids("wgdesk-engine")
            return "wgdesk-engine"
        except KeyError:
            return "nobody"


_CHOICES = {
    "kill_switch": ("always", "never", "full-tunnel"),
    "engine_kind": ("auto", "wgdesk", "wireguard-go"),
    "dns_backend": ("auto", "resolved", "resolvconf", "file"),
    "log_level": ("debug", "info", "warning", "error"),
    "lockdown": ("user", "always", "never"),
}


_POSITIVE = ("reresolve_interval", "reresolve_after")
CGROUP_NAME = GROUP_NAME
"""What `Settings.split_tunnel_cgroup` may be (it ends up in an nft script and a path)."""


def load(path: Path | None = None) -> Settings:
    """Read helper.toml (default: the OS's, `default_paths`); a missing file gives the defaults.
    Raises `SettingsError`."""
    path = path or default_paths().settings
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"{path}: {e}") from e
    known = {f.name: f for f in fields(Settings) if f.name != "extra"}
    values: dict[str, object] = {}
    for key, value in data.items():
        if key not in known:
            raise SettingsError(f"{path}: unknown setting {key!r}")
        default = getattr(Settings(), key)
        if type(default) is float and type(value) is int:
            value = float(value)
        if type(value) is not type(default):
            raise SettingsError(
                f"{path}: {key} must be a {'number' if type(default) is float else type(default).__name__}"
            )
        if key in _POSITIVE and not (isinstance(value, float) and 0 < value < 86400 * 365):
            raise SettingsError(f"{path}: {key} must be a number of seconds above 0 (and below a year)")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise SettingsError(f"{path}: {key} must be one of {', '.join(_CHOICES[key])}")
        cgroup_key = key in ("split_tunnel_cgroup", "split_tunnel_include_cgroup")
        if cgroup_key and not (isinstance(value, str) and CGROUP_NAME.fullmatch(value)):
            raise SettingsError(f"{path}: {key} must be 1 to 64 letters, digits, _ or -")
        if key == "split_tunnel_cgroup_root" and value and not str(value).startswith("/"):
            raise SettingsError(f"{path}: {key} must be an absolute path (or empty)")
        if key in ("max_tunnels_per_user", "max_routes_per_user") and not (
            isinstance(value, int) and 0 <= value <= 10**7
        ):
            raise SettingsError(f"{path}: {key} must be a whole number from 0 to 10000000")
        if key == "persistent_dir" and not Path(str(value)).is_absolute():
            raise SettingsError(f"{path}: {key} must be an absolute path")
        if key == "lockdown_file" and not (
            Path(str(value)).is_absolute() and not str(value).endswith(("/", os.sep))
        ):
            raise SettingsError(f"{path}: {key} must be the absolute path of a file")
        if key == "lockdown_pause_max" and not (isinstance(value, int) and 0 <= value <= MAX_PAUSE):
            raise SettingsError(f"{path}: {key} must be a whole number of seconds from 0 to {MAX_PAUSE}")
        values[key] = value
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.split_tunnel_cgroup == settings.split_tunnel_include_cgroup:
        raise SettingsError(f"{path}: split_tunnel_include_cgroup must differ from split_tunnel_cgroup")
    return settings
