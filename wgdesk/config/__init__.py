"""wg-quick `.conf` files: the model, a parser, a writer, wg-quick's `strip`, a linter and an AllowedIPs
calculator (pure, stdlib only).

```python
from wgdesk.config import parse, write, ConfigError, Config, Interface, Peer, lint
cfg = parse(text, filename="wg0.conf")   # raises ConfigError; str() = "wg0.conf:7: ..."
text = write(cfg)                        # parse(write(cfg)) == cfg
warnings = lint(cfg)                     # list[LintWarning(code, message, line, fix)]
nets = allowed_ips(["0.0.0.0/0", "::/0"], PRIVATE_LAN_RANGES)  # everything but the local networks
```
"""

from wgdesk.config.calculator import PRIVATE_LAN_RANGES, allowed_ips, parse_networks, with_allowed_ips
from wgdesk.config.lint import Fix, LintWarning, Severity, lint
from wgdesk.config.model import (
    INTERFACE_NAME,
    Config,
    ConfigError,
    Endpoint,
    Interface,
    Peer,
    SourceLine,
    is_interface_name,
    is_valid_key,
    key_bytes,
)
from wgdesk.config.parser import parse, parse_bytes
from wgdesk.config.strip import strip
from wgdesk.config.writer import write

__all__ = [
    "INTERFACE_NAME",
    "PRIVATE_LAN_RANGES",
    "Config",
    "ConfigError",
    "Endpoint",
    "Fix",
    "Interface",
    "LintWarning",
    "Peer",
    "Severity",
    "SourceLine",
    "allowed_ips",
    "is_interface_name",
    "is_valid_key",
    "key_bytes",
    "lint",
    "parse",
    "parse_bytes",
    "parse_networks",
    "strip",
    "with_allowed_ips",
    "write",
]
