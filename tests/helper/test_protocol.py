"""The control-socket decoder: allow-listed verbs and typed fields; nothing else gets through."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgdesk.config import is_interface_name
from wgdesk.helper import protocol
from wgdesk.helper.protocol import ProtocolError, decode_request


def req(verb: str, **args: object) -> bytes:
    return json.dumps({"v": 1, "id": 3, "verb": verb, "args": args}).encode()


@pytest.mark.parametrize(
    "since", [b"9" * 400, b"-" + b"9" * 400, b"NaN", b"Infinity", b"-Infinity", b"1e999"]
)
def test_since_that_is_no_time_is_invalid_not_a_crash(since: bytes) -> None:
    """Found by fuzzing: a 400-digit integer raised OverflowError out of the decoder."""
    line = b'{"v":1,"id":4,"verb":"logs","args":{"since":' + since + b"}}"
    with pytest.raises(ProtocolError) as info:
        decode_request(line)
    assert (info.value.code, info.value.request_id) == ("invalid", 4)
    assert decode_request(line.replace(since, b"1700000000.5")).args["since"] == 1700000000.5


def test_a_valid_up_decodes_with_defaults_filled_in() -> None:
    r = decode_request(req("up", name="wg0", config="[Interface]\r\n\tPrivateKey = x\n"))
    assert (r.id, r.verb) == (3, "up")
    assert r.args == {
        "name": "wg0",
        "config": "[Interface]\r\n\tPrivateKey = x\n",
        "full_tunnel": None,
        "kill_switch": None,
    }


@pytest.mark.parametrize(
    "name", ["", "a" * 16, "wg 0", "wg/0", "../x", "wg0\n", "wg\x00", "wgé", ".", "..", "-h", "--", 7, None]
)
def test_bad_names_are_invalid(name: object) -> None:
    with pytest.raises(ProtocolError) as e:
        decode_request(req("down", name=name))
    assert e.value.code == "invalid" and e.value.request_id == 3


@pytest.mark.parametrize("ch", [chr(c) for c in [*range(0, 9), 11, 12, *range(14, 32), 127, 0x85, 0x9B]])
def test_every_control_character_in_a_config_is_refused(ch: str) -> None:
    with pytest.raises(ProtocolError) as e:
        decode_request(req("up", name="wg0", config=f"[Interface]{ch}\n"))
    assert e.value.code == "invalid"


def test_size_bounds() -> None:
    with pytest.raises(ProtocolError) as e:
        decode_request(b"x" * (protocol.MAX_REQUEST_BYTES + 1))
    assert e.value.code == "too_large"
    with pytest.raises(ProtocolError) as e:
        decode_request(req("up", name="wg0", config="#" * (protocol.MAX_CONFIG_CHARS + 1)))
    assert e.value.code == "too_large"


def test_responses_and_events_are_single_lines() -> None:
    line = protocol.response(1, {"message": "a\nb"})
    assert line.count(b"\n") == 1 and json.loads(line) == {
        "v": 1,
        "id": 1,
        "ok": True,
        "result": {"message": "a\nb"},
    }
    assert json.loads(protocol.event("state", tunnel="x")) == {"v": 1, "event": "state", "tunnel": "x"}


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_ever_raise_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_request(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(st.sampled_from(["v", "id", "verb", "args", "x"]), json_values, max_size=5),
    st.dictionaries(
        st.sampled_from(["name", "config", "full_tunnel", "kill_switch", "since", "path"]),
        json_values,
        max_size=4,
    ),
)
def test_arbitrary_json_only_ever_raises_protocol_error_and_what_passes_is_typed(
    msg: dict[str, object], args: dict[str, object]
) -> None:
    if "args" in msg and isinstance(msg["args"], dict):
        msg["args"] = args
    try:
        r = decode_request(json.dumps(msg).encode())
    except ProtocolError:
        return
    assert r.verb in protocol.VERBS
    for key, value in r.args.items():
        if key == "name" and value is not None:
            assert is_interface_name(value)
        if key in ("full_tunnel", "kill_switch"):
            assert value is None or isinstance(value, bool)
        if key == "config":
            assert isinstance(value, str) and not any(ord(c) < 32 and c not in "\t\r\n" for c in value)


def test_update_takes_exactly_a_name_and_a_config() -> None:
    r = decode_request(req("update", name="wg0", config="[Interface]\n"))
    assert (r.verb, r.args) == ("update", {"name": "wg0", "config": "[Interface]\n"})
    for bad in ({"name": "wg0"}, {"config": "x"}, {"name": "wg0", "config": "x", "kill_switch": True}):
        with pytest.raises(ProtocolError) as e:
            decode_request(req("update", **bad))
        assert e.value.code == "invalid"
    with pytest.raises(ProtocolError) as e:
        decode_request(req("update", name="wg0", config="[Interface]\x1b\n"))
    assert e.value.code == "invalid"


def test_an_error_carries_its_extra_fields_beside_code_and_message() -> None:
    line = protocol.error(4, "restart_required", "reconnect", keys=["PrivateKey"])
    assert json.loads(line) == {
        "v": 1,
        "id": 4,
        "ok": False,
        "error": {"code": "restart_required", "message": "reconnect", "keys": ["PrivateKey"]},
    }
