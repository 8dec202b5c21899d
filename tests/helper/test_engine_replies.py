"""The helper's UAPI client does not trust what an engine answers (found by the `uapi_reply` fuzz target)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from tests.fuzz.targets.uapi_reply import IFNAME, StandInEngine
from wgdesk import uapi
from wgdesk.helper.engine_process import EngineError, uapi_get, uapi_request
from wgdesk.platforms.unix import uapi as unix_uapi
from wgdesk.proto.changes import ConfigurationError


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandInEngine:
    monkeypatch.setattr(unix_uapi, "SOCKET_DIRECTORY", tmp_path)
    stand_in = StandInEngine(tmp_path)
    stand_in.start()
    return stand_in


@pytest.mark.parametrize(
    "reply",
    [b"errno=0errn\xff\n\n", b"errno=\n\n", b"errno= 0\n\n", b"errno=1_0\n\n", b"errno=99999999999\n\n"],
)
def test_a_malformed_errno_is_an_engine_error_not_a_crash(engine: StandInEngine, reply: bytes) -> None:
    engine.reply = reply
    with pytest.raises(EngineError, match="malformed UAPI reply"):
        uapi_get(IFNAME, timeout=5.0)
    with pytest.raises(EngineError, match="malformed UAPI reply"):
        uapi_request(IFNAME, "set=1\n\n", timeout=5.0)


def test_a_refusal_names_the_errno(engine: StandInEngine) -> None:
    engine.reply = b"errno=-22\n\n"
    with pytest.raises(EngineError, match=r"errno=-22: Invalid argument"):
        uapi_request(IFNAME, "set=1\n\n", timeout=5.0)
    engine.reply = b"listen_port=51820\nerrno=0\n\n"
    assert uapi_get(IFNAME, timeout=5.0) == {"listen_port": 51820, "fwmark": 0, "peers": []}


def test_parse_reply() -> None:
    assert uapi.parse_reply(b"a=1\n\nerrno=-22\n\n") == (["a=1"], 22)
    assert uapi.parse_reply(b"errno=0\n\n") == ([], 0)
    for bad in (b"", b"\n", b"errno=x\n\n", b"errno=--1\n\n", b"errno=2147483648\n\n"):
        with pytest.raises(ConfigurationError) as info:
            uapi.parse_reply(bad)
        assert info.value.errno == errno.EPROTO
