"""A private X server (Xvfb) with `trayer` as the system-tray host, for tray tests (TESTING.md §8)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.netns import wait_for


@dataclass
class XDisplay:
    """A running Xvfb with a tray host; ``env`` points DISPLAY at it."""

    display: str
    env: dict[str, str]
    width: int
    height: int

    def screenshot(self, path: Path) -> Path:
        """The whole screen, as `import -window root` sees it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["import", "-window", "root", str(path)], env=self.env, check=True, timeout=30)
        return path

    def xdotool(self, *args: str) -> str:
        return subprocess.run(
            ["xdotool", *args], env=self.env, check=True, capture_output=True, text=True, timeout=30
        ).stdout


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def x_display(
    base_env: dict[str, str], width: int = 800, height: int = 600, tray_host: bool = True
) -> Iterator[XDisplay]:
    """Xvfb on a free display plus (with *tray_host*) trayer docked at the top right; stopped afterwards."""
    for tool in ("Xvfb", "trayer", "xdotool", "import"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} is missing: run scripts/install-test-deps (xvfb, trayer, xdotool, imagemagick)"
            )
    # -displayfd: Xvfb picks a free display itself and writes its number once it accepts connections
    read_end, write_end = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    trayer: subprocess.Popen[bytes] | None = None
    try:
        with os.fdopen(read_end, "rb") as pipe:
            number = pipe.readline().strip()
        if not number.isdigit():
            raise RuntimeError("Xvfb did not start")
        n = int(number)
        env = dict(base_env, DISPLAY=f":{n}")
        env.pop("WAYLAND_DISPLAY", None)
        if not tray_host:
            yield XDisplay(f":{n}", env, width, height)
            return
        trayer = subprocess.Popen(
            [
                "trayer",
                "--edge",
                "top",
                "--align",
                "right",
                "--widthtype",
                "pixel",
                "--width",
                "120",
                "--height",
                "32",
                "--SetDockType",
                "true",
                "--transparent",
                "false",
                "--tint",
                "0x303030",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = subprocess.run

        def trayer_mapped() -> bool:
            r = probe(
                ["xdotool", "search", "--onlyvisible", "--class", "trayer"], env=env, capture_output=True
            )
            return r.returncode == 0 and bool(r.stdout.strip())

        if not wait_for(trayer_mapped, 30):
            raise RuntimeError("trayer did not map its window")
        yield XDisplay(f":{n}", env, width, height)
    finally:
        if trayer is not None:
            _stop(trayer)
        _stop(xvfb)
