"""Run Python code as another uid, from a checkout that uid cannot read.

``setpriv --reuid … python`` would make the other uid read the interpreter, the venv and this checkout —
impossible when they sit in a private home (0700, or Ubuntu's 0750 default; pyenv's Python in root's
home). Instead the interpreter starts as root, imports what the code imports at its top level (and the
modules named in ``preload``), and only then becomes the other user: the way `wgdesk-engine` drops its
privileges after loading. A module first imported after the switch fails with ModuleNotFoundError, so a
test that needs one names it in ``preload``.

    subprocess.run(argv_as(uid, gid, CODE, "arg1", groups=[gid2]))   # CODE sees sys.argv[1:] == ["arg1"]
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from tests.as_user import _main; _main()"

CLI = "import sys\nfrom wgdesk.cli import main\nsys.exit(main(sys.argv[1:]))"
"""Code that runs ``wgdeskctl`` with the arguments given (use with ``preload=CLI_MODULES``)."""
CLI_MODULES = ("wgdesk.cli", "wgdesk.cli_tunnels", "wgdesk.client")


def argv_as(
    uid: int,
    gid: int,
    code: str,
    *args: str,
    groups: Iterable[int] = (),
    preload: Sequence[str] = (),
) -> list[str]:
    """The argv that runs ``code`` as ``uid`` (primary group ``gid``, supplementary ``groups``; none by
    default) with ``sys.argv[1:] == args``. Start it as root."""
    return [
        sys.executable,
        "-I",
        "-c",
        BOOT,
        str(ROOT),
        str(uid),
        str(gid),
        ",".join(str(g) for g in groups),
        ",".join(preload),
        code,
        *args,
    ]


def _main() -> None:
    _root, uid, gid, groups, preload, code, *args = sys.argv[1:]
    tree = ast.parse(code)
    imports: list[ast.stmt] = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    rest = [n for n in tree.body if not isinstance(n, ast.Import | ast.ImportFrom)]
    for name in filter(None, preload.split(",")):
        importlib.import_module(name)
    scope: dict[str, object] = {"__name__": "__main__"}
    exec(compile(ast.Module(body=imports, type_ignores=[]), "<as-user>", "exec"), scope)
    os.setgroups([int(g) for g in groups.split(",") if g])
    os.setresgid(int(gid), int(gid), int(gid))
    os.setresuid(int(uid), int(uid), int(uid))
    sys.argv = ["-c", *args]
    exec(compile(ast.Module(body=rest, type_ignores=[]), "<as-user>", "exec"), scope)
