"""The status pane's endpoint line: a host name the helper resolves is shown with its address and age."""

from __future__ import annotations

from wgdesk.app.status import PeerView
from wgdesk.config import Endpoint, Peer
from wgdesk.snapshots import PeerSnapshot

KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
NOW = 1_800_000_000.0


def live(**fields: object) -> PeerSnapshot:
    base: dict[str, object] = {
        "public_key": KEY,
        "endpoint": "203.0.113.5:51820",
        "allowed_ips": ["10.0.0.0/24"],
        "latest_handshake": None,
        "rx_bytes": 0,
        "tx_bytes": 0,
        "endpoint_host": None,
        "endpoint_resolved_at": None,
    }
    base.update(fields)
    return PeerSnapshot.from_wire(base)


def shown(qtbot, cfg: Peer | None, status: PeerSnapshot | None) -> str:  # type: ignore[no-untyped-def]
    view = PeerView(KEY)
    qtbot.addWidget(view)
    view.update_from(cfg, status, [], NOW)
    return view.endpoint.text()


def test_a_host_name_endpoint_shows_its_address_and_when_it_was_resolved(qtbot) -> None:  # type: ignore[no-untyped-def]
    cfg = Peer(KEY, endpoint=Endpoint("vpn.example.org", 51820))
    named = live(endpoint_host="vpn.example.org", endpoint_resolved_at=NOW - 120.4)
    assert shown(qtbot, cfg, named) == "vpn.example.org → 203.0.113.5:51820 (resolved 2 minutes ago)"
    just = live(endpoint_host="vpn.example.org", endpoint_resolved_at=NOW - 0.2)
    assert shown(qtbot, cfg, just) == "vpn.example.org → 203.0.113.5:51820 (resolved just now)"
    v6 = live(
        endpoint="[2001:db8::5]:51820", endpoint_host="vpn.example.org", endpoint_resolved_at=NOW - 3661
    )
    assert shown(qtbot, cfg, v6) == (
        "vpn.example.org → [2001:db8::5]:51820 (resolved 1 hour, 1 minute, 1 second ago)"
    )
    unknown = live(endpoint_host="vpn.example.org", endpoint_resolved_at=None)
    assert shown(qtbot, cfg, unknown) == "vpn.example.org → 203.0.113.5:51820"


def test_ip_endpoints_and_stopped_tunnels_are_shown_as_before(qtbot) -> None:  # type: ignore[no-untyped-def]
    cfg = Peer(KEY, endpoint=Endpoint("vpn.example.org", 51820))
    assert shown(qtbot, cfg, None) == "vpn.example.org:51820"  # down: the configured endpoint
    assert shown(qtbot, Peer(KEY, endpoint=Endpoint("192.0.2.1", 51820)), live()) == "203.0.113.5:51820"
    assert shown(qtbot, Peer(KEY), live(endpoint=None)) == "(none)"
    # an older helper without the fields
    old = PeerSnapshot.from_wire({"public_key": KEY, "endpoint": "203.0.113.5:51820", "allowed_ips": []})
    assert shown(qtbot, cfg, old) == "203.0.113.5:51820"
