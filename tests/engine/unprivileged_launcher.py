"""Start an engine the way the helper does: open TUN, UAPI listener and UDP as root, then drop every
capability (bounding set cleared, so not even exec as uid 0 regains any) and exec `ENGINE -f IFNAME`
with the descriptors in WG_TUN_FD / WG_UAPI_FD / WGDESK_UDP_FDS.

(Capabilities rather than uid `nobody`: the test interpreter may live in root's home.)

Usage: python unprivileged_launcher.py ENGINE -f IFNAME   (UDP port from $LAUNCH_PORT, fwmark $LAUNCH_MARK)
"""

from __future__ import annotations

import os
import shutil
import sys

from wgdesk.engine.bind import Bind
from wgdesk.engine.tun import Tun
from wgdesk.engine.uapi_server import listen
from wgdesk.platforms.linux import open_tun


def main() -> None:
    argv = sys.argv[1:]
    name = argv[-1]
    # As the helper opens it: IFF_TUN|IFF_NO_PI without IFF_VNET_HDR, so the engine's plain path runs.
    tun = Tun(open_tun(name), name)
    tun.set_mtu(1420)
    listener = listen(name)
    bind = Bind.open(int(os.environ.get("LAUNCH_PORT", "0")), int(os.environ.get("LAUNCH_MARK", "0"), 0))
    assert bind.sock4 is not None and bind.sock6 is not None
    fds = [tun.fd, listener.fileno(), bind.sock4.fileno(), bind.sock6.fileno()]
    for fd in fds:
        os.set_inheritable(fd, True)
    env = dict(os.environ)
    env.update(WG_TUN_FD=str(fds[0]), WG_UAPI_FD=str(fds[1]), WGDESK_UDP_FDS=f"{fds[2]},{fds[3]}")
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    os.execve(setpriv, [setpriv, "--inh-caps=-all", "--bounding-set=-all", "--", *argv], env)


if __name__ == "__main__":
    main()
