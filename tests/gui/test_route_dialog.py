"""The "Where does this go?" dialog: opened from the manager's Tunnels menu, answering live as one types,
with name resolution on the controller's worker."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.gui.conftest import OFFICE, PEER_KEY, app_on_helper
from tests.helper.lab import SERVER_TUNNEL, lab
from tests.netns import unique_name
from wgdesk.app.manager import ManagerWindow
from wgdesk.app.route_dialog import RouteDialog
from wgdesk.tunnels import TunnelStore

HOME = """[Interface]
Address = 10.9.0.2/32

[Peer]
PublicKey = GS0v7jt5I//6d0J95VmF+w4czLnO5PaAHC3SCPiFbUk=
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = 192.0.2.9:51820
"""


def open_dialog(qtbot, manager: ManagerWindow) -> RouteDialog:  # type: ignore[no-untyped-def]
    manager.route_action.trigger()
    dialog = manager.findChild(RouteDialog)
    assert dialog is not None
    qtbot.waitExposed(dialog)
    return dialog


def test_answers_live_from_the_stored_tunnels_and_the_kernel(
    qtbot, store: TunnelStore, manager: ManagerWindow, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    store.import_text(OFFICE.encode(), "office")
    store.import_text(HOME.encode(), "home")
    manager.controller.library.tunnelsChanged.emit()
    threads: list[str] = []
    real = socket.getaddrinfo

    def watched(*args: Any, **kw: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", watched)
    dialog = open_dialog(qtbot, manager)
    result = dialog.answer
    qtbot.keyClicks(dialog.target, "10.0.0.5")
    qtbot.waitUntil(lambda: "the kernel routes it via:" in result.text(), timeout=10000)
    text = result.text().splitlines()
    assert text[0] == "The helper is not running: every tunnel counts as down."
    assert text[1:4] == [
        "10.0.0.5",
        "  wgdesk's rules say: not through any tunnel (straight out)",
        "  why: no tunnel is up",
    ]
    assert f"  if office were up: tunnel office, peer {PEER_KEY} (AllowedIPs 10.0.0.0/24)" in text
    assert any(line.startswith("  if home were up: tunnel home") for line in text)
    # the user turned "full tunnel" off for home: then it would not carry 8.8.8.8
    manager.controller.settings.set_tunnel_option("home", "full_tunnel", False)
    dialog.target.setText("8.8.8.8")
    qtbot.waitUntil(lambda: result.text().splitlines()[1:2] == ["8.8.8.8"], timeout=10000)
    assert "if home were up" not in result.text()
    # a name: resolved on a worker thread, never on the UI thread
    dialog.target.setText("localhost")
    qtbot.waitUntil(lambda: "localhost resolves to" in result.text(), timeout=10000)
    assert "  why: it is a loopback address: this machine itself" in result.text()
    assert threads and threading.main_thread().name not in threads


def test_a_name_that_does_not_resolve_says_so(
    qtbot, manager: ManagerWindow, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    def fail(*args: Any, **kw: Any) -> Any:  # no DNS traffic from a test: the resolver's answer
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    dialog = open_dialog(qtbot, manager)
    qtbot.keyClicks(dialog.target, "nowhere.invalid")
    qtbot.waitUntil(lambda: dialog.answer.text().startswith("Cannot resolve"), timeout=10000)
    assert dialog.answer.text() == "Cannot resolve nowhere.invalid: [Errno -2] Name or service not known"
    dialog.target.clear()
    qtbot.waitUntil(lambda: dialog.answer.text() == "", timeout=10000)


@pytest.mark.root
def test_the_answer_follows_a_tunnel_coming_up_and_going_down(
    qtbot, store: TunnelStore, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    with lab() as L:
        helper = L.start_helper()
        name = unique_name("route")
        source = tmp_path / f"{name}.conf"
        source.write_text(L.config())
        with app_on_helper(qtbot, store, tmp_path, helper.socket, name) as (controller, manager):
            manager.show()
            with qtbot.waitSignal(controller.library.importFinished, timeout=15000):
                manager.import_paths([source])
            qtbot.waitUntil(
                lambda: controller.live.status_received and not controller.live.helper_problem, timeout=10000
            )
            dialog = open_dialog(qtbot, manager)
            qtbot.keyClicks(dialog.target, SERVER_TUNNEL[0])
            rules = f"  wgdesk's rules say: tunnel {name}, peer {L.server_public} (AllowedIPs 10.97.0.0/24)"
            would = f"  if {name} were up: tunnel {name}, peer {L.server_public} (AllowedIPs 10.97.0.0/24)"
            qtbot.waitUntil(lambda: would in dialog.answer.text().splitlines(), timeout=10000)
            assert "The helper is not running" not in dialog.answer.text()
            manager.activate_button.click()
            # (the app runs outside the lab's namespace, so only wgdesk's rules are compared here;
            # tests/test_cli_route.py checks the kernel's answer inside it)
            qtbot.waitUntil(lambda: rules in dialog.answer.text().splitlines(), timeout=30000)
            assert would not in dialog.answer.text()
            manager.activate_button.click()
            qtbot.waitUntil(lambda: would in dialog.answer.text().splitlines(), timeout=30000)


def test_an_answer_that_arrives_after_the_dialog_closed_is_dropped(qtbot, manager: ManagerWindow) -> None:  # type: ignore[no-untyped-def]
    from wgdesk.app.route_dialog import show_route_dialog

    dialog = show_route_dialog(None, manager.controller)
    gone: list[bool] = []
    dialog.destroyed.connect(lambda *_: gone.append(True))
    dialog.target.setText("10.0.0.1")  # an address: no DNS
    dialog._query()  # what the debounce timer does; the lookup runs on the controller's worker
    dialog.close()  # before the event loop runs: the answer can only arrive after the close
    qtbot.waitUntil(lambda: bool(gone) and not manager.controller.runner.busy, timeout=10000)
