"""`wgdeskctl route`: where packets to an address or name go, through the real console script."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helper.lab import CLIENT_TUNNEL, PUBLIC, ROUTER_LAN, SERVER_TUNNEL, lab
from tests.netns import namespaces, unique_name
from tests.test_cli import WGDESKCTL, run
from wgdesk.platforms import addresses_of

A = "GS0v7jt5I//6d0J95VmF+w4czLnO5PaAHC3SCPiFbUk="
B = "2OaN83Oy11u3vNSmIau7d7T4kwcmIinaXmQakM3FZ3Y="


def stored(tmp_path: Path, **tunnels: str) -> dict[str, str]:
    """An environment whose tunnel collection holds `tunnels` (name -> AllowedIPs of one peer each)."""
    directory = tmp_path / "config" / "wgdesk" / "tunnels"
    directory.mkdir(parents=True)
    for i, (name, allowed) in enumerate(tunnels.items()):
        (directory / f"{name}.conf").write_text(
            f"[Interface]\nAddress = 10.66.{i}.2/32\n\n"
            f"[Peer]\nPublicKey = {(A, B)[i % 2]}\nAllowedIPs = {allowed}\n"
        )
    return dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))


def test_without_the_helper_every_tunnel_counts_as_down(tmp_path: Path) -> None:
    env = stored(tmp_path, home="0.0.0.0/0, ::/0", office="10.0.0.0/8")
    r = run("--socket", str(tmp_path / "no-helper.sock"), "route", "10.1.2.3", env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode().splitlines()
    assert out[:3] == [
        "10.1.2.3",
        "  wgdesk's rules say: not through any tunnel (straight out)",
        "  why: no tunnel is up",
    ]
    assert f"  if home were up: tunnel home, peer {A} (AllowedIPs 0.0.0.0/0)" in out
    assert f"  if office were up: tunnel office, peer {B} (AllowedIPs 10.0.0.0/8)" in out
    assert any(line.startswith("  the kernel routes it via: ") for line in out)
    assert "the helper is not running: every tunnel counts as down" in r.stderr.decode()
    r = run("--socket", str(tmp_path / "no-helper.sock"), "route", "2001:db8::1", env=env)
    assert f"  if home were up: tunnel home, peer {A} (AllowedIPs ::/0)" in r.stdout.decode()
    assert "office" not in r.stdout.decode()


def test_a_name_is_resolved_and_each_address_explained(tmp_path: Path) -> None:
    env = stored(tmp_path, office="10.0.0.0/8")
    r = run("--socket", str(tmp_path / "none.sock"), "route", "localhost", env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode().splitlines()
    # the resolver's answer and order depend on /etc/hosts (Debian's stock one also has ::1 localhost)
    expected = [str(a) for a in addresses_of("localhost")]
    assert out[0] == f"localhost resolves to {', '.join(expected)}"
    for address in expected:
        section = out[out.index(address) :][:4]
        assert "  why: it is a loopback address: this machine itself" in section
        assert "  the kernel routes it via: lo (an address of this machine)" in section


@pytest.mark.root
def test_a_name_that_does_not_resolve_is_an_error(tmp_path: Path) -> None:
    with namespaces("cr") as (ns,):  # no network at all: the lookup fails without leaving the namespace
        r = ns.exec(
            str(WGDESKCTL), "--socket", str(tmp_path / "x.sock"), "route", "nowhere.invalid", check=False
        )
    assert r.returncode == 1
    assert r.stderr.startswith("wgdeskctl: cannot resolve nowhere.invalid: ")


@pytest.mark.root
def test_through_the_running_helper_and_the_kernel_agrees(tmp_path: Path) -> None:
    split, full = unique_name("wrs"), unique_name("wrf")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    with lab() as L:
        h = L.start_helper()

        def route(target: str) -> list[str]:
            r = L.client.exec(
                str(WGDESKCTL), "--socket", str(h.socket), "route", target, env=env, check=False
            )
            assert r.returncode == 0, r.stderr
            assert "disagrees" not in r.stdout
            return r.stdout.splitlines()

        c = h.client()
        c.up(split, L.config(), kill_switch=False)
        out = route(SERVER_TUNNEL[0])
        assert (
            out[1]
            == f"  wgdesk's rules say: tunnel {split}, peer {L.server_public} (AllowedIPs 10.97.0.0/24)"
        )
        assert out[-1] == f"  the kernel routes it via: {split} (from {CLIENT_TUNNEL[0]})"
        out = route(PUBLIC)
        assert out[1] == "  wgdesk's rules say: not through any tunnel (straight out)"
        assert out[-1].startswith(f"  the kernel routes it via: {L.client_if} (gateway 10.98.1.1")
        c.down(split)
        c.up(full, L.config(allowed="0.0.0.0/0"), kill_switch=False)
        mark = next(t.fwmark for t in c.status() if t.name == full)
        out = route(PUBLIC)
        assert out[1] == f"  wgdesk's rules say: tunnel {full}, peer {L.server_public} (AllowedIPs 0.0.0.0/0)"
        assert out[-1] == f"  the kernel routes it via: {full} (from {CLIENT_TUNNEL[0]}, table {mark})"
        # the LAN stays on the LAN: more specific than the full tunnel's default route
        out = route(ROUTER_LAN[0].split("/")[0])
        assert "  why: the local network 10.98.1.0/24 is more specific" in out[2]
        assert out[-1].startswith(f"  the kernel routes it via: {L.client_if}")
        c.down(full)
