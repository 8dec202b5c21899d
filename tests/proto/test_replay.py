"""ReplayFilter: the kernel's scripted window cases, bulk runs, and a set-based model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from wgdesk.proto.replay import REJECT_AFTER_MESSAGES, WINDOW_SIZE, ReplayFilter

LIM = WINDOW_SIZE + 1  # one past the window, as in the kernel self-test
R = REJECT_AFTER_MESSAGES

# The kernel's 34 scripted cases (drivers/net/wireguard/selftest/counter.c), re-expressed as
# (counter, accepted) steps on one filter, in order.
SCRIPT: list[tuple[int, bool]] = [
    (0, True),
    (1, True),
    (1, False),
    (9, True),
    (8, True),
    (7, True),
    (7, False),
    (LIM, True),
    (LIM - 1, True),
    (LIM - 1, False),
    (LIM - 2, True),
    (2, True),
    (2, False),
    (LIM + 16, True),
    (3, False),
    (LIM + 16, False),
    (LIM * 4, True),
    (LIM * 4 - (LIM - 1), True),
    (10, False),
    (LIM * 4 - LIM, False),
    (LIM * 4 - (LIM + 1), False),
    (LIM * 4 - (LIM - 2), True),
    (LIM * 4 + 1 - LIM, False),
    (0, False),
    (R, False),
    (R - 1, True),
    (R, False),
    (R - 1, False),
    (R - 2, True),
    (R + 1, False),
    (R + 2, False),
    (R - 2, False),
    (R - 3, True),
    (0, False),
]


def test_window_constants() -> None:
    assert WINDOW_SIZE == 8128
    assert R == 2**64 - 2**13 - 1
    assert len(SCRIPT) == 34


def test_kernel_script() -> None:
    f = ReplayFilter()
    results = [(n, counter, f.check(counter)) for n, (counter, _) in enumerate(SCRIPT, 1)]
    failures = [(n, c, got) for (n, c, got), (_, want) in zip(results, SCRIPT, strict=True) if got != want]
    assert failures == []


def test_in_order_then_zero() -> None:
    f = ReplayFilter()
    assert all(f.check(i) for i in range(1, WINDOW_SIZE + 1))
    assert f.check(0) is True
    assert f.check(0) is False


def test_in_order_from_two_then_one() -> None:
    f = ReplayFilter()
    assert all(f.check(i) for i in range(2, WINDOW_SIZE + 2))
    assert f.check(1) is True
    assert f.check(0) is False  # now one past the window


def test_reverse_order_whole_window() -> None:
    f = ReplayFilter()
    assert all(f.check(i) for i in range(WINDOW_SIZE, -1, -1))


def test_reverse_order_then_zero_too_old() -> None:
    f = ReplayFilter()
    assert all(f.check(i) for i in range(WINDOW_SIZE + 1, 0, -1))
    assert f.check(0) is False


def test_reverse_then_forward() -> None:
    f = ReplayFilter()
    assert all(f.check(i) for i in range(WINDOW_SIZE, 0, -1))
    assert f.check(WINDOW_SIZE + 1) is True
    assert f.check(0) is False


def test_reverse_then_zero_then_forward() -> None:
    f = ReplayFilter()
    assert all(f.check(i) for i in range(WINDOW_SIZE, 0, -1))
    assert f.check(0) is True
    assert f.check(WINDOW_SIZE + 1) is True


def test_every_counter_once_in_a_long_run() -> None:
    f = ReplayFilter()
    n = 5 * WINDOW_SIZE
    assert all(f.check(i) for i in range(n))
    assert not any(f.check(i) for i in range(n - WINDOW_SIZE, n))


def test_jump_beyond_ring_forgets_everything_older() -> None:
    f = ReplayFilter()
    assert f.check(5)
    assert f.check(10**6)
    assert f.check(5) is False  # too old, not "unseen"
    assert f.check(10**6 - WINDOW_SIZE + 1) is True
    assert f.check(10**6 - WINDOW_SIZE - 1) is False


def test_negative_and_huge_rejected_without_state_change() -> None:
    f = ReplayFilter()
    assert f.check(-1) is False
    assert f.check(2**64) is False
    assert f.check(0) is True


def test_reset_forgets() -> None:
    f = ReplayFilter()
    assert f.check(100)
    f.reset()
    assert f.check(100) is True
    assert f.check(0) is True


class Model:
    """The rule stated plainly: new, below the limit, and within WINDOW_SIZE of the highest seen."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.highest = -1

    def check(self, c: int) -> bool:
        if c < 0 or c >= R or c in self.seen:
            return False
        if self.highest - c > WINDOW_SIZE:
            return False
        self.seen.add(c)
        self.highest = max(self.highest, c)
        return True


def counters() -> st.SearchStrategy[list[int]]:
    near = st.integers(min_value=0, max_value=3 * WINDOW_SIZE)
    edge = st.integers(min_value=R - 3 * WINDOW_SIZE, max_value=R + 3)
    step = st.integers(min_value=-WINDOW_SIZE - 70, max_value=WINDOW_SIZE + 70)
    start = st.one_of(near, edge)

    @st.composite
    def walk(draw: st.DrawFn) -> list[int]:
        c = draw(start)
        out = [c]
        edges = st.sampled_from([-1, 0, 1, 64, -64, -WINDOW_SIZE, -WINDOW_SIZE - 1, -WINDOW_SIZE + 1])
        for d in draw(st.lists(st.one_of(step, edges), max_size=80)):
            c = max(0, c + d)
            out.append(c)
        return out

    return st.one_of(walk(), st.lists(st.one_of(near, edge), max_size=60))


@settings(max_examples=400, deadline=None)
@given(counters())
def test_matches_set_model(sequence: list[int]) -> None:
    f, m = ReplayFilter(), Model()
    assert [f.check(c) for c in sequence] == [m.check(c) for c in sequence]
