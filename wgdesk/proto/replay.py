"""Replay protection for transport-data counters, as specified in RFC 6479.

The window is a ring of 128 blocks of 64 bits (8192 bits); one block is always being recycled, so
the guaranteed window is 8128 counters, as in the Linux kernel and wireguard-go. Counters are
stored shifted by one (the kernel's convention), so that counter 0 is not confused with "nothing
received yet".
"""

from __future__ import annotations

from typing import Final

from wgdesk.proto.constants import REJECT_AFTER_MESSAGES

BLOCK_BITS_LOG: Final = 6
BLOCK_BITS: Final = 1 << BLOCK_BITS_LOG  # 64
RING_BLOCKS: Final = 128
RING_BITS: Final = RING_BLOCKS * BLOCK_BITS  # 8192
WINDOW_SIZE: Final = RING_BITS - BLOCK_BITS  # 8128

_BLOCK_MASK: Final = BLOCK_BITS - 1
_RING_MASK: Final = RING_BLOCKS - 1


class ReplayFilter:
    """The receive window of one keypair.

    `check` is called after a transport message authenticated, with its counter; it says
    whether the message is new (and records it) or must be dropped.
    """

    __slots__ = ("_last", "_ring")

    def __init__(self) -> None:
        self._last = 0
        self._ring = [0] * RING_BLOCKS

    def reset(self) -> None:
        """Forget every counter seen, as for a fresh keypair."""
        self._last = 0
        self._ring = [0] * RING_BLOCKS

    def check(self, counter: int) -> bool:
        """Return True and mark `counter` if it is acceptable.

        Acceptable means below Reject-After-Messages, not older than the window, and not seen
        before. Any other value (including negative ones) returns False and changes nothing.
        """
        if counter >= REJECT_AFTER_MESSAGES or counter < 0:
            return False
        counter += 1
        last = self._last
        if counter > last:
            # Slide forward, clearing every block the window moves into (at most the whole ring).
            # The new counter's bit cannot be set yet: its block is fresh or only holds lower ones.
            block = counter >> BLOCK_BITS_LOG
            current = last >> BLOCK_BITS_LOG
            ring = self._ring
            if block != current:
                if block - current >= RING_BLOCKS:
                    ring[:] = _EMPTY_RING
                else:
                    for i in range(current + 1, block + 1):
                        ring[i & _RING_MASK] = 0
            self._last = counter
            ring[block & _RING_MASK] |= 1 << (counter & _BLOCK_MASK)
            return True
        if last - counter > WINDOW_SIZE:
            return False
        ring = self._ring
        index = (counter >> BLOCK_BITS_LOG) & _RING_MASK
        bit = 1 << (counter & _BLOCK_MASK)
        old = ring[index]
        if old & bit:
            return False
        ring[index] = old | bit
        return True


_EMPTY_RING: Final = (0,) * RING_BLOCKS
