"""Tunnel secrets in the OS keyring (Secret Service, macOS Keychain, Windows Credential Locker).

One keyring item per secret, service `wgdesk`:

* `NAME:private-key` — the tunnel's private key (base64);
* `NAME:psk:PEERPUBKEY` — the preshared key shared with one peer (base64).

There is no plaintext fallback: without a usable keyring backend every operation raises
`KeyringUnavailable`, whose message says what to install.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

import keyring
import keyring.backend
import keyring.errors

__all__ = [
    "SERVICE",
    "TRUSTED",
    "KeyStore",
    "KeyringLocked",
    "KeyringUnavailable",
    "preshared_key_item",
    "private_key_item",
]

SERVICE = "wgdesk"

_T = TypeVar("_T")


def private_key_item(tunnel: str) -> str:
    """The keyring item name of a tunnel's private key."""
    return f"{tunnel}:private-key"


def preshared_key_item(tunnel: str, peer_public_key: str) -> str:
    """The keyring item name of the preshared key a tunnel shares with one peer."""
    return f"{tunnel}:psk:{peer_public_key}"


ADVICE = (
    "On Linux, install and start a Secret Service provider, for example GNOME Keyring "
    "(`sudo apt install gnome-keyring`), KWallet, or KeePassXC with Secret Service integration enabled, "
    "and log in to a desktop session; on a machine without a desktop, run under `dbus-run-session` and "
    "unlock the keyring with `gnome-keyring-daemon --unlock`. On macOS and Windows the system keychain "
    "is used: check that you are logged in to a desktop session."
)


class KeyringUnavailable(RuntimeError):
    """No usable keyring: secrets cannot be stored or read, and wgdesk will not write them to a file."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(self.describe(detail))

    @staticmethod
    def describe(detail: str) -> str:
        return (
            f"No system keyring is available to hold tunnel keys ({detail}). "
            f"wgdesk never stores private keys in plain files. {ADVICE}"
        )


class KeyringLocked(KeyringUnavailable):
    """The keyring exists but is locked and could not be unlocked (the user dismissed the prompt, or
    there is no session to show one)."""

    @staticmethod
    def describe(detail: str) -> str:
        return (
            "The keyring that holds tunnel keys is locked and could not be unlocked. Unlock it (log in to "
            "your desktop session, or open your keyring manager) and try again."
        )


TRUSTED = frozenset(
    {
        "keyring.backends.SecretService.Keyring",  # Linux: GNOME Keyring, KWallet, KeePassXC over D-Bus
        "keyring.backends.libsecret.Keyring",  # Linux: the same through libsecret
        "keyring.backends.kwallet.DBusKeyring",  # Linux: KWallet 5 and later
        "keyring.backends.kwallet.DBusKeyringKWallet4",
        "keyring.backends.macOS.Keyring",  # macOS: the login keychain
        "keyring.backends.Windows.WinVaultKeyring",  # Windows: Credential Manager
    }
)
"""The only backends that hold secrets: the OS's own keyrings. Anything else — keyring's `fail` and
`null`, keyrings.alt's files, a plugin a package installed with a higher priority — is refused by
name rather than judged, on every OS, because one that forgets or writes plaintext would not say so."""


def _name(backend: keyring.backend.KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def _refused(backend: keyring.backend.KeyringBackend) -> bool:
    return _name(backend) not in TRUSTED


class KeyStore:
    """Secrets of tunnels, in a `keyring` backend.

    Args:
        backend: a `keyring` backend to use; None selects the system default (`keyring.get_keyring()`)
            on first use.
        service: the keyring service name; `wgdesk` except in tests.
    """

    def __init__(self, backend: keyring.backend.KeyringBackend | None = None, service: str = SERVICE) -> None:
        self._backend = backend
        self.service = service

    @property
    def backend(self) -> keyring.backend.KeyringBackend:
        """The backend in use; raises `KeyringUnavailable` if it cannot hold secrets.

        A chain of backends (keyring's default when several are installed) would read from and
        write to any member, plaintext files included: only its highest-priority member in `TRUSTED`
        is used.
        """
        if self._backend is None:
            self._backend = keyring.get_keyring()
        backend = self._backend
        children = getattr(backend, "backends", None)
        if children is not None:
            safe = [child for child in children if not _refused(child)]
            if not safe:
                names = ", ".join(_name(child) for child in children)
                raise KeyringUnavailable(
                    f"the backends found ({names}) are not a system keyring"
                    if children
                    else "no keyring backend was found"
                )
            backend = safe[0]
        if _refused(backend):
            raise KeyringUnavailable(
                f"the configured backend {_name(backend)} is not a system keyring; wgdesk keeps keys only in "
                "the Secret Service or KWallet (Linux), the Keychain (macOS) or the Credential Manager "
                "(Windows)"
            )
        return backend

    def _call(self, what: str, operation: Callable[[keyring.backend.KeyringBackend], _T]) -> _T:
        """Run `operation` on the backend, turning its failures into `KeyringUnavailable`."""
        backend = self.backend
        try:
            return operation(backend)
        except keyring.errors.NoKeyringError as exc:
            raise KeyringUnavailable(str(exc) or "no keyring backend was found") from None
        except keyring.errors.InitError as exc:
            raise KeyringUnavailable(f"the keyring could not be opened: {exc}") from None
        except keyring.errors.KeyringLocked:
            raise KeyringLocked("the keyring is locked") from None
        except keyring.errors.KeyringError as exc:
            raise KeyringUnavailable(f"could not {what}: {exc}") from None
        except Exception as exc:  # D-Bus errors from the Secret Service library are not KeyringErrors
            if type(exc).__module__.split(".")[0] in ("secretstorage", "jeepney", "dbus"):
                raise KeyringUnavailable(f"could not {what}: {exc}") from None
            raise

    def get(self, item: str) -> str | None:
        """The secret stored under `item`, or None."""
        return self._call("read a secret", lambda b: b.get_password(self.service, item))

    def set(self, item: str, secret: str) -> None:
        """Store `secret` under `item`, replacing what was there."""
        self._call("store a secret", lambda b: b.set_password(self.service, item, secret))

    def delete(self, item: str) -> None:
        """Remove `item`; no error if it does not exist."""

        def delete(backend: keyring.backend.KeyringBackend) -> None:
            with contextlib.suppress(keyring.errors.PasswordDeleteError):  # already absent
                backend.delete_password(self.service, item)

        self._call("delete a secret", delete)

    # Convenience for the two kinds of item.

    def get_private_key(self, tunnel: str) -> str | None:
        return self.get(private_key_item(tunnel))

    def set_private_key(self, tunnel: str, key: str) -> None:
        self.set(private_key_item(tunnel), key)

    def get_preshared_key(self, tunnel: str, peer_public_key: str) -> str | None:
        return self.get(preshared_key_item(tunnel, peer_public_key))

    def set_preshared_key(self, tunnel: str, peer_public_key: str, key: str) -> None:
        self.set(preshared_key_item(tunnel, peer_public_key), key)
