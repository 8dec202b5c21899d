"""How an engine is started on a UNIX: its command line, environment and inherited descriptors
(``WG_TUN_FD``, ``WG_UAPI_FD``, ``WGDESK_UDP_FDS``), shared by the Linux and macOS backends."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from wgdesk.platforms.interface import EngineLaunch

ENGINE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def engine_command(launch: EngineLaunch) -> tuple[list[str], dict[str, str], list[int]]:
    """(argv, environment, descriptors to pass) of ``executable -f IFNAME``."""
    if launch.tun is None or launch.uapi is None:
        raise ValueError("an engine on this system is handed its device and UAPI listener")
    env = {
        "PATH": ENGINE_PATH,
        "LC_ALL": "C",
        **launch.environment,
        "WG_TUN_FD": str(launch.tun),
        "WG_UAPI_FD": str(launch.uapi),
    }
    fds = [launch.tun, launch.uapi]
    if launch.udp is not None:
        env["WGDESK_UDP_FDS"] = ",".join("-" if fd is None else str(fd) for fd in launch.udp)
        fds += [fd for fd in launch.udp if fd is not None]
    return [launch.executable, "-f", launch.ifname], env, fds


def start_engine(
    launch: EngineLaunch, extra_env: Mapping[str, str] | None = None, account: tuple[int, int] | None = None
) -> subprocess.Popen[bytes]:
    """Start the engine with its descriptors, in a session of its own, output on one pipe; as
    ``account`` (uid, gid; no supplementary group) when given, else as the caller. Raises `OSError`."""
    argv, env, fds = engine_command(launch)
    env.update(extra_env or {})
    for fd in fds:
        os.set_inheritable(fd, True)
    return subprocess.Popen(
        argv,
        env=env,
        pass_fds=fds,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd="/",
        start_new_session=True,
        user=None if account is None else account[0],
        group=None if account is None else account[1],
        extra_groups=None if account is None else [],
    )
