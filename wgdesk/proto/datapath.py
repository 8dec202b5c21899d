"""The seam between `Device` and a compiled data path (`wgdesk.fastpath._fastpath`).

The device stays the only place where protocol decisions are taken. A compiled data path only
seals or opens *runs* of packets with a keypair the device chose, in a batch it owns; the device
reads back counters and per-packet states and does the bookkeeping (timers, rekeys, drops and
their events, rx/tx bytes) once per run, exactly as the pure-Python loop does it per packet.
proto imports no compiled code: the engine injects the module into `Device(datapath=...)`.
These Protocols are that module's interface as the device uses it.
"""

from __future__ import annotations

from typing import Any, Protocol

from wgdesk.proto.changes import Endpoint


class Aead(Protocol):
    """ChaCha20-Poly1305 for one direction; the same calls as cryptography's ChaCha20Poly1305."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...
    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


class Run(Protocol):
    """Packets start..end of a batch after `seal` (datagrams) or `open` (IP packets)."""

    nbytes: int

    def packets(self) -> list[bytes]: ...


class Batch(Protocol):
    """Packets read in one go (from the TUN, or datagrams from UDP with their sources)."""

    def __len__(self) -> int: ...
    def packet(self, index: int) -> bytes: ...
    def status(self, index: int) -> int: ...
    def wire_len(self, index: int) -> int: ...
    def inner_source(self, index: int) -> bytes | None: ...
    def drop(self, index: int) -> None: ...
    def routes(self, mtu: int) -> list[tuple[bytes | None, int, int]]: ...
    def sessions(self) -> tuple[int, list[tuple[int, Endpoint, int, int]]]: ...


class DataPath(Protocol):
    """The compiled module, as far as `Device` uses it."""

    ST_EXPIRED: int
    ST_BADTAG: int
    ST_REPLAYED: int
    ST_KEEPALIVE: int
    ST_DATA: int
    ST_BADINNER: int

    def Aead(self, key: bytes) -> Any: ...
    def ReplayWindow(self) -> Any: ...
    def seal(
        self, aead: Any, batch: Batch, start: int, end: int, counter: int, mtu: int, header_prefix: bytes
    ) -> Run: ...
    def open(
        self, aead: Any, replay: Any, batch: Batch, start: int, end: int
    ) -> tuple[Run, int, int, int, bytes | None]: ...


__all__ = ["Aead", "Batch", "DataPath", "Run"]
