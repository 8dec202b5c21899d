"""Write the committed seed corpora (``tests/fuzz/corpus/TARGET/``): ``python -m tests.fuzz.seeds``.

Seeds are small, valid-looking inputs of each boundary (a request of every verb, a UAPI set with every
key, a get reply, a zip of tunnels, each datagram operation), so the fuzzer starts deep instead of
rediscovering the formats. The `conf` target also reads ``tests/data/configs``.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
PEER = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="
HEX = bytes(range(32)).hex()
HEX2 = bytes(range(1, 33)).hex()

CONF = f"""[Interface]
PrivateKey = {KEY}
Address = 10.0.0.2/32, fd00::2/128
DNS = 10.0.0.1, example.com
MTU = 1420

[Peer]
PublicKey = {PEER}
PresharedKey = {PSK}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = vpn.example.com:51820
PersistentKeepalive = 25
"""


def control() -> dict[str, bytes]:
    def req(verb: str, rid: int = 1, **args: object) -> bytes:
        return json.dumps({"v": 1, "id": rid, "verb": verb, "args": args}).encode() + b"\n"

    requests = {
        "version": req("version"),
        "up": req("up", name="wg0", config=CONF, full_tunnel=True, kill_switch=None),
        "update": req("update", name="owned", config=CONF),
        "down": req("down", name="owned"),
        "status": req("status", name=None),
        "logs": req("logs", name="wg0", since=1.5),
        "diagnose": req("diagnose", name="wg0"),
        "probe_mtu": req("probe_mtu", name="wg0", target="192.0.2.1", apply=False),
        "subscribe": req("subscribe"),
        "split": req("split_exclude") + req("split_include", 2) + req("split_list", 3),
        "lockdown": req("set_lockdown", enabled=True)
        + req("pause_lockdown", 2, seconds=60)
        + req("resume_lockdown", 3),
        "bad": b'{"v":2,"id":1,"verb":"version"}\n{"v":1,"id":-1}\n{"v":1,"id":1,"verb":"x"}\n',
        # numbers a JSON reader accepts but no field should: huge integers, NaN, Infinity
        "numbers": b'{"v":1,"id":1,"verb":"logs","args":{"since":'
        + b"9" * 400
        + b"}}\n"
        + b'{"v":1,"id":2,"verb":"logs","args":{"since":NaN}}\n'
        + b'{"v":1,"id":3,"verb":"pause_lockdown","args":{"seconds":'
        + b"9" * 400
        + b"}}\n"
        + b'{"v":1,"id":1e999,"verb":"version"}\n',
        "nesting": b'{"v":1,"id":1,"verb":"status","args":{"name":' + b"[" * 5000 + b"]" * 5000 + b"}}\n",
    }
    seeds = {}
    for name, body in requests.items():
        for n, caller in enumerate((0, 1, 2, 3)):
            if n and name not in ("down", "update", "lockdown", "up"):
                continue
            seeds[f"{name}-{caller}"] = bytes([caller]) + body
    return seeds


def uapi_request() -> dict[str, bytes]:
    full_set = (
        f"set=1\nprivate_key={HEX}\nlisten_port=51820\nfwmark=0x0\nreplace_peers=true\n"
        f"public_key={HEX2}\npreshared_key={HEX}\nendpoint=192.0.2.1:51820\n"
        "persistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.0.0.0/24\n"
        "allowed_ip=fd00::/64\nprotocol_version=1\n"
        f"public_key={HEX}\nupdate_only=true\nendpoint=[2001:db8::1%3]:1\n"
        f"public_key={HEX2}\nremove=true\n\n"
    )
    return {
        "get": b"get=1\n\n",
        "set": full_set.replace("fwmark=0x0", "fwmark=0").encode(),
        "set-then-get": f"set=1\nprivate_key={HEX}\npublic_key={HEX2}\nallowed_ip=10.1.0.0/16\n\n".encode()
        + b"get=1\n\n",
        "set-then-counters": f"set=1\nprivate_key={HEX}\npublic_key={HEX2}\n\n".encode()
        + b"wgdesk_counters=1\n\n",
        "bad": b"set=1\nlisten_port=70000\n\nget=2\n\n",
        "numbers": b"set=1\nlisten_port=" + b"9" * 400 + b"\nfwmark=" + b"9" * 30 + b"\n\n",
    }


def uapi_reply() -> dict[str, bytes]:
    reply = (
        f"private_key={HEX}\nlisten_port=51820\nfwmark=1\npublic_key={HEX2}\npreshared_key={'0' * 64}\n"
        "protocol_version=1\nendpoint=[::ffff:192.0.2.1]:51820\nlast_handshake_time_sec=1700000000\n"
        "last_handshake_time_nsec=5\ntx_bytes=10\nrx_bytes=20\npersistent_keepalive_interval=0\n"
        "allowed_ip=10.0.0.0/8\nallowed_ip=::/0\nerrno=0\n\n"
    )
    numbers = b"listen_port=" + b"9" * 400 + b"\nerrno=" + b"9" * 400 + b"\n\n"
    return {"get": reply.encode(), "empty": b"errno=0\n\n", "refused": b"errno=-22\n\n", "numbers": numbers}


def _zip(members: dict[str, str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, text in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), text, compression)
    return buffer.getvalue()


def imports() -> dict[str, bytes]:
    # first byte: 0 .conf file, 1 .zip file, 2 pasted text (see targets/imports.py)
    minimal = f"[Interface]\nPrivateKey = {KEY}\n"
    return {
        "conf": b"\x00wg0\x00" + CONF.encode(),
        "conf-rename": b"\x00my tunnel (1)\x00" + minimal.encode(),
        "zip": b"\x01vpn\x00"
        + _zip({"a.conf": CONF, "b/wg0.conf": minimal, "__MACOSX/._a.conf": "x", "notes.txt": "hello"}),
        "zip-stored": b"\x01vpn\x00" + _zip({"work.conf": minimal}, zipfile.ZIP_STORED),
        "text": b"\x02pasted\x00" + CONF.encode(),
    }


def datagram() -> dict[str, bytes]:
    # see targets/datagram.py: a sequence of (op, length, payload)
    def op(kind: int, payload: bytes) -> bytes:
        return bytes([kind]) + struct.pack("<H", len(payload)) + payload

    from tests.proto.pair import A_INNER, B_INNER, ipv4_packet, ipv6_packet

    ipv4 = ipv4_packet(A_INNER, B_INNER, b"ping" * 4)
    ipv6 = ipv6_packet("fd00::1", "fd00::2", b"ping" * 4)
    return {
        "raw": op(0, b"\x01\x00\x00\x00" + bytes(144)),
        "transport-v4": op(1, ipv4),
        "transport-v6": op(1, ipv6),
        "keepalive": op(1, b""),
        "flip": op(2, b"\x00\x05\x01") + op(2, b"\x01\x20\x80") + op(2, b"\x02\x00\x00"),
        "timers": op(3, b"\x05") + op(1, ipv4) + op(3, b"\xff"),
        "batch": op(4, b"\x02" + ipv4) + op(5, ipv4),
    }


def main() -> None:
    for target, make in (
        ("control", control), ("uapi_request", uapi_request), ("uapi_reply", uapi_reply),
        ("imports", imports), ("datagram", datagram),
    ):  # fmt: skip
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            old.unlink()
        for name, data in make().items():
            (directory / name).write_bytes(data)


if __name__ == "__main__":
    main()
