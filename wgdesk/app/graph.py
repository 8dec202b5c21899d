"""A live throughput graph (received and sent bytes per second over the last minutes), drawn with QPainter."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from wgdesk.app import units

RX_COLOUR = QColor("#16a34a")
TX_COLOUR = QColor("#2563eb")


def rates(samples: Sequence[tuple[float, int, int]]) -> list[tuple[float, float, float]]:
    """Counter samples ``(t, rx, tx)`` → ``(t, rx/s, tx/s)`` per interval; a counter reset counts as 0."""
    out = []
    for (t0, rx0, tx0), (t1, rx1, tx1) in pairwise(samples):
        dt = t1 - t0
        if dt <= 0:
            continue
        out.append((t1, max(0, rx1 - rx0) / dt, max(0, tx1 - tx0) / dt))
    return out


class ThroughputGraph(QWidget):
    """Two lines (received, sent) over the last minutes; the y-axis scales to the highest rate shown.

    The time axis spans the data it has, at least *min_seconds* and at most *window_seconds*, so a young
    tunnel's graph is not a sliver at the right edge."""

    def __init__(
        self, window_seconds: float = 300.0, min_seconds: float = 30.0, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._window = window_seconds
        self._min = min_seconds
        self._points: list[tuple[float, float, float]] = []
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setAccessibleName(self.tr("Throughput graph"))

    def sizeHint(self) -> QSize:
        return QSize(360, 110)

    def set_samples(self, samples: Sequence[tuple[float, int, int]]) -> None:
        """Replace the data with counter samples ``(monotonic t, rx bytes, tx bytes)``."""
        self._points = rates(samples)
        if self._points:
            rx, tx = self._points[-1][1], self._points[-1][2]
            self.setToolTip(self.tr("received {rx}, sent {tx}").format(rx=units.rate(rx), tx=units.rate(tx)))
        self.update()

    @property
    def peak(self) -> float:
        """The highest rate in the window (bytes/s)."""
        return max((max(rx, tx) for _, rx, tx in self._points), default=0.0)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        area = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        painter.fillRect(area, pal.color(QPalette.ColorRole.Base))
        grid = QColor(pal.color(QPalette.ColorRole.Text))
        grid.setAlpha(40)
        painter.setPen(QPen(grid, 1))
        for i in range(1, 4):
            y = area.top() + area.height() * i / 4
            painter.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
        painter.drawRect(area)
        peak = max(self.peak, 1024.0)
        text = pal.color(QPalette.ColorRole.Text)
        painter.setPen(text)
        label_h = painter.fontMetrics().height()
        painter.drawText(
            area.adjusted(4, 2, -4, 0),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
            units.rate(peak),
        )
        right = area.right() - 4
        for word, colour in ((self.tr("▬ sent"), TX_COLOUR), (self.tr("▬ received"), RX_COLOUR)):
            width = painter.fontMetrics().horizontalAdvance(word)
            painter.setPen(colour)
            painter.drawText(QPointF(right - width, area.top() + 2 + painter.fontMetrics().ascent()), word)
            right -= width + 12
        painter.setPen(text)
        plot = area.adjusted(2, label_h + 4, -2, -2)
        if not self._points:
            painter.drawText(plot, Qt.AlignmentFlag.AlignCenter, self.tr("no traffic data yet"))
            return
        end = self._points[-1][0]
        span = min(self._window, max(self._min, end - self._points[0][0]))
        for column, colour in ((1, RX_COLOUR), (2, TX_COLOUR)):
            path = QPainterPath()
            for i, point in enumerate(self._points):
                x = plot.right() - (end - point[0]) / span * plot.width()
                if x < plot.left():
                    continue
                y = plot.bottom() - point[column] / peak * plot.height()
                if path.elementCount() == 0 or i == 0:
                    path.moveTo(x, y)
                else:
                    path.lineTo(x, y)
            if column == 1 and path.elementCount() > 1:  # received is filled: equal rates stay visible
                area_path = QPainterPath(path)
                area_path.lineTo(path.currentPosition().x(), plot.bottom())
                area_path.lineTo(path.elementAt(0).x, plot.bottom())
                area_path.closeSubpath()
                fill = QColor(colour)
                fill.setAlpha(60)
                painter.fillPath(area_path, fill)
            painter.setPen(QPen(colour, 2))
            painter.drawPath(path)
        painter.end()
