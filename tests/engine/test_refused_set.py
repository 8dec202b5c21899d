"""A UAPI set the engine refuses changes nothing, also when the refusal comes from the system (a port in
use) rather than from decoding. Found by the `uapi_request` fuzz target: the device had already taken the
request's keys and peers when binding the new port failed. No traffic is sent (no peer has an endpoint)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from wgdesk.engine.bind import Bind
from wgdesk.engine.loop import Engine
from wgdesk.platforms.linux.tun import LinuxTun

KEY = bytes(range(32)).hex()
PEER = bytes(range(1, 33)).hex()


@pytest.fixture
def engine() -> Iterator[Engine]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    served = Engine(LinuxTun(theirs.detach(), "refused0"), None, bind=Bind.open(0))
    try:
        yield served
    finally:
        served.close()
        ours.close()


def test_a_port_in_use_refuses_the_whole_set(engine: Engine) -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("0.0.0.0", 0))
    port = holder.getsockname()[1]
    before = replace(engine.device.snapshot(engine.now()), dropped={})
    try:
        request = (
            f"set=1\nprivate_key={KEY}\nlisten_port={port}\npublic_key={PEER}\nallowed_ip=10.0.0.0/8\n\n"
        )
        reply, hang_up = engine.handle_uapi(request.encode())
    finally:
        holder.close()
    assert reply == "errno=-98\n\n" and not hang_up
    assert replace(engine.device.snapshot(engine.now()), dropped={}) == before
    assert engine.device.peers == {} and engine.device.identity is None
    assert engine.device.listen_port == engine.bind.port != port


def test_a_new_port_is_taken_with_the_rest(engine: Engine) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("0.0.0.0", 0))
    port = probe.getsockname()[1]
    probe.close()
    old = engine.bind
    reply, _ = engine.handle_uapi(f"set=1\nlisten_port={port}\npublic_key={PEER}\n\n".encode())
    assert reply == "errno=0\n\n"
    assert engine.bind is not old and engine.bind.port == engine.device.listen_port == port
    assert old.sock4 is None or old.sock4.fileno() == -1
    assert len(engine.device.peers) == 1
