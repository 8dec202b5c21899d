"""A real Secret Service (gnome-keyring) on a private D-Bus session bus, for keyring tests.

Usage in a test module::

    from tests.secret_service import secret_service, keyring_session  # noqa: F401  (fixtures)

    def test_something(keyring_session):        # os.environ points at the private bus
        store = KeyStore(keyring_session.backend())

    def test_cli(secret_service):              # for subprocesses: secret_service.env
        subprocess.run([...], env=secret_service.env)

The bus, the keyring daemon, the temporary HOME and the 0700 XDG_RUNTIME_DIR belong to the test run
alone (TESTING.md §8); nothing of the user's session is touched. Both daemons are stopped afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = b"wgdesk-test"


@dataclass
class SecretService:
    """A running private Secret Service."""

    home: Path
    runtime_dir: Path
    address: str
    env: dict[str, str]
    """`os.environ` plus HOME, XDG_* and DBUS_SESSION_BUS_ADDRESS for this service."""

    def backend(self):  # type: ignore[no-untyped-def]
        """keyring's SecretService backend; it talks to the bus named by DBUS_SESSION_BUS_ADDRESS at
        call time, so use it while `os.environ` points at this service (see `keyring_session`)."""
        from keyring.backends import SecretService as backend_module

        return backend_module.Keyring()

    def files(self) -> list[Path]:
        """Every regular file under the temporary HOME (the keyring's own files included)."""
        return [p for p in self.home.rglob("*") if p.is_file()]


def _wait_for_name(env: dict[str, str], name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(
            [
                "dbus-send",
                "--session",
                "--dest=org.freedesktop.DBus",
                "--print-reply",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                f"string:{name}",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if "boolean true" in result.stdout:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not appear on the test bus: {result.stderr.strip()}")
        time.sleep(0.05)


def _default_collection(env: dict[str, str], timeout: float = 10.0) -> str:
    """The object path the "default" alias names, once it names one ("" if it never does in `timeout`).

    gnome-keyring-daemon --unlock creates the login keyring and points "default" at it; keyring's backend
    uses that alias, and without it would ask for a new collection through a prompt nobody can answer
    ("Failed to create the collection: Prompt dismissed")."""
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(
            [
                "dbus-send",
                "--session",
                "--dest=org.freedesktop.secrets",
                "--print-reply",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.ReadAlias",
                "string:default",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        found = re.search(r'object path "([^"]+)"', result.stdout)
        if found and found.group(1) != "/":
            return found.group(1)
        if time.monotonic() > deadline:
            return ""
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def start_secret_service(base: Path) -> Iterator[SecretService]:
    """Start dbus-daemon and an unlocked gnome-keyring-daemon under `base`; stop both on exit."""
    for tool in ("dbus-daemon", "dbus-send", "gnome-keyring-daemon"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} is missing: run scripts/install-test-deps (packages dbus-daemon, gnome-keyring)"
            )
    home = base / "home"
    runtime = base / "run"
    home.mkdir(parents=True)
    runtime.mkdir(mode=0o700)
    os.chmod(runtime, 0o700)
    socket = runtime / "bus"
    bus = subprocess.Popen(
        ["dbus-daemon", "--session", f"--address=unix:path={socket}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    keyring_daemon: subprocess.Popen[bytes] | None = None
    try:
        assert bus.stdout is not None
        address = bus.stdout.readline().decode().strip()
        if not address:
            raise RuntimeError("dbus-daemon printed no address")
        env = dict(os.environ)
        env.pop("PYTHON_KEYRING_BACKEND", None)
        env.update(
            HOME=str(home),
            XDG_RUNTIME_DIR=str(runtime),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            DBUS_SESSION_BUS_ADDRESS=address,
        )
        # One CI run got a daemon that owned its bus name but never made the login keyring the default
        # collection, so every keyring call of that test module failed. Wait for the alias, and start
        # the daemon afresh (up to 3 times) if it does not appear; the daemon's own messages go to the
        # failure report.
        logs: list[str] = []
        for attempt in range(1, 4):
            log = base / f"gnome-keyring-{attempt}.log"
            with log.open("wb") as stderr:
                keyring_daemon = subprocess.Popen(
                    ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    env=env,
                )
            assert keyring_daemon.stdin is not None
            keyring_daemon.stdin.write(PASSWORD)
            keyring_daemon.stdin.close()
            _wait_for_name(env, "org.freedesktop.secrets")
            if _default_collection(env):
                break
            _stop(keyring_daemon)
            keyring_daemon = None
            logs.append(f"attempt {attempt}: {log.read_text(errors='replace').strip() or '(no output)'}")
            shutil.rmtree(home / ".local" / "share" / "keyrings", ignore_errors=True)
        else:
            raise RuntimeError(
                "gnome-keyring-daemon --unlock never set a default collection:\n" + "\n".join(logs)
            )
        yield SecretService(home=home, runtime_dir=runtime, address=address, env=env)
    finally:
        if keyring_daemon is not None:
            _stop(keyring_daemon)
        _stop(bus)
        if bus.stdout is not None:
            bus.stdout.close()


@pytest.fixture(scope="module")
def secret_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretService]:
    """A private Secret Service shared by the tests of one module."""
    with start_secret_service(tmp_path_factory.mktemp("secret-service")) as service:
        yield service


@pytest.fixture
def keyring_session(secret_service: SecretService, monkeypatch: pytest.MonkeyPatch) -> SecretService:
    """`secret_service`, with this process's environment pointing at it for the test's duration."""
    for key in ("HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "DBUS_SESSION_BUS_ADDRESS"):
        monkeypatch.setenv(key, secret_service.env[key])
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    return secret_service
