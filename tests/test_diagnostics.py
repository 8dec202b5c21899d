"""The diagnostics bundle: a real tunnel store with its keys in a real Secret Service, the real `ip`
commands, the real helper in the lab for a live tunnel, and `wgdeskctl diagnostics` as installed.
Every member of every bundle is scanned for every form of every key."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import stat
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.secret_service import SecretService, keyring_session, secret_service  # noqa: F401
from tests.test_cli import run
from wgdesk.client import HelperClient
from wgdesk.config import parse
from wgdesk.diagnostics import HIDDEN, Redactor, collect, collect_bundle
from wgdesk.keystore import KeyStore
from wgdesk.tunnels import TunnelStore


def keypair() -> tuple[str, str]:
    private = X25519PrivateKey.generate()
    raw = private.private_bytes_raw()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode(), base64.b64encode(public).decode()


def psk() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def forms(key: str) -> list[bytes]:
    """Every way a key could leak: base64, unpadded, raw bytes, hex in both cases."""
    raw = base64.b64decode(key)
    return [key.encode(), key[:43].encode(), raw, raw.hex().encode(), raw.hex().upper().encode()]


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def assert_absent(files: dict[str, bytes], *keys: str) -> None:
    assert files
    for name, data in files.items():
        for key in keys:
            for form in forms(key):
                assert form not in data, f"{name} contains a key ({key[:4]}…)"


class Keys:
    def __init__(self) -> None:
        self.office_private, self.office_public = keypair()
        self.home_private, self.home_public = keypair()
        self.gateway_private, self.gateway = keypair()  # a peer in both tunnels
        self.branch = keypair()[1]
        self.psk1, self.psk2 = psk(), psk()

    @property
    def secrets(self) -> list[str]:
        return [self.office_private, self.home_private, self.gateway_private, self.psk1, self.psk2]

    @property
    def public(self) -> list[str]:
        return [self.office_public, self.home_public, self.gateway, self.branch]


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def store(keyring_session: SecretService, tmp_path: Path, keys: Keys) -> TunnelStore:  # noqa: F811
    s = TunnelStore(directory=tmp_path / "tunnels", keystore=KeyStore(keyring_session.backend()))
    s.save(
        "office",
        parse(
            f"""[Interface]
PrivateKey = {keys.office_private}
Address = 10.20.0.2/32, fd20::2/128
DNS = 10.20.0.1, corp.example.com
PostUp = curl -u bob:hunter2 https://portal.example.net/hello

[Peer]
PublicKey = {keys.gateway}
PresharedKey = {keys.psk1}
Endpoint = vpn.example.com:51820
AllowedIPs = 10.20.0.0/24
PersistentKeepalive = 25

[Peer]
PublicKey = {keys.branch}
PresharedKey = {keys.psk2}
Endpoint = 198.51.100.9:51820
AllowedIPs = 10.21.0.0/24
"""
        ),
    )
    s.save(
        "home",
        parse(
            f"""[Interface]
PrivateKey = {keys.home_private}
Address = 10.30.0.2/32

[Peer]
PublicKey = {keys.gateway}
Endpoint = [2001:db8:5::5]:51820
AllowedIPs = 10.30.0.0/24

[Peer]
PublicKey = {keys.office_public}
Endpoint = 192.168.7.1:51820
AllowedIPs = 10.31.0.0/24
"""
        ),
    )
    return s


def no_helper(tmp_path: Path):  # type: ignore[no-untyped-def]
    socket = tmp_path / "no-helper.sock"
    return lambda: HelperClient(socket, timeout=5)


def alias_of(conf: str, peer: int) -> str:
    return re.findall(r"^PublicKey = (\S+)$", conf, re.MULTILINE)[peer]


def test_the_bundle_holds_the_expected_members_and_no_key_in_any_form(
    store: TunnelStore, keys: Keys, tmp_path: Path
) -> None:
    bundle = collect_bundle(store, no_helper(tmp_path))
    files = members(bundle.data)
    assert bundle.members == list(files)
    for name in (
        "README.txt",
        "versions.txt",
        "tunnels/office.conf",
        "tunnels/office.lint.txt",
        "tunnels/home.conf",
        "tunnels/home.lint.txt",
        "helper/unreachable.txt",
        "network/ip-addr.json",
        "network/ip-route.json",
        "network/ip-rule.json",
        "network/resolv.conf",
    ):
        assert name in files, name
    assert "network/resolvectl-status.txt" in files or "network/resolvectl-status.error.txt" in files
    assert_absent(files, *keys.secrets, *keys.public)
    everything = b"".join(files.values())
    for key in keys.public:  # the 8-character prefix the linter and the helper's findings use
        assert key[:8].encode() not in everything
    assert b"hunter2" not in everything and b"portal.example.net" not in everything
    readme = files["README.txt"].decode()
    for name in files:
        assert name in readme or name == "README.txt"
    assert "the keys in the keyring were also searched for" in readme
    versions = files["versions.txt"].decode()
    assert versions.startswith("wgdesk: ") and "cryptography: " in versions and "OpenSSL" in versions
    assert "wg: wireguard-tools" in versions
    # the network view is the machine's own, still parseable
    assert isinstance(json.loads(files["network/ip-addr.json"]), list)
    assert any(link.get("ifname") == "lo" for link in json.loads(files["network/ip-addr.json"]))
    conf = files["tunnels/office.conf"].decode()
    assert "PostUp = (command hidden)" in conf
    assert "PrivateKey" not in conf and "PresharedKey" not in conf  # the store's files hold none
    assert "10.20.0.0/24" in conf and "Address = 10.20.0.2/32, fd20::2/128" in conf


def test_one_public_key_has_one_alias_in_every_file(store: TunnelStore, keys: Keys, tmp_path: Path) -> None:
    files = {
        n: d.decode() for n, d in members(collect(store=store, client_factory=no_helper(tmp_path))).items()
    }
    office, home = files["tunnels/office.conf"], files["tunnels/home.conf"]
    gateway, branch = alias_of(office, 0), alias_of(office, 1)
    assert gateway == alias_of(home, 0)  # the same peer in two tunnels
    assert gateway != branch != alias_of(home, 1)
    assert gateway.startswith("pub-") and gateway.endswith("-" + keys.gateway[:4])
    assert branch.endswith("-" + keys.branch[:4])
    # the linter names peers by a key prefix: it became the same alias
    assert (
        f"peer 2 ({branch}…) has an endpoint but no PersistentKeepalive" in files["tunnels/office.lint.txt"]
    )
    assert f"({alias_of(home, 1)}…)" in files["tunnels/home.lint.txt"]


def test_public_addresses_are_aliased_by_default_and_kept_on_request(
    store: TunnelStore, keys: Keys, tmp_path: Path
) -> None:
    public = [b"198.51.100.9", b"vpn.example.com", b"2001:db8:5::5", b"corp.example.com"]
    files = members(collect(store=store, client_factory=no_helper(tmp_path)))
    for name, data in files.items():
        for value in public:
            assert value not in data, f"{name} shows {value!r}"
    office, home = files["tunnels/office.conf"].decode(), files["tunnels/home.conf"].decode()
    assert re.search(r"^Endpoint = host-\d+:51820$", office, re.MULTILINE)
    assert re.search(r"^Endpoint = ip4-\d+:51820$", office, re.MULTILINE)
    assert re.search(r"^DNS = 10\.20\.0\.1, host-\d+$", office, re.MULTILINE)
    assert re.search(r"^Endpoint = \[ip6-\d+\]:51820$", home, re.MULTILINE)
    assert "Endpoint = 192.168.7.1:51820" in home  # private: kept
    assert "Public IP addresses are replaced" in files["README.txt"].decode()

    kept = members(collect(store=store, client_factory=no_helper(tmp_path), redact_addresses=False))
    office, home = kept["tunnels/office.conf"].decode(), kept["tunnels/home.conf"].decode()
    assert "Endpoint = vpn.example.com:51820" in office and "Endpoint = 198.51.100.9:51820" in office
    assert "Endpoint = [2001:db8:5::5]:51820" in home and "corp.example.com" in office
    assert "were NOT redacted" in kept["README.txt"].decode()
    assert_absent(kept, *keys.secrets, *keys.public)


def test_a_helper_that_is_not_running_is_explained_not_fatal(store: TunnelStore, tmp_path: Path) -> None:
    bundle = collect_bundle(store, no_helper(tmp_path))
    files = members(bundle.data)
    text = files["helper/unreachable.txt"].decode()
    assert "the wgdesk helper is not running" in text and "no-helper.sock" in text
    assert "error code: unavailable" in text
    assert not any(n.startswith("helper/") and n != "helper/unreachable.txt" for n in files)
    assert "helper unreachable" in bundle.summary and "2 tunnel(s)" in bundle.summary
    assert "Not collected: helper unreachable." in files["README.txt"].decode()


def test_keys_written_into_a_store_file_by_hand_are_hidden(
    store: TunnelStore, keys: Keys, tmp_path: Path
) -> None:
    """A user who pasted a full config into the tunnel directory: the file holds secrets after all."""
    stranger_private, stranger_public = keypair()
    stranger_psk = psk()
    (store.directory / "pasted.conf").write_text(
        f"[Interface]\nPrivateKey = {stranger_private}\nAddress = 10.40.0.2/32\n\n"
        f"[Peer]\nPublicKey = {stranger_public}\nPresharedKey={stranger_psk}\nAllowedIPs = 10.40.0.0/24\n"
    )
    (store.directory / "broken.conf").write_text(f"[Interface]\nPrivateKey = {stranger_private}\nBogus = 1\n")
    files = members(collect(store=store, client_factory=no_helper(tmp_path)))
    assert_absent(files, stranger_private, stranger_psk, stranger_public, *keys.secrets)
    pasted = files["tunnels/pasted.conf"].decode()
    assert f"PrivateKey = {HIDDEN}" in pasted and f"PresharedKey={HIDDEN}" in pasted
    assert (
        "tunnels/broken.error.txt" in files and "does not parse" in files["tunnels/broken.error.txt"].decode()
    )


def test_the_redactor_names_each_key_once_in_all_its_forms() -> None:
    secret, public = keypair()
    other_private, other_public = keypair()
    raw_public = base64.b64decode(public)
    r = Redactor(secrets=[secret], public_keys=[public], redact_addresses=False, home=None)
    alias = r.redact(f"PublicKey = {public}")
    assert alias == f"PublicKey = pub-1-{public[:4]}"
    text = r.redact(
        f"public_key={raw_public.hex()}\nprivate_key={base64.b64decode(other_private).hex()}\n"
        f"preshared_key={'ab' * 32}\npeer({public[:4]}…{public[-5:-1]}) sent\n"
        f'{{"private_key": "{other_private}"}}\nstray {secret} and {secret[:43]} and '
        f"{base64.b64decode(secret).hex().upper()}\nunknown {other_public} again {other_public}\n"
        f"a longer blob {'A' * 60}= stays\n"
    )
    lines = text.splitlines()
    assert lines[0] == f"public_key=pub-1-{public[:4]}"
    assert lines[1] == f"private_key={HIDDEN}" and lines[2] == f"preshared_key={HIDDEN}"
    assert lines[3] == f"peer(pub-1-{public[:4]}) sent"
    assert lines[4] == f'{{"private_key": "{HIDDEN}"}}'
    assert lines[5] == f"stray {HIDDEN} and {HIDDEN} and {HIDDEN}"
    assert lines[6] == "unknown key-1 again key-1"  # unknown keys: an alias without any of its characters
    assert lines[7] == f"a longer blob {'A' * 60}= stays"


def test_the_redactor_keeps_private_addresses_and_aliases_public_ones_consistently() -> None:
    r = Redactor(hosts=["vpn.example.com", "home"], home=None)
    text = r.redact(
        "ep 203.0.113.5:51820 [2001:db8::1]:51820 vpn.example.com:443 VPN.example.com.\n"
        "keep 10.1.2.3 172.16.0.1 192.168.1.1 100.64.0.1 127.0.0.1 169.254.1.1 fd00::1 fe80::1%eth0 ::1 "
        "0.0.0.0/0 ::/0 224.0.0.1 home\n"
        "again 203.0.113.5 2001:0db8::0001 mac 52:54:00:12:34:56 time 12:34:56 v1.2.3\n"
    )
    first, keep, again = text.splitlines()
    assert first == "ep ip4-1:51820 [ip6-1]:51820 host-1:443 host-1."
    assert keep == (
        "keep 10.1.2.3 172.16.0.1 192.168.1.1 100.64.0.1 127.0.0.1 169.254.1.1 fd00::1 fe80::1%eth0 ::1 "
        "0.0.0.0/0 ::/0 224.0.0.1 home"
    )
    assert again == "again ip4-1 ip6-1 mac mac-1 time 12:34:56 v1.2.3"


def test_network_commands_that_are_missing_or_hang_are_recorded(
    store: TunnelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hang = bin_dir / "ip"
    hang.write_text("#!/bin/sh\nexec /bin/sleep 30\n")
    hang.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))  # no resolvectl, no wg; an `ip` that never answers
    bundle = collect_bundle(store, no_helper(tmp_path), command_timeout=0.5)
    files = members(bundle.data)
    assert "did not finish within 0.5 s" in files["network/ip-addr.error.txt"].decode()
    assert "resolvectl is not installed" in files["network/resolvectl-status.error.txt"].decode()
    assert "wg: wg is not installed" in files["versions.txt"].decode()
    assert "network/ip-addr.json" not in files
    assert "6 network command(s) failed" in bundle.summary


# --- with the real helper and a live tunnel -----------------------------------------------------


@pytest.mark.root
def test_the_bundle_has_the_live_status_and_logs_of_an_up_tunnel_and_still_no_key(
    keyring_session: SecretService,  # noqa: F811
    tmp_path: Path,
) -> None:
    from tests.helper.lab import PUBLIC, SERVER_PORT, SERVER_TUNNEL, lab
    from tests.netns import unique_name
    from wgdesk.config import write

    with lab() as L:
        helper = L.start_helper()
        name = unique_name("dg")
        store = TunnelStore(directory=tmp_path / "tunnels", keystore=KeyStore(keyring_session.backend()))
        text = L.config(keepalive=25).replace("Endpoint = 10.98.2.2:", f"Endpoint = {PUBLIC}:")
        assert f"Endpoint = {PUBLIC}:{SERVER_PORT}" in text
        store.save(name, parse(text))
        with helper.client() as c:
            c.up(name, write(store.load(name, with_secrets=True)))
            try:
                assert L.ping(SERVER_TUNNEL[0])
                bundle = collect_bundle(store, helper.client)
            finally:
                c.down(name)
    files = members(bundle.data)
    assert_absent(files, L.client_private, L.server_private, L.client_public, L.server_public)
    assert PUBLIC.encode() not in b"".join(files.values())
    status = json.loads(files["helper/status.json"])["tunnels"]
    (tunnel,) = [t for t in status if t["name"] == name]
    assert tunnel["state"] == "up" and tunnel["peers"][0]["latest_handshake"] is not None
    assert tunnel["peers"][0]["rx_bytes"] > 0
    alias = alias_of(files[f"tunnels/{name}.conf"].decode(), 0)
    assert tunnel["peers"][0]["public_key"] == alias  # the same name for the peer in both files
    endpoint = tunnel["peers"][0]["endpoint"]
    assert re.fullmatch(r"ip4-\d+:51820", endpoint)
    assert f"Endpoint = {endpoint}" in files[f"tunnels/{name}.conf"].decode()
    log = files["helper/log.txt"].decode()
    assert f"[{name}]" in log and "engine" in log
    assert f"peer({alias}) - " in log  # wireguard-go's short form of the key became the same alias
    assert f"helper/diagnose-{name}.json" in files
    assert json.loads(files[f"helper/diagnose-{name}.json"])["tunnel"]["name"] == name
    assert files[f"helper/log-{name}.txt"].decode().strip()
    assert json.loads(files["helper/version.json"])["protocol"] == 1
    assert "helper answered (1 tunnel(s) known, 1 up)" in bundle.summary


# --- the console script -------------------------------------------------------------------------


def test_wgdeskctl_diagnostics_writes_a_private_zip_and_says_where(
    secret_service: SecretService,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = dict(secret_service.env)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["WGDESK_SOCKET"] = str(tmp_path / "no-helper.sock")
    private, _public = keypair()
    peer = keypair()[1]
    conf = tmp_path / "cafe.conf"
    conf.write_text(
        f"[Interface]\nPrivateKey = {private}\nAddress = 10.50.0.2/32\n\n"
        f"[Peer]\nPublicKey = {peer}\nEndpoint = 203.0.113.50:51820\nAllowedIPs = 0.0.0.0/0\n"
    )
    assert run("import", str(conf), env=env).returncode == 0
    work = tmp_path / "cwd"
    work.mkdir()
    result = run("diagnostics", env=env, cwd=work)
    assert result.returncode == 0, result.stderr
    (written,) = list(work.iterdir())
    assert re.fullmatch(r"wgdesk-diagnostics-\d{8}-\d{6}\.zip", written.name)
    out = result.stdout.decode().splitlines()
    assert out[0] == written.name and len(out) == 2
    assert out[1].startswith("1 tunnel(s), helper unreachable,")
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    files = members(written.read_bytes())
    assert "tunnels/cafe.conf" in files and "helper/unreachable.txt" in files
    assert_absent(files, private, peer)
    assert b"203.0.113.50" not in b"".join(files.values())

    target = tmp_path / "bug.zip"
    result = run("diagnostics", "-o", str(target), "--keep-addresses", env=env)
    assert result.returncode == 0 and result.stdout.decode().splitlines()[0] == str(target)
    files = members(target.read_bytes())
    assert b"Endpoint = 203.0.113.50:51820" in files["tunnels/cafe.conf"]
    assert_absent(files, private, peer)

    missing = run("diagnostics", "-o", str(tmp_path / "nope" / "x.zip"), env=env)
    assert missing.returncode == 1
    assert missing.stderr.decode() == f"wgdeskctl: {tmp_path / 'nope' / 'x.zip'}: No such file or directory\n"


@pytest.mark.root
def test_resolv_conf_search_domains_and_public_name_servers_are_aliased(
    secret_service: SecretService,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`wgdeskctl diagnostics` in a private mount namespace whose /etc/resolv.conf is the test's own
    (bind-mounted there only: the host's DNS is untouched)."""
    import subprocess

    from tests.test_cli import WGDESKCTL

    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.53.0.1\nnameserver 9.9.9.9\nsearch corp.example.org home\n")
    env = dict(secret_service.env)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["WGDESK_SOCKET"] = str(tmp_path / "no-helper.sock")
    out = tmp_path / "bundle.zip"
    script = 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(resolv)]
    for keep in (False, True):
        extra = ["--keep-addresses"] if keep else []
        done = subprocess.run(
            [*argv, str(WGDESKCTL), "diagnostics", "-o", str(out), *extra], env=env, capture_output=True
        )
        assert done.returncode == 0, done.stderr
        text = members(out.read_bytes())["network/resolv.conf"].decode()
        if keep:
            assert text == resolv.read_text()
        else:
            assert re.fullmatch(r"nameserver 10\.53\.0\.1\nnameserver ip4-\d+\nsearch host-\d+ home\n", text)
