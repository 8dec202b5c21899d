"""wg-quick's `strip`: the `.conf` text without the wg-quick-only lines, ready for `wg setconf`.

This reproduces `wg-quick strip` byte for byte, including its quirks: each line loses leading and
trailing spaces, tabs and newlines (bash `read`); comments and blank lines are kept; a line is
dropped when it is an `Address`, `DNS`, `MTU`, `Table`, `PreUp`, `PostUp`, `PreDown`, `PostDown` or
`SaveConfig` line (any case) inside `[Interface]`; the output ends with an extra newline.
"""

from __future__ import annotations

from wgdesk.config.model import ConfigError
from wgdesk.config.parser import QUICK_KEYS, SPACE

__all__ = ["strip"]

_BASH_IFS = " \t\n"


def strip(text: str, filename: str = "wg0.conf") -> str:
    """The text `wg-quick strip FILE` prints for a file containing `text`.

    Raises:
        ConfigError: where wg-quick stops too: a `SaveConfig` that is neither true nor false.
    """
    lines = text.replace("\0", "").split("\n")
    if lines and not lines[-1].strip(_BASH_IFS):
        # After the last newline `read` fails; wg-quick still takes what it read if it is non-empty
        # once IFS whitespace is trimmed.
        lines.pop()
    kept: list[str] = []
    in_interface = False
    for number, raw in enumerate(lines, start=1):
        line = raw.strip(_BASH_IFS)
        before_comment = line.split("#", 1)[0]
        key, equals, value = before_comment.partition("=")
        key = key.strip(SPACE)
        if key.startswith("["):
            in_interface = False
        if key.lower() == "[interface]":
            in_interface = True
        if in_interface and key.lower() in QUICK_KEYS:
            if key.lower() == "saveconfig":
                value = value.strip(SPACE) if equals else key
                if value.lower() not in ("true", "false"):
                    raise ConfigError(filename, number, "SaveConfig", f"`{value}' is neither true nor false")
            continue
        kept.append(line + "\n")
    return "".join(kept) + "\n"
