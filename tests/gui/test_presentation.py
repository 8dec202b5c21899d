"""Pure presentation rules: durations and sizes as `wg show` prints them, health states, the doctor's causes,
graph rates, icons and start-at-login."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QColor

from wgdesk.app import units
from wgdesk.app.diagnosis import explain, peer_evidence
from wgdesk.app.graph import rates
from wgdesk.app.icons import SIZES, state_icon, write_svgs
from wgdesk.app.settings import AppSettings
from wgdesk.app.state import Health, IconState, health, icon_state, tunnel_icon
from wgdesk.causes import explain_peer
from wgdesk.snapshots import Diagnosis, SnapshotError, TunnelSnapshot
from wgdesk.tunnels import default_directory

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (64, "1 minute, 4 seconds"),
        (120, "2 minutes"),
        (3661, "1 hour, 1 minute, 1 second"),
        (2 * 86400 + 5, "2 days, 5 seconds"),
        (366 * 86400, "1 year, 1 day"),
    ],
)
def test_duration(seconds: int, text: str) -> None:
    assert units.duration(seconds) == text


def test_ago() -> None:
    assert units.ago(1000.0, 1064.5) == "1 minute, 4 seconds ago"
    assert units.ago(1000.0, 1000.2) == "Now"
    assert units.ago(None, 1000.0) == "never"


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.00 KiB"),
        (1556, "1.52 KiB"),
        (5 * 1024**2, "5.00 MiB"),
        (3 * 1024**3 + 1, "3.00 GiB"),
        (2 * 1024**5, "2048.00 TiB"),
    ],
)
def test_size_like_wg_show(n: int, text: str) -> None:
    assert units.size(n) == text


NOW = 1_800_000_000.0


def _status(handshake: float | None, state: str = "up") -> TunnelSnapshot:
    peer = {"public_key": "k", "latest_handshake": handshake}
    return TunnelSnapshot.from_wire({"name": "t", "interface": "t", "state": state, "peers": [peer]})


@pytest.mark.parametrize(
    ("status", "pending", "expected"),
    [
        (None, False, Health.DOWN),
        (None, True, Health.STARTING),
        (_status(None), False, Health.WAITING),
        (_status(NOW - 10), False, Health.HEALTHY),
        (_status(NOW - 179), False, Health.HEALTHY),
        (_status(NOW - 181), False, Health.IDLE),  # older than Reject-After-Time: not proven alive
        (_status(NOW - 10, "failed"), False, Health.ERROR),
        (_status(None, "starting"), False, Health.STARTING),
    ],
)
def test_health(status: TunnelSnapshot | None, pending: bool, expected: Health) -> None:
    assert health(status, NOW, pending) == expected


def test_tray_icon_is_the_worst_state() -> None:
    assert icon_state([], False) == IconState.DISCONNECTED
    assert icon_state([Health.DOWN, Health.HEALTHY], False) == IconState.CONNECTED
    assert icon_state([Health.HEALTHY, Health.WAITING], False) == IconState.CONNECTING
    assert icon_state([Health.HEALTHY, Health.ERROR], False) == IconState.ERROR
    assert icon_state([Health.DOWN], True) == IconState.ERROR  # helper unreachable
    assert icon_state([Health.DOWN, Health.IDLE], False) == IconState.CONNECTED
    assert icon_state([Health.IDLE, Health.STARTING], False) == IconState.CONNECTING


def test_each_tunnel_has_the_icon_of_its_health() -> None:
    assert {h: tunnel_icon(h) for h in Health} == {
        Health.DOWN: IconState.DISCONNECTED,
        Health.STARTING: IconState.CONNECTING,
        Health.WAITING: IconState.CONNECTING,
        Health.HEALTHY: IconState.CONNECTED,
        Health.IDLE: IconState.CONNECTED,
        Health.ERROR: IconState.ERROR,
    }


PEER = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="


def _diagnosis(peer: dict[str, Any], logs: Sequence[str] = (), findings: Sequence[str] = ()) -> Diagnosis:
    base: dict[str, Any] = {
        "public_key": PEER,
        "endpoint": "192.0.2.1:51820",
        "allowed_ips": [],
        "latest_handshake": None,
        "rx_bytes": 0,
        "tx_bytes": 0,
    }
    return Diagnosis.from_wire(
        {
            "tunnel": {"name": "t", "interface": "t", "state": "up", "peers": [base | peer]},
            "findings": list(findings),
            "logs": [{"time": NOW, "level": "debug", "source": "engine", "message": m} for m in logs],
        }
    )


def _counted(**counts: object) -> dict[str, Any]:
    return {"counters": counts}


@pytest.mark.parametrize(
    ("diagnosis", "codes"),
    [
        (_diagnosis({"endpoint": None}), ["no-endpoint"]),
        (_diagnosis(_counted(initiations_sent=3)), ["silence"]),
        (_diagnosis({"tx_bytes": 148 * 4}), ["silence"]),  # an engine without counters: estimated
        (_diagnosis({"tx_bytes": 148 * 4} | _counted()), ["idle"]),  # counters win over the estimate
        (_diagnosis(_counted(initiations_sent=2, cookie_replies_received=1)), ["cookie"]),
        (_diagnosis(_counted(initiations_sent=2, dropped={"invalid_handshake": 2})), ["psk"]),
        (_diagnosis(_counted(initiations_sent=2, dropped={"invalid_mac1": 1})), ["their-key"]),
        (_diagnosis({}, logs=["Failed to send 1 datagrams: Network is unreachable"]), ["no-route"]),
        (_diagnosis({"latest_handshake": NOW + 3600}), ["clock"]),
        (_diagnosis({"latest_handshake": NOW - 5}), []),
        (_diagnosis({"latest_handshake": NOW - 600}), ["stale"]),
        (
            _diagnosis({"latest_handshake": NOW - 5} | _counted(dropped={"source_not_allowed": 3})),
            ["allowed-ips"],
        ),
        (_diagnosis({}), ["idle"]),
        (_diagnosis({"endpoint": None}, findings=["the engine stopped: boom"]), ["no-endpoint", "helper"]),
        # the helper's per-peer findings are the same causes: not shown twice
        (
            _diagnosis({"endpoint": None}, findings=["peer xTIBA5rb…: This peer has no endpoint: …"]),
            ["no-endpoint"],
        ),
    ],
)
def test_doctor_names_the_cause(diagnosis: Diagnosis, codes: list[str]) -> None:
    assert [f.code for f in explain(diagnosis, NOW)] == codes


def test_doctor_reads_the_resolve_error_the_helper_reports() -> None:
    diagnosis = _diagnosis({"resolve_error": "Name or service not known", "endpoint_host": "vpn.example"})
    [evidence] = peer_evidence(diagnosis, NOW)
    assert [c.code for c in explain_peer(evidence)] == ["resolve"]
    [finding] = explain(diagnosis, NOW)
    assert finding.detail == (
        "The endpoint name vpn.example does not resolve any more (Name or service not known); still sending "
        "to 192.0.2.1:51820, the address it had before; check the host name in Endpoint and that DNS works "
        "without the tunnel."
    )


def test_a_malformed_diagnosis_is_one_clear_error() -> None:
    with pytest.raises(SnapshotError, match=r"tunnel 't'\.peers\[0\]\.counters\.initiations_sent"):
        _diagnosis(_counted(initiations_sent="3"))


def test_rates_from_counters() -> None:
    samples = [(0.0, 0, 0), (1.0, 1000, 500), (3.0, 5000, 500), (4.0, 100, 100)]  # last: counters reset
    assert rates(samples) == [(1.0, 1000.0, 500.0), (3.0, 2000.0, 0.0), (4.0, 0.0, 0.0)]


def test_icon_files_are_current() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        fresh = {p.name: p.read_text() for p in write_svgs(Path(d))}
    committed = {p.name: p.read_text() for p in (ROOT / "resources" / "icons").glob("wgdesk*.svg")}
    assert committed == fresh, "run: python -m wgdesk.app.icons resources/icons"


def test_state_icons_render_at_every_tray_size_and_differ(qapp) -> None:  # type: ignore[no-untyped-def]
    centres = {}
    for state in IconState:
        icon = state_icon(state)
        for size in SIZES:
            image = icon.pixmap(size, size).toImage()
            assert image.width() == size
            # opaque disc in the middle, transparent corners
            assert image.pixelColor(size // 2, size // 4).alpha() == 255
            assert image.pixelColor(0, 0).alpha() == 0
        image = icon.pixmap(64, 64).toImage()
        centres[state] = image.pixelColor(12, 32).name()  # the disc colour, left of the glyph
    assert centres == {
        IconState.DISCONNECTED: QColor("#6b7280").name(),
        IconState.CONNECTING: QColor("#d97706").name(),
        IconState.CONNECTED: QColor("#15803d").name(),
        IconState.ERROR: QColor("#dc2626").name(),
    }


def test_preferences_live_next_to_the_tunnels_even_with_a_relative_xdg_config_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the XDG spec says a relative $XDG_CONFIG_HOME is invalid and ignored (it would follow the cwd)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/config")
    monkeypatch.chdir(tmp_path)
    settings = AppSettings()
    settings.set_restore_tunnels(True)
    assert (tmp_path / "home" / ".config" / "wgdesk" / "wgdesk.conf").is_file()
    assert not (tmp_path / "relative").exists()
    assert settings.autostart_path() == tmp_path / "home" / ".config" / "autostart" / "wgdesk.desktop"
    assert default_directory() == tmp_path / "home" / ".config" / "wgdesk" / "tunnels"


def test_start_at_login_writes_and_removes_the_xdg_autostart_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    settings = AppSettings(QSettings(str(tmp_path / "wgdesk.conf"), QSettings.Format.IniFormat))
    entry = tmp_path / "autostart" / "wgdesk.desktop"
    assert settings.autostart_path() == entry
    assert not settings.start_at_login()
    settings.set_start_at_login(True)
    assert settings.start_at_login()
    text = entry.read_text()
    assert "Type=Application\n" in text and "--minimized" in text
    validate = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    settings.set_start_at_login(False)
    assert not entry.exists() and not settings.start_at_login()


def test_restore_settings_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "wgdesk.conf")
    a = AppSettings(QSettings(path, QSettings.Format.IniFormat))
    assert a.restore_tunnels() is False and a.last_connected() == []
    a.set_restore_tunnels(True)
    a.set_last_connected(["work", "home"])
    a.set_tunnel_option("home", "kill_switch", False)
    b = AppSettings(QSettings(path, QSettings.Format.IniFormat))
    assert b.restore_tunnels() is True
    assert b.last_connected() == ["home", "work"]
    assert b.tunnel_option("home", "kill_switch") is False
    assert b.tunnel_option("home", "full_tunnel") is None


def test_log_view_filters_and_formats(qtbot, controller) -> None:  # type: ignore[no-untyped-def]
    import time as _time

    from wgdesk.app.logview import LogView

    view = LogView(controller)
    qtbot.addWidget(view)
    t = _time.mktime((2026, 11, 25, 22, 1, 7, 0, 0, -1))
    view.add_entries(
        [
            {"time": t, "level": "info", "source": "helper", "message": "up: interface wg0"},
            {"time": t + 1, "level": "debug", "source": "engine", "message": "Sending handshake initiation"},
            {"time": t + 2, "level": "error", "source": "engine", "message": "Failed to send 1 datagrams"},
        ]
    )
    assert view.visible_lines() == [
        "2026-11-25 22:01:07 helper info     up: interface wg0",
        "2026-11-25 22:01:09 engine error    Failed to send 1 datagrams",
    ]
    view.level.setCurrentIndex(0)  # debug and above
    assert len(view.visible_lines()) == 3
    view.source.setCurrentIndex(2)  # engine only
    view.filter.setText("HANDSHAKE")
    assert view.visible_lines() == ["2026-11-25 22:01:08 engine debug    Sending handshake initiation"]
    assert view.text.toPlainText() == "2026-11-25 22:01:08 engine debug    Sending handshake initiation"
    view.add_entries([{"time": t + 3, "level": "info", "source": "engine", "message": "another handshake"}])
    assert len(view.visible_lines()) == 2
    assert view._since == t + 3  # the next fetch asks only for newer records


def test_desktop_entry_opens_files_with_wgdesk() -> None:
    entry = ROOT / "resources" / "wgdesk.desktop"
    result = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = entry.read_text().splitlines()
    assert "Exec=wgdesk %F" in lines
    assert "MimeType=application/x-wireguard-config;" in lines


def test_helper_advice_names_every_fix() -> None:
    from wgdesk.app.advice import helper_advice, helper_headline
    from wgdesk.client import HelperPermissionDenied, HelperUnavailable

    denied = HelperPermissionDenied("only root and members of group 'wgdesk' may control tunnels", "denied")
    assert helper_headline(denied) == "The wgdesk helper refused this user"
    assert helper_advice(denied) == (
        "The wgdesk helper refused this user: only root and members of group 'wgdesk' may control tunnels\n"
        "Fix: join the group 'wgdesk' (sudo usermod -aG wgdesk $USER), then log in again."
    )
    gone = HelperUnavailable("connection to the helper failed: Connection reset by peer", "unavailable")
    assert helper_headline(gone) == "The wgdesk helper is not running"
    assert helper_advice(gone) == (
        "Tunnels cannot be connected: connection to the helper failed: Connection reset by peer\n"
        "Fix: start the service: sudo systemctl enable --now wgdesk-helper\n"
        "Or, for this session only: systemctl start wgdesk-helper (asks for an administrator's password)"
    )


def test_start_at_login_on_macos_is_a_launch_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # macOS cannot run here: check the exact LaunchAgent file the code writes there
    import plistlib

    from wgdesk import platforms
    from wgdesk.app import autostart
    from wgdesk.platforms.darwin import DarwinPlatform

    monkeypatch.setattr(platforms, "backend", lambda: DarwinPlatform())
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path))
    monkeypatch.setattr(autostart, "launch_command", lambda: "/Applications/wgdesk.app/Contents/MacOS/wgdesk")
    s = AppSettings(QSettings(str(tmp_path / "wgdesk.conf"), QSettings.Format.IniFormat))
    agent = tmp_path / "Library" / "LaunchAgents" / "org.wgdesk.wgdesk.plist"
    assert s.autostart_path() == agent
    s.set_start_at_login(True)
    assert plistlib.loads(agent.read_bytes()) == {
        "Label": "org.wgdesk.wgdesk",
        "ProgramArguments": ["/Applications/wgdesk.app/Contents/MacOS/wgdesk", "--minimized"],
        "RunAtLoad": True,
    }
    assert s.start_at_login()
    s.set_start_at_login(False)
    assert not agent.exists()
