"""Build of the optional compiled data path (everything else is in pyproject.toml).

`wgdesk.fastpath._fastpath` links OpenSSL's libcrypto (Debian: gcc, libssl-dev). The extension is
optional: where it cannot be built, the install still succeeds and the engine runs its pure-Python
path (and says so in its log and in `wgdesk-engine --version`).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wgdesk.fastpath._fastpath",
            sources=["wgdesk/fastpath/_fastpath.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-missing-braces"],
            optional=True,
        )
    ]
)
