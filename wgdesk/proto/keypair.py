"""Session keypairs and their previous/current/next rotation (whitepaper §5.4.6, wireguard-go
`keypair.go`/`noise-protocol.go`).

A keypair is created once per completed handshake with one AEAD object per direction, so the data
path never re-derives anything (with a compiled data path, `Device(datapath=...)`, those objects
and the replay window are the module's, which wipes the keys when the keypair is dropped). The
initiator's new keypair becomes `current` at once; the responder's waits in `next` until the first
transport message received on it confirms it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wgdesk.proto import messages
from wgdesk.proto.crypto import AEAD
from wgdesk.proto.replay import ReplayFilter

if TYPE_CHECKING:
    from wgdesk.proto.peer import Peer


class Keypair:
    """One session: sending/receiving AEADs, the send counter, the receive replay window."""

    __slots__ = (
        "created",
        "header_prefix",
        "initiator",
        "local_index",
        "peer",
        "receive",
        "remote_index",
        "replay",
        "send",
        "send_counter",
    )

    def __init__(
        self,
        peer: Peer,
        send_key: bytes,
        receive_key: bytes,
        initiator: bool,
        created: float,
        local_index: int,
        remote_index: int,
    ) -> None:
        self.peer = peer
        datapath = peer.device.datapath
        self.send: Any
        self.receive: Any
        self.replay: Any
        if datapath is None:
            self.send = AEAD(send_key)
            self.receive = AEAD(receive_key)
            self.replay = ReplayFilter()
        else:
            self.send = datapath.Aead(send_key)
            self.receive = datapath.Aead(receive_key)
            self.replay = datapath.ReplayWindow()
        self.initiator = initiator
        self.created = created
        self.local_index = local_index
        self.remote_index = remote_index
        self.send_counter = 0
        # type ‖ receiver: the first 8 bytes of every transport message we send on this keypair
        self.header_prefix = messages.TRANSPORT_PREFIX + messages.INDEX.pack(remote_index)

    def wipe(self) -> None:
        """Forget the session keys now (the keypair was dropped). The compiled data path frees its
        OpenSSL contexts, which cleanses them; cryptography's objects are freed when collected."""
        for aead in (self.send, self.receive):
            wipe = getattr(aead, "wipe", None)
            if wipe is not None:
                wipe()


class Keypairs:
    """A peer's previous, current and next keypairs."""

    __slots__ = ("current", "next", "previous")

    def __init__(self) -> None:
        self.previous: Keypair | None = None
        self.current: Keypair | None = None
        self.next: Keypair | None = None

    def begin_session(self, keypair: Keypair) -> list[Keypair]:
        """Install a fresh keypair; returns the keypairs that were dropped (to unindex)."""
        dropped: list[Keypair] = []
        if keypair.initiator:
            if self.next is not None:
                if self.previous is not None:
                    dropped.append(self.previous)
                if self.current is not None:
                    dropped.append(self.current)
                self.previous = self.next
                self.next = None
            else:
                if self.previous is not None:
                    dropped.append(self.previous)
                self.previous = self.current
            self.current = keypair
        else:
            if self.next is not None:
                dropped.append(self.next)
            if self.previous is not None:
                dropped.append(self.previous)
            self.previous = None
            self.next = keypair
        return dropped

    def received_with(self, keypair: Keypair) -> Keypair | bool | None:
        """Called after an authenticated transport message on `keypair`.

        If it was `next`, rotate (next → current → previous) and return the dropped previous keypair
        (or None); return False when nothing changed.
        """
        if self.next is not keypair:
            return False
        old = self.previous
        self.previous = self.current
        self.current = keypair
        self.next = None
        return old

    def all(self) -> list[Keypair]:
        """Every keypair held."""
        return [k for k in (self.previous, self.current, self.next) if k is not None]

    def clear(self) -> list[Keypair]:
        """Drop all keypairs; returns them."""
        dropped = self.all()
        self.previous = self.current = self.next = None
        return dropped
