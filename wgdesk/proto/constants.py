"""Protocol constants: the whitepaper's (section 6) and the implementation's.

Times are seconds (floats), sizes are bytes.
"""

from __future__ import annotations

from typing import Final

# --- Specification (whitepaper §6, wireguard-go device/constants.go) ---------------------------------

REKEY_AFTER_MESSAGES: Final = 1 << 60
REJECT_AFTER_MESSAGES: Final = (1 << 64) - (1 << 13) - 1
REKEY_AFTER_TIME: Final = 120.0
REKEY_ATTEMPT_TIME: Final = 90.0
REKEY_TIMEOUT: Final = 5.0
MAX_TIMER_HANDSHAKES: Final = int(REKEY_ATTEMPT_TIME / REKEY_TIMEOUT)  # 18 retries after the first 2 sends
REKEY_TIMEOUT_JITTER_MAX: Final = 0.334  # jitter is uniform in [0, 334 ms)
REJECT_AFTER_TIME: Final = 180.0
KEEPALIVE_TIMEOUT: Final = 10.0
COOKIE_REFRESH_TIME: Final = 120.0
HANDSHAKE_INITIATION_RATE: Final = 0.020
PADDING_MULTIPLE: Final = 16

NEW_HANDSHAKE_TIMEOUT: Final = KEEPALIVE_TIMEOUT + REKEY_TIMEOUT  # 15 s of sending without receiving
REKEY_ON_RECEIVE_AGE: Final = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT  # 165 s
ZERO_KEYS_AFTER: Final = REJECT_AFTER_TIME * 3  # 540 s

CONSTRUCTION: Final = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER: Final = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1: Final = b"mac1----"
LABEL_COOKIE: Final = b"cookie--"

MESSAGE_INITIATION_TYPE: Final = 1
MESSAGE_RESPONSE_TYPE: Final = 2
MESSAGE_COOKIE_REPLY_TYPE: Final = 3
MESSAGE_TRANSPORT_TYPE: Final = 4

MESSAGE_INITIATION_SIZE: Final = 148
MESSAGE_RESPONSE_SIZE: Final = 92
MESSAGE_COOKIE_REPLY_SIZE: Final = 64
MESSAGE_TRANSPORT_HEADER_SIZE: Final = 16
MESSAGE_TRANSPORT_SIZE: Final = 32  # header + tag: a keepalive
MESSAGE_KEEPALIVE_SIZE: Final = 0  # plaintext length of a keepalive

KEY_SIZE: Final = 32
TAG_SIZE: Final = 16
MAC_SIZE: Final = 16
TIMESTAMP_SIZE: Final = 12
COOKIE_NONCE_SIZE: Final = 24
COOKIE_SIZE: Final = 16

TAI64N_BASE: Final = 0x400000000000000A
TAI64N_WHITENER: Final = 1 << 24  # timestamps are rounded down to 2^24 ns (~16.8 ms)

# --- Implementation ----------------------------------------------------------------------------------

DEFAULT_MTU: Final = 1420
MAX_STAGED_PACKETS: Final = 128  # per peer, while a handshake is in flight (wireguard-go QueueStagedSize)
UNDER_LOAD_QUEUE_SIZE: Final = 128  # pending handshake messages that put the device under load (1024 / 8)
UNDER_LOAD_AFTER_TIME: Final = 1.0  # stay under load this long after the last trigger
MAX_EVENTS: Final = 1024
MAX_PERSISTENT_KEEPALIVE: Final = 65535
