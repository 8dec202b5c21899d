"""`.conf` text, as a user imports or pastes it: `wgdesk.config.parse_bytes`, then what the app does with it.

Invariants:
* `parse_bytes` raises only `ConfigError`, and its message never repeats a key that was in the input
  (error messages end up in terminals and logs);
* a parsed config has no control or format character in any string value;
* it round-trips: ``parse(write(cfg)) == cfg`` and ``write`` is a fixed point, with and without secrets;
* `lint` and `strip` accept it, and every one-click fix of `lint` is itself a config that writes and reads
  back unchanged.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Callable

from tests.fuzz.targets import check
from wgdesk.config import Config, ConfigError, is_valid_key, lint, parse, parse_bytes, strip, write

EXTRA_SEEDS = ("tests/data/configs/valid", "tests/data/configs/invalid")
MAX_LEN = 4096

_KEY_CANDIDATE = re.compile(rb"[A-Za-z0-9+/]{43}=")
_FORBIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _strings(cfg: Config) -> list[str]:
    i = cfg.interface
    out = [*i.dns_search, *i.pre_up, *i.post_up, *i.pre_down, *i.post_down]
    if i.table is not None:
        out.append(i.table)
    out += [p.endpoint.host for p in cfg.peers if p.endpoint is not None]
    return out


def round_trip(cfg: Config, what: str) -> None:
    text = write(cfg)
    again = parse(text)
    check(again == cfg, f"{what}: parse(write(cfg)) != cfg\n{text}")
    check(write(again) == text, f"{what}: write(parse(write(cfg))) != write(cfg)")


def one_input(data: bytes) -> None:
    try:
        cfg = parse_bytes(data, filename="fuzz.conf")
    except ConfigError as exc:
        message = str(exc)
        for candidate in _KEY_CANDIDATE.findall(data):
            key = candidate.decode()
            check(not (is_valid_key(key) and key in message), f"error message repeats a key: {message}")
        return
    for text in _strings(cfg):
        bad = [ch for ch in text if ch not in " \t" and unicodedata.category(ch) in _FORBIDDEN]
        check(not bad, f"value {text!r} keeps control characters {bad!r}")
    round_trip(cfg, "config")
    round_trip(cfg.without_secrets(), "config without secrets")
    fixed: set[str] = set()
    for warning in lint(cfg, other_tunnels={"other": cfg}, file_mode=0o100644):
        # one fix per kind: a large config can have dozens of the same kind, each a whole config
        if warning.fix is not None and warning.fix.config is not None and warning.code not in fixed:
            fixed.add(warning.code)
            round_trip(warning.fix.config, f"fix of {warning.code}")
    with contextlib.suppress(ConfigError):
        strip(data.decode("utf-8-sig"))


def setup() -> Callable[[bytes], None]:
    return one_input
