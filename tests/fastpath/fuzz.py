"""Fuzz target for the compiled module's input parsing, under AddressSanitizer (+ UBSan).

Builds `_fastpath.c` with `-fsanitize=address,undefined` into a temporary directory and, in a
child process with libasan preloaded, feeds it random and mutated inputs through every function
that parses bytes it did not write itself:

* `tun_read` with a vnet header (superframes: TSO/USO splitting, checksum completion), without one,
  and with macOS's 4-byte address family — frames go through a datagram socket pair;
* `Packets.sessions` and `open` over datagrams (transport messages sealed with a key the target
  knows, so mutated plaintexts reach the inner-header checks, plus raw mutations and garbage);
* `Packets.routes` and `seal` (every MTU, including 0) over mutated IP packets;
* `tun_write` coalescing over mutated TCP segments (to a socket pair, drained), also through the
  `Writer` thread.

A crash, a sanitizer report or an exception other than the expected ones fails the run. Each frame,
datagram or packet handed over counts as one input.

Run: .venv/bin/python -m tests.fastpath.fuzz [--inputs 1000000] [--seed N]
(scripts/fuzz-fastpath does the same); tests/fastpath/test_fuzz.py runs a short budget.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import random
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "wgdesk" / "fastpath" / "_fastpath.c"
CC = os.environ.get("CC", "gcc")
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]


def build(outdir: Path) -> Path:
    """Compile the module with the sanitizers; returns the shared object."""
    out = outdir / ("_fastpath" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    subprocess.run(
        [CC, "-shared", "-fPIC", "-O1", "-g", *SANITIZE, f"-I{sysconfig.get_paths()['include']}",
         str(SOURCE), "-lcrypto", "-o", str(out)],
        check=True,
    )  # fmt: skip
    return out


def libasan() -> str:
    return subprocess.run(
        [CC, "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()


def load(path: Path) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader("_fastpath", str(path))
    spec = importlib.util.spec_from_file_location("_fastpath", path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    from cryptography.exceptions import InvalidTag

    module.set_invalid_tag(InvalidTag)
    return module


# --- inputs ---------------------------------------------------------------------------------------

VNET = struct.Struct("=BBHHHH")
KEY = bytes(range(32))
PREFIX = b"\x04\0\0\0\x2a\0\0\0"


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((0, 1, 1, 2, 4, 16))):
        op = rng.random()
        if op < 0.5 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.65 and b:
            del b[rng.randrange(len(b)) :]
        elif op < 0.8:
            b[rng.randrange(len(b) + 1) : 0] = rng.randbytes(rng.randrange(1, 40))
        elif b:
            i = rng.randrange(len(b))
            b[i : i + 2] = rng.choice((b"\xff\xff", b"\0\0", b"\x80\0", b"\x05\xdc"))
    return bytes(b)


def ip_packet(rng: random.Random) -> bytes:
    version = rng.choice((4, 6))
    proto = rng.choice((6, 17, 1))
    size = rng.choice((0, 1, 8, 20, 100, 1380, 4000, 30000, 65000))
    l4 = struct.pack("!HHIIBBHHH", rng.randrange(65536), 5201, rng.getrandbits(32), 1, 0x50, 0x10, 9, 0, 0)
    body = l4 + rng.randbytes(size)
    if version == 4:
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, min(65535, 20 + len(body)), 1, 0, 64, proto, 0,
                           rng.randbytes(4), rng.randbytes(4))  # fmt: skip
    else:
        head = struct.pack(
            "!IHBB16s16s", 6 << 28, min(65535, len(body)), proto, 64, rng.randbytes(16), rng.randbytes(16)
        )
    return (head + body)[:65535]


def superframe(rng: random.Random) -> bytes:
    packet = ip_packet(rng)
    ip_len = 20 if packet[0] >> 4 == 4 else 40
    gso = rng.choice((0, 1, 3, 4, 5, 0x81, rng.randrange(256)))
    flags = rng.choice((0, 1, 2, 3))
    header = VNET.pack(
        flags,
        gso,
        rng.choice((0, ip_len + 20, rng.randrange(65536))),
        rng.choice((0, 1, 7, 1380, 65535, rng.randrange(65536))),
        rng.choice((ip_len, 0, rng.randrange(65536))),
        rng.choice((16, 6, rng.randrange(65536))),
    )
    frame = header + packet
    return mutate(rng, frame)[: 65535 + 10]


def transport(rng: random.Random, aead: object, counter: int) -> bytes:
    plain = mutate(rng, ip_packet(rng)[: rng.choice((0, 20, 40, 60, 1420, 2000))])
    nonce_ctr = struct.pack("<Q", counter)
    sealed = aead.encrypt(b"\0\0\0\0" + nonce_ctr, plain, None)  # type: ignore[attr-defined]
    data = PREFIX + nonce_ctr + sealed
    return mutate(rng, data) if rng.random() < 0.3 else data


# --- the driver -----------------------------------------------------------------------------------


def drive(fp: ModuleType, inputs: int, seed: int) -> int:
    rng = random.Random(seed)
    done = 0
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 23)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 23)
    b.setblocking(False)
    tun_batch = fp.Packets(1 << 20, 2048)
    udp_batch = fp.Packets(1 << 20, 2048)
    aead = fp.Aead(KEY)
    writer = fp.Writer(a.fileno(), True, False)
    counter = 0
    while done < inputs:
        kind = rng.random()
        if kind < 0.3:  # TUN reads
            frames = [superframe(rng) for _ in range(rng.randrange(1, 16))]
            vnet, af = rng.choice(((True, False), (False, False), (False, True)))
            for frame in frames:
                a.send(frame)
            fp.tun_read(b.fileno(), tun_batch, len(frames), vnet, rng.choice((0, 5201, 51820)), af)
            while True:  # whatever was not read (a full batch) is drained
                try:
                    b.recv(1 << 17)
                except BlockingIOError:
                    break
            done += len(frames)
            for dst, start, end in tun_batch.routes(rng.choice((0, 1, 576, 1420, 65535))):
                if dst is not None and rng.random() < 0.5:
                    fp.seal(aead, tun_batch, start, end, counter, rng.choice((0, 1, 17, 1420, 65535)), PREFIX)
                    counter += end - start
        elif kind < 0.7:  # datagrams
            udp_batch.clear()
            replay = fp.ReplayWindow()
            for _ in range(rng.randrange(1, 64)):
                r = rng.random()
                if r < 0.8:
                    data = transport(rng, aead, rng.randrange(0, 4096) if rng.random() < 0.9 else 2**64 - 1)
                else:
                    data = mutate(rng, rng.randbytes(rng.randrange(0, 200)))
                addr = rng.choice((("10.0.0.1", 51820), ("fd00::1", 51820), ("::ffff:10.0.0.2", 1)))
                try:
                    udp_batch.append_datagram(data, addr)
                except OverflowError:
                    break
                done += 1
            _, runs = udp_batch.sessions()
            for receiver, _addr, start, end in runs:
                if receiver >= 0:
                    run, *_ = fp.open(aead, replay, udp_batch, start, end)
                    for i in range(start, end):
                        udp_batch.status(i)
                        udp_batch.inner_source(i)
                        udp_batch.wire_len(i)
                    if rng.random() < 0.5:
                        udp_batch.drop(start)
                    run.packets()
        else:  # TUN writes, directly or through the writer thread
            packets = [mutate(rng, ip_packet(rng)) for _ in range(rng.randrange(1, 48))]
            if rng.random() < 0.3:
                writer.submit_tun(packets)
                writer.wait_idle(None)
                writer.poll()
            else:
                fp.tun_write(a.fileno(), packets, rng.random() < 0.8, rng.random() < 0.1)
            while True:
                try:
                    b.recv(1 << 17)
                except BlockingIOError:
                    break
            done += len(packets)
    writer.close()
    a.close()
    b.close()
    return done


def child(module_path: str, inputs: int, seed: int) -> None:
    fp = load(Path(module_path))
    started = time.monotonic()
    done = drive(fp, inputs, seed)
    print(f"fuzzed {done} inputs (seed {seed}) in {time.monotonic() - started:.1f} s: no crash", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz wgdesk.fastpath._fastpath under AddressSanitizer")
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "little"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.inputs, args.seed)
        return 0
    with tempfile.TemporaryDirectory(prefix="wgdesk-fuzz-") as tmp:
        module = build(Path(tmp))
        env = dict(os.environ)
        env["LD_PRELOAD"] = libasan()
        # CPython's allocations are not all freed at exit: leak reports would drown real ones
        env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        cmd = [sys.executable, "-m", "tests.fastpath.fuzz", "--child", str(module),
               "--inputs", str(args.inputs), "--seed", str(args.seed)]  # fmt: skip
        return subprocess.run(cmd, env=env, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
