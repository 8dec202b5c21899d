"""An engine's UAPI pipe served by the engine's real UAPI server (`wgdesk.engine.uapi_server`) through
`UapiBridge`: a client on the pipe (fake pywin32: its request scripted, what the engine writes back
recorded) gets the engine's reply, over wireguard-go's pipe path and descriptor."""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable

from tests.windows.fake_windows import FakeWin32
from wgdesk.engine.uapi_server import UapiServer
from wgdesk.platforms.windows import pipes
from wgdesk.platforms.windows.pipe_connection import ERROR_BROKEN_PIPE
from wgdesk.platforms.windows.uapi_bridge import UapiBridge

REPLY = "listen_port=51820\nerrno=0\n\n"


def serve_until(selector: selectors.BaseSelector, done: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        for key, mask in selector.select(0.05):
            key.data(mask)


def test_a_pipe_client_gets_the_engines_reply() -> None:
    fake = FakeWin32()
    fake.clients = 1
    fake.incoming.extend([b"get=1\n\n", ERROR_BROKEN_PIPE])
    requests: list[bytes] = []

    def handler(request: bytes) -> tuple[str, bool]:
        requests.append(request)
        return REPLY, False

    bridge = UapiBridge("wg-office", fake.bundle())
    selector = selectors.DefaultSelector()
    server = UapiServer(bridge, None, handler, selector)  # type: ignore[arg-type]
    try:
        serve_until(selector, lambda: b"".join(fake.written) == REPLY.encode())
        assert requests == [b"get=1\n\n"]
        assert b"".join(fake.written) == REPLY.encode()
        assert bridge.accepted == 1
        first = next(c for c in fake.calls if c[0] == "CreateNamedPipe")
        assert first[1] == pipes.uapi_path("wg-office") and first[3] == pipes.UAPI_SDDL
        assert first[2] & pipes.FILE_FLAG_FIRST_PIPE_INSTANCE
        serve_until(selector, lambda: ("CloseHandle", "pipe1") in fake.calls)
        assert ("CloseHandle", "pipe1") in fake.calls, "the client's pipe instance closed after EOF"
    finally:
        server.close()
        selector.close()
    assert not bridge._thread.is_alive()
