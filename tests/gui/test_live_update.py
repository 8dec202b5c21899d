"""Saving the editor of a connected tunnel applies the change live (the helper's ``update``) against a real
helper, the wgdesk engine and a wireguard-go server in the lab's namespaces (tests/helper/lab.py); a change
only a reconnect can apply asks first, naming the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from tests.gui.conftest import app_on_helper
from tests.helper.lab import SERVER_TUNNEL, WG, WGDESK_ENGINE, engine_pid, lab
from tests.netns import unique_name
from wgdesk.tunnels import TunnelStore

pytestmark = [pytest.mark.root, pytest.mark.gui]


def _keepalive(namespace, name: str, peer: str) -> str:  # type: ignore[no-untyped-def]
    for line in namespace.exec(WG, "show", name, "dump").stdout.splitlines()[1:]:
        fields = line.split("\t")
        if fields[0] == peer:
            return fields[7]
    raise AssertionError(f"peer {peer} not on {name}")


def test_saving_a_connected_tunnel_applies_keepalive_live_and_asks_before_an_address_change(
    qtbot,  # type: ignore[no-untyped-def]
    store: TunnelStore,
    tmp_path: Path,
) -> None:
    with lab() as L:
        helper = L.start_helper(engine=WGDESK_ENGINE)
        name = unique_name("live")
        source = tmp_path / f"{name}.conf"
        source.write_text(L.config(keepalive=1))
        with app_on_helper(qtbot, store, tmp_path, helper.socket, name, poll_interval=0.3) as (
            controller,
            manager,
        ):
            manager.show()
            qtbot.waitExposed(manager)
            with qtbot.waitSignal(controller.library.importFinished, timeout=15000):
                manager.import_paths([source])
            controller.switch.connect_tunnel(name)
            qtbot.waitUntil(
                lambda: getattr(controller.live.status(name), "state", None) == "up", timeout=30000
            )
            pid = engine_pid(helper, name)
            assert _keepalive(L.client, name, L.server_public) == "1"

            editor = manager.editor
            editor.open_tunnel(name)
            qtbot.waitUntil(lambda: editor.isEnabled() and "PersistentKeepalive" in editor.text.toPlainText())
            text = editor.text.toPlainText()
            editor.set_text(text.replace("PersistentKeepalive = 1", "PersistentKeepalive = 25"))
            assert editor.save()
            qtbot.waitUntil(
                lambda: editor.message.text() == "Saved and applied to the connected tunnel.", timeout=15000
            )
            assert _keepalive(L.client, name, L.server_public) == "25"
            assert engine_pid(helper, name) == pid and os.path.exists(f"/proc/{pid}")  # no reconnect
            assert editor.findChild(QMessageBox, "restart-question") is None
            assert L.ping(SERVER_TUNNEL[0], 2)
            assert store.load(name).peers[0].persistent_keepalive == 25

            # an Address change is saved, but only applied after the user agrees to reconnect
            edited = editor.text.toPlainText().replace("10.97.0.2/32", "10.97.0.3/32")
            editor.set_text(edited.replace("PersistentKeepalive = 25", "PersistentKeepalive = 5"))
            assert editor.save()
            qtbot.waitUntil(
                lambda: editor.findChild(QMessageBox, "restart-question") is not None, timeout=15000
            )
            box = editor.findChild(QMessageBox, "restart-question")
            assert "Address can only change when it reconnects" in box.text()
            box.done(QMessageBox.StandardButton.No)
            assert _keepalive(L.client, name, L.server_public) == "25"  # nothing of it applied
            addresses = L.client.exec("ip", "-4", "-o", "addr", "show", "dev", name).stdout
            assert "10.97.0.2/32" in addresses and "10.97.0.3" not in addresses
            assert engine_pid(helper, name) == pid
