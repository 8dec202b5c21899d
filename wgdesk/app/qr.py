"""A tunnel's full configuration as a QR code, for the WireGuard mobile apps to scan.

The code holds the tunnel's private (and preshared) keys: that is what lets a phone import the tunnel, and
why the dialog says so in plain words. The ``.conf`` text comes from the same code path as "Export… with
keys" (:meth:`wgdesk.tunnels.TunnelStore.export`) and is encoded on the controller's worker
(:func:`tunnel_code`): the dialog only ever gets the code's module matrix, never the text, and drops the
matrix when it closes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import segno
from PySide6.QtCore import QCoreApplication, QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

# Level M (15 % of the code may be unreadable) copes with glare and moiré from a phone camera filming a
# screen; segno raises the level further when that needs no larger code.
ERROR_LEVEL = "m"
# Bytes a version-40 code (177 x 177 modules, the largest there is) holds in byte mode at level M.
MAX_QR_BYTES = 2331
# The light margin around the code, in modules: the four the QR standard asks for.
QUIET_ZONE = 4
# Below this many pixels per module phone cameras struggle to resolve a code on a screen.
MIN_MODULE_PX = 2
# The dialog opens with at least this many pixels per module.
PREFERRED_MODULE_PX = 3
# The dialog opens with the code about this wide (pixels), modules permitting.
PREFERRED_PX = 480

Matrix = Sequence[Sequence[int]]

if TYPE_CHECKING:
    from wgdesk.tunnels import TunnelStore


def _tr(text: str) -> str:
    return QCoreApplication.translate("qr", text)


class CodeTooLarge(ValueError):
    """The text does not fit in any QR code at the chosen error-correction level."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes do not fit in a QR code (at most {MAX_QR_BYTES})")
        self.size = size


def qr_matrix(text: str) -> tuple[bytearray, ...]:
    """The QR code for *text* (UTF-8, byte mode) as rows of modules, 1 = dark, without the quiet zone.

    Raises:
        CodeTooLarge: when the text is longer than the largest QR code holds (:data:`MAX_QR_BYTES`).
    """
    data = text.encode("utf-8")
    if len(data) > MAX_QR_BYTES:
        raise CodeTooLarge(len(data))
    try:
        code = segno.make(data, error=ERROR_LEVEL, mode="byte", micro=False)
    except segno.DataOverflowError as exc:  # the constant above and segno disagree: still say so clearly
        raise CodeTooLarge(len(data)) from exc
    return tuple(bytearray(row) for row in code.matrix)


def tunnel_code(store: TunnelStore, name: str) -> tuple[bytearray, ...]:
    """The QR code of tunnel *name* with its keys: what "Export… with keys" writes, encoded.

    Reads the keyring and takes up to ~0.1 s for the largest code: run it on a worker.

    Raises:
        CodeTooLarge: when the configuration does not fit in a QR code.
    """
    return qr_matrix(store.export(name, with_secrets=True))


def code_image(matrix: Matrix) -> QImage:
    """The code at one pixel per module, quiet zone included: black on white whatever the theme, since
    scanners expect dark modules on a light ground."""
    size = len(matrix) + 2 * QUIET_ZONE
    image = QImage(size, size, QImage.Format.Format_Grayscale8)
    image.fill(QColor(Qt.GlobalColor.white))
    black = QColor(Qt.GlobalColor.black).rgb()
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                image.setPixel(x + QUIET_ZONE, y + QUIET_ZONE, black)
    return image


class CodeView(QWidget):
    """Paints a QR matrix at a whole number of pixels per module (sharp edges at any size), centred."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("qr-code")
        self._image: QImage | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_matrix(self, matrix: Matrix | None) -> None:
        """Show *matrix*, or nothing (None)."""
        self._image = code_image(matrix) if matrix is not None else None
        self.updateGeometry()
        self.update()

    def has_code(self) -> bool:
        """Whether a code is set."""
        return self._image is not None

    def modules(self) -> int:
        """Width of the code in modules, quiet zone included (0 when empty)."""
        return self._image.width() if self._image is not None else 0

    def module_px(self) -> int:
        """Pixels per module at the current size."""
        n = self.modules()
        return max(1, min(self.width(), self.height()) // n) if n else 0

    def minimumSizeHint(self) -> QSize:
        side = self.modules() * MIN_MODULE_PX
        return QSize(side, side)

    def sizeHint(self) -> QSize:
        n = self.modules()
        if not n:
            return QSize(0, 0)
        side = n * max(PREFERRED_MODULE_PX, PREFERRED_PX // n)
        return QSize(side, side)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(Qt.GlobalColor.white))
        if self._image is not None:
            side = self.modules() * self.module_px()
            target = QRect((self.width() - side) // 2, (self.height() - side) // 2, side, side)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)  # nearest neighbour
            painter.drawImage(target, self._image)
        painter.end()


class QrDialog(QDialog):
    """The "Show as QR code" dialog of one tunnel: the warning, the code (or why there is none), buttons."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("qr-dialog")
        self.setWindowTitle(_tr("QR code for {name}").format(name=name))
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._closed = False

        self.warning = QLabel(
            _tr("This code contains the tunnel's private key. Anyone who scans it can use the tunnel as you.")
        )
        self.warning.setObjectName("qr-warning")
        self.warning.setTextFormat(Qt.TextFormat.PlainText)
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("font-weight: bold")

        self.message = QLabel(_tr("Reading {name} from the keyring…").format(name=name))
        self.message.setObjectName("qr-message")
        self.message.setTextFormat(Qt.TextFormat.PlainText)  # errors quote file and keyring text
        self.message.setWordWrap(True)

        self.view = CodeView(self)
        self.view.hide()

        self.hint = QLabel(_tr("In the WireGuard app on the phone: add a tunnel, then “Scan from QR code”."))
        self.hint.setTextFormat(Qt.TextFormat.PlainText)
        self.hint.setWordWrap(True)
        self.hint.hide()

        self.hide_button = QPushButton(_tr("&Hide code"))
        self.hide_button.setObjectName("qr-hide")
        self.hide_button.setCheckable(True)
        self.hide_button.setEnabled(False)
        self.hide_button.toggled.connect(self._set_hidden)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.hide_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.close_button = buttons.button(QDialogButtonBox.StandardButton.Close)

        layout = QVBoxLayout(self)
        layout.addWidget(self.warning)
        layout.addWidget(self.message)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.hint)
        layout.addWidget(buttons)

    def show_code(self, matrix: object) -> None:
        """Show the code (rows of modules from :func:`qr_matrix`)."""
        if self._closed or not isinstance(matrix, tuple):
            return
        self.message.hide()
        self.view.set_matrix(matrix)
        self.view.show()
        self.hint.show()
        self.hide_button.setEnabled(True)
        self.adjustSize()

    def show_error(self, exc: object) -> None:
        """Say why there is no code: too large for one, or the tunnel could not be read."""
        if self._closed:
            return
        if isinstance(exc, CodeTooLarge):
            text = _tr(
                "This tunnel's configuration is too large for a QR code ({size} bytes; a QR code "
                "holds at most {limit}). Export it to a file instead."
            ).format(size=exc.size, limit=MAX_QR_BYTES)
        else:
            text = _tr("Could not read the tunnel: {error}").format(error=exc)
        self.message.setText(text)
        self.message.show()

    def _set_hidden(self, hidden: bool) -> None:
        self.view.setVisible(not hidden)
        self.hide_button.setText(_tr("&Show code") if hidden else _tr("&Hide code"))

    def done(self, result: int) -> None:
        """Close, and forget the code: nothing of the key outlives the dialog."""
        self._closed = True
        self.view.set_matrix(None)
        super().done(result)
