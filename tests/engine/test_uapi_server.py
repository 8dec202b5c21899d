"""The UAPI socket: permissions, stale-socket takeover, request framing, big replies, cleanup.

The handler here is a stand-in echo so the framing is checked on its own; the real codec is
exercised end to end with `wg` in tests/interop and tests/engine/test_cli.py.
"""

from __future__ import annotations

import errno
import selectors
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wgdesk.engine.uapi_server import UapiListenError, UapiServer, listen, socket_path


class Served:
    def __init__(self, directory: Path, handler: Callable[[bytes], tuple[str, bool]]) -> None:
        self.selector = selectors.DefaultSelector()
        self.path = socket_path("wgx0", directory)
        self.server = UapiServer(listen("wgx0", directory), self.path, handler, self.selector)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping:
            for key, mask in self.selector.select(0.02):
                key.data(mask)

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(5)
        self.server.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[Callable[[bytes], tuple[str, bool]]], Served]]:
    made: list[Served] = []

    def factory(handler: Callable[[bytes], tuple[str, bool]]) -> Served:
        made.append(Served(tmp_path / "wireguard", handler))
        return made[-1]

    yield factory
    for s in made:
        if not s.stopping:
            s.stop()


def echo(request: bytes) -> tuple[str, bool]:
    first = request.decode().split("\n", 1)[0]
    return f"op={first}\nerrno=0\n\n", first == "bye"


def connect(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(path))
    return s


def read_replies(s: socket.socket, count: int) -> list[str]:
    data = b""
    while data.count(b"\n\n") < count:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    return [r + "\n\n" for r in data.decode().split("\n\n") if r]


def test_permissions(served: Callable[[Callable[[bytes], tuple[str, bool]]], Served]) -> None:
    s = served(echo)
    assert stat.S_IMODE(s.path.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(s.path.stat().st_mode)
    assert stat.S_IMODE(s.path.parent.stat().st_mode) == 0o755


def test_pipelined_and_split_requests_are_answered_in_order(
    served: Callable[[Callable[[bytes], tuple[str, bool]]], Served],
) -> None:
    s = served(echo)
    with connect(s.path) as c:
        c.sendall(b"get=1\n\nset=1\nlisten_port=1\n\n")
        c.sendall(b"get")
        time.sleep(0.05)
        c.sendall(b"=1\n")
        time.sleep(0.05)
        c.sendall(b"\n")
        assert read_replies(c, 3) == [
            "op=get=1\nerrno=0\n\n",
            "op=set=1\nerrno=0\n\n",
            "op=get=1\nerrno=0\n\n",
        ]


def test_large_reply_reaches_a_slow_reader(
    served: Callable[[Callable[[bytes], tuple[str, bool]]], Served],
) -> None:
    body = "".join(f"allowed_ip=10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32\n" for i in range(60000))
    s = served(lambda request: (body + "errno=0\n\n", False))
    with connect(s.path) as c:
        c.sendall(b"get=1\n\n")
        time.sleep(0.3)  # the server meets a full socket buffer and must wait for writability
        assert read_replies(c, 1) == [body + "errno=0\n\n"]


def test_concurrent_clients(served: Callable[[Callable[[bytes], tuple[str, bool]]], Served]) -> None:
    s = served(echo)
    clients = [connect(s.path) for _ in range(20)]
    try:
        for i, c in enumerate(clients):
            c.sendall(f"get=1\nclient={i}\n".encode())
        for c in reversed(clients):
            c.sendall(b"\n")
        for c in clients:
            assert read_replies(c, 1) == ["op=get=1\nerrno=0\n\n"]
    finally:
        for c in clients:
            c.close()


def test_hang_up_after_a_bad_request(served: Callable[[Callable[[bytes], tuple[str, bool]]], Served]) -> None:
    s = served(echo)
    with connect(s.path) as c:
        c.sendall(b"bye\n\nget=1\n\n")
        assert read_replies(c, 2) == ["op=bye\nerrno=0\n\n"]  # answered, then closed: no second reply
        assert c.recv(100) == b""


def test_client_hanging_up_mid_request_is_harmless(
    served: Callable[[Callable[[bytes], tuple[str, bool]]], Served],
) -> None:
    s = served(echo)
    c = connect(s.path)
    c.sendall(b"set=1\nprivate_key=")
    c.close()
    with connect(s.path) as c2:
        c2.sendall(b"get=1\n\n")
        assert read_replies(c2, 1) == ["op=get=1\nerrno=0\n\n"]


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    directory = tmp_path / "wireguard"
    directory.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(socket_path("wgx0", directory)))
    dead.close()  # the file stays, nothing answers
    listener = listen("wgx0", directory)
    try:
        assert listener.getsockname() == str(socket_path("wgx0", directory))
    finally:
        listener.close()


def test_live_socket_is_not_taken_over(
    served: Callable[[Callable[[bytes], tuple[str, bool]]], Served],
) -> None:
    s = served(echo)
    inode = s.path.stat().st_ino
    with pytest.raises(UapiListenError) as info:
        listen("wgx0", s.path.parent)
    assert info.value.errno == errno.EADDRINUSE
    assert s.path.stat().st_ino == inode
    with connect(s.path) as c:
        c.sendall(b"get=1\n\n")
        assert read_replies(c, 1) == ["op=get=1\nerrno=0\n\n"]


def test_close_removes_own_socket_only(
    served: Callable[[Callable[[bytes], tuple[str, bool]]], Served], tmp_path: Path
) -> None:
    s = served(echo)
    s.stop()
    assert not s.path.exists()
    # A socket that was replaced by someone else meanwhile is left alone.
    s2 = served(echo)
    s2.path.unlink()
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(s2.path))
    try:
        s2.stop()
        assert s2.path.exists()
    finally:
        other.close()
