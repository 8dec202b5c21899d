"""The shared-mime-info type: WireGuard configs are recognised by content, other .conf files are not.

Each check runs against a private MIME database (XDG_DATA_HOME in a temporary directory, plus the
system's /usr/share for the base types), so the host's database is never modified.
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.packaging.artifacts import ROOT

MIME_XML = ROOT / "resources" / "mime" / "wgdesk.xml"
MIME_TYPE = "application/x-wireguard-config"
NS = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}

WG_CONF = (
    "[Interface]\nPrivateKey = {k}\nAddress = 10.0.0.2/32\n\n"
    "[Peer]\nPublicKey = {k}\nAllowedIPs = 0.0.0.0/0\n"
)
KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="

FILES = [
    # name, content, is a WireGuard config
    pytest.param("wg0.conf", WG_CONF.format(k=KEY), True, id="wg-quick-conf"),
    pytest.param(
        "office.conf",
        "# exported by the VPN portal\n# 2024-01-01\n\n" + WG_CONF.format(k=KEY),
        True,
        id="comments-first",
    ),
    pytest.param(
        "lower.conf", WG_CONF.format(k=KEY).replace("[Interface]", "[interface]"), True, id="lower-case"
    ),
    pytest.param("tunnel", WG_CONF.format(k=KEY), True, id="no-extension"),
    pytest.param(
        "other.conf", "[main]\nplugins=ifupdown,keyfile\n\n[ifupdown]\nmanaged=false\n", False, id="ini-conf"
    ),
    pytest.param(
        "nginx.conf", "server {\n    listen 80;\n    server_name example.org;\n}\n", False, id="nginx-conf"
    ),
    pytest.param("resolv.conf", "nameserver 192.0.2.53\nsearch example.org\n", False, id="resolv-conf"),
]


@pytest.fixture(scope="module")
def mime_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose MIME database is the system's plus our type, and no desktop detected."""
    home = tmp_path_factory.mktemp("xdg-data-home")
    (home / "mime" / "packages").mkdir(parents=True)
    (home / "mime" / "packages" / "wgdesk.xml").write_bytes(MIME_XML.read_bytes())
    subprocess.run(["update-mime-database", str(home / "mime")], check=True, capture_output=True)
    return _env(home)


def _env(data_home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XDG_CURRENT_DESKTOP", "DESKTOP_SESSION", "KDE_FULL_SESSION", "GNOME_DESKTOP_SESSION_ID")
    }
    env.update(XDG_DATA_HOME=str(data_home), XDG_DATA_DIRS="/usr/share", HOME=str(data_home))
    return env


def query(path: Path, env: dict[str, str]) -> str:
    """`xdg-mime query filetype` (without a desktop it asks File::MimeInfo's `mimetype`)."""
    out = subprocess.run(
        ["xdg-mime", "query", "filetype", str(path)], env=env, check=True, capture_output=True, text=True
    ).stdout
    return out.strip().split(";")[0]


def gio_type(path: Path, env: dict[str, str]) -> str:
    """The content type GLib (GNOME, GTK file choosers) gives the file."""
    out = subprocess.run(
        ["gio", "info", "-a", "standard::content-type", str(path)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(
        line.rsplit(": ", 1)[1].strip() for line in out.splitlines() if "standard::content-type" in line
    )


def test_type_is_declared_by_content_only() -> None:
    root = ET.parse(MIME_XML).getroot()
    types = root.findall("m:mime-type", NS)
    assert [t.get("type") for t in types] == [MIME_TYPE]
    mime = types[0]
    assert mime.findall("m:glob", NS) == [], "a glob would claim every .conf file"
    assert [s.get("type") for s in mime.findall("m:sub-class-of", NS)] == ["text/plain"]
    values = {m.get("value") for m in mime.iterfind("m:magic/m:match", NS)}
    assert "[Interface]" in values


@pytest.mark.parametrize(("name", "content", "is_wg"), FILES)
def test_xdg_mime_query_filetype(
    mime_env: dict[str, str], tmp_path: Path, name: str, content: str, is_wg: bool
) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert (query(path, mime_env) == MIME_TYPE) is is_wg


@pytest.mark.parametrize(("name", "content", "is_wg"), FILES)
def test_glib_content_type(
    mime_env: dict[str, str], tmp_path: Path, name: str, content: str, is_wg: bool
) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert (gio_type(path, mime_env) == MIME_TYPE) is is_wg


def test_without_our_database_the_type_is_unknown(tmp_path: Path) -> None:
    """Control: the positive results above come from our XML, not from the host's database."""
    path = tmp_path / "wg0.conf"
    path.write_text(WG_CONF.format(k=KEY))
    empty = tmp_path / "empty-data-home"
    empty.mkdir()
    assert query(path, _env(empty)) != MIME_TYPE
