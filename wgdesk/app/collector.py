"""Python's cycle collector, run only on the UI thread.

CPython collects cyclic garbage on whichever thread happens to allocate past the threshold, and then
destroys the Qt objects in those cycles on that thread. A QObject destroyed on a worker thread while the UI
thread holds the GIL inside Qt can deadlock: the worker holds Qt's signal-slot lock and waits for the GIL,
the UI thread holds the GIL and waits for that lock. (Seen as a 20-minute hang in the GUI tests, with a
stopped controller collected on a keyring worker.) So the app turns automatic collection off and collects
from a UI-thread timer instead, by the same generation thresholds.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class UiThreadCollector(QObject):
    """While it runs, cyclic garbage is collected only on the thread that created it (the UI thread)."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.collect_due)
        self.timer.start()

    def collect_due(self) -> int | None:
        """Collect the oldest generation whose count passed its threshold; the generation, or None."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        for generation in (2, 1, 0):
            if (
                generation < len(counts)
                and thresholds[generation]
                and counts[generation] > thresholds[generation]
            ):
                gc.collect(generation)
                return generation
        return None

    def stop(self) -> None:
        """Back to CPython's automatic collection (as it was before)."""
        self.timer.stop()
        if self._was_enabled:
            gc.enable()
