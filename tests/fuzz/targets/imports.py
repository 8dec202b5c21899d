"""`.conf` and `.zip` imports: what `wgdesk FILE…`, a drop on the window and `wgdeskctl import` do, through
the real `TunnelStore` (files in a scratch directory, secrets in a keyring backend held in memory).

An input is ``mode (1 byte) ‖ name ‖ NUL ‖ contents``: mode 0 writes ``NAME.conf`` and imports the file,
mode 1 writes ``NAME.zip`` (the contents are the archive's bytes), mode 2 imports the contents as pasted
text named NAME. The store already holds tunnel ``wg0``, so names collide.

Invariants:
* an import never raises: every file (and every `.conf` member of an archive) is either imported or
  rejected with a reason;
* an imported tunnel has a valid interface name, its file is 0600 in the store directory and holds no
  secret, and loading it with its secrets gives back exactly the config that was imported;
* the app's import summary names every imported tunnel, and no report line spans lines;
* nothing is written outside the store directory (member names such as ``../../x.conf``), no temporary
  file is left behind, and the existing tunnel is untouched.

The keyring backend and the list of local networks (which the linter reads with ``ip``) are the OS
boundaries replaced here: a Secret Service or a process per input would bound the run to a few inputs a
second. The store is on tmpfs when ``/dev/shm`` exists, so its fsyncs cost nothing.
"""

from __future__ import annotations

import contextlib
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from ipaddress import ip_network
from pathlib import Path, PurePosixPath

import keyring.backend

from tests.fuzz.targets import check
from wgdesk import tunnels
from wgdesk.app.import_export import summary_text
from wgdesk.config import is_interface_name, parse_bytes
from wgdesk.keystore import KeyStore
from wgdesk.tunnels import MAX_CONF_BYTES, TunnelStore, printable

MAX_LEN = 16384
EXISTING = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.9.0.2/32\n"


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring backend in a dict (keyring's own interface, so `KeyStore` runs unchanged)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.items:
            raise keyring.errors.PasswordDeleteError(username)
        del self.items[(service, username)]


class MemoryKeyStore(KeyStore):
    """`KeyStore` on `MemoryKeyring`, which its check of trusted backends would refuse (rightly: it
    forgets); everything else of `KeyStore` runs unchanged."""

    @property
    def backend(self) -> keyring.backend.KeyringBackend:
        assert self._backend is not None
        return self._backend


class Harness:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="wgdesk-fuzz-import-"))  # in the runner's scratch (TMPDIR)
        self.inbox = self.root / "inbox"
        self.directory = self.root / "store"
        self.keyring = MemoryKeyring()
        self.store = TunnelStore(self.directory, MemoryKeyStore(self.keyring))
        self.store.import_text(EXISTING.encode(), "wg0")
        self.existing_file = (self.directory / "wg0.conf").read_bytes()
        self.existing_items = dict(self.keyring.items)
        tunnels.local_networks = lambda: [ip_network("192.168.1.0/24"), ip_network("2001:db8:1::/64")]

    def reset(self) -> None:
        for path in self.directory.iterdir():
            if path.name != "wg0.conf":
                path.unlink()
        if self.inbox.exists():
            shutil.rmtree(self.inbox)
        self.inbox.mkdir()
        self.keyring.items = dict(self.existing_items)

    def one_input(self, data: bytes) -> None:
        if not data:
            return
        mode = data[0] % 3
        raw_name, _, contents = data[1:].partition(b"\0")
        name = raw_name.decode("utf-8", "replace").replace("/", "_")[:64] or "x"
        self.reset()
        expected: dict[str, bytes] = {}
        if mode == 2:
            report = self.store.import_text(contents, name)
            sources = 1
            expected["<stdin>"] = contents
        else:
            suffix = ".conf" if mode == 0 else ".zip"
            path = self.inbox / (name + suffix)
            try:
                path.write_bytes(contents)
            except OSError:  # a name the file system refuses (too long, ...)
                return
            report = self.store.import_files([path])
            if mode == 0:
                sources = 1
                expected[printable(str(path))] = contents
            else:
                sources = self._zip_members(path, expected)
        accounted = len(report.imported) + len(report.rejected)
        check(
            accounted == sources,
            f"{sources} sources, {len(report.imported)} imported, {len(report.rejected)} rejected",
        )
        for tunnel in report.imported:
            check(is_interface_name(tunnel.name), f"imported as {tunnel.name!r}")
            file = self.directory / f"{tunnel.name}.conf"
            check(stat.S_IMODE(file.stat().st_mode) == 0o600, f"{file} is not 0600")
            check(not parse_bytes(file.read_bytes()).has_secrets, f"{file} holds a secret")
            original = parse_bytes(expected[tunnel.source])
            check(
                self.store.load(tunnel.name, with_secrets=True) == original,
                f"{tunnel.source} changed on import",
            )
        for rejected in report.rejected:
            check(rejected.reason, f"{rejected.source} rejected without a reason")
        summary = summary_text(report)  # the app's import summary (plain text, no widget)
        for tunnel in report.imported:
            check(f" as {tunnel.name}" in summary, f"{tunnel.name} missing from the import summary")
        for line in report.lines():
            check("\n" not in line, f"an import report line spans lines: {line!r}")
        names = sorted(p.name for p in self.directory.iterdir())
        wanted = sorted(["wg0.conf", *(f"{t.name}.conf" for t in report.imported)])
        check(names == wanted, f"store holds {names}, expected {wanted}")
        check(sorted(p.name for p in self.root.iterdir()) == ["inbox", "store"], "a file outside the store")
        check((self.directory / "wg0.conf").read_bytes() == self.existing_file, "the existing tunnel changed")

    @staticmethod
    def _zip_members(path: Path, expected: dict[str, bytes]) -> int:
        """How many sources the archive has (0 when it is unreadable: then the archive is the one source),
        filling `expected` with what each importable member holds."""
        try:
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.infolist() if not m.filename.endswith("/")]
                if len(members) > tunnels.MAX_ZIP_MEMBERS:
                    return 1
                count = 0
                for member in members:
                    inner = PurePosixPath(member.filename.replace("\\", "/"))
                    if (inner.parts and inner.parts[0] == "__MACOSX") or inner.name.startswith("._"):
                        continue
                    count += 1
                    if inner.suffix.lower() == ".conf" and member.file_size <= MAX_CONF_BYTES:
                        # unreadable: the store rejects it too, and its reason is checked
                        with contextlib.suppress(Exception):
                            expected[printable(f"{path}:{member.filename}")] = archive.read(member)
                return count
        except Exception:
            return 1


def setup() -> Callable[[bytes], None]:
    return Harness().one_input
