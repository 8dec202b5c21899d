"""The Wintun binding and the engine's tunnel device on it, against a fake ``wintun.dll``/``kernel32``
(tests/windows/fake_windows.py): the exact calls of the ring loop, and that the reader thread's
bridging from the read-wait event to the selector loop loses no wake-up."""

from __future__ import annotations

import selectors
import threading
import time
import uuid

import pytest

from tests.windows.fake_windows import FakeKernel32, FakeWintun
from wgdesk.platforms.interface import TunGone
from wgdesk.platforms.windows import wintun
from wgdesk.platforms.windows.tun import INFINITE, Kernel32Events, WintunDriver, WintunTun

R = "WintunReceivePacket"
REL = "WintunReleaseReceivePacket"


@pytest.fixture
def fake() -> FakeWintun:
    return FakeWintun(FakeKernel32())


@pytest.fixture
def tun(fake: FakeWintun):
    api = wintun.Wintun(fake, fake.last_error)
    adapter = api.create_adapter("wg-office", wintun.tunnel_guid("wg-office"))
    device = WintunTun(adapter, adapter.start_session(), Kernel32Events(fake.kernel))
    yield device
    if device._thread.is_alive():
        device.close()


def readable(tun: WintunTun, timeout: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(tun.fileno(), selectors.EVENT_READ)
        return bool(selector.select(timeout))


def names(fake: FakeWintun, start: int = 0) -> list[str]:
    return [name for name, _ in fake.calls[start:]]


def test_adapter_gets_a_fixed_guid_per_tunnel_and_a_session_of_the_documented_capacity(
    fake: FakeWintun,
) -> None:
    api = wintun.Wintun(fake, fake.last_error)
    adapter = api.create_adapter("wg-office", wintun.tunnel_guid("wg-office"))
    session = adapter.start_session()
    assert fake.calls[0] == (
        "WintunCreateAdapter",
        ("wg-office", "wgdesk", wintun.tunnel_guid("wg-office").bytes_le),
    )
    assert wintun.tunnel_guid("wg-office") == wintun.tunnel_guid("wg-office") != wintun.tunnel_guid("wg-home")
    assert fake.calls[1] == ("WintunStartSession", (FakeWintun.ADAPTER, 0x800000))
    assert session.read_wait_event == fake.read_event
    assert adapter.luid() == FakeWintun.LUID
    with pytest.raises(ValueError, match="power of two"):
        adapter.start_session(0x20001)
    with pytest.raises(ValueError, match="power of two"):
        adapter.start_session(0x10000)


def test_guid_struct_is_the_uuid_in_windows_byte_order() -> None:
    value = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
    guid = wintun.guid_struct(value)
    assert (guid.Data1, guid.Data2, guid.Data3) == (0x00112233, 0x4455, 0x6677)
    assert bytes(guid.Data4) == bytes.fromhex("8899aabbccddeeff")


def test_ring_loop_receives_releases_each_packet_then_waits(fake: FakeWintun, tun: WintunTun) -> None:
    assert readable(tun, 1.0)  # primed: packets may predate the first receive
    start = len(fake.calls)
    assert tun.read_batch(64) == []
    assert names(fake, start) == [R, R]  # empty, wake bytes taken, empty again: now wait
    assert not readable(tun, 0.1)  # nothing queued: the loop sleeps
    start = len(fake.calls)
    fake.inject(b"\x45one", b"\x45two", b"\x60three")
    assert readable(tun, 2.0), "the reader thread did not wake the loop"
    assert tun.read_batch(64) == [b"\x45one", b"\x45two", b"\x60three"]
    assert names(fake, start) == [R, REL, R, REL, R, REL, R, R]
    assert not fake.outstanding, "a received packet was not released"
    assert not readable(tun, 0.1)
    assert tun.wakeups == 1
    wait = next(args for name, args in fake.kernel.calls if name == "WaitForMultipleObjects")
    assert wait == ((fake.read_event, tun._quit), 0, INFINITE)


def test_a_batch_cut_at_its_limit_leaves_the_loop_awake(fake: FakeWintun, tun: WintunTun) -> None:
    tun.read_batch(64)
    fake.inject(*[bytes([0x45, i]) for i in range(5)])
    assert readable(tun, 2.0)
    assert tun.read_batch(2) == [b"\x45\x00", b"\x45\x01"]
    assert readable(tun, 0.5), "packets left in the ring but the loop would sleep"
    assert tun.read_batch(2) == [b"\x45\x02", b"\x45\x03"]
    assert readable(tun, 0.5)
    assert tun.read_batch(2) == [b"\x45\x04"]
    assert not readable(tun, 0.1)


def test_a_packet_arriving_between_empty_and_wait_is_not_lost(fake: FakeWintun, tun: WintunTun) -> None:
    """The driver's producer races the loop: every packet comes out, in order."""
    total = 3000
    done = threading.Event()

    def produce() -> None:
        for i in range(total):
            fake.inject(i.to_bytes(4, "big"))
            if i % 7 == 0:
                time.sleep(0)
        done.set()

    got: list[bytes] = []
    producer = threading.Thread(target=produce)
    producer.start()
    with selectors.DefaultSelector() as selector:
        selector.register(tun.fileno(), selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        while len(got) < total and time.monotonic() < deadline:
            if selector.select(2.0):
                got.extend(tun.read_batch(16))
    producer.join()
    assert [int.from_bytes(p, "big") for p in got] == list(range(total))


def test_write_batch_allocates_copies_and_sends_and_counts_drops(fake: FakeWintun, tun: WintunTun) -> None:
    start = len(fake.calls)
    assert tun.write_batch([b"\x45abc", b"\x60defgh"]) == 0
    assert fake.calls[start:] == [
        ("WintunAllocateSendPacket", (FakeWintun.SESSION, 4)),
        ("WintunSendPacket", (FakeWintun.SESSION,)),
        ("WintunAllocateSendPacket", (FakeWintun.SESSION, 6)),
        ("WintunSendPacket", (FakeWintun.SESSION,)),
    ]
    assert fake.sent == [b"\x45abc", b"\x60defgh"]
    fake.send_ring_full = True
    assert tun.write_batch([b"\x45x", b"\x45y"]) == 2
    assert tun.write_batch([b"", b"\x45" * 70000]) == 2  # never handed to the driver
    assert tun.writes == 6


def test_adapter_going_away_is_tun_gone(fake: FakeWintun, tun: WintunTun) -> None:
    fake.terminating = True
    with pytest.raises(TunGone):
        tun.read_batch(8)
    with pytest.raises(TunGone):
        tun.write_batch([b"\x45x"])


def test_close_stops_the_thread_then_ends_session_and_removes_adapter(
    fake: FakeWintun, tun: WintunTun
) -> None:
    start = len(fake.calls)
    tun.close()
    assert not tun._thread.is_alive()
    assert names(fake, start) == ["WintunEndSession", "WintunCloseAdapter"]
    assert ("SetEvent", (tun._quit,)) in fake.kernel.calls
    assert tun._quit in fake.kernel.closed
    assert fake.read_event not in fake.kernel.closed, "the session's event is the driver's to close"


def test_off_windows_the_driver_says_why() -> None:
    from wgdesk.platforms.interface import TunError

    with pytest.raises(TunError, match="Windows"):
        WintunDriver().create("wg0", 1420, False)
    with pytest.raises(TunError, match="handed over"):
        WintunDriver().adopt(3)
    with pytest.raises(TunError, match="Windows"):
        wintun.load()
