"""One member of the helper's group attacking another through the control socket (issue 13).

Every test runs two throwaway accounts of the group against the real helper in the lab and
performs the attack as one of them; each failed against the helper before its fix.
"""

from __future__ import annotations

import pytest

from tests.helper.members import two_members
from tests.netns import unique_name

pytestmark = pytest.mark.root

T = unique_name("wgm")


@pytest.mark.parametrize("name", ["-h", "-iwork", "--", "-"])
def test_a_tunnel_name_cannot_be_read_as_an_option(name: str) -> None:
    # `resolvectl dns -iwork …` took the name for an option; its rollback then reverted another link
    with two_members() as (L, victim, attacker):
        reply = attacker.request("up", name=name, config=L.config())
        assert "invalid" in reply, reply
        assert "must not start with -" in reply["invalid"]
        assert victim.ok("status") == {"tunnels": []}
