"""The diagnostics bundle: one ``.zip`` a user attaches to a bug report, holding what a maintainer
needs and no secret (no Qt; used by ``wgdeskctl diagnostics`` and the manager's *Save diagnostics…*).

```python
bundle = collect_bundle()                # or collect() for the bytes, write_bundle(path) for a file
print(bundle.summary)
```

What goes in (each a member of the archive; see `README.txt` inside for the list of one bundle):

* ``versions.txt`` — wgdesk, Python, the OS, cryptography/OpenSSL, PySide6, ``wg`` and ``wireguard-go``;
* ``tunnels/NAME.conf`` — each stored tunnel as written on disk, ``tunnels/NAME.lint.txt`` its
  ``config.lint`` findings;
* ``helper/`` — the helper's version, the status of all tunnels, its log, ``diagnose`` of each tunnel
  that is up; or ``helper/unreachable.txt`` with the reason when it does not answer;
* ``network/`` — what the OS backend lists (`wgdesk.platforms.interface.Diagnostics`; on Linux
  ``ip -j addr``, ``ip -j route show table all``, ``ip -j rule``, ``/etc/resolv.conf``, ``resolvectl
  status``; no root needed; each with a timeout; a failure is recorded, never raised).

Every member passes `Redactor.redact` before it enters the archive:

* private and preshared keys never appear: ``PrivateKey``/``PresharedKey`` lines and UAPI
  ``private_key=``/``preshared_key=`` lines lose their value, and every key the keyring holds for a
  stored tunnel is removed in base64, hex, unpadded and 8-character-prefix form;
* any other value shaped like a WireGuard key (32 bytes in base64 or hex) is replaced by an alias.
  A public key known from a tunnel (a peer's ``PublicKey``, the status) becomes ``pub-N-ABCD`` (its
  first four characters, so the user can recognise it), and its short forms in logs
  (``ABCDEFGH…``, ``ABCD…WXYZ``) become the same alias, so one peer has one name in every file;
* hook commands (``PreUp``…``PostDown``) are replaced by ``(command hidden)``: they may hold
  passwords;
* the user's home directory becomes ``~``;
* with ``redact_addresses`` (the default): public IP addresses become ``ip4-N`` / ``ip6-N``, endpoint
  host names and DNS search domains ``host-N``, hardware (MAC) addresses ``mac-N``, each consistently
  across files. Private, tunnel and link-local addresses stay (10/8, 172.16/12, 192.168/16,
  100.64/10, loopback, link-local, fc00::/7, multicast): they are what routing problems are made of,
  and they do not identify the user or the VPN provider. Documentation ranges count as public.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import ipaddress
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from wgdesk import __version__
from wgdesk.platforms import backend, system

__all__ = ["Bundle", "Redactor", "collect", "collect_bundle", "default_filename", "write_bundle"]

COMMAND_TIMEOUT = 5.0
"""Seconds each outside command (``ip``, ``resolvectl``, ``wg --version`` …) may take."""
HELPER_TIMEOUT = 10.0
"""Seconds the helper may take to answer one request."""

_B64_KEY = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048](?:=|(?![A-Za-z0-9+/=]))")
_HEX_KEY = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_SECRET_LINE = re.compile(
    r"^(?P<head>[ \t]*(?:PrivateKey|PresharedKey)[ \t]*=[ \t]*).*$", re.IGNORECASE | re.MULTILINE
)
_UAPI_SECRET = re.compile(r"(?P<head>\b(?:private_key|preshared_key)=)[^\s\"',]*")
_JSON_SECRET = re.compile(r'(?P<head>"(?:private_key|preshared_key)"\s*:\s*)"[^"]*"')
_HOOK_LINE = re.compile(
    r"^(?P<head>[ \t]*(?:PreUp|PostUp|PreDown|PostDown)[ \t]*=[ \t]*)\S.*$", re.IGNORECASE | re.MULTILINE
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
_MAC = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}(?![\w:])")
_KEEP_NETWORKS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fe80::/10",
        "fc00::/7",
        "ff00::/8",
    )
]
HIDDEN = "(hidden)"
HOOK_HIDDEN = "(command hidden)"


def _key_bytes(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text if text.endswith("=") else text + "=", validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def _keeps(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == net.version and addr in net for net in _KEEP_NETWORKS)


class Redactor:
    """Removes secrets from text and replaces identifiers by aliases that stay the same across the files
    of one bundle.

    Args:
        secrets: keys that must never appear (base64); also removed in hex, unpadded and prefix form.
        public_keys: keys known to be public, in the order they get their ``pub-N`` aliases.
        hosts: host names to alias (endpoint hosts, search domains) when ``redact_addresses``.
        redact_addresses: replace public IP addresses, the given host names and MAC addresses.
        home: a directory to show as ``~`` (default: the user's home; None keeps paths).
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        public_keys: Iterable[str] = (),
        hosts: Iterable[str] = (),
        redact_addresses: bool = True,
        home: str | None = "",
    ) -> None:
        self.redact_addresses = redact_addresses
        self.home = str(Path.home()) if home == "" else home
        self._secrets: dict[bytes, None] = {}
        self._keys: dict[bytes, str] = {}  # raw public key -> alias
        self._unknown = 0
        self._aliases: dict[str, str] = {}  # address / host / mac (lower case) -> alias
        self._counts: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        """How many replacements of each kind were made (``secret``, ``key``, ``hook``, ``address`` …)."""
        for key in secrets:
            self.add_secret(key)
        for key in public_keys:
            self.add_public_key(key)
        self._hosts: list[str] = []
        for host in hosts:
            self.add_host(host)

    # -- what is known -------

    def add_secret(self, key: str) -> None:
        """A private or preshared key (base64) that must not appear in any form."""
        raw = _key_bytes(key.strip())
        if raw is not None:
            self._secrets[raw] = None
            self._keys.pop(raw, None)

    def add_public_key(self, key: str) -> str | None:
        """Register a public key (base64) and return its alias (None if it is not a key)."""
        raw = _key_bytes(key.strip())
        if raw is None or raw in self._secrets:
            return None
        if raw not in self._keys:
            n = sum(1 for a in self._keys.values() if a.startswith("pub-")) + 1
            self._keys[raw] = f"pub-{n}-{base64.b64encode(raw).decode()[:4]}"
        return self._keys[raw]

    def add_host(self, host: str) -> None:
        """A host name or search domain to alias when addresses are redacted."""
        host = host.strip().rstrip(".").lower()
        if not host or host in self._hosts:
            return
        try:
            ipaddress.ip_address(host)
            return  # an address: handled by the address rules
        except ValueError:
            pass
        if "." not in host or host == "localhost":
            return  # a single label (home, lan, corp) identifies nobody and would match ordinary words
        self._hosts.append(host)
        self._hosts.sort(key=len, reverse=True)  # longest first: vpn.example.com before example.com

    # -- redaction -------

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def _alias(self, kind: str, value: str) -> str:
        value = value.lower()
        if value not in self._aliases:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._aliases[value] = f"{kind}-{self._counts[kind]}"
        self._count("address")
        return self._aliases[value]

    def _key_alias(self, raw: bytes) -> str:
        if raw in self._secrets:
            self._count("secret")
            return HIDDEN
        if raw not in self._keys:
            self._unknown += 1
            self._keys[raw] = f"key-{self._unknown}"
        self._count("key")
        return self._keys[raw]

    def redact(self, text: str) -> str:
        """`text` without secrets, with aliases for keys and (when enabled) addresses and hosts."""

        def line(kind: str) -> Callable[[re.Match[str]], str]:
            def sub(m: re.Match[str]) -> str:
                self._count("hook" if kind == "hook" else "secret")
                if kind == "json":
                    return m.group("head") + f'"{HIDDEN}"'
                return m.group("head") + (HOOK_HIDDEN if kind == "hook" else HIDDEN)

            return sub

        text = _SECRET_LINE.sub(line("secret"), text)
        text = _UAPI_SECRET.sub(line("secret"), text)
        text = _JSON_SECRET.sub(line("json"), text)
        text = _HOOK_LINE.sub(line("hook"), text)

        def b64(m: re.Match[str]) -> str:
            raw = _key_bytes(m.group(0).rstrip("="))
            return self._key_alias(raw) if raw is not None else m.group(0)

        def hexkey(m: re.Match[str]) -> str:
            return self._key_alias(bytes.fromhex(m.group(0)))

        text = _B64_KEY.sub(b64, text)
        text = _HEX_KEY.sub(hexkey, text)
        for raw, alias in [*((r, HIDDEN) for r in self._secrets), *self._keys.items()]:
            encoded = base64.b64encode(raw).decode()
            for short in (
                f"{encoded[:4]}…{encoded[-5:-1]}",
                f"{encoded[:4]}...{encoded[-5:-1]}",
                encoded[:8],
            ):
                if short in text:
                    text = text.replace(short, alias)
                    self._count("secret" if alias == HIDDEN else "key")
        if self.home and len(self.home) > 1:
            text = text.replace(self.home, "~")
        if self.redact_addresses:
            text = self._addresses(text)
        return text

    def _addresses(self, text: str) -> str:
        def v4(m: re.Match[str]) -> str:
            try:
                addr = ipaddress.IPv4Address(m.group(0))
            except ValueError:
                return m.group(0)
            return m.group(0) if _keeps(addr) else self._alias("ip4", str(addr))

        def v6(m: re.Match[str]) -> str:
            candidate = m.group(0)
            try:
                addr = ipaddress.IPv6Address(candidate)
            except ValueError:
                return candidate
            return candidate if _keeps(addr) else self._alias("ip6", str(addr))

        text = _MAC.sub(
            lambda m: (
                m.group(0)
                if m.group(0).lower() in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff")
                else self._alias("mac", m.group(0))
            ),
            text,
        )
        text = _IPV6.sub(v6, text)
        text = _IPV4.sub(v4, text)
        for host in self._hosts:
            pattern = re.compile(rf"(?<![\w.-]){re.escape(host)}(?![\w-]|\.\w)", re.IGNORECASE)
            alias = self._alias("host", host) if pattern.search(text) else ""
            text = pattern.sub(alias, text)
        return text

    def summary(self) -> str:
        """What was replaced, for the manifest."""
        names = {
            "secret": "secret values hidden",
            "key": "key-shaped values aliased",
            "hook": "hook commands hidden",
            "address": "addresses/host names aliased",
        }
        parts = [f"{self.counts.get(k, 0)} {text}" for k, text in names.items()]
        return ", ".join(parts)


@dataclass
class Bundle:
    """A collected bundle: the ``.zip`` bytes, its member names and a one-line summary."""

    data: bytes
    members: list[str]
    summary: str
    problems: list[str] = field(default_factory=list)


class _Collector:
    def __init__(self, command_timeout: float) -> None:
        self.files: dict[str, str] = {}
        self.problems: list[str] = []
        self.command_timeout = command_timeout

    def add(self, name: str, text: str) -> None:
        self.files[name] = text

    def run(self, argv: list[str]) -> tuple[str | None, str]:
        """(stdout or None, a description of what happened)."""
        exe = shutil.which(argv[0])
        if exe is None:
            return None, f"{argv[0]} is not installed"
        try:
            done = subprocess.run(
                [exe, *argv[1:]],
                capture_output=True,
                timeout=self.command_timeout,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "LC_ALL": "C", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""},
            )
        except subprocess.TimeoutExpired:
            return None, f"`{' '.join(argv)}` did not finish within {self.command_timeout:g} s"
        except OSError as exc:
            return None, f"`{' '.join(argv)}` could not run: {exc.strerror or exc}"
        out = done.stdout.decode("utf-8", "replace")
        err = done.stderr.decode("utf-8", "replace").strip()
        if done.returncode != 0:
            return None, f"`{' '.join(argv)}` exited with {done.returncode}: {err or out.strip()}"
        return out, "ok"


def default_filename(now: float | None = None) -> str:
    """``wgdesk-diagnostics-YYYYMMDD-HHMMSS.zip`` in local time."""
    return time.strftime("wgdesk-diagnostics-%Y%m%d-%H%M%S.zip", time.localtime(now))


def _package_version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _versions(c: _Collector) -> str:
    lines = [
        f"wgdesk: {__version__}",
        f"python: {sys.version.split()[0]} ({platform.python_implementation()}, {sys.executable})",
        f"platform: {platform.platform()}",
        f"machine: {platform.machine()}",
    ]
    os_release = Path("/etc/os-release")
    if os_release.is_file():
        fields = {}
        for raw in os_release.read_text(errors="replace").splitlines():
            key, sep, value = raw.partition("=")
            if sep:
                fields[key.strip()] = value.strip().strip('"')
        lines.append(f"os-release: {fields.get('PRETTY_NAME') or fields.get('NAME', '?')}")
    elif system() == "darwin":
        lines.append(f"macOS: {platform.mac_ver()[0]}")
    elif system() == "win32":
        lines.append(f"Windows: {' '.join(platform.win32_ver())}")
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        lines.append(f"cryptography: {_package_version('cryptography')} ({backend.openssl_version_text()})")
    except Exception as exc:  # an import failure is itself worth reporting
        lines.append(f"cryptography: unavailable ({exc})")
    for label, names in (
        ("PySide6", ("PySide6-Essentials", "PySide6")),
        ("keyring", ("keyring",)),
        ("pyroute2", ("pyroute2",)),
        ("PyNaCl", ("PyNaCl",)),
    ):
        lines.append(f"{label}: {_package_version(*names) or 'not installed'}")
    for argv in (["wg", "--version"], ["wireguard-go", "--version"]):
        out, what = c.run(argv)
        lines.append(f"{argv[0]}: {out.strip() if out is not None else what}")
    return "\n".join(lines) + "\n"


def _tunnels(c: _Collector, store: Any, redactor: Redactor) -> int:
    """Stored tunnels as written on disk plus lint findings; registers their keys and hosts."""
    from wgdesk.config import lint, parse_bytes
    from wgdesk.platforms import local_networks

    try:
        names = store.list()
    except OSError as exc:
        c.add("tunnels/error.txt", f"the tunnel directory could not be listed: {exc}\n")
        c.problems.append("tunnel directory unreadable")
        return 0
    configs = {}
    raw_texts = {}
    for name in names:
        path = store.path(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            c.add(f"tunnels/{name}.error.txt", f"{path}: {exc.strerror or exc}\n")
            continue
        raw_texts[name] = data.decode("utf-8", "replace")
        try:
            configs[name] = (parse_bytes(data, filename=str(path)), path.stat().st_mode)
        except Exception as exc:
            c.add(f"tunnels/{name}.error.txt", f"the file does not parse: {exc}\n")
    for cfg, _mode in configs.values():
        for peer in cfg.peers:
            redactor.add_public_key(peer.public_key)
            if peer.endpoint is not None:
                redactor.add_host(peer.endpoint.host)
        for domain in cfg.interface.dns_search:
            redactor.add_host(domain)
    try:
        networks = local_networks()
    except Exception:
        networks = []
    others = {n: cfg for n, (cfg, _m) in configs.items()}
    for name, text in raw_texts.items():
        c.add(f"tunnels/{name}.conf", text)
        if name not in configs:
            continue
        cfg, mode = configs[name]
        try:
            found = lint(
                cfg,
                other_tunnels={n: o for n, o in others.items() if n != name},
                local_networks=networks,
                file_mode=stat.S_IMODE(mode),
                platform=system(),
            )
        except Exception as exc:  # a linter bug is a finding too
            c.add(f"tunnels/{name}.lint.txt", f"the linter failed: {exc!r}\n")
            continue
        lines = [f"line {w.line}: {w}" if w.line else str(w) for w in found]
        c.add(f"tunnels/{name}.lint.txt", "\n".join(lines) + "\n" if lines else "no findings\n")
    return len(names)


def _secrets(store: Any, redactor: Redactor) -> str:
    """Teach the redactor every secret the keyring holds for the stored tunnels (best effort)."""
    try:
        names = store.list()
        for name in names:
            cfg = store.load(name, with_secrets=True)
            if cfg.interface.private_key:
                redactor.add_secret(cfg.interface.private_key)
            for peer in cfg.peers:
                if peer.preshared_key:
                    redactor.add_secret(peer.preshared_key)
    except Exception as exc:
        return f"the keyring could not be read ({exc}); keys were removed by their shape only"
    return "the keys in the keyring were also searched for in every file"


def _fmt_time(t: Any) -> str:
    try:
        return (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t))) + f".{int(float(t) % 1 * 1000):03d}"
        )
    except (TypeError, ValueError, OverflowError):
        return str(t)


def _log_text(records: list[dict[str, Any]]) -> str:
    lines = []
    for r in records:
        tunnel = f"[{r.get('tunnel')}] " if r.get("tunnel") else ""
        lines.append(
            f"{_fmt_time(r.get('time'))} {r.get('level', '')!s:7} {r.get('source', '')!s:6} "
            f"{tunnel}{r.get('message', '')}"
        )
    return "\n".join(lines) + "\n" if lines else "(no records)\n"


def _helper(c: _Collector, client_factory: Callable[[], Any], redactor: Redactor) -> str:
    """Ask the helper; returns a short description for the summary."""
    from wgdesk.client import HelperError
    from wgdesk.snapshots import TunnelSnapshot

    try:
        with client_factory() as client:
            c.add("helper/version.json", json.dumps(client.version(), indent=2) + "\n")
            tunnels: list[TunnelSnapshot] = client.status()
            for t in tunnels:
                for p in t.peers:
                    redactor.add_public_key(p.public_key)
                    endpoint = p.endpoint or ""
                    host = endpoint.rsplit(":", 1)[0].strip("[]") if endpoint else ""
                    if host:
                        redactor.add_host(host)
                    if p.endpoint_host:  # the name an endpoint was resolved from, if any
                        redactor.add_host(p.endpoint_host)
            wire = [t.to_wire() for t in tunnels]
            c.add("helper/status.json", json.dumps({"tunnels": wire}, indent=2) + "\n")
            try:
                c.add("helper/log.txt", _log_text(client.logs(None)))
            except HelperError as exc:
                c.add("helper/log.txt", f"the helper refused the logs request: {exc.message}\n")
            for t in tunnels:
                name = t.name
                try:
                    found = client.diagnose(name).to_wire()
                except HelperError as exc:
                    c.add(f"helper/diagnose-{name}.txt", f"diagnose failed: {exc.message}\n")
                    continue
                logs = found.pop("logs", [])
                c.add(f"helper/diagnose-{name}.json", json.dumps(found, indent=2) + "\n")
                c.add(f"helper/log-{name}.txt", _log_text(logs))
    except HelperError as exc:
        c.add(
            "helper/unreachable.txt",
            "The wgdesk helper could not be asked for the status and logs of the tunnels:\n"
            f"{exc.message}\n(error code: {exc.code})\n",
        )
        c.problems.append("helper unreachable")
        return "helper unreachable"
    up = sum(1 for t in tunnels if t.state == "up")
    return f"helper answered ({len(tunnels)} tunnel(s) known, {up} up)"


def _network(c: _Collector) -> int:
    """This machine's network view as the OS backend lists it (no root needed); returns how many
    parts failed."""
    failed = 0
    for source in backend().diagnostics.sources():
        if source.path:
            try:
                c.add(source.member, Path(source.path).read_text(errors="replace"))
            except OSError as exc:
                failed += 1
                c.add(source.member + ".error.txt", f"{source.path}: {exc.strerror or exc}\n")
            continue
        out, what = c.run(list(source.argv))
        if out is None:
            failed += 1
            c.add(source.member.rsplit(".", 1)[0] + ".error.txt", what + "\n")
            continue
        if source.member.endswith(".json"):
            with contextlib.suppress(ValueError):
                out = json.dumps(json.loads(out), indent=1) + "\n"
        c.add(source.member, out)
    return failed


def _resolv_hosts(text: str, redactor: Redactor) -> None:
    for raw in text.splitlines():
        parts = raw.split("#", 1)[0].split()
        if parts and parts[0] in ("search", "domain"):
            for domain in parts[1:]:
                redactor.add_host(domain)
        if raw.strip().startswith(("DNS Domain:", "Search Domains:")):
            for domain in raw.split(":", 1)[1].split():
                redactor.add_host(domain)


_README = """wgdesk diagnostics bundle
=========================

Created {created} by wgdesk {version} for a bug report. It holds no private key and no preshared
key. Attach it as it is; you can open it with any zip tool to check what it contains.

Contents
--------
{contents}

Redaction (applied to every file above before it was added)
-----------------------------------------------------------
* The values of PrivateKey and PresharedKey config lines, and of private_key and preshared_key
  UAPI lines, are replaced by "(hidden)"; {keyring}.
* Every other value shaped like a WireGuard key (32 bytes as base64 or hex) is replaced by an alias:
  "pub-N-ABCD" for a public key known from a tunnel (ABCD = its first four characters), "key-N"
  for any other. Short forms of known keys in logs ("ABCDEFGH…", "ABCD…WXYZ") use the same alias,
  so one peer has one name in every file.
* Hook commands (PreUp, PostUp, PreDown, PostDown) are replaced by "(command hidden)".
* Your home directory is shown as "~".
{addresses}

This bundle: {counts}.
{problems}"""

_ADDRESSES_ON = """* Public IP addresses are replaced by "ip4-N" / "ip6-N", endpoint host names and DNS search
  domains by "host-N", hardware (MAC) addresses by "mac-N" — the same value always gets the same
  alias. Private, tunnel, loopback, link-local and multicast addresses are kept (10/8, 172.16/12,
  192.168/16, 100.64/10, 127/8, 169.254/16, fc00::/7, fe80::/10): they matter for routing problems
  and identify neither you nor your VPN provider."""
_ADDRESSES_OFF = """* IP addresses, host names and MAC addresses were NOT redacted (redact_addresses was off):
  public endpoint addresses and host names appear as they are."""


def _describe(name: str) -> str:
    descriptions = {
        "versions.txt": "versions of wgdesk, Python, the OS, cryptography/OpenSSL, PySide6, wg, wireguard-go",
        "helper/version.json": "the helper's version and protocol",
        "helper/status.json": "live status of every tunnel the helper knows (peers, handshakes, bytes)",
        "helper/log.txt": "the helper's recent log (helper and engine records)",
        "helper/unreachable.txt": "why the helper could not be asked (no status or logs in this bundle)",
        **{source.member: source.description for source in backend().diagnostics.sources()},
    }
    if name in descriptions:
        return descriptions[name]
    if name.endswith(".error.txt"):
        return "why this part could not be collected"
    if name.startswith("tunnels/") and name.endswith(".lint.txt"):
        return "the linter's findings for this tunnel"
    if name.startswith("tunnels/") and name.endswith(".conf"):
        return "the tunnel as stored on disk (its keys live in the keyring and are not included)"
    if name.startswith("helper/diagnose-"):
        return "the helper's diagnose output for this tunnel"
    if name.startswith("helper/log-"):
        return "this tunnel's last log records (from diagnose)"
    return ""


def collect_bundle(
    store: Any | None = None,
    client_factory: Callable[[], Any] | None = None,
    *,
    redact_addresses: bool = True,
    use_keyring: bool = True,
    command_timeout: float = COMMAND_TIMEOUT,
    now: float | None = None,
) -> Bundle:
    """Collect everything (see the module docstring) into a redacted ``.zip``; never raises for a part
    that cannot be collected — that part's error text goes into the bundle instead.

    Args:
        store: the user's `wgdesk.tunnels.TunnelStore` (default: the standard one).
        client_factory: makes a `wgdesk.client.HelperClient` (default: the standard socket, with
            `HELPER_TIMEOUT`).
        redact_addresses: alias public IP addresses, endpoint host names and MAC addresses.
        use_keyring: read the stored tunnels' secrets from the keyring so that they can be searched
            for in every form; without it (or when the keyring fails) keys are removed by shape only.
        command_timeout: seconds each outside command may take.
        now: the creation time shown in the manifest (default: now).
    """
    from wgdesk.client import HelperClient

    if store is None:
        from wgdesk.tunnels import TunnelStore

        store = TunnelStore()
    if client_factory is None:
        client_factory = lambda: HelperClient(timeout=HELPER_TIMEOUT)  # noqa: E731
    created = time.time() if now is None else now
    c = _Collector(command_timeout)
    redactor = Redactor(redact_addresses=redact_addresses)
    keyring_note = (
        _secrets(store, redactor)
        if use_keyring
        else "the keyring was not read; keys were removed by shape only"
    )
    c.add("versions.txt", _versions(c))
    count = _tunnels(c, store, redactor)
    helper = _helper(c, client_factory, redactor)
    failed = _network(c)
    for name in ("network/resolv.conf", "network/resolvectl-status.txt"):
        if name in c.files:
            _resolv_hosts(c.files[name], redactor)
    if failed:
        c.problems.append(f"{failed} network command(s) failed")
    redacted = {name: redactor.redact(text) for name, text in c.files.items()}
    contents = "\n".join(f"  {name}\n      {_describe(name)}" for name in sorted(redacted))
    problems = "".join(f"Not collected: {p}.\n" for p in c.problems)
    readme = _README.format(
        created=time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(created)),
        version=__version__,
        contents=contents,
        keyring=keyring_note,
        addresses=_ADDRESSES_ON if redact_addresses else _ADDRESSES_OFF,
        counts=redactor.summary(),
        problems=problems,
    )
    counts = redactor.summary()
    members = {"README.txt": redactor.redact(readme), **dict(sorted(redacted.items()))}
    buffer = io.BytesIO()
    stamp = time.localtime(created)[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            info = zipfile.ZipInfo(name, date_time=max(stamp, (1980, 1, 1, 0, 0, 0)))
            info.external_attr = (stat.S_IFREG | 0o600) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("utf-8"))
    summary = f"{count} tunnel(s), {helper}, {failed} network command(s) failed; {counts}"
    return Bundle(buffer.getvalue(), list(members), summary, list(c.problems))


def collect(**kwargs: Any) -> bytes:
    """The bundle's ``.zip`` bytes (arguments as `collect_bundle`)."""
    return collect_bundle(**kwargs).data


def write_bundle(path: str | os.PathLike[str], **kwargs: Any) -> Bundle:
    """Collect the bundle and write it to ``path`` (mode 0600: it is redacted, but still personal);
    arguments as `collect_bundle`."""
    from wgdesk.tunnels import write_export

    bundle = collect_bundle(**kwargs)
    write_export(Path(path), bundle.data, secret=True)
    return bundle
