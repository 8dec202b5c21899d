"""`wgdesk.snapshots`: what the helper sends round-trips, and a reply of the wrong shape is one clear error
that names the field (the client turns it into `HelperError("malformed")`), never a KeyError in a window."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wgdesk.client import HelperClient, HelperError
from wgdesk.proto.changes import PeerCounters
from wgdesk.snapshots import Diagnosis, PeerSnapshot, SnapshotError, TunnelSnapshot

texts = st.text(max_size=20)
counts = st.integers(0, 2**64 - 1)
times = st.none() | st.integers(0, 2**40) | st.floats(0, 2e9, allow_nan=False)
drops = st.dictionaries(st.sampled_from(["decryption_failed", "invalid_mac1"]), counts)
counters = st.none() | st.builds(PeerCounters, counts, counts, counts, counts, counts, drops)
peers = st.builds(
    PeerSnapshot, texts, st.none() | texts, st.lists(texts, max_size=3).map(tuple), times, counts, counts,
    st.integers(0, 65535), st.none() | texts, times, st.none() | texts, counters,
)  # fmt: skip
tunnels = st.builds(
    TunnelSnapshot, texts, texts, texts, st.integers(0, 2**32 - 1), st.booleans(), st.booleans(), counts,
    st.integers(0, 65535), st.none() | st.integers(576, 65535), st.booleans(), st.booleans(), times,
    st.none() | texts, st.lists(texts, max_size=2).map(tuple), st.lists(peers, max_size=3).map(tuple),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(tunnels)
def test_a_tunnel_round_trips_through_json(tunnel: TunnelSnapshot) -> None:
    wire = json.loads(json.dumps(tunnel.to_wire()))
    assert TunnelSnapshot.from_wire(wire) == tunnel


COUNTERS = {
    "initiations_sent": 1, "responses_received": 1, "responses_sent": 0, "cookie_replies_sent": 0,
    "cookie_replies_received": 0, "dropped": {"decryption_failed": 2},
}  # fmt: skip
GOOD: dict[str, Any] = {  # the example of docs/control-protocol.md
    "name": "home", "interface": "home", "state": "up", "owner": 1000, "full_tunnel": True,
    "kill_switch": True, "fwmark": 51820, "listen_port": 43122, "since": 1795645877.9, "message": None,
    "warnings": [],
    "peers": [{"public_key": "k", "endpoint": "203.0.113.5:51820", "allowed_ips": ["0.0.0.0/0"],
               "latest_handshake": 1795645880, "rx_bytes": 604, "tx_bytes": 740, "persistent_keepalive": 0,
               "endpoint_host": None, "endpoint_resolved_at": None, "resolve_error": None,
               "counters": COUNTERS}],
}  # fmt: skip


def test_the_documented_example_decodes_and_an_older_helper_without_counters_too() -> None:
    t = TunnelSnapshot.from_wire(GOOD)
    assert t.peers[0].counters == PeerCounters(1, 1, 0, 0, 0, {"decryption_failed": 2})
    assert t.to_wire() == GOOD | {"bypass": False, "include": False, "mtu": None}  # the defaults, now sent
    older = {**GOOD, "peers": [{k: v for k, v in GOOD["peers"][0].items() if k != "counters"}]}
    assert TunnelSnapshot.from_wire(older).peers[0].counters is None


def _with(path: tuple[Any, ...], value: object) -> dict[str, Any]:
    wire = json.loads(json.dumps(GOOD))
    target = wire
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return wire


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("name",), None, "tunnel.name"),
        (("state",), 3, "tunnel 'home'.state"),
        (("owner",), -1, "tunnel 'home'.owner"),
        (("kill_switch",), "yes", "tunnel 'home'.kill_switch"),
        (("since",), float("inf"), "tunnel 'home'.since"),
        (("warnings",), "one", "tunnel 'home'.warnings"),
        (("peers",), {}, "tunnel 'home'.peers"),
        (("peers", 0), "k", "tunnel 'home'.peers[0]"),
        (("peers", 0, "rx_bytes"), True, "tunnel 'home'.peers[0].rx_bytes"),
        (("peers", 0, "allowed_ips"), ["10.0.0.0/8", 7], "tunnel 'home'.peers[0].allowed_ips[1]"),
        (("peers", 0, "counters", "initiations_sent"), "1", "peers[0].counters.initiations_sent"),
        (("peers", 0, "counters", "dropped"), {"replayed_counter": -3}, "dropped.replayed_counter"),
    ],
)
def test_a_malformed_field_is_named(path: tuple[Any, ...], value: object, named: str) -> None:
    with pytest.raises(SnapshotError) as e:
        TunnelSnapshot.from_wire(_with(path, value))
    assert named in str(e.value)


def test_the_client_turns_a_malformed_reply_into_a_helper_error() -> None:
    class Replying(HelperClient):
        def __init__(self, reply: object) -> None:
            self.reply = reply

        def request(self, verb: str, **args: Any) -> Any:
            return self.reply

    with pytest.raises(HelperError) as e:
        Replying({"tunnels": [_with(("peers", 0, "tx_bytes"), "many")]}).status()
    assert e.value.code == "malformed" and "peers[0].tx_bytes" in e.value.message
    with pytest.raises(HelperError) as e:
        Replying({"tunnel": GOOD, "findings": [1], "logs": []}).diagnose("home")
    assert e.value.code == "malformed" and "diagnosis.findings" in e.value.message
    with pytest.raises(HelperError):
        Replying({"tunnels": None}).status()
    logs = [{"message": "m"}, {"level": "x"}]
    d = Replying({"tunnel": GOOD, "findings": ["f"], "logs": logs}).diagnose("home")
    assert isinstance(d, Diagnosis) and d.messages() == ["m", ""] and d.tunnel.name == "home"
