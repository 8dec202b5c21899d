"""`strip` against the real `wg-quick strip`, byte for byte."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wgdesk.config import ConfigError, strip

DATA = Path(__file__).resolve().parent.parent / "data" / "configs"
CORPUS = sorted((DATA / "valid").glob("*.conf")) + sorted((DATA / "invalid").glob("*.conf"))


def wg_quick_strip(path: Path) -> subprocess.CompletedProcess[bytes]:
    # wg-quick insists on root (it would re-exec itself with sudo) and on a file named IFNAME.conf.
    return subprocess.run(
        ["wg-quick", "strip", str(path)], capture_output=True, env={"PATH": "/usr/bin:/bin"}
    )


@pytest.mark.root
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_strip_matches_wg_quick(path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "wgs0.conf"
    copy.write_bytes(path.read_bytes())
    copy.chmod(0o600)
    real = wg_quick_strip(copy)
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    if real.returncode != 0:
        with pytest.raises(ConfigError) as info:
            strip(text)
        assert b"neither true nor false" in real.stderr and "neither true nor false" in str(info.value)
        return
    assert strip(text).encode("utf-8", errors="surrogateescape") == real.stdout


_LINES = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "[Interface]",
                "[interface]",
                "  [Peer]  ",
                "[Peer] # c",
                "[Other]",
                "",
                "   ",
                "\t# comment",
                "Address = 10.0.0.1/24",
                "address=10.0.0.2",
                "  DNS = 1.1.1.1 # x",
                "MTU=1420",
                "Table = off",
                "PostUp = echo a # b",
                "preup = x",
                "PreDown=y",
                "POSTDOWN = z",
                "SaveConfig = true",
                "saveconfig = FALSE",
                "PrivateKey = abc",
                "PublicKey = def",
                "ListenPort = 5",
                "Address",
                "  AllowedIPs = 10.0.0.0/8  ",
                "Endpoint = h:1\r",
                "DNS = 1.1.1.1\r",
                "# Address = 1",
                "a=b=c",
                "[Interface]x",
                "Add ress = 1",
            ]
        ),
        st.text(alphabet=st.sampled_from(list("[]=#aA dDnNsS\t\r")), max_size=12),
    ),
    max_size=10,
)


@pytest.mark.root
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_LINES, final_newline=st.booleans())
@example(lines=["   "], final_newline=False)  # `read` drops a last, unterminated, blank line
@example(lines=["[Interface]", "DNS = 1.1.1.1", "\t"], final_newline=False)
def test_strip_matches_wg_quick_on_generated_files(
    lines: list[str], final_newline: bool, tmp_path: Path
) -> None:
    text = "\n".join(lines) + ("\n" if final_newline else "")
    copy = tmp_path / "wgs1.conf"
    copy.write_text(text)
    copy.chmod(0o600)
    real = wg_quick_strip(copy)
    if real.returncode != 0:
        assert b"neither true nor false" in real.stderr
        with pytest.raises(ConfigError):
            strip(text)
    else:
        assert strip(text).encode() == real.stdout
