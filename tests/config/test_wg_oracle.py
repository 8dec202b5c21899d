"""Value by value, the parser accepts what the real `wg setconf` accepts; the few deliberate differences
are listed and checked to still be differences (so the list cannot go stale)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.netns import unique_name
from wgdesk.config import ConfigError, parse, strip

K = "2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y="

VALUES = {
    "ListenPort": ["0", "65535", "65536", "-1", "+5", "05", "1 2", "0x10"],
    "FwMark": [
        "0",
        "off",
        "OFF",
        "0x0",
        "0xffffffff",
        "0x100000000",
        "0X10",
        "00x1",
        "1 0",
        "-0",
        "+1",
        "0x",
    ],
    "PersistentKeepalive": ["0", "off", "Off", "65535", "65536", "+1", "1.5", "0x10", "007"],
    "AllowedIPs": [
        "10.0.0.1",
        "10.0.0.0/8",
        "10.0.0.0/08",
        "::/0",
        "::1/128",
        "::1/129",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "010.0.0.1/32",
        "1.2.3.4/",
        "/8",
        "1.2.3.4/8/9",
        " 10.0.0.0/8 , ::/0",
        "::ffff:1.2.3.4/128",
        "1.2.3.4,",
        "fe80::1%eth0/64",
        "1.2.3.4/ 8",
        "[::1]/128",
        "10.0.0.1/24",
    ],
    "Endpoint": [
        "1.2.3.4:5",
        "[::1]:5",
        "::1:5",
        "1.2.3.4:0",
        "1.2.3.4:65535",
        "1.2.3.4:65536",
        "[::1]:",
        "[::1]",
        "1.2.3.4:+5",
        "1.2.3.4: 5",
        "[1.2.3.4]:5",
        "[::1]x:5",
        "1.2.3.4:05",
        "0:5",
        "1.2.3:5",
        "127.1:5",
        "[fe80::1%lo]:5",
    ],
    "PresharedKey": [K, K[:-1], K + "=", K.lower(), "A" * 43 + "=", "A" * 42 + "B=", "A" * 44],
    "PublicKey": [K, " " + K + " ", K[:22] + " " + K[22:]],
}

# (key, value): wg accepts, wgdesk refuses on purpose (see wgdesk/config/parser.py).
STRICTER = {
    ("ListenPort", "65536"),  # getaddrinfo turns it into port 0
    ("ListenPort", "+5"),
    ("Endpoint", "1.2.3.4:0"),
    ("Endpoint", "1.2.3.4:65536"),
    ("Endpoint", "1.2.3.4:+5"),
    ("Endpoint", "0:5"),  # inet_aton short forms
    ("Endpoint", "1.2.3:5"),
    ("Endpoint", "127.1:5"),
}

CASES = [(key, value) for key, values in VALUES.items() for value in values]


def ours(text: str) -> bool:
    try:
        parse(text)
    except ConfigError:
        return False
    return True


def theirs(text: str, tmp_path: Path) -> bool:
    path = tmp_path / "oracle.conf"
    path.write_text(strip(text))
    result = subprocess.run(
        ["unshare", "--net", "wg", "setconf", unique_name("wgo"), str(path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, WG_ENDPOINT_RESOLUTION_RETRIES="0"),
    )
    # wg parses everything before it looks for the (missing) interface
    return "Unable to modify interface" in result.stderr


@pytest.mark.root
@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_same_verdict_as_wg(key: str, value: str, tmp_path: Path) -> None:
    head = (
        "[Interface]"
        if key in ("ListenPort", "FwMark")
        else "[Peer]" + ("" if key == "PublicKey" else f"\nPublicKey = {K}")
    )
    text = f"{head}\n{key} = {value}\n"
    expected = theirs(text, tmp_path)
    if (key, value) in STRICTER:
        assert expected and not ours(text)
    else:
        assert ours(text) == expected
