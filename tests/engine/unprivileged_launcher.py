"""Start an engine the way the helper does: open TUN, UAPI listener and UDP as root, then exec
`ENGINE -f IFNAME` with the descriptors in WG_TUN_FD / WG_UAPI_FD / WGDESK_UDP_FDS and
WGDESK_RUN_AS=65534:65534 — the engine becomes `nobody` with no capabilities itself, after loading
(so it works while the test interpreter lives in root's private home).

Usage: python unprivileged_launcher.py ENGINE -f IFNAME   (UDP port from $LAUNCH_PORT, fwmark $LAUNCH_MARK)
"""

from __future__ import annotations

import os
import sys

from wgdesk.engine.bind import Bind
from wgdesk.engine.uapi_server import listen
from wgdesk.platforms.linux.tun import LinuxTun, open_tun


def main() -> None:
    argv = sys.argv[1:]
    name = argv[-1]
    # As the helper opens it: IFF_TUN|IFF_NO_PI without IFF_VNET_HDR, so the engine's plain path runs.
    tun = LinuxTun(open_tun(name), name)
    tun.set_mtu(1420)
    listener = listen(name)
    bind = Bind.open(int(os.environ.get("LAUNCH_PORT", "0")), int(os.environ.get("LAUNCH_MARK", "0"), 0))
    assert bind.sock4 is not None and bind.sock6 is not None
    fds = [tun.fd, listener.fileno(), bind.sock4.fileno(), bind.sock6.fileno()]
    for fd in fds:
        os.set_inheritable(fd, True)
    env = dict(os.environ)
    env.update(
        WG_TUN_FD=str(fds[0]),
        WG_UAPI_FD=str(fds[1]),
        WGDESK_UDP_FDS=f"{fds[2]},{fds[3]}",
        WGDESK_RUN_AS="65534:65534",
    )
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    main()
