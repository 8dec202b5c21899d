"""TunnelStore: secret-free files plus a real Secret Service; import, export, rename, delete."""

from __future__ import annotations

import base64
import io
import os
import stat
import zipfile
from dataclasses import replace
from pathlib import Path

import keyring.backends.fail
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.secret_service import SecretService, keyring_session, secret_service  # noqa: F401
from wgdesk.config import parse, parse_bytes, write
from wgdesk.keystore import KeyringUnavailable, KeyStore
from wgdesk.tunnels import (
    MAX_CONF_BYTES,
    MAX_ZIP_MEMBERS,
    InvalidTunnelName,
    TunnelExists,
    TunnelNotFound,
    TunnelStore,
    default_directory,
    write_export,
)

DATA = Path(__file__).resolve().parent / "data" / "configs"
SERVER = DATA / "valid" / "server.conf"
HOOKS = DATA / "valid" / "hooks.conf"


@pytest.fixture
def store(keyring_session: SecretService, tmp_path: Path) -> TunnelStore:  # noqa: F811
    return TunnelStore(
        directory=keyring_session.home / ".config" / "wgdesk" / f"t-{tmp_path.name}",
        keystore=KeyStore(keyring_session.backend()),
    )


def secret_forms(key: str) -> list[bytes]:
    raw = base64.b64decode(key)
    return [key.encode(), key[:43].encode(), raw, raw.hex().encode()]


def assert_no_file_contains(root: Path, *keys: str) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for key in keys:
            for form in secret_forms(key):
                assert form not in data, f"{path} contains a secret"


def test_save_load_and_the_file_holds_no_secret(store: TunnelStore, keyring_session: SecretService) -> None:  # noqa: F811
    cfg = parse_bytes(SERVER.read_bytes())
    store.save("srv0", cfg)
    path = store.directory / "srv0.conf"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert store.load("srv0") == cfg.without_secrets()
    assert store.load("srv0", with_secrets=True) == cfg
    text = path.read_text()
    assert "PrivateKey" not in text and "PresharedKey" not in text
    assert parse(text) == cfg.without_secrets()
    assert_no_file_contains(
        keyring_session.home, cfg.interface.private_key or "", cfg.peers[1].preshared_key or ""
    )
    assert store.list() == ["srv0"]
    assert [p.name for p in store.directory.iterdir()] == ["srv0.conf"]  # no temporary files left


def test_saving_a_config_without_secrets_keeps_the_stored_ones(store: TunnelStore) -> None:
    cfg = parse_bytes(SERVER.read_bytes())
    store.save("srv1", cfg)
    edited = replace(
        store.load("srv1"), interface=replace(cfg.interface, private_key=None, listen_port=51999)
    )
    store.save("srv1", edited)
    loaded = store.load("srv1", with_secrets=True)
    assert loaded.interface.private_key == cfg.interface.private_key
    assert loaded.interface.listen_port == 51999
    assert loaded.peers[1].preshared_key == cfg.peers[1].preshared_key


def test_preshared_keys_of_removed_peers_are_deleted(store: TunnelStore) -> None:
    cfg = parse_bytes(SERVER.read_bytes())
    store.save("srv2", cfg)
    phone = cfg.peers[1].public_key
    assert store.keystore.get_preshared_key("srv2", phone) == cfg.peers[1].preshared_key
    store.save("srv2", replace(cfg, peers=cfg.peers[:1]))
    assert store.keystore.get_preshared_key("srv2", phone) is None


def test_rename_moves_file_and_keyring_items(store: TunnelStore) -> None:
    cfg = parse_bytes(SERVER.read_bytes())
    store.save("old0", cfg)
    store.rename("old0", "new0")
    assert store.list() == ["new0"]
    assert store.load("new0", with_secrets=True) == cfg
    assert store.keystore.get_private_key("old0") is None
    assert store.keystore.get_preshared_key("old0", cfg.peers[1].public_key) is None
    store.save("other0", cfg)
    with pytest.raises(TunnelExists):
        store.rename("new0", "other0")
    with pytest.raises(TunnelNotFound):
        store.rename("nope", "x")
    with pytest.raises(InvalidTunnelName, match="not a valid tunnel name"):
        store.rename("new0", "much-too-long-name")
    with pytest.raises(InvalidTunnelName, match="not starting with -"):
        store.rename("new0", "-iwork")  # resolvectl and other programs would read it as an option


def test_delete_removes_file_and_keyring_items(store: TunnelStore) -> None:
    cfg = parse_bytes(SERVER.read_bytes())
    store.save("del0", cfg)
    store.delete("del0")
    assert store.list() == []
    assert store.keystore.get_private_key("del0") is None
    assert store.keystore.get_preshared_key("del0", cfg.peers[1].public_key) is None
    with pytest.raises(TunnelNotFound, match="no tunnel named `del0`"):
        store.delete("del0")


@pytest.mark.parametrize("name", ["", "a/b", "../x", "x" * 16, "wg 0", "wg0\n", ".", ".."])
def test_names_are_interface_names(store: TunnelStore, name: str) -> None:
    # `.` and `..` match wg-quick's pattern, but no interface can have them (the kernel refuses)
    with pytest.raises(InvalidTunnelName):
        store.save(name, parse("[Interface]\n"))


def test_a_file_named_dotdot_conf_gets_a_usable_name(store: TunnelStore, tmp_path: Path) -> None:
    source = tmp_path / "..conf"  # its stem is `.`
    source.write_bytes((DATA / "valid" / "client.conf").read_bytes())
    (imported,) = store.import_files([source]).imported
    assert (imported.name, imported.renamed_from) == ("tunnel", ".")


def test_without_a_keyring_nothing_reaches_the_disk(tmp_path: Path) -> None:
    store = TunnelStore(directory=tmp_path / "tunnels", keystore=KeyStore(keyring.backends.fail.Keyring()))
    with pytest.raises(KeyringUnavailable):
        store.save("nokr0", parse_bytes(SERVER.read_bytes()))
    assert not (tmp_path / "tunnels").exists()
    # listing and secret-free configs need no keyring
    assert store.list() == []
    store.save("plain0", parse("[Interface]\nAddress = 10.0.0.2/32\n"))
    assert store.list() == ["plain0"]


def test_import_conf_files_names_renames_and_rejections(store: TunnelStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "wg0.conf").write_bytes(SERVER.read_bytes())
    (src / "mullvad-se-got-wg-001.conf").write_bytes((DATA / "valid" / "mullvad-se1.conf").read_bytes())
    (src / "broken.conf").write_bytes((DATA / "invalid" / "bad-pubkey.conf").read_bytes())
    (src / "notes.txt").write_text("hello")
    report = store.import_files(
        [
            src / "wg0.conf",
            src / "wg0.conf",
            src / "mullvad-se-got-wg-001.conf",
            src / "broken.conf",
            src / "notes.txt",
            src / "missing.conf",
        ]
    )
    assert [(t.name, t.renamed_from) for t in report.imported] == [
        ("wg0", None),
        ("wg0-2", "wg0"),
        ("mullvad-se-got", "mullvad-se-got-wg-001"),
    ]
    assert report.imported[1].rename_reason == "`wg0` already exists"
    assert report.imported[2].rename_reason == "not a valid interface name"
    assert [t.name for t in report.renamed] == ["wg0-2", "mullvad-se-got"]
    reasons = {Path(r.source).name: r.reason for r in report.rejected}
    assert reasons["broken.conf"].endswith(
        "broken.conf:7: PublicKey is not a valid key: expected 44 characters "
        "of base64 that decode to 32 bytes (found 43 characters)"
    )
    assert reasons["notes.txt"] == "not a .conf or .zip file"
    assert reasons["missing.conf"] == "No such file or directory"
    assert store.list() == ["mullvad-se-got", "wg0", "wg0-2"]
    assert store.load("wg0", with_secrets=True) == parse_bytes(SERVER.read_bytes())
    assert any(line.startswith("skipped ") and "broken.conf" in line for line in report.lines())


@pytest.mark.timeout(60)
def test_devices_and_fifos_named_like_configs_are_refused_without_reading(
    store: TunnelStore, tmp_path: Path
) -> None:
    (tmp_path / "zero.conf").symlink_to("/dev/zero")  # endless: reading it whole would exhaust memory
    (tmp_path / "zero.zip").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.conf")  # no writer: opening it would block for ever
    os.mkfifo(tmp_path / "pipe.zip")
    names = ["zero.conf", "zero.zip", "pipe.conf", "pipe.zip"]
    report = store.import_files([tmp_path / n for n in names])
    assert report.imported == []
    assert [(Path(r.source).name, r.reason) for r in report.rejected] == [
        (n, "not a regular file") for n in names
    ]


def test_import_zip_like_the_official_clients(store: TunnelStore, tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("client.conf", (DATA / "valid" / "client.conf").read_bytes())
        z.writestr("nested/dir/ipv6only.conf", (DATA / "valid" / "ipv6only.conf").read_bytes())
        z.writestr("__MACOSX/._client.conf", b"\x00\x05\x16\x07junk")
        z.writestr("README.md", "read me")
        z.writestr("bad.conf", (DATA / "invalid" / "no-pubkey.conf").read_bytes())
        z.writestr("empty/", "")
    (tmp_path / "not-a.zip").write_bytes(b"PK\x03\x04 not really")
    report = store.import_files([archive, tmp_path / "not-a.zip"])
    assert sorted(t.name for t in report.imported) == ["client", "ipv6only"]
    rejected = {r.source: r.reason for r in report.rejected}
    assert rejected[f"{archive}:README.md"] == "not a .conf file"
    assert rejected[f"{archive}:bad.conf"] == f"{archive}:bad.conf:4: [Peer] has no PublicKey"
    assert rejected[str(tmp_path / "not-a.zip")].startswith("not a readable .zip file")
    assert len(rejected) == 3


def test_import_keeps_and_flags_hooks(store: TunnelStore) -> None:
    report = store.import_files([HOOKS])
    (tunnel,) = report.imported
    assert tunnel.has_hooks
    assert "hooks" in [w.code for w in tunnel.warnings]
    assert "[has hook commands: kept, not run]" in report.lines()[0]
    cfg = store.load("hooks", with_secrets=True)
    assert cfg == parse_bytes(HOOKS.read_bytes())
    assert cfg.interface.post_down == ("ip rule del from 10.40.0.2 table 42", "logger stopped")


def test_import_reports_a_world_readable_source(store: TunnelStore, tmp_path: Path) -> None:
    path = tmp_path / "open.conf"
    path.write_bytes((DATA / "valid" / "client.conf").read_bytes())
    path.chmod(0o644)
    (tunnel,) = store.import_files([path]).imported
    assert "world-readable" in [w.code for w in tunnel.warnings]
    assert stat.S_IMODE(store.path("open").stat().st_mode) == 0o600


def test_export_with_and_without_secrets(store: TunnelStore) -> None:
    cfg = parse_bytes(SERVER.read_bytes())
    store.save("exp0", cfg)
    assert "PrivateKey" not in store.export("exp0")
    assert store.export("exp0", with_secrets=True) == write(cfg)


def test_a_secret_export_over_a_world_readable_file_makes_it_private(tmp_path: Path) -> None:
    secret, plain = tmp_path / "secret.conf", tmp_path / "plain.conf"
    for path in (secret, plain):
        path.write_bytes(b"an older, longer file")
        path.chmod(0o644)
    write_export(secret, b"PrivateKey = ...\n", secret=True)
    write_export(plain, b"PublicKey = ...\n", secret=False)
    assert (stat.S_IMODE(secret.stat().st_mode), secret.read_bytes()) == (0o600, b"PrivateKey = ...\n")
    assert (stat.S_IMODE(plain.stat().st_mode), plain.read_bytes()) == (0o644, b"PublicKey = ...\n")


def test_export_zip_of_all(store: TunnelStore) -> None:
    store.save("za", parse_bytes(SERVER.read_bytes()))
    store.save("zb", parse_bytes((DATA / "valid" / "client.conf").read_bytes()))
    bare = zipfile.ZipFile(io.BytesIO(store.export_zip()))
    assert bare.namelist() == ["za.conf", "zb.conf"]
    assert all(b"PrivateKey" not in bare.read(n) for n in bare.namelist())
    full = zipfile.ZipFile(io.BytesIO(store.export_zip(with_secrets=True)))
    assert parse_bytes(full.read("za.conf")) == parse_bytes(SERVER.read_bytes())
    # the archive imports back
    assert stat.S_IMODE(full.getinfo("za.conf").external_attr >> 16) == 0o600


def test_default_directory_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert default_directory() == tmp_path / "cfg" / "wgdesk" / "tunnels"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_directory() == tmp_path / ".config" / "wgdesk" / "tunnels"
    assert os.path.isabs(default_directory())


def test_import_warns_about_overlap_with_existing_tunnels(store: TunnelStore) -> None:
    store.import_files([DATA / "valid" / "mullvad-se1.conf"])
    (first,) = store.import_files([DATA / "valid" / "proton-nl3.conf"]).imported
    overlap = [w for w in first.warnings if w.code == "overlap-tunnel"]
    assert [w.message for w in overlap] == ["AllowedIPs 0.0.0.0/0 overlaps 0.0.0.0/0 of tunnel `mullvad-se1`"]


def test_an_archive_import_reads_each_tunnel_a_bounded_number_of_times(
    store: TunnelStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    count = 30
    text = (DATA / "valid" / "client.conf").read_bytes()
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(count):
            z.writestr(f"many{i}.conf", text)
    loads = []
    real_load = store.load
    monkeypatch.setattr(store, "load", lambda name, *a, **k: loads.append(name) or real_load(name, *a, **k))
    report = store.import_files([archive])
    assert [t.name for t in report.imported] == [f"many{i}" for i in range(count)]
    # every later file is linted against the earlier ones ...
    last = report.imported[-1].warnings
    assert {w.code for w in last} >= {"overlap-tunnel"}
    # ... without reading all of them again for each file (that was count² / 2 reads)
    assert len(loads) <= 3 * count


def test_archive_member_paths_and_sizes_cannot_escape_or_exhaust(store: TunnelStore, tmp_path: Path) -> None:
    text = (DATA / "valid" / "client.conf").read_bytes()
    archive = tmp_path / "hostile.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("../../escape.conf", text)
        z.writestr("/etc/absolute.conf", text)
        z.writestr("..\\windows.conf", text)
        z.writestr("deep/dir/nested.conf", text)
        z.writestr("bomb.conf", text + b"#" * (MAX_CONF_BYTES + 1))  # compresses to a few KiB
    report = store.import_files([archive])
    assert [t.name for t in report.imported] == ["escape", "absolute", "windows", "nested"]
    assert [(r.source, r.reason) for r in report.rejected] == [
        (f"{archive}:bomb.conf", "larger than 1 MiB; not a tunnel config")
    ]
    assert sorted(p.name for p in store.directory.iterdir()) == [
        "absolute.conf",
        "escape.conf",
        "nested.conf",
        "windows.conf",
    ]
    home = store.directory.parents[2]  # the keyring session's home; "../../" from the store is inside it
    names = {"escape.conf", "absolute.conf", "windows.conf", "nested.conf"}
    assert [p for p in home.rglob("*.conf") if p.name in names and p.parent != store.directory] == []
    assert not Path("/etc/absolute.conf").exists()

    crowded = tmp_path / "crowded.zip"
    with zipfile.ZipFile(crowded, "w") as z:
        for i in range(MAX_ZIP_MEMBERS + 1):
            z.writestr(f"c{i}.conf", b"")
    report = store.import_files([crowded])
    assert report.imported == []
    assert [(r.source, r.reason) for r in report.rejected] == [(str(crowded), "more than 1000 files")]


def test_an_invalid_model_changes_nothing(store: TunnelStore) -> None:
    from wgdesk.config import ConfigError

    cfg = parse_bytes(SERVER.read_bytes())
    store.save("inv0", cfg)
    before = store.path("inv0").read_bytes()
    other_key = "CMj3eicyqBVKr+a2fIClbsBZln+PrZHYHjpB9EXbxFw="
    bad = replace(cfg, interface=replace(cfg.interface, private_key=other_key, post_up=("x\n[Peer]",)))
    with pytest.raises(ConfigError):
        store.save("inv0", bad)
    assert store.path("inv0").read_bytes() == before
    assert store.keystore.get_private_key("inv0") == cfg.interface.private_key
    with pytest.raises(ConfigError):
        store.save("inv0", replace(cfg, interface=replace(cfg.interface, private_key="not a key")))
    assert store.keystore.get_private_key("inv0") == cfg.interface.private_key


def _valid_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("client.conf", (DATA / "valid" / "client.conf").read_bytes())
        z.writestr("ipv6only.conf", (DATA / "valid" / "ipv6only.conf").read_bytes())
    return buffer.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=6))
def test_damaged_zip_archives_are_reported_not_raised(
    store: TunnelStore, tmp_path: Path, flips: list
) -> None:  # type: ignore[type-arg]
    data = bytearray(_valid_zip())
    for position, mask in flips:
        data[position % len(data)] ^= mask
    path = tmp_path / "damaged.zip"
    path.write_bytes(bytes(data))
    report = store.import_files([path])
    assert report.imported or report.rejected
    for tunnel in report.imported:
        store.delete(tunnel.name)


def test_a_zip_member_without_a_name_is_rejected_not_raised(store: TunnelStore, tmp_path: Path) -> None:
    """Found by the `imports` fuzz target: `ZipInfo.is_dir()` raises IndexError on an empty name."""
    archive = tmp_path / "nameless.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("client.conf", (DATA / "valid" / "client.conf").read_bytes())
        z.writestr("x", "[Interface]\n")
        z.filelist[-1].filename = ""  # the central directory names it "" (zipfile cannot write that)
    report = store.import_files([archive])
    assert [t.source for t in report.imported] == [f"{archive}:client.conf"]
    assert [(r.source, r.reason) for r in report.rejected] == [(f"{archive}:", "not a .conf file")]
    for tunnel in report.imported:
        store.delete(tunnel.name)


def test_file_and_member_names_cannot_forge_report_lines_or_reach_the_terminal(
    store: TunnelStore, tmp_path: Path
) -> None:
    """Found by the `imports` fuzz target: names went into the report as they were."""
    forged = tmp_path / "a\nimported evil.conf as evil\x1b]0;owned\x07.conf"
    forged.write_bytes((DATA / "valid" / "client.conf").read_bytes())
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("b\u202egnp.conf", "not a config")
        z.writestr("c\r\x1b[2J.txt", "")
    report = store.import_files([forged, archive])
    lines = report.lines()
    assert len(lines) == 3
    assert all(line.isprintable() for line in lines)
    shown = f"{tmp_path}/a\\nimported evil.conf as evil\\x1b]0;owned\\x07.conf"
    assert lines[0].startswith(f"imported {shown} as ")
    reasons = {r.source: r.reason for r in report.rejected}
    assert reasons[f"{archive}:c\\r\\x1b[2J.txt"] == "not a .conf file"
    assert reasons[f"{archive}:b\\u202egnp.conf"].startswith(f"{archive}:b\\u202egnp.conf:1: ")
    for tunnel in report.imported:
        store.delete(tunnel.name)


def test_two_peers_with_one_public_key_and_two_preshared_keys_are_refused(
    store: TunnelStore, tmp_path: Path
) -> None:
    """Found by the `imports` fuzz target: the keyring holds one PSK per peer key, so the first peer
    silently got the second's PSK."""
    text = (DATA / "valid" / "client.conf").read_text()
    peer = text[text.index("[Peer]") :]
    assert "PresharedKey" not in peer
    psk1, psk2 = (base64.b64encode(bytes([n] * 32)).decode() for n in (7, 9))
    first = peer.replace("[Peer]\n", f"[Peer]\nPresharedKey = {psk1}\n", 1)
    second = peer.replace("[Peer]\n", f"[Peer]\nPresharedKey = {psk2}\n", 1)
    path = tmp_path / "dup.conf"
    path.write_text(text.replace(peer, first + "\n" + second))
    report = store.import_files([path])
    assert report.imported == []
    ((reason,),) = [(r.reason,) for r in report.rejected]
    assert "has the PublicKey of [Peer] 1 but another PresharedKey" in reason
    assert "dup" not in store.list()
    same = tmp_path / "same.conf"
    same.write_text(text.replace(peer, first + "\n" + first))  # the same key twice: stored as written
    (imported,) = store.import_files([same]).imported
    assert store.load(imported.name, with_secrets=True) == parse_bytes(same.read_bytes())
    store.delete(imported.name)


def test_a_tampered_keyring_item_is_refused(store: TunnelStore) -> None:
    from wgdesk.config import ConfigError

    store.save("tamp0", parse_bytes(SERVER.read_bytes()))
    store.keystore.set("tamp0:private-key", "abc\n[Peer]\nPublicKey = x")
    with pytest.raises(ConfigError, match="the keyring holds an invalid PrivateKey for `tamp0`"):
        store.load("tamp0", with_secrets=True)
    assert store.load("tamp0").interface.private_key is None  # without secrets it still loads
