"""The user's tunnels as the app sees them: the store on disk and in the keyring, and what is derived from it.

Reads (names, configs without secrets, lint warnings, public keys) are cached here; everything that touches
the keyring or writes files runs on the shared :class:`~wgdesk.app.workers.TaskRunner`, and the answer comes
back as ``tunnelsChanged`` / ``importFinished`` / ``publicKeyFound`` or a failure on the
:class:`~wgdesk.app.notices.Notices` channel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from wgdesk.app.keys import public_key
from wgdesk.app.notices import Notices
from wgdesk.app.settings import AppSettings
from wgdesk.app.workers import HelperCalls
from wgdesk.config import ConfigError, lint, parse, write
from wgdesk.platforms import local_networks, system
from wgdesk.tunnels import TunnelStore, write_export

LAN_TTL = 30.0
"""Seconds the local networks read for the linter stay valid."""


class TunnelLibrary(QObject):
    """The tunnel store with its caches; store verbs run on the worker."""

    tunnelsChanged = Signal()  # a tunnel was added, removed or edited
    tunnelRemoved = Signal(str)  # a tunnel was deleted or renamed away (before tunnelsChanged)
    importFinished = Signal(object)  # the store's ImportReport
    publicKeyFound = Signal(str)  # the interface public key of this tunnel is known now

    def __init__(
        self,
        store: TunnelStore,
        settings: AppSettings,
        calls: HelperCalls,
        notices: Notices,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self._settings = settings
        self._calls = calls
        self._runner = calls.runner  # store work: keyring and files, no helper
        self._notices = notices
        self._configs: dict[str, Any] = {}
        self._warnings: dict[str, list[Any]] = {}
        self._lans: tuple[list[Any], float] | None = None  # (local networks, when read) for the linter
        self._public_keys: dict[str, str] = {}

    # -- reading -------

    def names(self) -> list[str]:
        """The stored tunnels, sorted."""
        try:
            return sorted(self.store.list())
        except OSError:
            return []

    def config(self, name: str) -> Any | None:
        """The stored config without secrets (cached), or None when it cannot be read."""
        if name not in self._configs:
            try:
                self._configs[name] = self.store.load(name)
            except (OSError, ConfigError, KeyError):
                return None
        return self._configs[name]

    def warnings(self, name: str) -> list[Any]:
        """``config.lint`` warnings for *name* on this platform (cached with the config)."""
        if name not in self._warnings:
            cfg = self.config(name)
            if cfg is None:
                return []
            try:
                self._warnings[name] = _lint(cfg, self._local_networks())
            except Exception:  # a linter bug must not take the window down
                return []
        return self._warnings[name]

    def routes_everything(self, name: str) -> bool:
        """Whether a peer's AllowedIPs contains 0.0.0.0/0 or ::/0."""
        cfg = self.config(name)
        if cfg is None:
            return False
        for peer in getattr(cfg, "peers", ()):
            for net in getattr(peer, "allowed_ips", ()):
                if str(net) in ("0.0.0.0/0", "::/0"):
                    return True
        return False

    def public_key(self, name: str) -> str | None:
        """The interface's public key if known (derived from the keyring's private key on first use)."""
        return self._public_keys.get(name)

    def fetch_public_key(self, name: str) -> None:
        """Derive the interface public key from the keyring on a worker; emits ``publicKeyFound``."""
        if name in self._public_keys:
            return
        store = self.store

        def run() -> str | None:
            cfg = store.load(name, with_secrets=True)
            key = getattr(cfg.interface, "private_key", None)
            return public_key(key) if key else None

        def done(key: object) -> None:
            if isinstance(key, str):
                self._public_keys[name] = key
                self.publicKeyFound.emit(name)

        self._runner.submit(run, done, lambda e: None)

    def load_text(self, name: str, on_loaded: Callable[[str], None]) -> None:
        """Read *name* with its secrets (keyring, on a worker) and pass the ``.conf`` text to *on_loaded*."""
        store = self.store
        self._runner.submit(
            lambda: write(store.load(name, with_secrets=True)),
            on_loaded,
            lambda e: self._notices.fail(self.tr("Could not read {name}").format(name=name), str(e)),
        )

    def _local_networks(self) -> list[Any]:
        """This machine's networks for the linter's `overlap-lan`, read at most every `LAN_TTL` seconds
        (reading them runs `ip`; the UI thread should not do that for every tunnel shown)."""
        now = time.monotonic()
        if self._lans is None or now - self._lans[1] > LAN_TTL:
            self._lans = (local_networks(), now)
        return self._lans[0]

    def _forget(self, name: str) -> None:
        """Drop what is cached about *name* (after it was saved, renamed or deleted)."""
        self._configs.pop(name, None)
        self._warnings.pop(name, None)
        self._public_keys.pop(name, None)

    # -- writing -------

    def import_files(self, paths: list[Path]) -> None:
        """Import ``.conf`` / ``.zip`` files; emits ``importFinished(report)``."""
        store = self.store
        self._runner.submit(
            lambda: store.import_files([Path(p) for p in paths]),
            self._imported,
            lambda e: self._notices.fail(self.tr("Import failed"), str(e)),
        )

    def _imported(self, report: object) -> None:
        self._configs.clear()
        self._warnings.clear()
        self.tunnelsChanged.emit()
        self.importFinished.emit(report)

    def save(self, name: str, text: str, on_saved: Callable[[], None] | None = None) -> None:
        """Parse and store *text* as tunnel *name* (raises ConfigError at once when it is invalid)."""
        cfg = parse(text, filename=f"{name}.conf")
        store = self.store

        def done(_: object) -> None:
            self._forget(name)
            self.tunnelsChanged.emit()
            if on_saved is not None:
                on_saved()

        self._runner.submit(
            lambda: store.save(name, cfg),
            done,
            lambda e: self._notices.fail(self.tr("Could not save {name}").format(name=name), str(e)),
        )

    def apply_fix(self, name: str, code: str, line: int | None) -> None:
        """Apply the linter's mechanical fix for warning *code* (re-linted with the keys, so none is lost)."""
        store = self.store
        gone = self.tr("the warning {code} no longer applies").format(code=code)

        def run() -> None:
            cfg = store.load(name, with_secrets=True)
            for w in _lint(cfg, local_networks()):
                if w.code == code and w.line == line and w.fix is not None and w.fix.config is not None:
                    store.save(name, w.fix.config)
                    return
            raise ValueError(gone)

        def done(_: object) -> None:
            self._forget(name)
            self.tunnelsChanged.emit()

        self._runner.submit(
            run, done, lambda e: self._notices.fail(self.tr("Could not fix {name}").format(name=name), str(e))
        )

    def rename(self, old: str, new: str, on_renamed: Callable[[], None] | None = None) -> None:
        """Rename a tunnel (file, keyring items and per-tunnel settings)."""
        store = self.store

        def done(_: object) -> None:
            self._settings.rename_tunnel(old, new)
            self._forget(old)
            self.tunnelRemoved.emit(old)
            self.tunnelsChanged.emit()
            if on_renamed is not None:
                on_renamed()

        self._runner.submit(
            lambda: store.rename(old, new),
            done,
            lambda e: self._notices.fail(self.tr("Could not rename {name}").format(name=old), str(e)),
        )

    def delete(self, name: str, disconnect_first: bool) -> None:
        """Delete the tunnel and its preferences (with *disconnect_first*, take it down through the helper
        first, on the same worker task)."""
        client, store = self._calls.client, self.store

        def remove() -> None:
            if disconnect_first:
                with client() as c:
                    c.down(name)
            store.delete(name)

        def done(_: object) -> None:
            self._forget(name)
            self._settings.forget_tunnel(name)
            self.tunnelRemoved.emit(name)
            self.tunnelsChanged.emit()

        self._runner.submit(
            remove,
            done,
            lambda e: self._notices.fail(self.tr("Could not delete {name}").format(name=name), str(e)),
        )

    def export(self, name: str, path: Path, with_secrets: bool) -> None:
        """Write the tunnel's ``.conf`` to *path* (with the keys from the keyring only when asked)."""
        store = self.store

        def run() -> None:
            # never readable by others, keys or not
            write_export(path, store.export(name, with_secrets=with_secrets).encode(), secret=True)

        self._runner.submit(
            run,
            lambda _: self._notices.tell(self.tr("Exported"), str(path)),
            lambda e: self._notices.fail(self.tr("Export failed"), str(e)),
        )


def _lint(cfg: Any, lans: list[Any]) -> list[Any]:
    return lint(cfg, local_networks=lans, platform=system())
