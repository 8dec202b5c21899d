"""The tray icon over D-Bus (StatusNotifierItem + dbusmenu), which Qt uses when a StatusNotifierWatcher runs:
KDE Plasma, GNOME with the AppIndicator extension and most other current panels. A minimal watcher
(tests/gui/sni_watcher.py) runs on the test's private session bus; the test reads the icon, tooltip and menu
the way a panel does and clicks "Quit" through dbusmenu."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jeepney import DBusAddress, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection

from tests.gui.conftest import OFFICE
from tests.gui.test_instances import _argv
from tests.gui.xdisplay import XDisplay, x_display
from tests.secret_service import SecretService

pytestmark = pytest.mark.gui

WATCHER = Path(__file__).with_name("sni_watcher.py")


@pytest.fixture
def display(keyring_session: SecretService) -> Iterator[XDisplay]:
    with x_display(keyring_session.env, tray_host=False) as d:  # no XEmbed tray: only the D-Bus one
        yield d


@pytest.fixture
def watcher(keyring_session: SecretService) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, str(WATCHER)],
        env=keyring_session.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _call(
    conn: DBusConnection,
    service: str,
    path: str,
    iface: str,
    member: str,
    sig: str = "",
    body: tuple[Any, ...] = (),
) -> tuple[Any, ...]:
    reply = conn.send_and_get_reply(
        new_method_call(DBusAddress(path, bus_name=service, interface=iface), member, sig, body), timeout=10
    )
    return reply.body


def _menu(conn: DBusConnection, service: str, path: str) -> list[dict[str, Any]]:
    _call(
        conn, service, path, "com.canonical.dbusmenu", "AboutToShow", "i", (0,)
    )  # what a panel does on open
    _, layout = _call(conn, service, path, "com.canonical.dbusmenu", "GetLayout", "iias", (0, -1, []))
    items = []
    for _sig, (item_id, props, _children) in layout[2]:
        items.append({"id": item_id} | {k: v[1] for k, v in props.items()})
    return items


def test_dbus_tray_item_shows_state_tooltip_and_a_working_menu(
    display: XDisplay, watcher: subprocess.Popen[str], keyring_session: SecretService, tmp_path: Path
) -> None:
    source = tmp_path / "office.conf"
    source.write_text(OFFICE)
    env = dict(
        display.env,
        QT_QPA_PLATFORM="xcb",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        WGDESK_INSTANCE=f"wgdesk-sni-{os.getpid()}-{tmp_path.name}",
        WGDESK_SOCKET=str(tmp_path / "no-helper.sock"),
    )
    log = open(tmp_path / "wgdesk.log", "wb")  # noqa: SIM115
    app = subprocess.Popen(_argv("--minimized", str(source)), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert watcher.stdout is not None
        line = watcher.stdout.readline().split()  # blocks until the app registers its item
        assert line[0] == "item", line
        service, path = line[1], line[2]
        with open_dbus_connection(bus="SESSION") as conn:  # keyring_session points the environment at the bus

            def item() -> dict[str, Any]:
                iface = "org.freedesktop.DBus.Properties"
                return _call(conn, service, path, iface, "GetAll", "s", ("org.kde.StatusNotifierItem",))[0]

            def disc(props: dict[str, Any]) -> tuple[int, ...]:
                # pixels are ARGB, big-endian; (4, 11) of the 22 px icon is the disc, left of the glyph
                data = next(bytes(d) for w, h, d in props["IconPixmap"][1] if w == h == 22)
                offset = (11 * 22 + 4) * 4
                return tuple(data[offset : offset + 4])

            props = item()
            assert props["Id"][1] == "wgdesk"
            assert props["Status"][1] in ("Active", "NeedsAttention")  # attention: the error notice
            assert sorted(w for w, h, _ in props["IconPixmap"][1] if w == h) == [16, 22, 24, 32, 48, 64]
            deadline = time.monotonic() + 10
            while disc(props) != (255, 0xDC, 0x26, 0x26) and time.monotonic() < deadline:
                time.sleep(0.2)  # the first status poll finds no helper: the icon turns red
                props = item()
            assert disc(props) == (255, 0xDC, 0x26, 0x26)
            tooltip = props["ToolTip"][1]
            assert "The wgdesk helper is not running" in tooltip[2] + tooltip[3]

            menu_path = props["Menu"][1]
            deadline = time.monotonic() + 15
            while True:  # the import of office.conf runs on a worker; the menu is rebuilt on every open
                items = _menu(conn, service, menu_path)
                labels = [i.get("label") for i in items if i.get("type") != "separator"]
                if "office" in labels or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            # the app looks at the network it runs on (this machine's): a line for it, and when it is
            # untrusted an entry to trust it
            network = [label for label in labels if str(label).startswith("Network: ")]
            assert len(network) == 1 and labels[1] == network[0], labels
            assert ("Trust this network" in labels) == network[0].endswith(", untrusted")
            labels = [label for label in labels if label not in (network[0], "Trust this network")]
            assert labels == [
                "⚠ The wgdesk helper is not running — see Manage tunnels…",
                "office",
                "_Manage tunnels…",
                "_Import tunnel(s) from file…",
                "_Where does this go?…",
                "Run an app _outside the tunnel…",
                "_Quit",
            ]
            office = next(i for i in items if i.get("label") == "office")
            assert office["toggle-type"] == "checkmark" and office["toggle-state"] == 0
            quit_id = next(i["id"] for i in items if i.get("label") == "_Quit")
            _call(
                conn,
                service,
                menu_path,
                "com.canonical.dbusmenu",
                "Event",
                "isvu",
                (quit_id, "clicked", ("i", 0), 0),
            )
        assert app.wait(15) == 0
    finally:
        if app.poll() is None:
            app.terminate()
            app.wait(10)
        log.close()
