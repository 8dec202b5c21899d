"""The fuzz targets, one module each; ``TARGETS`` is the order `scripts/fuzz` runs them in."""

TARGETS = ("conf", "imports", "control", "uapi_request", "uapi_reply", "datagram")


class Finding(AssertionError):
    """An invariant of a target does not hold for this input."""


def check(ok: object, message: str) -> None:
    """Raise `Finding` with `message` unless `ok` (unlike ``assert``, not removed by ``python -O``)."""
    if not ok:
        raise Finding(message)
