"""KeyStore against a real Secret Service (gnome-keyring on a private D-Bus session)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.macOS
import keyring.backends.null
import keyring.backends.SecretService
import keyring.errors
import pytest

from tests.secret_service import SecretService, keyring_session, secret_service  # noqa: F401
from wgdesk.keystore import TRUSTED, KeyringUnavailable, KeyStore, preshared_key_item, private_key_item

KEY = "2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y="
PEER = "GS0v7jt5I//6d0J95VmF+w4czLnO5PaAHC3SCPiFbUk="
PSK = "xVMe1guszf9TOgGKOPy+S5qu1xRdrIUTPaGQ4fygoq8="


def test_item_names_follow_the_contract() -> None:
    assert private_key_item("wg0") == "wg0:private-key"
    assert preshared_key_item("wg0", PEER) == f"wg0:psk:{PEER}"


def secret_tool(service: SecretService, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["secret-tool", *args], env=service.env, capture_output=True, text=True)


def test_round_trip_and_the_items_other_tools_see(keyring_session: SecretService) -> None:  # noqa: F811
    store = KeyStore(keyring_session.backend())
    assert store.get_private_key("ks0") is None
    store.set_private_key("ks0", KEY)
    store.set_preshared_key("ks0", PEER, PSK)
    assert store.get_private_key("ks0") == KEY
    assert store.get_preshared_key("ks0", PEER) == PSK
    # libsecret's own client finds the items under service `wgdesk`, one per secret
    found = secret_tool(keyring_session, "lookup", "service", "wgdesk", "username", "ks0:private-key")
    assert found.stdout == KEY
    found = secret_tool(keyring_session, "lookup", "service", "wgdesk", "username", f"ks0:psk:{PEER}")
    assert found.stdout == PSK
    store.delete(private_key_item("ks0"))
    store.delete(private_key_item("ks0"))  # deleting what is absent is not an error
    assert store.get_private_key("ks0") is None
    assert (
        secret_tool(keyring_session, "lookup", "service", "wgdesk", "username", "ks0:private-key").stdout
        == ""
    )


def test_overwrite_replaces(keyring_session: SecretService) -> None:  # noqa: F811
    store = KeyStore(keyring_session.backend())
    store.set("ks1:private-key", "a")
    store.set("ks1:private-key", "b")
    assert store.get("ks1:private-key") == "b"
    store.delete("ks1:private-key")


def test_secrets_are_not_in_any_file(keyring_session: SecretService) -> None:  # noqa: F811
    store = KeyStore(keyring_session.backend())
    before = {p: p.read_bytes() for p in keyring_session.files()}
    store.set_private_key("ks2", KEY)
    files = keyring_session.files()
    # the secret did reach the disk (the keyring file changed), only not in a readable form
    assert {p: p.read_bytes() for p in files} != before
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path


def test_refuses_backends_that_do_not_keep_secrets() -> None:
    with pytest.raises(KeyringUnavailable) as info:
        KeyStore(keyring.backends.fail.Keyring()).get("x")
    assert "gnome-keyring" in str(info.value)
    assert "never stores private keys in plain files" in str(info.value)


class RenamedSecretService(keyring.backends.SecretService.Keyring):
    """A plugin built on a trusted backend is still not one (it may store elsewhere); records what
    reaches it."""

    calls: list[str] = []  # noqa: RUF012

    def get_password(self, service: str, username: str) -> str | None:
        self.calls.append("get")
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self.calls.append("set")

    def delete_password(self, service: str, username: str) -> None:
        self.calls.append("delete")


@pytest.mark.parametrize(
    ("backend", "named"),
    [
        (keyring.backends.fail.Keyring(), "keyring.backends.fail.Keyring"),
        (keyring.backends.null.Keyring(), "keyring.backends.null.Keyring"),
        (RenamedSecretService(), "tests.test_keystore.RenamedSecretService"),
    ],
)
def test_only_the_systems_keyrings_are_trusted_on_every_os(
    backend: keyring.backend.KeyringBackend, named: str
) -> None:
    """keyring's real `fail` and `null` backends (what keyring falls back to without a keyring, and
    what PYTHON_KEYRING_BACKEND can choose): every operation refuses, naming the backend; nothing is
    written through it. The check is by name, the same on Linux, macOS and Windows."""
    store = KeyStore(backend)
    for operation in (
        lambda: store.get("x:private-key"),
        lambda: store.set("x:private-key", KEY),
        lambda: store.delete("x:private-key"),
    ):
        with pytest.raises(KeyringUnavailable) as info:
            operation()
        assert str(info.value).startswith(
            f"No system keyring is available to hold tunnel keys (the configured backend {named} is "
            "not a system keyring; wgdesk keeps keys only in the Secret Service or KWallet (Linux), the "
            "Keychain (macOS) or the Credential Manager (Windows))."
        )
    assert RenamedSecretService.calls == []  # refused before any call reaches the backend


def test_a_chain_of_fail_and_null_is_refused() -> None:
    with pytest.raises(KeyringUnavailable, match=r"the backends found \(keyring.backends.null.Keyring, "):
        KeyStore(chain(keyring.backends.null.Keyring(), keyring.backends.fail.Keyring())).get("x")


def test_the_trusted_names_are_keyrings_classes() -> None:
    """Each trusted name is a class keyring ships (a typo would refuse the Keychain on every Mac)."""
    for name in TRUSTED:
        module, cls = name.rsplit(".", 1)
        found = getattr(importlib.import_module(module), cls)
        assert issubclass(found, keyring.backend.KeyringBackend), name
        assert f"{found.__module__}.{found.__qualname__}" == name


def test_the_macos_keychain_is_used_before_a_plaintext_member() -> None:
    """keyring's macOS backend is chosen over an untrusted member of higher priority (only chosen:
    its Security framework calls cannot run here)."""
    keychain = keyring.backends.macOS.Keyring()
    plain = PlaintextKeyring(Path("/nonexistent/plain.txt"))
    assert KeyStore(chain(plain, keychain)).backend is keychain
    assert KeyStore(keychain).backend is keychain


class PlaintextKeyring(keyring.backend.KeyringBackend):
    """What keyrings.alt's plaintext backend does: secrets in a readable file (only for this test)."""

    priority = 100  # ranks above the Secret Service, as a misconfigured system might have it

    def __init__(self, path) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.path = path

    def get_password(self, service: str, username: str) -> str | None:
        for line in self.path.read_text().splitlines() if self.path.exists() else ():
            s, u, p = line.split("\t")
            if (s, u) == (service, username):
                return p
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        with self.path.open("a") as out:
            out.write(f"{service}\t{username}\t{password}\n")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.PasswordDeleteError(username)


def chain(*members: keyring.backend.KeyringBackend) -> keyring.backends.chainer.ChainerBackend:
    class Chain(keyring.backends.chainer.ChainerBackend):
        backends = members  # type: ignore[assignment]

    return Chain()


def test_a_chain_never_reads_or_writes_its_plaintext_member(
    keyring_session: SecretService,  # noqa: F811
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    plain = PlaintextKeyring(tmp_path / "plain.txt")
    plain.set_password("wgdesk", "pk0:private-key", "from-the-file")
    secret = keyring_session.backend()
    # positive control: keyring's own chain answers from the plaintext file
    assert chain(plain, secret).get_password("wgdesk", "pk0:private-key") == "from-the-file"
    store = KeyStore(chain(plain, secret))
    assert store.get("pk0:private-key") is None
    store.set("pk0:private-key", KEY)
    assert KEY not in (tmp_path / "plain.txt").read_text()
    assert secret.get_password("wgdesk", "pk0:private-key") == KEY
    store.delete("pk0:private-key")
    with pytest.raises(KeyringUnavailable, match="PlaintextKeyring"):
        KeyStore(chain(plain)).get("pk0:private-key")
    with pytest.raises(KeyringUnavailable, match="no keyring backend was found"):
        KeyStore(chain()).get("pk0:private-key")


def _in_fresh_process(env: dict[str, str], tmp_home: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        """
        from wgdesk.keystore import KeyStore, KeyringUnavailable
        try:
            KeyStore().set("nk0:private-key", "secret")
        except KeyringUnavailable as exc:
            print("UNAVAILABLE", exc)
        else:
            print("STORED")
        """
    )
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_home)


def test_without_any_session_bus_the_error_says_what_to_install(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "XDG_", "PYTHON_KEYRING"))}
    env["HOME"] = str(tmp_path)
    result = _in_fresh_process(env, str(tmp_path))
    assert result.stdout.startswith("UNAVAILABLE No system keyring is available"), (
        result.stdout + result.stderr
    )
    assert "sudo apt install gnome-keyring" in result.stdout
    assert all(b"secret" not in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


def test_the_null_backend_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(os.environ, HOME=str(tmp_path), PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    result = _in_fresh_process(env, str(tmp_path))
    assert result.stdout.startswith("UNAVAILABLE"), result.stdout + result.stderr
    assert "keyring.backends.null.Keyring is not a system keyring" in result.stdout


def test_default_backend_in_a_session_is_the_secret_service(secret_service: SecretService) -> None:  # noqa: F811
    result = _in_fresh_process(secret_service.env, str(secret_service.home))
    assert result.stdout.strip() == "STORED", result.stderr
    assert (
        secret_tool(secret_service, "lookup", "service", "wgdesk", "username", "nk0:private-key").stdout
        == "secret"
    )


def test_a_locked_keyring_says_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import secretstorage

    from tests.secret_service import start_secret_service
    from wgdesk.keystore import KeyringLocked

    with start_secret_service(tmp_path) as service, pytest.MonkeyPatch.context() as mp:
        mp.setenv("DBUS_SESSION_BUS_ADDRESS", service.address)
        store = KeyStore(service.backend())
        store.set_private_key("lk0", KEY)
        connection = secretstorage.dbus_init()
        collection = secretstorage.get_default_collection(connection)
        collection.lock()
        # no desktop session here, so the unlock prompt cannot be shown
        with pytest.raises(KeyringLocked) as info:
            store.get_private_key("lk0")
        connection.close()
    assert str(info.value).startswith("The keyring that holds tunnel keys is locked")
    assert isinstance(info.value, KeyringUnavailable)
