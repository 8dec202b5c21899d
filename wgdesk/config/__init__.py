"""wg-quick `.conf` files: the model, a parser, a writer, wg-quick's `strip` and a linter (pure, stdlib only).

```python
from wgdesk.config import parse, write, ConfigError, Config, Interface, Peer, lint
cfg = parse(text, filename="wg0.conf")   # raises ConfigError; str() = "wg0.conf:7: ..."
text = write(cfg)                        # parse(write(cfg)) == cfg
warnings = lint(cfg)                     # list[LintWarning(code, message, line, fix)]
```
"""

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
    "Config",
    "ConfigError",
    "Endpoint",
    "Fix",
    "Interface",
    "LintWarning",
    "Peer",
    "Severity",
    "SourceLine",
    "is_interface_name",
    "is_valid_key",
    "key_bytes",
    "lint",
    "parse",
    "parse_bytes",
    "strip",
    "write",
]
