"""The user's tunnels: secret-free `NAME.conf` files plus secrets in the OS keyring.

Files live in `$XDG_CONFIG_HOME/wgdesk/tunnels` (macOS `~/Library/Application Support/wgdesk/tunnels`,
Windows `%APPDATA%\\wgdesk\\tunnels`), mode 0600 in a 0700 directory, written atomically. They never
contain a `PrivateKey` or `PresharedKey` value; those go to the keyring (see `wgdesk.keystore`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from wgdesk.config import (
    Config,
    ConfigError,
    LintWarning,
    is_interface_name,
    is_valid_key,
    lint,
    parse_bytes,
    write,
)
from wgdesk.keystore import KeyStore, preshared_key_item, private_key_item
from wgdesk.platforms import local_networks, system, user_config_dir

__all__ = [
    "ImportReport",
    "ImportedTunnel",
    "InvalidTunnelName",
    "RejectedFile",
    "TunnelError",
    "TunnelExists",
    "TunnelNotFound",
    "TunnelStore",
    "default_directory",
    "printable",
    "sanitize_name",
    "write_export",
]

MAX_CONF_BYTES = 1 << 20
"""A `.conf` larger than this (1 MiB) is refused, inside a `.zip` or not."""
MAX_ZIP_MEMBERS = 1000
_TOO_LARGE = "larger than 1 MiB; not a tunnel config"


# What reading a damaged or unusual archive can raise (zlib/bz2/lzma streams, encrypted members, ...).
_ZIP_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    RuntimeError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
)


class TunnelError(Exception):
    """A tunnel store operation that cannot be done; the message says why."""


class InvalidTunnelName(TunnelError, ValueError):
    pass


class TunnelNotFound(TunnelError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "tunnel not found"


class TunnelExists(TunnelError):
    pass


def default_directory() -> Path:
    """Where this platform keeps the user's tunnel files."""
    return user_config_dir() / "tunnels"


def check_name(name: str) -> str:
    if not is_interface_name(name):
        raise InvalidTunnelName(
            f"`{name}` is not a valid tunnel name: use 1 to 15 letters, digits or _=+.-, "
            "not starting with - (the name becomes the network interface name)"
        )
    return name


def sanitize_name(stem: str) -> str:
    """An interface name made from a file name: invalid characters become `-`, at most 15 characters."""
    name = re.sub(r"[^a-zA-Z0-9_=+.-]+", "-", stem).strip("-")[:15].strip("-")
    return name if is_interface_name(name) else "tunnel"


def printable(text: str) -> str:
    """`text` with every character that is not printable (a newline, a terminal escape, a bidi override)
    written as a Python escape (``\\n``, ``\\x1b``, ``\\u202e``).

    Import reports name files and archive members, which whoever made the file chose: printed as they
    are, such a name could forge report lines or send escape sequences to the user's terminal (found by
    fuzzing)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


@dataclass(frozen=True)
class ImportedTunnel:
    """A tunnel that was imported: its `name`, where it came from, whether it was renamed (and why),
    whether it carries hook commands (kept, never run without admin consent), and lint findings.
    Texts are `printable`."""

    name: str
    source: str
    renamed_from: str | None = None
    rename_reason: str | None = None
    has_hooks: bool = False
    warnings: tuple[LintWarning, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", printable(self.source))
        if self.renamed_from is not None:
            object.__setattr__(self, "renamed_from", printable(self.renamed_from))
        if self.rename_reason is not None:
            object.__setattr__(self, "rename_reason", printable(self.rename_reason))


@dataclass(frozen=True)
class RejectedFile:
    """A file or archive member that was not imported, and why (both `printable`)."""

    source: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", printable(self.source))
        object.__setattr__(self, "reason", printable(self.reason))


@dataclass
class ImportReport:
    """What `TunnelStore.import_files` did."""

    imported: list[ImportedTunnel] = field(default_factory=list)
    rejected: list[RejectedFile] = field(default_factory=list)

    @property
    def renamed(self) -> list[ImportedTunnel]:
        return [t for t in self.imported if t.renamed_from is not None]

    def lines(self) -> list[str]:
        """A human-readable summary, one line per file."""
        out = []
        for t in self.imported:
            line = f"imported {t.source} as {t.name}"
            if t.renamed_from is not None:
                line += f" (renamed from {t.renamed_from}: {t.rename_reason})"
            if t.has_hooks:
                line += " [has hook commands: kept, not run]"
            out.append(line)
        out += [f"skipped {r.source}: {r.reason}" for r in self.rejected]
        return out


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, mode 0600."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # POSIX; on Windows the profile directory's ACL protects the file
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:  # make the rename durable; directories cannot be opened on Windows
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_export(path: Path | str, data: bytes, secret: bool) -> None:
    """Write an export the user asked for to `path` (in place: it may be a pipe or a device).

    With `secret` the file is 0600 before any byte is written, even when it existed with a wider
    mode; otherwise a new file is 0644 (less the umask) and an existing one keeps its mode.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        if secret and hasattr(os, "fchmod"):  # POSIX; on Windows the user's directories' ACLs apply
            os.fchmod(fd, 0o600)
        f.write(data)


def _check_one_preshared_key_per_peer(name: str, cfg: Config) -> None:
    """The keyring holds one preshared key per peer public key (`NAME:psk:PEERPUBKEY`), so two [Peer]
    sections with the same PublicKey but different PresharedKeys cannot be stored: the first would
    silently take the second's key (found by fuzzing the import). `wg` merges such sections, the last
    PresharedKey winning; refusing keeps the user from believing the file was stored as written."""
    first: dict[str, tuple[int, str | None]] = {}
    for number, peer in enumerate(cfg.peers, start=1):
        seen = first.setdefault(peer.public_key, (number, peer.preshared_key))
        if seen[1] != peer.preshared_key:
            raise ConfigError(
                f"{name}.conf",
                cfg.section_line(number),
                "PresharedKey",
                f"[Peer] {number} has the PublicKey of [Peer] {seen[0]} but another PresharedKey; "
                "merge the two sections (wg would use only the last PresharedKey)",
            )


class TunnelStore:
    """The tunnel collection of one user.

    Args:
        directory: where `NAME.conf` files live (default: `default_directory()`).
        keystore: where secrets live (default: the system keyring, opened on first use; operations
            that need no secret, such as `list`, work without a keyring).
    """

    def __init__(self, directory: Path | None = None, keystore: KeyStore | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()
        self.keystore = keystore if keystore is not None else KeyStore()

    def path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.conf"

    def _ensure_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)

    def list(self) -> list[str]:
        """Tunnel names, sorted."""
        if not self.directory.is_dir():
            return []
        names = (p.name[: -len(".conf")] for p in self.directory.iterdir() if p.name.endswith(".conf"))
        return sorted(n for n in names if is_interface_name(n))

    def configs(self) -> dict[str, Config]:
        """Every tunnel that parses, without secrets, by name (for lint's `other_tunnels`)."""
        found = {}
        for name in self.list():
            try:
                found[name] = self.load(name)
            except (OSError, ConfigError):
                continue
        return found

    def exists(self, name: str) -> bool:
        return is_interface_name(name) and self.path(name).is_file()

    def load(self, name: str, with_secrets: bool = False) -> Config:
        """The tunnel's config; with `with_secrets`, the private and preshared keys from the keyring
        are filled in (a secret missing from the keyring stays None)."""
        path = self.path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise TunnelNotFound(f"no tunnel named `{name}`") from None
        cfg = parse_bytes(data, filename=str(path))
        if not with_secrets:
            return cfg
        private_key = self._secret(name, "PrivateKey", self.keystore.get_private_key(name))
        peers = tuple(
            replace(
                p,
                preshared_key=self._secret(
                    name, "PresharedKey", self.keystore.get_preshared_key(name, p.public_key)
                ),
            )
            for p in cfg.peers
        )
        return replace(cfg, interface=replace(cfg.interface, private_key=private_key), peers=peers)

    @staticmethod
    def _secret(name: str, key: str, value: str | None) -> str | None:
        # The keyring is outside our control; what comes back must still be a key.
        if value is not None and not is_valid_key(value):
            raise ConfigError(
                f"{name} (keyring)", None, key, f"the keyring holds an invalid {key} for `{name}`"
            )
        return value

    def save(self, name: str, cfg: Config) -> None:
        """Store `cfg` as tunnel `name`: its secrets go to the keyring, the file gets none.

        A secret that `cfg` leaves out (None) keeps the value already in the keyring, so a config
        loaded without secrets can be edited and saved back. Preshared keys of peers that are no
        longer in the config are deleted. Nothing is stored if a value is invalid (`ConfigError`), and
        nothing is written to disk if the keyring fails.
        """
        check_name(name)
        write(cfg)  # validates every value, secrets included, before anything is stored
        _check_one_preshared_key_per_peer(name, cfg)
        text = write(cfg.without_secrets())
        previous = self._peer_keys(name)
        if cfg.interface.private_key is not None:
            self.keystore.set_private_key(name, cfg.interface.private_key)
        for peer in cfg.peers:
            if peer.preshared_key is not None:
                self.keystore.set_preshared_key(name, peer.public_key, peer.preshared_key)
        for stale in previous - {p.public_key for p in cfg.peers}:
            self.keystore.delete(preshared_key_item(name, stale))
        self._ensure_directory()
        _write_private(self.path(name), text.encode())

    def _peer_keys(self, name: str) -> set[str]:
        try:
            return {p.public_key for p in self.load(name).peers}
        except (TunnelNotFound, ConfigError):
            return set()

    def delete(self, name: str) -> None:
        """Remove the tunnel's file and its keyring items."""
        path = self.path(name)
        if not path.is_file():
            raise TunnelNotFound(f"no tunnel named `{name}`")
        self.keystore.delete(private_key_item(name))
        for key in self._peer_keys(name):
            self.keystore.delete(preshared_key_item(name, key))
        path.unlink()

    def rename(self, old: str, new: str) -> None:
        """Rename a tunnel, its file and its keyring items."""
        check_name(new)
        if not self.exists(old):
            raise TunnelNotFound(f"no tunnel named `{old}`")
        if self.exists(new):
            raise TunnelExists(f"a tunnel named `{new}` already exists")
        cfg = self.load(old, with_secrets=True)
        self.save(new, cfg)
        self.delete(old)

    def export(self, name: str, with_secrets: bool = False) -> str:
        """The tunnel as `.conf` text; secrets are included only with `with_secrets`."""
        return write(self.load(name, with_secrets=with_secrets))

    def export_zip(self, with_secrets: bool = False) -> bytes:
        """All tunnels as a `.zip` of `NAME.conf` files (the official clients' format)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in self.list():
                info = zipfile.ZipInfo(f"{name}.conf", date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (stat.S_IFREG | 0o600) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, self.export(name, with_secrets=with_secrets))
        return buffer.getvalue()

    def import_text(self, data: bytes, name: str, source: str = "<stdin>") -> ImportReport:
        """Import one config given as bytes (pasted text, standard input) under `name`, which is
        sanitized and de-duplicated like a file name."""
        report = ImportReport()
        if len(data) > MAX_CONF_BYTES:
            report.rejected.append(RejectedFile(source, _TOO_LARGE))
        else:
            self._import_one(name, data, source, report, _Existing(self))
        return report

    def import_files(self, paths: Iterable[Path | str]) -> ImportReport:
        """Import `.conf` files and `.zip` archives of them.

        The tunnel name comes from the file name; one that is not a valid interface name is
        sanitized, and one already taken gets a `-2`, `-3`, ... suffix (both reported as renames).
        Files that fail to parse are skipped with the parser's message as the reason.
        """
        report = ImportReport()
        existing = _Existing(self)
        for raw in paths:
            path = Path(raw)
            suffix = path.suffix.lower()
            if suffix not in (".conf", ".zip"):
                report.rejected.append(RejectedFile(str(path), "not a .conf or .zip file"))
                continue
            try:
                st = path.stat()
            except OSError as exc:
                report.rejected.append(RejectedFile(str(path), exc.strerror or str(exc)))
                continue
            if not stat.S_ISREG(st.st_mode):  # a device or FIFO could be endless or block for ever
                report.rejected.append(RejectedFile(str(path), "not a regular file"))
                continue
            if suffix == ".zip":
                self._import_zip(path, report, existing)
                continue
            try:
                with path.open("rb") as f:
                    data = f.read(MAX_CONF_BYTES + 1)  # bounded even if the file grew since stat
            except OSError as exc:
                report.rejected.append(RejectedFile(str(path), exc.strerror or str(exc)))
                continue
            if len(data) > MAX_CONF_BYTES:
                report.rejected.append(RejectedFile(str(path), _TOO_LARGE))
                continue
            self._import_one(path.stem, data, str(path), report, existing, st.st_mode)
        return report

    def _import_zip(self, path: Path, report: ImportReport, existing: _Existing) -> None:
        try:
            archive = zipfile.ZipFile(path)
        except _ZIP_ERRORS as exc:
            report.rejected.append(RejectedFile(str(path), f"not a readable .zip file ({exc})"))
            return
        with archive:
            # Not ZipInfo.is_dir(): it raises IndexError for a member whose name is empty.
            members = [m for m in archive.infolist() if not m.filename.endswith("/")]
            if len(members) > MAX_ZIP_MEMBERS:
                report.rejected.append(RejectedFile(str(path), f"more than {MAX_ZIP_MEMBERS} files"))
                return
            for member in members:
                source = f"{path}:{member.filename}"
                inner = PurePosixPath(member.filename.replace("\\", "/"))
                if (inner.parts and inner.parts[0] == "__MACOSX") or inner.name.startswith("._"):
                    continue  # macOS resource forks
                if inner.suffix.lower() != ".conf":
                    report.rejected.append(RejectedFile(source, "not a .conf file"))
                    continue
                if member.file_size > MAX_CONF_BYTES:
                    report.rejected.append(RejectedFile(source, _TOO_LARGE))
                    continue
                try:
                    with archive.open(member) as f:
                        data = f.read(MAX_CONF_BYTES + 1)
                except _ZIP_ERRORS as exc:
                    report.rejected.append(
                        RejectedFile(source, f"could not be read from the archive ({exc})")
                    )
                    continue
                if len(data) > MAX_CONF_BYTES:
                    report.rejected.append(RejectedFile(source, _TOO_LARGE))
                    continue
                self._import_one(inner.stem, data, source, report, existing)

    def _unique_name(self, wanted: str, taken: set[str]) -> str:
        if wanted not in taken:
            return wanted
        for n in range(2, 10000):
            suffix = f"-{n}"
            candidate = wanted[: 15 - len(suffix)] + suffix
            if candidate not in taken:
                return candidate
        raise TunnelError("too many tunnels with the same name")

    def _import_one(
        self,
        stem: str,
        data: bytes,
        source: str,
        report: ImportReport,
        existing: _Existing,
        file_mode: int | None = None,
    ) -> None:
        try:
            cfg = parse_bytes(data, filename=source)
        except ConfigError as exc:
            report.rejected.append(RejectedFile(source, str(exc)))
            return
        taken = existing.names
        name = stem
        reasons = []
        if not is_interface_name(name):
            name = sanitize_name(stem)
            reasons.append("not a valid interface name")
        unique = self._unique_name(name, taken)
        if unique != name:
            reasons.append(f"`{name}` already exists")
            name = unique
        try:
            self.save(name, cfg)
        except ConfigError as exc:
            report.rejected.append(RejectedFile(source, str(exc)))
            return
        warnings = lint(
            cfg,
            other_tunnels=existing.configs,
            file_mode=file_mode,
            local_networks=existing.local_networks,
            platform=system(),
        )
        existing.add(name, self.load(name))
        report.imported.append(
            ImportedTunnel(
                name=name,
                source=source,
                renamed_from=stem if reasons else None,
                rename_reason="; ".join(reasons) if reasons else None,
                has_hooks=cfg.has_hooks,
                warnings=tuple(warnings),
            )
        )


class _Existing:
    """The store's tunnels during one import: read from disk once, then kept up to date as files
    are imported (so an archive of N files costs N reads, not N²); and the local networks, for lint."""

    def __init__(self, store: TunnelStore) -> None:
        self.names = set(store.list())
        self.configs = store.configs()
        self.local_networks = local_networks()

    def add(self, name: str, cfg: Config) -> None:
        self.names.add(name)
        self.configs[name] = cfg
