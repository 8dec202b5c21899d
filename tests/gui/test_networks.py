"""The rules-by-network UI: the settings' current network with "Trust this network" and the trusted list
with "Remove", the tray's network line, and the tunnel pane's "Connect automatically on untrusted
networks". The network is real: a namespace whose gateway has a known MAC, seen by the real detector."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from tests.gui.conftest import OFFICE
from tests.gui.network_lab import probe_in, talk_to
from tests.netns import IP, namespaces, veth
from wgdesk.app.controller import TunnelController
from wgdesk.app.manager import ManagerWindow
from wgdesk.app.settings import AppSettings, TrustedNetwork
from wgdesk.app.settings_dialog import SettingsDialog
from wgdesk.app.tray import Tray
from wgdesk.client import HelperClient
from wgdesk.tunnels import TunnelStore

MAC = "02:00:5e:00:0c:03"


@pytest.mark.root
def test_settings_trust_and_remove_the_current_network_and_the_tray_shows_it(  # type: ignore[no-untyped-def]
    qtbot, store: TunnelStore, tmp_path: Path
) -> None:
    path = str(tmp_path / "wgdesk.conf")
    with namespaces("ui", "ur") as (client, router):
        lan, gateway = veth(client, router, ("192.168.77.10/24",), ("192.168.77.1/24",))
        router.exec(IP, "link", "set", "dev", gateway, "address", MAC)
        client.exec(IP, "route", "add", "default", "via", "192.168.77.1")
        talk_to(client, "192.168.77.1")
        settings = AppSettings(QSettings(path, QSettings.Format.IniFormat))
        socket = os.environ["WGDESK_SOCKET"]  # nobody answers: the rules act on nothing here
        controller = TunnelController(
            store,
            lambda: HelperClient(socket, timeout=10),
            settings,
            poll_interval=0.2,
            network_probe=probe_in(client),
            network_interval=0.3,
        )
        tray = Tray(controller)
        controller.start()
        try:
            qtbot.waitUntil(lambda: controller.networks.current() is not None, timeout=10000)
            label = f"192.168.77.1 ({MAC}) on {lan}"
            dialog = SettingsDialog(settings, None, controller)
            qtbot.addWidget(dialog)
            box = dialog.networks
            assert box is not None
            assert box.current.text() == f"Current network: {label} (wired), untrusted"
            assert box.trust_button.isEnabled() and not box.remove_button.isEnabled()
            assert box.labels() == []
            tray.rebuild_menu()
            assert tray.action("network").text() == f"Network: {label} (wired), untrusted"
            assert tray.action("trust-network") is not None
            assert tray.icon.toolTip().splitlines()[-1] == f"{label} (wired), untrusted"

            qtbot.mouseClick(box.trust_button, Qt.MouseButton.LeftButton)
            assert box.current.text() == f"Current network: {label} (wired), trusted"
            assert not box.trust_button.isEnabled()
            assert box.labels() == [label]
            stored = AppSettings(QSettings(path, QSettings.Format.IniFormat)).trusted_networks()
            assert stored == [TrustedNetwork(f"gateway:{MAC}", label)]  # kept in wgdesk.conf
            tray.rebuild_menu()
            assert tray.action("network").text() == f"Network: {label} (wired), trusted"
            assert tray.action("trust-network") is None

            box.select(label)
            assert box.remove_button.isEnabled()
            qtbot.mouseClick(box.remove_button, Qt.MouseButton.LeftButton)
            assert box.labels() == [] and settings.trusted_networks() == []
            assert box.current.text() == f"Current network: {label} (wired), untrusted"

            # two networks NetworkManager gives the same name are told apart by their keys
            settings.trust_network("gateway:00:1b:2c:3d:4e:5f", "Wired connection 1")
            settings.trust_network("gateway:3c:a6:2f:01:02:03", "Wired connection 1")
            settings.trust_network("wifi:Home", "Home")
            box.refresh()
            assert box.labels() == [
                "Wired connection 1 (00:1b:2c:3d:4e:5f)",
                "Wired connection 1 (3c:a6:2f:01:02:03)",
                "Home",
            ]

            client.exec(IP, "route", "del", "default")  # off the network
            qtbot.waitUntil(lambda: box.current.text() == "Current network: No network", timeout=10000)
            assert not box.trust_button.isEnabled()
            tray.rebuild_menu()
            assert tray.action("network").text() == "Network: No network"
        finally:
            controller.stop()
            tray.hide()


def test_without_a_network_probe_nothing_about_networks_is_shown(  # type: ignore[no-untyped-def]
    qtbot, store: TunnelStore, tmp_path: Path
) -> None:
    settings = AppSettings(QSettings(str(tmp_path / "wgdesk.conf"), QSettings.Format.IniFormat))
    controller = TunnelController(
        store, lambda: HelperClient(os.environ["WGDESK_SOCKET"]), settings, network_probe=None
    )
    tray = Tray(controller)
    assert tray.action("network") is None and tray.action("trust-network") is None
    controller.networks.probe()  # does nothing
    assert not controller.networks.watching and controller.networks.current() is None


def test_the_tunnel_pane_sets_connect_automatically_and_rename_keeps_it(  # type: ignore[no-untyped-def]
    qtbot, manager: ManagerWindow, tmp_path: Path
) -> None:
    source = tmp_path / "office.conf"
    source.write_text(OFFICE)
    with qtbot.waitSignal(manager.controller.library.importFinished, timeout=15000):
        manager.import_paths([source])
    manager.select("office")
    box = manager.auto_connect
    assert box.text() == "Connect automatically on &untrusted networks"
    assert not box.isChecked() and not manager.controller.networks.auto_connect("office")  # off by default
    box.click()
    assert manager.controller.settings.auto_connect("office")
    with qtbot.waitSignal(manager.controller.library.tunnelsChanged, timeout=15000):
        manager.rename_selected("work")
    assert manager.selected() == "work" and manager.auto_connect.isChecked()
    assert manager.controller.networks.auto_connect("work") and not manager.controller.networks.auto_connect(
        "office"
    )
    box.click()
    assert not manager.controller.networks.auto_connect("work")
