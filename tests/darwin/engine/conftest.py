"""The interop suite's fixtures (fresh namespaces, both data paths) for the utun stand-in tests."""

from tests.interop.conftest import t1, wgdesk_datapath  # noqa: F401 - fixtures used by name
