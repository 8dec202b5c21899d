"""Timer bookkeeping of a server `Device` with many peers: µs per `get_timer()` and per `handle_timer()`.

A server device holds N peers, each with an established session (real handshakes with N client
devices whose PersistentKeepalive is 25 s). Then, batch after batch, a few peers are active
(`--touched`, default 16 per batch, drawn from a window of N/10 peers that slides over all of them
during the run; each sends `--per-peer` packets of 1420 bytes, default 4, and the server answers
about half of them). The simulated clock moves `--dt` (default 10 ms) per batch, 60 s in all, and
the server is driven as the engine drives it: `get_timer()` after every batch, `handle_timer(now)`
when the deadline has passed. Peers that leave the window go idle, so passive keepalives,
new-handshake timers and the clients' keepalives come due, a few peers at a time; the clients' own
timers run when due and their output joins the next batch.

Printed per N: mean µs per get_timer() call (after every batch and every handle_timer), per
handle_timer() call (including the timer actions it runs, mostly one keepalive), the peers handled
per call, and the timer cost per data packet next to the data path's own cost per packet.
Only the server's calls are timed. Hold the shared lock:

Run: flock /tmp/wgdesk-bench.lock .venv/bin/python benchmarks/timers.py [--peers 1,50,500,5000]
"""

from __future__ import annotations

import argparse
import heapq
import ipaddress
import os
import random
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wgdesk.proto import Device, DeviceChange, PeerChange
from wgdesk.proto.keys import generate_private_key, public_key

SERVER = ("192.0.2.1", 51820)
SERVER_INNER = "172.16.0.1"
SIZE = 1420
KEEPALIVE = 25  # the clients' PersistentKeepalive, as road-warrior configs set it


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def wall(self) -> float:
        return 1.7e9 + self.now


def ip_packet(src: str, dst: str, size: int = SIZE) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, size, 0, 0, 64, 17, 0,
        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed,
    )  # fmt: skip
    return header + bytes(size - 20)


def client_inner(i: int) -> str:
    return str(ipaddress.IPv4Address("10.0.0.1") + i)


def client_addr(i: int) -> tuple[str, int]:
    return (f"198.51.{(i >> 8) & 255}.{i & 255}", 40000 + (i >> 16))


class Server:
    """A server device and N client devices with established sessions."""

    def __init__(self, n: int, clock: Clock) -> None:
        self.clock = clock
        key = generate_private_key(os.urandom)
        keys = [generate_private_key(os.urandom) for _ in range(n)]
        self.device = Device(os.urandom, clock.wall)
        self.device.apply(
            DeviceChange(
                private_key=key,
                peers=tuple(
                    PeerChange(
                        public_key(k),
                        endpoint=client_addr(i),
                        allowed_ips=(ipaddress.ip_network(f"{client_inner(i)}/32"),),
                    )
                    for i, k in enumerate(keys)
                ),
            ),
            clock.now,
        )
        self.clients: list[Device] = []
        for k in keys:
            client = Device(os.urandom, clock.wall)
            client.apply(
                DeviceChange(
                    private_key=k,
                    peers=(
                        PeerChange(
                            public_key(key),
                            endpoint=SERVER,
                            persistent_keepalive=KEEPALIVE,
                            allowed_ips=(ipaddress.ip_network(f"{SERVER_INNER}/32"),),
                        ),
                    ),
                ),
                clock.now,
            )
            self.clients.append(client)
        for start in range(0, n, 100):  # under the device's under-load threshold of 128 pending
            group = range(start, min(n, start + 100))
            inits = []
            for i in group:
                self.clients[i].send_packet(ip_packet(client_inner(i), SERVER_INNER, 100), clock.now)
                inits += [(d, client_addr(i)) for d, _ in self.clients[i].datagrams_to_send()]
            self.device.receive_datagrams(inits, clock.now)
            for data, addr in self.device.datagrams_to_send():
                i = self.index(addr)
                self.clients[i].receive_datagram(data, SERVER, clock.now)
            confirm = []
            for i in group:
                confirm += [(d, client_addr(i)) for d, _ in self.clients[i].datagrams_to_send()]
            self.device.receive_datagrams(confirm, clock.now)
        self.device.datagrams_to_send()
        self.device.packets_to_tun()
        list(iter(self.device.next_event, None))
        assert all(p.keypairs.current is not None for p in self.device.peers.values()), "handshakes failed"

    @staticmethod
    def index(addr: tuple[str, int]) -> int:
        a, b = (int(x) for x in addr[0].split(".")[2:])
        return ((addr[1] - 40000) << 16) | (a << 8) | b


class Clients:
    """The clients' side: their timers run when due (keepalives, rekeys), their output is queued."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.heap: list[tuple[float, int]] = []
        self.outbox: list[tuple[bytes, tuple[str, int]]] = []

    def collect(self, i: int) -> None:
        client = self.server.clients[i]
        self.outbox += [(d, client_addr(i)) for d, _ in client.datagrams_to_send()]
        client.packets_to_tun()
        list(iter(client.next_event, None))
        deadline = client.get_timer()
        if deadline is not None:
            heapq.heappush(self.heap, (deadline, i))

    def run_timers(self, now: float) -> None:
        heap = self.heap
        while heap and heap[0][0] <= now:
            deadline, i = heapq.heappop(heap)
            client = self.server.clients[i]
            if client.get_timer() == deadline:  # else superseded by a later entry
                client.handle_timer(now)
                self.collect(i)

    def take(self) -> list[tuple[bytes, tuple[str, int]]]:
        out, self.outbox = self.outbox, []
        return out


def run(n: int, batches: int, touched: int, per_peer: int, dt: float, seed: int) -> dict[str, float]:
    clock = Clock()
    server = Server(n, clock)
    dev = server.device
    clients = Clients(server)
    rnd = random.Random(seed)
    to_server = [ip_packet(client_inner(i), SERVER_INNER) for i in range(n)]
    to_client = [ip_packet(SERVER_INNER, client_inner(i)) for i in range(n)]
    window = min(n, max(touched, n // 10))
    get_t = handle_t = data_t = 0.0
    handle_calls = handled = packets = 0
    get_calls = batches
    perf = time.perf_counter
    for b in range(batches):
        clock.now += dt
        now = clock.now
        clients.run_timers(now)
        # the active peers come from a window that slides over all peers: peers that leave it go idle
        first = b * n // batches
        active = [(first + j) % n for j in rnd.sample(range(window), min(touched, window))]
        for i in active:
            server.clients[i].send_packets([to_server[i]] * per_peer, now)
            clients.collect(i)
        batch = clients.take()
        replies = [to_client[i] for i in active if rnd.random() < 0.5 for _ in range(per_peer)]
        t0 = perf()
        dev.receive_datagrams(batch, now)
        dev.send_packets(replies, now)
        t1 = perf()
        deadline = dev.get_timer()
        t2 = perf()
        data_t += t1 - t0
        get_t += t2 - t1
        packets += len(batch) + len(replies)
        if deadline is not None and now >= deadline:
            due = sum(
                1 for p in dev.peers.values() if (d := p.timers.next_deadline()) is not None and d <= now
            )
            t3 = perf()
            dev.handle_timer(now)
            t4 = perf()
            dev.get_timer()
            get_t += perf() - t4
            get_calls += 1
            handle_t += t4 - t3
            handle_calls += 1
            handled += due
        for data, addr in dev.datagrams_to_send():
            i = server.index(addr)
            server.clients[i].receive_datagram(data, SERVER, now)
            clients.collect(i)
        dev.packets_to_tun()
        list(iter(dev.next_event, None))
    return {
        "get_us": get_t / get_calls * 1e6,
        "handle_us": handle_t / handle_calls * 1e6 if handle_calls else 0.0,
        "handle_calls": handle_calls,
        "handled_per_call": handled / handle_calls if handle_calls else 0.0,
        "timer_us_per_packet": (get_t + handle_t) / packets * 1e6,
        "data_us_per_packet": data_t / packets * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", default="1,50,500,5000", help="comma-separated peer counts")
    ap.add_argument("--batches", type=int, default=6000)
    ap.add_argument("--touched", type=int, default=16, help="peers active per batch")
    ap.add_argument("--per-peer", type=int, default=4, help="packets each active peer sends per batch")
    ap.add_argument("--dt", type=float, default=0.01, help="simulated seconds per batch")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(
        f"{args.batches} batches, {args.touched} active peers x {args.per_peer} packets of {SIZE} B per "
        f"batch, {args.dt * 1000:g} ms simulated per batch"
    )
    print(
        f"{'peers':>6} {'get_timer µs':>13} {'handle_timer µs':>16} {'calls':>6} {'peers/call':>11}"
        f" {'timer µs/pkt':>13} {'data µs/pkt':>12}"
    )
    for n in (int(x) for x in args.peers.split(",")):
        r = run(n, args.batches, args.touched, args.per_peer, args.dt, args.seed)
        print(
            f"{n:>6} {r['get_us']:>13.2f} {r['handle_us']:>16.2f} {r['handle_calls']:>6.0f}"
            f" {r['handled_per_call']:>11.2f} {r['timer_us_per_packet']:>13.3f}"
            f" {r['data_us_per_packet']:>12.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
