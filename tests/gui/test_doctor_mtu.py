"""The doctor's "Test MTU" button against the real helper, the wgdesk engine and a wireguard-go server in the
lab's namespaces (tests/helper/lab.py), with the router of tests/helper/test_mtu.py turned into an MTU black
hole: the button finds it, says so in plain words and offers "Apply MTU N", which lowers the tunnel's MTU."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.gui.conftest import app_on_helper
from tests.helper.lab import WGDESK_ENGINE, lab
from tests.helper.test_mtu import black_hole, link_mtu
from tests.netns import unique_name
from wgdesk.app.diagnosis import explain_mtu
from wgdesk.tunnels import TunnelStore


def test_explain_mtu_without_any_answer_asks_about_the_handshake() -> None:
    text, offer = explain_mtu(
        "home",
        {"target": "10.0.0.1", "mtu_before": 1420, "largest_working": None, "recommended_mtu": None,
         "probes": [[1420, False], [1280, False]], "seconds": 4.02, "applied": False},
    )  # fmt: skip
    assert offer is None
    assert text == (
        "No answer from 10.0.0.1, not even to small packets (2 test packets, 4.0 s). Is there a handshake, "
        "and does 10.0.0.1 answer pings?"
    )


@pytest.mark.root
@pytest.mark.gui
def test_test_mtu_finds_a_black_hole_and_apply_lowers_the_mtu(  # type: ignore[no-untyped-def]
    qtbot,
    store: TunnelStore,
    tmp_path: Path,
) -> None:
    with lab() as L:
        helper = L.start_helper(engine=WGDESK_ENGINE)
        name = unique_name("mtu")
        source = tmp_path / f"{name}.conf"
        source.write_text(L.config(dns="10.97.0.1"))
        with app_on_helper(qtbot, store, tmp_path, helper.socket, name, poll_interval=0.3) as (
            controller,
            manager,
        ):
            manager.show()
            qtbot.waitExposed(manager)
            with qtbot.waitSignal(controller.library.importFinished, timeout=15000):
                manager.import_paths([source])
            manager.select(name)
            manager.tabs.setCurrentWidget(manager.doctor)
            doctor = manager.doctor

            def test_and_wait(button) -> str:  # type: ignore[no-untyped-def]
                doctor.mtu_answer = None
                previous = doctor.mtu_result.text()
                qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
                qtbot.waitUntil(
                    lambda: doctor.mtu_button.isEnabled() and doctor.mtu_result.text() != previous,
                    timeout=40000,
                )
                return str(doctor.mtu_result.text())

            # not connected: the helper has no such tunnel
            assert test_and_wait(doctor.mtu_button) == f"Connect {name} first: the test needs the tunnel up."

            controller.switch.connect_tunnel(name)
            qtbot.waitUntil(
                lambda: getattr(controller.live.status(name), "state", None) == "up", timeout=30000
            )
            text = test_and_wait(doctor.mtu_button)
            fine = "Packets of the full 1420 bytes cross the tunnel to 10.97.0.1: the MTU is fine (1 test"
            assert text.startswith(fine), text
            assert not doctor.mtu_apply.isVisible()

            black_hole(L)  # outer packets above 1400 bytes vanish: 1328-byte inner packets still cross
            text = test_and_wait(doctor.mtu_button)
            assert text.startswith(
                "Only packets up to 1328 bytes cross the tunnel, but its MTU is 1420: a router on the way "
                "drops bigger packets without saying so (an MTU black hole)."
            ), text
            assert doctor.mtu_apply.isVisible() and doctor.mtu_apply.text() == "Apply MTU 1328"
            assert link_mtu(L, name) == 1420

            text = test_and_wait(doctor.mtu_apply)
            assert text.startswith(f"The MTU of {name} is now 1328 until it disconnects"), text
            assert "set MTU = 1328 in the tunnel's [Interface] section" in text
            assert not doctor.mtu_apply.isVisible()
            assert link_mtu(L, name) == 1328
            qtbot.waitUntil(lambda: getattr(controller.live.status(name), "mtu", None) == 1328, timeout=10000)
