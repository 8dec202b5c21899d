"""PyInstaller runtime hook: give child processes the environment the user started us with.

The bootloader points LD_LIBRARY_PATH at the bundle's _internal/ directory and keeps the original
in LD_LIBRARY_PATH_ORIG. This process already has its libraries resolved, but programs we start
(ip, nft, wg, resolvectl, a browser…) must not load the bundle's copies of system libraries.
"""

import os

if "LD_LIBRARY_PATH_ORIG" in os.environ:
    os.environ["LD_LIBRARY_PATH"] = os.environ.pop("LD_LIBRARY_PATH_ORIG")
else:
    os.environ.pop("LD_LIBRARY_PATH", None)
