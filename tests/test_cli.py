"""`wgdeskctl` end to end: the console script against real `wg`, `wg-quick` and a real Secret Service."""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest

from tests.secret_service import SecretService, secret_service  # noqa: F401
from wgdesk import cli
from wgdesk.config import parse_bytes, write

DATA = Path(__file__).resolve().parent / "data" / "configs"
VALID = DATA / "valid"
INVALID = DATA / "invalid"
WGDESKCTL = Path(sys.executable).parent / "wgdeskctl"


def run(
    *args: str, env: dict[str, str] | None = None, input: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    assert WGDESKCTL.exists(), "the wgdeskctl console script is missing: pip install -e ."
    return subprocess.run([str(WGDESKCTL), *args], capture_output=True, input=input, env=env, cwd=cwd)


def wg(*args: str, input: bytes) -> bytes:
    return subprocess.run(["wg", *args], input=input, capture_output=True, check=True).stdout


@pytest.fixture(autouse=True)
def no_user_tunnels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run without `env=` see an empty tunnel collection, never the real user's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty-config"))


# --- keys ---------------------------------------------------------------------------------------

KEY_LINE = re.compile(rb"[A-Za-z0-9+/]{43}=\n")


def test_genkey_pubkey_match_wg() -> None:
    for _ in range(5):
        private = run("genkey").stdout
        assert KEY_LINE.fullmatch(private)
        raw = base64.b64decode(private)
        assert raw[0] & 7 == 0 and raw[31] & 0x80 == 0 and raw[31] & 0x40  # clamped like `wg genkey`
        ours = run("pubkey", input=private)
        assert ours.returncode == 0
        assert ours.stdout == wg("pubkey", input=private)
        # and the other way round: our pubkey of wg's genkey
        theirs = wg("genkey", input=b"")
        assert run("pubkey", input=theirs).stdout == wg("pubkey", input=theirs)


def test_genpsk_format_and_uniqueness() -> None:
    keys = {run("genpsk").stdout for _ in range(3)}
    assert len(keys) == 3
    assert all(KEY_LINE.fullmatch(k) for k in keys)


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"short\n", b"wgdeskctl: Key is not the correct length or format\n"),
        (
            b"EO9iExQU0XzMqiVfk7lR5qN0yDCB/u6BlohVItSge15=\n",
            b"wgdeskctl: Key is not the correct length or format\n",
        ),
        (
            b"2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y= extra\n",
            b"wgdeskctl: Trailing characters found after key\n",
        ),
    ],
)
def test_pubkey_errors_like_wg(stdin: bytes, message: bytes) -> None:
    result = run("pubkey", input=stdin)
    assert (result.returncode, result.stdout, result.stderr) == (1, b"", message)
    assert subprocess.run(["wg", "pubkey"], input=stdin, capture_output=True).returncode == 1


def test_pubkey_accepts_trailing_whitespace_and_nul_like_wg() -> None:
    key = b"2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y="
    assert run("pubkey", input=key + b" \n\t\0\n").stdout == wg("pubkey", input=key + b" \n\t\0\n")


# --- check and strip ----------------------------------------------------------------------------


def test_check_valid_files_exit_zero_and_print_warnings(tmp_path: Path) -> None:
    path = tmp_path / "proton.conf"
    path.write_bytes((VALID / "proton-nl3.conf").read_bytes())
    path.chmod(0o600)
    result = run("check", str(path), str(VALID / "mullvad-se1.conf"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == (
        f"{path}:15: warning: all IPv4 traffic goes through the tunnel, "
        "IPv6 traffic does not (no ::/0) [ipv6-leak]"
    )
    assert lines[1] == "    fix: add ::/0 to the AllowedIPs of peer 1 (qF4zQsjw…)"


def test_check_errors_exit_one_in_file_line_format() -> None:
    files = [INVALID / "bad-pubkey.conf", VALID / "minimal.conf", INVALID / "typo-key.conf"]
    result = run("check", *map(str, files))
    assert result.returncode == 1
    out = result.stdout.decode().splitlines()
    assert out[0] == (
        f"{files[0]}:7: PublicKey is not a valid key: "
        "expected 44 characters of base64 that decode to 32 bytes (found 43 characters)"
    )
    assert f"{files[2]}:6: unknown key `AllowedIP` in [Peer] (did you mean AllowedIPs?)" in out


@pytest.mark.timeout(60)
def test_an_endless_file_is_refused_and_a_pipe_still_read() -> None:
    result = run("check", "/dev/zero", str(VALID / "minimal.conf"))
    assert result.returncode == 1
    assert result.stdout.decode().splitlines()[0] == "/dev/zero: larger than 1 MiB; not a tunnel config"
    result = run("strip", "/dev/zero")
    assert (result.returncode, result.stderr) == (
        1,
        b"wgdeskctl: /dev/zero: larger than 1 MiB; not a tunnel config\n",
    )
    piped = run("strip", "/dev/stdin", input=(VALID / "minimal.conf").read_bytes())
    assert piped.returncode == 0 and piped.stdout.startswith(b"[Interface]")


def test_check_finds_a_peer_with_our_own_key(tmp_path: Path) -> None:
    private = "2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y="
    public = wg("pubkey", input=private.encode()).decode().strip()
    path = tmp_path / "self.conf"
    path.write_text(
        f"[Interface]\nPrivateKey = {private}\n\n[Peer]\nPublicKey = {public}\nAllowedIPs = 10.0.0.0/8\n"
    )
    path.chmod(0o600)
    result = run("check", str(path))
    assert f"{path}:5: warning: peer 1 ({public[:8]}…) has this tunnel's own public key [peer-is-self]" in (
        result.stdout.decode().splitlines()
    )


@pytest.mark.root
@pytest.mark.parametrize("name", ["messy.conf", "server.conf", "windows-crlf.conf", "hooks.conf"])
def test_strip_is_wg_quick_strip(name: str, tmp_path: Path) -> None:
    copy = tmp_path / "wgc0.conf"
    copy.write_bytes((VALID / name).read_bytes())
    copy.chmod(0o600)
    real = subprocess.run(["wg-quick", "strip", str(copy)], capture_output=True, check=True)
    ours = run("strip", str(copy))
    assert ours.returncode == 0
    assert ours.stdout == real.stdout


def test_strip_errors() -> None:
    result = run("strip", str(INVALID / "bad-saveconfig.conf"))
    assert result.returncode == 1
    assert b"`yes' is neither true nor false" in result.stderr
    assert run("strip", "/nonexistent/x.conf").returncode == 1


# --- the tunnel store through the CLI, with a real Secret Service --------------------------------


@pytest.fixture
def session(secret_service: SecretService, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    env = dict(secret_service.env)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return env


def test_keys_to_a_world_readable_file_are_warned_about(session: dict[str, str], tmp_path: Path) -> None:
    assert run("import", str(VALID / "server.conf"), env=session).returncode == 0
    cases = [("genkey",), ("genpsk",), ("export", "server", "--with-secrets"), ("export", "server")]
    warned = []
    for i, args in enumerate(cases):
        target = tmp_path / f"out{i}"
        with target.open("wb") as out:
            os.fchmod(out.fileno(), 0o644)
            result = subprocess.run([str(WGDESKCTL), *args], stdout=out, stderr=subprocess.PIPE, env=session)
        assert result.returncode == 0, result.stderr
        warned.append(b"Warning: writing to world accessible file." in result.stderr)
    assert warned == [True, True, True, False]  # a config without keys is no secret


def test_import_list_export_rename_delete(session: dict[str, str], tmp_path: Path) -> None:
    archive = tmp_path / "providers.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("mullvad-se1.conf", (VALID / "mullvad-se1.conf").read_bytes())
        z.writestr("azire-se.conf", (VALID / "azire-se.conf").read_bytes())
    result = run("import", str(VALID / "server.conf"), str(archive), env=session)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert f"imported {VALID / 'server.conf'} as server [has hook commands: kept, not run]" in out
    assert f"imported {archive}:mullvad-se1.conf as mullvad-se1" in out
    assert "server:6: warning: PostUp, PostDown commands are kept but wgdesk does not run them [hooks]" in out

    assert run("list", env=session).stdout == b"azire-se\nmullvad-se1\nserver\n"
    tunnels = tmp_path / "config" / "wgdesk" / "tunnels"
    assert sorted(p.name for p in tunnels.iterdir()) == ["azire-se.conf", "mullvad-se1.conf", "server.conf"]

    bare = run("export", "server", env=session).stdout.decode()
    assert "PrivateKey" not in bare and "PresharedKey" not in bare
    full = run("export", "server", "--with-secrets", env=session).stdout
    assert parse_bytes(full) == parse_bytes((VALID / "server.conf").read_bytes())

    out_file = tmp_path / "server-export.conf"
    assert run("export", "server", "--with-secrets", "-o", str(out_file), env=session).returncode == 0
    assert out_file.stat().st_mode & 0o777 == 0o600
    assert out_file.read_bytes() == full

    zip_path = tmp_path / "all.zip"
    assert run("export", "--all", "-o", str(zip_path), env=session).returncode == 0
    assert zipfile.ZipFile(zip_path).namelist() == ["azire-se.conf", "mullvad-se1.conf", "server.conf"]

    assert run("rename", "server", "home", env=session).returncode == 0
    assert run("export", "home", "--with-secrets", env=session).stdout == full
    assert run("delete", "home", "azire-se", env=session).returncode == 0
    assert run("list", env=session).stdout == b"mullvad-se1\n"
    missing = run("delete", "home", env=session)
    assert (missing.returncode, missing.stderr) == (1, b"wgdeskctl: no tunnel named `home`\n")

    private = parse_bytes((VALID / "mullvad-se1.conf").read_bytes()).interface.private_key or ""
    home = Path(session["HOME"])
    for path in [*home.rglob("*"), *tmp_path.rglob("*")]:
        if path.is_file() and path not in (out_file,) and path.suffix != ".zip":
            assert private.encode() not in path.read_bytes(), path


def test_import_reports_rejections(session: dict[str, str]) -> None:
    result = run("import", str(INVALID / "no-pubkey.conf"), env=session)
    assert result.returncode == 1
    assert (
        result.stdout.decode()
        == f"skipped {INVALID / 'no-pubkey.conf'}: {INVALID / 'no-pubkey.conf'}:4: [Peer] has no PublicKey\n"
    )


def test_new_creates_a_key_pair_and_prints_the_public_key(session: dict[str, str]) -> None:
    result = run("new", "fresh0", "--address", "10.7.0.2/32", "--dns", "10.7.0.1", env=session)
    assert result.returncode == 0, result.stderr
    public = result.stdout
    exported = parse_bytes(run("export", "fresh0", "--with-secrets", env=session).stdout)
    private = exported.interface.private_key or ""
    assert wg("pubkey", input=private.encode()) == public
    assert [str(a) for a in exported.interface.addresses] == ["10.7.0.2/32"]
    again = run("new", "fresh0", env=session)
    assert again.returncode == 1 and b"already exists" in again.stderr
    bad = run("new", "fresh1", "--address", "10.7.0.300", env=session)
    assert bad.returncode == 2 and b"Address entry `10.7.0.300`" in bad.stderr


def test_without_a_keyring_import_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "XDG_", "PYTHON_KEYRING"))}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = run("import", str(VALID / "client.conf"), env=env)
    assert result.returncode == 1
    assert b"wgdeskctl: No system keyring is available to hold tunnel keys" in result.stderr
    assert b"gnome-keyring" in result.stderr
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_version_and_global_socket_option() -> None:
    from wgdesk import __version__

    assert run("--version").stdout.decode().strip() == f"wgdeskctl {__version__}"
    args = cli.build_parser().parse_args(["--socket", "/tmp/x.sock", "list"])
    assert args.socket == "/tmp/x.sock" and args.func is cli.cmd_list


def test_tunnel_commands_are_registered_from_cli_tunnels(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []

    def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        p = sub.add_parser("up")
        p.add_argument("name")
        p.set_defaults(func=lambda args: seen.append((args.socket, args.name)) or 7)

    module = types.ModuleType("wgdesk.cli_tunnels")
    module.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wgdesk.cli_tunnels", module)
    assert cli.main(["--socket", "/s", "up", "wg0"]) == 7
    assert seen == [("/s", "wg0")]


def test_export_round_trips_through_write(session: dict[str, str]) -> None:
    run("import", str(VALID / "messy.conf"), env=session)
    text = run("export", "messy", "--with-secrets", env=session).stdout.decode()
    assert text == write(parse_bytes((VALID / "messy.conf").read_bytes()))


def test_check_warns_about_overlap_with_stored_tunnels(session: dict[str, str], tmp_path: Path) -> None:
    assert run("import", str(VALID / "mullvad-se1.conf"), env=session).returncode == 0
    result = run("check", str(VALID / "proton-nl3.conf"), env=session)
    assert result.returncode == 0
    assert (
        f"{VALID / 'proton-nl3.conf'}:15: warning: AllowedIPs 0.0.0.0/0 overlaps 0.0.0.0/0 "
        "of tunnel `mullvad-se1` [overlap-tunnel]" in result.stdout.decode().splitlines()
    )
    # a stored tunnel does not overlap itself
    stored = Path(session["XDG_CONFIG_HOME"]) / "wgdesk" / "tunnels" / "mullvad-se1.conf"
    assert b"overlap-tunnel" not in run("check", str(stored), env=session).stdout


def test_export_with_secrets_notes_a_missing_private_key(session: dict[str, str]) -> None:
    assert run("import", str(VALID / "peers-only.conf"), env=session).returncode == 0
    result = run("export", "peers-only", "--with-secrets", env=session)
    assert result.returncode == 0
    assert (
        result.stderr
        == b"wgdeskctl: note: the keyring holds no private key for `peers-only`; the export has none\n"
    )
    assert parse_bytes(result.stdout) == parse_bytes((VALID / "peers-only.conf").read_bytes())


def test_import_from_standard_input(session: dict[str, str]) -> None:
    data = (VALID / "client.conf").read_bytes()
    result = run("import", "-", "--name", "pasted", env=session, input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines()[0] == "imported <stdin> as pasted"
    assert parse_bytes(run("export", "pasted", "--with-secrets", env=session).stdout) == parse_bytes(data)
    assert run("import", "-", env=session, input=data).returncode == 2
    assert run("import", "-", "--name", "x", str(VALID / "client.conf"), env=session).returncode == 2
