"""How the engine moves packets between the TUN, `proto.Device` and UDP: two interchangeable paths.

* `PythonPath` — the reference: `Tun.read_batch` / `Bind.recv_batch` give lists of bytes to
  `Device.send_packets` / `receive_datagrams`; outputs go back through `Bind.send_batch` and
  `Tun.write_batch`.
* `CompiledPath` — the same steps with `wgdesk.fastpath._fastpath`: reads fill a batch arena in C
  (TSO/USO superframes split there), `Device.send_batch` / `receive_batch` take one decision per run
  and have it sealed or opened in place, and the outputs leave as runs (UDP GSO, coalesced TUN
  writes) without a Python object per packet.

Each runs with *offload* I/O (Linux: vnet-header TUN with TSO/USO on for the compiled path, UDP
GSO/GRO) or *portable* I/O (one packet per system call, no vnet header, as macOS and Windows run
it; forced on Linux by `WGDESK_PORTABLE=1`). The loop (`loop.Engine`) is the same for all four.

With portable I/O the compiled path also hands its sends and TUN writes to a `Writer`: a second
thread that makes those system calls without the GIL while the engine thread reads and seals or
opens the next batch (two batches per source take turns; one is refilled only when the writer is
done with it). There the kernel's work per system call is most of the time, and it now runs on two
cores. Results (send failures, a deleted interface) come back at the next flush.
"""

from __future__ import annotations

import socket
from types import ModuleType
from typing import TYPE_CHECKING, Any

from wgdesk.engine.bind import Bind
from wgdesk.engine.tun import Tun, TunGone
from wgdesk.proto.device import Device

if TYPE_CHECKING:
    from collections.abc import Callable

BATCH = 256
"""Most reads (Python: packets) from one source before the others get a turn."""

COMPILED_ARENA = 1 << 20
"""Bytes of one compiled batch (about seven 64 KiB TUN superframes, or 700 datagrams)."""

COMPILED_SLOTS = 2048


def _routed_back(packet: bytes, own_port: bytes) -> bool:
    """True for a packet from the TUN that is one of our own UDP datagrams, routed into the tunnel.

    That happens when a peer's endpoint is routed through this interface (the kernel implementation
    refuses such sends with "Avoiding routing loop"). Re-encrypting it would loop forever and, once
    it outgrows the MTU and fragments, multiply. Only our socket sends from our port in this
    namespace, so a UDP packet with that source port is ours. Non-first IPv4 fragments carry no port;
    they pass once and their encapsulation is caught on the next round.
    """
    if len(packet) < 48:
        return False
    version = packet[0] >> 4
    if version == 4:
        if packet[9] != 17 or packet[6] & 0x1F or packet[7]:
            return False
        ihl = (packet[0] & 0x0F) * 4
        return packet[ihl : ihl + 2] == own_port
    if version == 6:
        return packet[6] == 17 and packet[40:42] == own_port
    return False


class PythonPath:
    """The pure-Python data path (the reference)."""

    compiled = False

    def __init__(self, device: Device, tun: Tun, count_loop_drop: Callable[[int], None]) -> None:
        self.device = device
        self.tun = tun
        self.count_loop_drop = count_loop_drop

    def from_tun(self, bind: Bind, limit: int, now: float) -> bool:
        """Read up to `limit` packets and hand them to the device; False when nothing was read.
        Raises `TunGone`."""
        packets = self.tun.read_batch(limit)
        if not packets:
            return False
        own = bind.port.to_bytes(2, "big")
        # Cheap pre-filter: only packets with a UDP protocol byte (IPv4 [9], IPv6 [6]) are examined.
        kept = [p for p in packets if len(p) < 48 or (p[9] != 17 and p[6] != 17) or not _routed_back(p, own)]
        if len(kept) != len(packets):
            self.count_loop_drop(len(packets) - len(kept))
            if not kept:
                return False
        self.device.send_packets(kept, now)
        return True

    def from_udp(self, bind: Bind, sock: socket.socket, limit: int, now: float) -> bool:
        batch = Bind.recv_batch(sock, limit, bind.gro)
        if not batch:
            return False
        self.device.receive_datagrams(batch, now)
        return True

    def send(self, bind: Bind) -> int:
        """Send what the device queued; returns how many datagrams failed."""
        datagrams = self.device.datagrams_to_send()
        return bind.send_batch(datagrams) if datagrams else 0

    def write_tun(self) -> None:
        """Write what the device decrypted. Raises `TunGone`."""
        packets = self.device.packets_to_tun()
        if packets:
            self.tun.write_batch(packets)

    def drain(self, bind: Bind) -> None:
        """Finish every send and write handed over (before `bind` is closed or replaced)."""

    def close(self) -> None:
        """Stop what the path runs besides the engine's thread."""


class CompiledPath(PythonPath):
    """The compiled data path: batches in C arenas, sealed and opened in place; with `threaded`,
    sends and TUN writes on the module's `Writer` thread."""

    compiled = True

    def __init__(
        self,
        module: ModuleType,
        device: Device,
        tun: Tun,
        count_loop_drop: Callable[[int], None],
        threaded: bool = False,
    ) -> None:
        super().__init__(device, tun, count_loop_drop)
        self.fp = module
        turns = 2 if threaded else 1
        self.tun_batches = [module.Packets(COMPILED_ARENA, COMPILED_SLOTS) for _ in range(turns)]
        self.udp_batches = [module.Packets(COMPILED_ARENA, COMPILED_SLOTS) for _ in range(turns)]
        self._tun_turn = self._udp_turn = 0
        self.writer = module.Writer(tun.fd, tun.vnet_hdr, tun.af_header) if threaded else None
        self._routed_back = 0
        self._gone = 0

    def _take_turn(self, batches: list[Any], turn: int) -> Any:
        batch = batches[turn % len(batches)]
        if batch.in_flight:
            assert self.writer is not None
            self.writer.wait_idle(batch)
        return batch

    def from_tun(self, bind: Bind, limit: int, now: float) -> bool:
        self._tun_turn += 1
        batch = self._take_turn(self.tun_batches, self._tun_turn)
        tun = self.tun
        try:
            count, _ = self.fp.tun_read(tun.fd, batch, limit, tun.vnet_hdr, bind.port, tun.af_header)
        except OSError as exc:
            if exc.errno in tun.gone_errnos:
                raise TunGone(tun.name) from exc
            raise
        routed_back = sum(b.routed_back for b in self.tun_batches)
        if routed_back != self._routed_back:
            self.count_loop_drop(routed_back - self._routed_back)
            self._routed_back = routed_back
        if not count:
            return False
        self.device.send_batch(batch, now)
        return True

    def from_udp(self, bind: Bind, sock: socket.socket, limit: int, now: float) -> bool:
        self._udp_turn += 1
        batch = self._take_turn(self.udp_batches, self._udp_turn)
        if not self.fp.udp_recv(sock.fileno(), batch, limit, bind.gro):
            return False
        self.device.receive_batch(batch, now)
        return True

    def send(self, bind: Bind) -> int:
        items = self.device.take_datagrams()
        if not items:
            return 0
        fd4 = bind.sock4.fileno() if bind.sock4 is not None else -1
        fd6 = bind.sock6.fileno() if bind.sock6 is not None else -1
        if self.writer is not None:
            self.writer.submit_udp(fd4, fd6, items, bind.gso)
            return self._poll(bind)
        failed, error, bind.gso = self.fp.udp_send(fd4, fd6, items, bind.gso)
        if failed:
            bind.send_errors += failed
            bind.last_send_error = error
        return int(failed)

    def _poll(self, bind: Bind) -> int:
        """Take in what the writer reports: send failures (returned), GSO refused, TUN writes and
        a deleted interface (raised by the next `write_tun`)."""
        assert self.writer is not None
        failed, error, refused, writes, _, gone = self.writer.poll()
        if refused:
            bind.gso = False
        if failed:
            bind.send_errors += failed
            bind.last_send_error = error
        self.tun.writes += writes
        self._gone = self._gone or gone
        return int(failed)

    def write_tun(self) -> None:
        items = self.device.take_packets_to_tun()
        tun = self.tun
        if self.writer is not None:
            if items:
                self.writer.submit_tun(items)
            if self._gone:
                raise TunGone(tun.name)
            return
        if not items:
            return
        try:
            writes, _ = self.fp.tun_write(tun.fd, items, tun.vnet_hdr, tun.af_header)
        except OSError as exc:
            raise TunGone(tun.name) from exc
        tun.writes += writes

    def drain(self, bind: Bind) -> None:
        if self.writer is not None:
            self.writer.wait_idle(None)
            self._poll(bind)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def make_path(
    module: ModuleType | None,
    device: Device,
    tun: Tun,
    count_loop_drop: Callable[[int], None],
    threaded: bool = False,
) -> PythonPath:
    """The compiled path when `module` is given (with a writer thread when `threaded`), else the
    reference."""
    if module is None:
        return PythonPath(device, tun, count_loop_drop)
    return CompiledPath(module, device, tun, count_loop_drop, threaded)


__all__ = ["BATCH", "CompiledPath", "PythonPath", "make_path"]
