"""Rules by network, end to end: the app against a real helper in the lab (tests/helper/lab.py), its
network probe running the real detector in the lab's client namespace. The router's LAN MAC address is
the network's identity: "home" (trusted) and "cafe" (untrusted) are the same router with another MAC,
switched as a real network change looks to the client (carrier lost, then a new gateway)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from tests.gui.conftest import wait_idle
from tests.gui.network_lab import detect, switch_gateway, talk_to
from tests.helper.lab import ROUTER_LAN, WGDESK_ENGINE, Lab, lab
from tests.netns import unique_name
from wgdesk.app.controller import TunnelController
from wgdesk.app.settings import AppSettings
from wgdesk.app.state import Health
from wgdesk.app.tray import Tray
from wgdesk.client import HelperClient
from wgdesk.platforms import NetworkIdentity
from wgdesk.tunnels import TunnelStore

pytestmark = [pytest.mark.root, pytest.mark.gui]

HOME_MAC = "02:00:5e:00:0a:01"
CAFE_MAC = "02:00:5e:00:0b:02"
GATEWAY = ROUTER_LAN[0].split("/")[0]


def switch_to(L: Lab, mac: str) -> NetworkIdentity:
    """Give the lab's router the gateway MAC `mac` and return what the detector in the client sees."""
    switch_gateway(L.client, L.client_if, L.router, L.router_lan_if, mac)
    talk_to(L.client, GATEWAY)
    found = detect(L.client)
    assert found is not None and found.key == f"gateway:{mac}", found
    return found


def _up(socket: Path) -> list[str]:
    with HelperClient(socket) as c:
        return [str(t.name) for t in c.status()]


def test_an_untrusted_network_brings_the_tunnel_up_and_a_trusted_one_takes_it_down(  # type: ignore[no-untyped-def]
    qtbot, store: TunnelStore, tmp_path: Path
) -> None:
    with lab() as L:
        helper = L.start_helper(engine=WGDESK_ENGINE)

        home = switch_to(L, HOME_MAC)
        name = unique_name("office")
        source = tmp_path / f"{name}.conf"
        source.write_text(L.config(keepalive=1))
        assert [t.name for t in store.import_files([source]).imported] == [name]
        settings = AppSettings(QSettings(str(tmp_path / "wgdesk.conf"), QSettings.Format.IniFormat))
        settings.trust_network(home.key, home.label)
        settings.set_auto_connect(name, True)
        probes: list[NetworkIdentity | None] = []

        def probe() -> NetworkIdentity | None:
            probes.append(detect(L.client))
            return probes[-1]

        controller = TunnelController(
            store,
            lambda: HelperClient(helper.socket, timeout=60),
            settings,
            poll_interval=0.5,
            network_probe=probe,
            network_interval=0.5,
        )
        tray = Tray(controller)
        notices: list[tuple[str, str]] = []
        controller.notices.notify.connect(lambda title, text, _kind: notices.append((title, text)))

        def probed_more(count: int) -> None:
            target = len(probes) + count
            qtbot.waitUntil(lambda: len(probes) >= target, timeout=15000)

        def menu_line() -> str:
            tray.rebuild_menu()
            action = tray.action("network")
            assert action is not None and not action.isEnabled()
            return action.text()

        controller.start()
        try:
            # at home: trusted, the tunnel stays down
            qtbot.waitUntil(
                lambda: controller.live.status_received and controller.networks.current() == home,
                timeout=15000,
            )
            probed_more(3)
            assert _up(helper.socket) == [] and controller.live.active() == []
            assert menu_line() == f"Network: {home.label} (wired), trusted"
            assert tray.action("trust-network") is None

            # the cafe: untrusted, the rule connects the tunnel
            cafe = switch_to(L, CAFE_MAC)
            qtbot.waitUntil(lambda: controller.live.health(name) == Health.HEALTHY, timeout=30000)
            assert _up(helper.socket) == [name]
            qtbot.waitUntil(
                lambda: ("Network rule", f"Connected {name}: untrusted network {cafe.label}") in notices,
                timeout=5000,
            )
            assert ("Connected", f"{name} is connected.") not in notices  # one notice says it all
            assert menu_line() == f"Network: {cafe.label} (wired), untrusted"
            assert controller.networks.rule_connected() == {name}
            assert settings.rule_connected() == [name]
            assert settings.last_connected() == []  # "restore tunnels" leaves it to the rule
            assert L.ping("10.97.0.1", 1)  # really through the tunnel

            # home again: the rule takes it down
            switch_to(L, HOME_MAC)
            qtbot.waitUntil(lambda: _up(helper.socket) == [], timeout=30000)
            qtbot.waitUntil(
                lambda: ("Network rule", f"Disconnected {name}: trusted network {home.label}") in notices,
                timeout=10000,
            )
            assert ("Disconnected", f"{name} is disconnected.") not in notices
            assert controller.networks.rule_connected() == frozenset() and settings.rule_connected() == []

            # the cafe again, and the user disconnects by hand: not reconnected while on this network
            switch_to(L, CAFE_MAC)
            qtbot.waitUntil(lambda: _up(helper.socket) == [name], timeout=30000)
            qtbot.waitUntil(
                lambda: getattr(controller.live.status(name), "state", None) == "up", timeout=10000
            )
            tray.rebuild_menu()
            tray.action(f"tunnel:{name}").trigger()
            qtbot.waitUntil(
                lambda: _up(helper.socket) == [] and controller.live.active() == [], timeout=30000
            )
            probed_more(4)
            assert _up(helper.socket) == []
            # ... until the network changes
            switch_to(L, HOME_MAC)
            qtbot.waitUntil(lambda: controller.networks.current() == home, timeout=15000)
            switch_to(L, CAFE_MAC)
            qtbot.waitUntil(lambda: _up(helper.socket) == [name], timeout=30000)
            # trusting the cafe from the tray menu takes the rule's tunnel down
            tray.rebuild_menu()
            tray.action("trust-network").trigger()
            qtbot.waitUntil(lambda: _up(helper.socket) == [], timeout=30000)
            assert menu_line() == f"Network: {cafe.label} (wired), trusted"
            assert {n.key for n in settings.trusted_networks()} == {home.key, cafe.key}
        finally:
            if name in _up(helper.socket):
                with HelperClient(helper.socket) as c:
                    c.down(name)
            wait_idle(qtbot, controller, 30000)
            controller.stop()
            tray.hide()


def test_after_a_restart_at_home_the_rule_takes_down_what_it_connected_and_restore_leaves_it(  # type: ignore[no-untyped-def]
    qtbot, store: TunnelStore, tmp_path: Path
) -> None:
    with lab() as L:
        helper = L.start_helper(engine=WGDESK_ENGINE)

        home = switch_to(L, HOME_MAC)
        name = unique_name("office")
        source = tmp_path / f"{name}.conf"
        source.write_text(L.config(keepalive=1))
        assert [t.name for t in store.import_files([source]).imported] == [name]
        path = str(tmp_path / "wgdesk.conf")
        settings = AppSettings(QSettings(path, QSettings.Format.IniFormat))
        settings.trust_network(home.key, home.label)
        settings.set_auto_connect(name, True)
        settings.set_restore_tunnels(True)

        def app(settings: AppSettings) -> TunnelController:
            return TunnelController(
                store,
                lambda: HelperClient(helper.socket, timeout=60),
                settings,
                poll_interval=0.5,
                network_probe=lambda: detect(L.client),
                network_interval=0.5,
            )

        first = app(settings)
        second: TunnelController | None = None
        try:
            switch_to(L, CAFE_MAC)
            first.start()
            qtbot.waitUntil(lambda: first.live.health(name) == Health.HEALTHY, timeout=30000)
            wait_idle(qtbot, first, 30000)
            first.stop()  # the app quits; the helper keeps the tunnel up
            assert _up(helper.socket) == [name]

            switch_to(L, HOME_MAC)
            again = AppSettings(QSettings(path, QSettings.Format.IniFormat))  # what the next start reads
            assert again.rule_connected() == [name]
            assert again.last_connected() == []  # nothing for "restore tunnels" to bring back
            second = app(again)
            notices: list[tuple[str, str]] = []
            second.notices.notify.connect(lambda title, text, _kind: notices.append((title, text)))
            second.start()
            qtbot.waitUntil(lambda: _up(helper.socket) == [], timeout=30000)
            qtbot.waitUntil(
                lambda: ("Network rule", f"Disconnected {name}: trusted network {home.label}") in notices,
                timeout=10000,
            )
            assert again.rule_connected() == []
        finally:
            if name in _up(helper.socket):
                with HelperClient(helper.socket) as c:
                    c.down(name)
            for c in (first, second):
                if c is not None:
                    wait_idle(qtbot, c, 30000)
                    c.stop()
