"""Run N engine lifecycles in this process and print fd/thread counts as JSON (run inside a namespace).

Each cycle: create TUN + UAPI socket + engine, configure it over UAPI, bring the link up, send it a
packet, serve a `get`, stop it from another thread, and wait for the loop to finish.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

from wgdesk.engine import tun as tun_device
from wgdesk.engine.loop import Engine
from wgdesk.engine.uapi_server import listen, socket_path


def ask(name: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(socket_path(name)))
        s.sendall(request)
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def cycle(name: str, key: str, peer: str) -> None:
    tun = tun_device.create(name)
    engine = Engine(tun, listen(name), socket_path(name))
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    reply = ask(
        name,
        f"set=1\nprivate_key={key}\npublic_key={peer}\nendpoint=10.99.0.2:51820\n"
        "allowed_ip=10.98.0.0/24\n\n".encode(),
    )
    assert reply == b"errno=0\n\n", reply
    subprocess.run(["ip", "addr", "add", "10.98.0.1/24", "dev", name], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", ("10.98.0.2", 9))  # through the TUN: a handshake attempt to a nonexistent peer
    assert b"errno=0" in ask(name, b"get=1\n\n")
    engine.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert not socket_path(name).exists()
    assert not os.path.exists(f"/sys/class/net/{name}")


def counts() -> dict[str, int]:
    # A joined thread's kernel task can linger a moment; give it up to 2 s to go.
    deadline = time.monotonic() + 2
    while len(os.listdir("/proc/self/task")) > threading.active_count() and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"fds": len(os.listdir("/proc/self/fd")), "threads": len(os.listdir("/proc/self/task"))}


def main() -> None:
    prefix, n, key, peer = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    cycle(f"{prefix}w", key, peer)  # warm-up: imports, lazily created module state
    before = counts()
    for i in range(n):
        cycle(f"{prefix}{i}", key, peer)
    print(json.dumps({"before": before, "after": counts()}))


if __name__ == "__main__":
    main()
