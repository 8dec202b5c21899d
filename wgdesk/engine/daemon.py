"""Running in the background the way wireguard-go does.

The parent creates the TUN interface and the UAPI listener, so that both exist when it returns
(wg-quick configures the interface right after), then re-executes the engine in a new session with
those descriptors in `WG_TUN_FD` / `WG_UAPI_FD` and `WG_PROCESS_FOREGROUND=1`, and exits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from wgdesk.engine.tun import Tun


def spawn_background(tun: Tun, uapi_listener: socket.socket, ifname: str, quiet: bool) -> int:
    """Start the engine in the background with the open descriptors; returns the child's pid.

    Output goes to this process's stdout/stderr when logging is on, else to /dev/null (like
    wireguard-go, which keeps its terminal only when `LOG_LEVEL` asks for logs).
    """
    env = dict(os.environ)
    env["WG_TUN_FD"] = str(tun.fd)
    env["WG_UAPI_FD"] = str(uapi_listener.fileno())
    env["WG_PROCESS_FOREGROUND"] = "1"
    out = subprocess.DEVNULL if quiet else None
    # A frozen bundle (PyInstaller) is its own interpreter: re-run the executable itself.
    argv = (
        [sys.executable, ifname]
        if getattr(sys, "frozen", False)
        else [sys.executable, "-m", "wgdesk.engine.main", ifname]
    )
    child = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        pass_fds=(tun.fd, uapi_listener.fileno()),
        start_new_session=True,
        close_fds=True,
    )
    return child.pid
