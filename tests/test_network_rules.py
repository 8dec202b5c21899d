"""`NetworkRules`: scenarios for each rule, and random histories against a naive oracle that recomputes
every answer from the whole history."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from wgdesk.app.network_rules import NetworkRules, RuleActions
from wgdesk.platforms import NetworkIdentity

HOME = NetworkIdentity("wired", "gateway:02:00:00:00:00:01", "Home", "eth0")
OFFICE = NetworkIdentity("wifi", "wifi:Office", "Office", "wlan0")
CAFE = NetworkIdentity("wifi", "wifi:CafeWifi", "CafeWifi", "wlan0")
AIRPORT = NetworkIdentity("wifi", "wifi:Airport", "Airport", "wlan0")
TRUSTED = frozenset({HOME.key, OFFICE.key})


class World:
    """The rules plus a faithful caller: it carries out every action, so `active` follows them."""

    def __init__(
        self, flagged: set[str], active: set[str] | None = None, rule_connected: set[str] | None = None
    ):
        self.rules = NetworkRules(rule_connected or ())
        self.flagged = set(flagged)
        self.active = set(active or ())
        self.trusted = set(TRUSTED)

    def on(self, network: NetworkIdentity | None) -> RuleActions:
        actions = self.rules.decide(
            network, frozenset(self.trusted), frozenset(self.flagged), frozenset(self.active)
        )
        self.active |= set(actions.connect)
        self.active -= set(actions.disconnect)
        return actions

    def user_connect(self, name: str) -> None:
        self.rules.user_connected(name)
        self.active.add(name)

    def user_disconnect(self, name: str) -> None:
        self.rules.user_disconnected(name)
        self.active.discard(name)


def test_no_network_does_nothing_and_forgets_nothing() -> None:
    w = World({"office"})
    assert w.on(None) == RuleActions()
    assert w.on(CAFE).connect == ("office",)
    assert w.on(None) == RuleActions()  # e.g. asleep, or the link went down for a moment
    assert w.rules.rule_connected == {"office"}
    assert w.on(HOME).disconnect == ("office",)


def test_untrusted_connects_the_flagged_tunnels_that_are_down() -> None:
    w = World({"office", "vpn"}, active={"vpn", "lab"})
    actions = w.on(CAFE)
    assert actions == RuleActions(connect=("office",), network=CAFE, trusted=False)
    assert w.on(CAFE) == RuleActions(network=CAFE, trusted=False)  # nothing new while it stays
    assert w.rules.rule_connected == {"office"}  # "vpn" was up already: the user's


def test_trusted_takes_down_only_what_the_rule_connected() -> None:
    w = World({"office", "vpn"}, active={"vpn"})
    w.on(CAFE)
    w.user_connect("lab")
    actions = w.on(HOME)
    assert actions == RuleActions(disconnect=("office",), network=HOME, trusted=True)
    assert w.active == {"vpn", "lab"}
    assert w.on(HOME).disconnect == ()  # once


def test_appearing_trusted_connects_nothing_and_moving_between_untrusted_networks_keeps_them_up() -> None:
    w = World({"office"})
    assert w.on(HOME) == RuleActions(network=HOME, trusted=True)
    assert w.on(CAFE).connect == ("office",)
    assert w.on(AIRPORT) == RuleActions(network=AIRPORT, trusted=False)  # up already
    assert w.on(OFFICE).disconnect == ("office",)


def test_a_user_disconnect_holds_until_the_network_changes() -> None:
    w = World({"office"})
    w.on(CAFE)
    w.user_disconnect("office")
    assert w.on(CAFE).connect == ()
    assert w.on(None).connect == ()
    assert w.on(CAFE).connect == ()  # the same network after a gap is no change
    assert w.on(AIRPORT).connect == ("office",)  # another untrusted network: connected again
    w.user_disconnect("office")
    w.on(HOME)
    assert w.on(AIRPORT).connect == ("office",)  # via home: a change


def test_a_user_disconnect_of_a_tunnel_the_user_had_connected_also_holds() -> None:
    w = World({"office"}, active={"office"})
    w.on(CAFE)
    w.user_disconnect("office")
    assert w.on(CAFE).connect == ()


def test_reconnected_by_hand_it_is_the_users() -> None:
    w = World({"office"})
    w.on(CAFE)
    w.user_disconnect("office")
    w.user_connect("office")
    assert w.on(HOME).disconnect == ()
    assert "office" in w.active


def test_a_tunnel_that_fails_or_drops_is_tried_once_per_network() -> None:
    w = World({"office"})
    assert w.on(CAFE).connect == ("office",)
    w.active.discard("office")  # the connect failed, or the tunnel died
    assert w.on(CAFE).connect == ()
    assert w.rules.rule_connected == frozenset()
    assert w.on(AIRPORT).connect == ("office",)


def test_trusting_the_current_network_takes_them_down_and_distrusting_brings_them_back() -> None:
    w = World({"office"})
    w.on(CAFE)
    w.trusted.add(CAFE.key)
    assert w.on(CAFE) == RuleActions(disconnect=("office",), network=CAFE, trusted=True)
    w.trusted.discard(CAFE.key)
    assert w.on(CAFE).connect == ("office",)


def test_flag_set_on_an_untrusted_network_connects_and_cleared_leaves_it_alone() -> None:
    w = World(set())
    assert w.on(CAFE).connect == ()
    w.flagged.add("office")
    assert w.on(CAFE).connect == ("office",)
    w.flagged.discard("office")
    w.rules.stop_managing("office")
    assert w.on(HOME).disconnect == ()
    assert "office" in w.active


def test_rule_connected_tunnels_survive_a_restart_and_are_taken_down_at_home() -> None:
    before = World({"office"})
    before.on(CAFE)
    after = World({"office"}, active={"office"}, rule_connected=set(before.rules.rule_connected))
    assert after.on(HOME).disconnect == ("office",)
    # a remembered tunnel that is no longer up is forgotten, never "disconnected"
    gone = World({"office"}, active=set(), rule_connected={"office"})
    assert gone.on(HOME).disconnect == ()
    assert gone.rules.rule_connected == frozenset()


def test_several_tunnels_are_sorted() -> None:
    w = World({"b", "a", "c"}, active={"b"})
    assert w.on(CAFE).connect == ("a", "c")
    assert w.on(HOME).disconnect == ("a", "c")


# --- random histories against a naive oracle ---------------------------------------------------------

NAMES = ("a", "b", "c")
NETWORKS = (None, HOME, CAFE, AIRPORT)


@dataclass
class Oracle:
    """Recomputes every answer from the whole history of events."""

    events: list[tuple[str, object]] = field(default_factory=list)

    def _observations(self) -> list[tuple[int, str, bool]]:
        return [(i, e[1][0], e[1][1]) for i, e in enumerate(self.events) if e[0] == "observe"]  # type: ignore[index]

    def answer(
        self, key: str | None, trusted: bool, flagged: set[str], active: set[str]
    ) -> tuple[set[str], set[str]]:
        if key is None:
            return set(), set()
        seen = self._observations()
        # where this network began (the first of the run of observations of this key at the end)
        start_net = len(self.events)
        for i, k, _ in reversed(seen):
            if k != key:
                break
            start_net = i
        start_epoch = len(self.events)
        for i, k, t in reversed(seen):
            if k != key or t != trusted:
                break
            start_epoch = i
        held = {
            n
            for n in NAMES
            if self._last(n, start_net, ("user_disconnect", "user_connect", "unflag")) == "user_disconnect"
        }
        tried = {n for n in NAMES if self._last(n, start_epoch, ("rule_connect", "unflag")) == "rule_connect"}
        owned = {n for n in NAMES if n in active and self._last(n, 0, OWNERSHIP) == "rule_connect"}
        if trusted:
            return set(), owned
        return set(flagged) - active - held - tried, set()

    def _last(self, name: str, start: int, kinds: tuple[str, ...]) -> str | None:
        """The last event of one of ``kinds`` about ``name`` from index ``start`` on."""
        for kind, n in reversed(self.events[start:]):
            if n == name and kind in kinds:
                return kind
        return None


OWNERSHIP = ("rule_connect", "rule_disconnect", "user_connect", "user_disconnect", "drop", "unflag")


events = st.lists(
    st.one_of(
        st.tuples(st.just("observe"), st.sampled_from(NETWORKS), st.booleans()),  # bool: trust CAFE now
        st.tuples(
            st.sampled_from(["user_connect", "user_disconnect", "drop", "flag", "unflag"]),
            st.sampled_from(NAMES),
            st.just(False),
        ),
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(events, st.sets(st.sampled_from(NAMES)))
def test_random_histories_match_the_oracle(
    history: list[tuple[str, object, bool]], flagged0: set[str]
) -> None:
    rules = NetworkRules()
    oracle = Oracle()
    flagged, active = set(flagged0), set()
    for kind, what, trust_cafe in history:
        if kind == "observe":
            network = what
            assert network is None or isinstance(network, NetworkIdentity)
            trusted = {HOME.key} | ({CAFE.key} if trust_cafe else set())
            key = network.key if network else None
            is_trusted = key in trusted
            expected = oracle.answer(key, is_trusted, flagged, active)
            actions = rules.decide(network, frozenset(trusted), frozenset(flagged), frozenset(active))
            assert (set(actions.connect), set(actions.disconnect)) == expected
            assert not (actions.connect and actions.disconnect)
            assert not (set(actions.disconnect) - active)  # never a tunnel that is down
            if network is not None:
                oracle.events.append(("observe", (key, is_trusted)))
            for n in actions.connect:
                oracle.events.append(("rule_connect", n))
                active.add(n)
            for n in actions.disconnect:
                oracle.events.append(("rule_disconnect", n))
                active.discard(n)
            continue
        name = str(what)
        if kind == "user_connect" and name not in active:
            rules.user_connected(name)
            active.add(name)
        elif kind == "user_disconnect" and name in active:
            rules.user_disconnected(name)
            active.discard(name)
        elif kind == "drop" and name in active:
            active.discard(name)  # died on its own: the rules are not told
        elif kind == "flag":
            flagged.add(name)
        elif kind == "unflag" and name in flagged:
            flagged.discard(name)
            rules.stop_managing(name)
        else:
            continue
        oracle.events.append((kind, name))
