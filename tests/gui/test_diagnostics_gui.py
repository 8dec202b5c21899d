"""*Save diagnostics…* in the manager window: a real store and Secret Service, no helper running; the
file dialog (the OS boundary) is replaced by the path the user would pick."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu, QMessageBox

from tests.gui.conftest import OFFICE, PEER_KEY, PRIVATE_KEY, PUBLIC_KEY, wait_idle
from wgdesk.app.manager import ManagerWindow

pytestmark = pytest.mark.gui


def _pick(monkeypatch: pytest.MonkeyPatch, path: str, asked: list[tuple[str, str]]) -> None:
    def dialog(parent, caption, directory, filter_="", *args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append((caption, directory))
        return path, filter_

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(dialog))


def _add_office(qtbot, manager: ManagerWindow) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(manager.controller.library.tunnelsChanged, timeout=15000):
        manager.controller.library.save("office", OFFICE)


def test_save_diagnostics_writes_the_bundle_off_the_ui_thread_and_says_where(
    qtbot, manager: ManagerWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_office(qtbot, manager)
    target = tmp_path / "report.zip"
    asked: list[tuple[str, str]] = []
    _pick(monkeypatch, str(target), asked)
    menus = [m for m in manager.findChildren(QMenu) if manager.diagnostics_action in m.actions()]
    assert [m.title() for m in menus] == ["&Tunnels"]
    assert manager.diagnostics_action.text() == "Save dia&gnostics…"
    manager.diagnostics_action.trigger()
    # the collection runs on the controller's worker: the action waits for it, the window does not
    assert not manager.diagnostics_action.isEnabled()
    wait_idle(qtbot, manager.controller, 30000)
    assert asked and asked[0][0] == "Save diagnostics"
    assert Path(asked[0][1]).name.startswith("wgdesk-diagnostics-")
    box = manager.last_diagnostics
    assert box is not None and box.isVisible() and not box.isModal()
    assert box.icon() == QMessageBox.Icon.Information
    assert box.text().startswith(f"Diagnostics saved to {target}.")
    assert box.informativeText().startswith("1 tunnel(s), helper unreachable,")
    assert manager.diagnostics_action.isEnabled()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with zipfile.ZipFile(io.BytesIO(target.read_bytes())) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    assert "tunnels/office.conf" in files and "helper/unreachable.txt" in files
    assert b"not running" in files["helper/unreachable.txt"]
    everything = b"".join(files.values())
    for key in (PRIVATE_KEY, PUBLIC_KEY, PEER_KEY):
        assert key.encode() not in everything and key[:43].encode() not in everything
    assert b"192.0.2.1" not in everything  # the endpoint: a public (documentation) address


def test_a_bundle_that_cannot_be_written_is_reported_and_a_cancel_does_nothing(
    qtbot, manager: ManagerWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, str]] = []
    _pick(monkeypatch, "", asked)  # the user pressed Cancel
    manager.diagnostics_action.trigger()
    assert asked and not manager.controller.runner.busy and manager.last_diagnostics is None

    target = tmp_path / "missing-dir" / "report.zip"
    _pick(monkeypatch, str(target), asked)
    manager.diagnostics_action.trigger()
    wait_idle(qtbot, manager.controller, 30000)
    failures = [w for w in QApplication.topLevelWidgets() if w.objectName() == "failure" and w.isVisible()]
    failures += [w for w in manager.findChildren(QMessageBox, "failure") if w.isVisible()]
    assert failures
    box = failures[0]
    assert isinstance(box, QMessageBox)
    assert box.windowTitle() == "Diagnostics not saved"
    assert box.text() == f"{target}: No such file or directory"
    assert not target.exists() and manager.last_diagnostics is None
    assert manager.diagnostics_action.isEnabled()
