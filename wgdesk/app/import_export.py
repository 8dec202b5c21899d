"""Import and export dialogs: file chooser, clipboard, the import summary, export with or without keys,
and export to a phone as a QR code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QMimeData, Qt, QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QInputDialog, QLineEdit, QMessageBox, QWidget

from wgdesk.app import dialogs
from wgdesk.app.controller import TunnelController
from wgdesk.app.qr import QrDialog, tunnel_code
from wgdesk.config import ConfigError, is_interface_name, parse
from wgdesk.tunnels import MAX_CONF_BYTES

IMPORT_SUFFIXES = (".conf", ".zip")


def _tr(text: str) -> str:
    return QCoreApplication.translate("import", text)


def importable(paths: list[Path]) -> list[Path]:
    """The paths that look like tunnel files (``.conf`` or ``.zip``)."""
    return [p for p in paths if p.suffix.lower() in IMPORT_SUFFIXES]


def dropped_paths(mime: QMimeData) -> list[Path]:
    """Local ``.conf``/``.zip`` files in drag-and-drop data."""
    if not mime.hasUrls():
        return []
    return importable([Path(u.toLocalFile()) for u in mime.urls() if isinstance(u, QUrl) and u.isLocalFile()])


def ask_import_files(parent: QWidget | None) -> list[Path]:
    """The file dialog for "Import tunnel(s) from file…"."""
    files, _ = QFileDialog.getOpenFileNames(
        parent,
        _tr("Import tunnel(s) from file"),
        str(Path.home()),
        _tr("WireGuard configurations (*.conf *.zip);;All files (*)"),
    )
    return [Path(f) for f in files]


def _section(title: str, lines: list[str]) -> str:
    return title + "\n" + "\n".join("  " + line for line in lines)


def _rejection(source: str, reason: str) -> str:
    # parser errors already start with "SOURCE:LINE:"
    return (
        reason
        if reason.startswith(source)
        else _tr("{source}: {reason}").format(source=source, reason=reason)
    )


def summary_text(report: Any) -> str:
    """The import report as plain text: what was imported, renamed (and why) and rejected (and why)."""
    imported = list(report.imported)
    plain = [t for t in imported if t.renamed_from is None]
    renamed = [t for t in imported if t.renamed_from is not None]
    hooks = [t.name for t in imported if t.has_hooks]
    parts = []
    if plain:
        parts.append(
            _section(
                _tr("Imported:"),
                [_tr("{source} as {name}").format(source=t.source, name=t.name) for t in plain],
            )
        )
    if renamed:
        parts.append(
            _section(
                _tr("Renamed:"),
                [
                    _tr("{source} as {name} (not {old}: {reason})").format(
                        source=t.source, name=t.name, old=t.renamed_from, reason=t.rename_reason
                    )
                    for t in renamed
                ],
            )
        )
    if hooks:
        parts.append(
            _tr(
                "These tunnels contain PreUp/PostUp/PreDown/PostDown commands. They are kept but "
                "not run unless an administrator allows scripts: {names}"
            ).format(names=", ".join(hooks))
        )
    if report.rejected:
        parts.append(_section(_tr("Rejected:"), [_rejection(r.source, r.reason) for r in report.rejected]))
    return "\n\n".join(parts) if parts else _tr("Nothing was imported.")


def show_summary(parent: QWidget | None, report: Any) -> QMessageBox:
    """A non-blocking summary dialog (returned so tests can read it)."""
    rejected = bool(getattr(report, "rejected", ()))
    imported = len(list(getattr(report, "imported", ()) or ()))
    box = QMessageBox(
        QMessageBox.Icon.Warning if rejected else QMessageBox.Icon.Information,
        _tr("Import summary"),
        _tr("{n} tunnel(s) imported.").format(n=imported),
        QMessageBox.StandardButton.Ok,
        parent,
    )
    box.setObjectName("import-summary")
    box.setTextFormat(Qt.TextFormat.PlainText)  # file names and parser errors, never markup
    box.setModal(False)  # QMessageBox is application-modal by default, which would block the tray menu
    box.setInformativeText(summary_text(report))
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.show()
    return box


def suggest_name(existing: list[str], base: str = "wg") -> str:
    """The first free ``baseN`` interface name."""
    taken = set(existing)
    for i in range(100000):
        candidate = f"{base}{i}"
        if candidate not in taken:
            return candidate
    raise RuntimeError("no free tunnel name")


def ask_tunnel_name(parent: QWidget | None, controller: TunnelController, title: str) -> str | None:
    """Ask for a new tunnel name until it is a valid, unused interface name (None when cancelled)."""
    name = suggest_name(controller.library.names())
    while True:
        name, ok = QInputDialog.getText(
            parent,
            title,
            _tr("Tunnel name (letters, digits, _=+.-; at most 15):"),
            QLineEdit.EchoMode.Normal,
            name,
        )
        if not ok:
            return None
        name = name.strip()
        if not is_interface_name(name):
            dialogs.warn(parent, title, _tr("'{name}' is not a valid interface name.").format(name=name))
        elif name in controller.library.names():
            dialogs.warn(parent, title, _tr("A tunnel named '{name}' already exists.").format(name=name))
        else:
            return name


def import_clipboard(
    parent: QWidget | None, controller: TunnelController, text: str | None = None, name: str | None = None
) -> str | None:
    """Import the clipboard's ``.conf`` text as a new tunnel; returns the name, or None (and says why)."""
    text = QGuiApplication.clipboard().text() if text is None else text
    title = _tr("Import from clipboard")
    try:
        if len(text) > MAX_CONF_BYTES:  # parsed on the UI thread: bounded like a file
            raise ConfigError("clipboard", None, None, "larger than 1 MiB; not a tunnel config")
        parse(text, filename="clipboard")
    except ConfigError as exc:
        dialogs.warn(
            parent,
            title,
            _tr("The clipboard does not hold a valid tunnel configuration:\n{error}").format(error=exc),
        )
        return None
    name = name or ask_tunnel_name(parent, controller, title)
    if name is None:
        return None
    controller.library.save(name, text)
    return name


def export_tunnel(parent: QWidget | None, controller: TunnelController, name: str) -> None:
    """Ask where to save and whether to include the private key, then export."""
    path, _ = QFileDialog.getSaveFileName(
        parent,
        _tr("Export {name}").format(name=name),
        str(Path.home() / f"{name}.conf"),
        _tr("WireGuard configuration (*.conf)"),
    )
    if not path:
        return
    answer = dialogs.ask(
        parent,
        _tr("Include keys?"),
        _tr(
            "Include the private key and preshared keys in {path}?\n"
            "Anyone who reads that file can use this tunnel as you."
        ).format(path=path),
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    controller.library.export(name, Path(path), answer == dialogs.Button.Yes)


def show_qr(parent: QWidget | None, controller: TunnelController, name: str) -> QrDialog:
    """Show tunnel *name*, keys included, as a QR code for the WireGuard mobile apps (non-blocking;
    returned so tests can read it).

    The text is what "Export… with keys" writes (the store's export, read from the keyring and encoded
    on the controller's worker); the dialog gets only the code and forgets it when closed."""
    dialog = QrDialog(name, parent)
    store = controller.library.store
    controller.runner.submit(lambda: tunnel_code(store, name), dialog.show_code, dialog.show_error)
    dialog.show()
    return dialog
