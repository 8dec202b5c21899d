"""The network detectors where they cannot run here: Wi-Fi on Linux (nmcli, iw), macOS and Windows.

Each program's answer is a recorded output; the tests assert the exact commands run, in order, and the
identity made of the answers. The Linux detector's wired path runs against the real kernel in
tests/test_network_identity.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from wgdesk.platforms import NetworkIdentity, normal_mac
from wgdesk.platforms.darwin import network as darwin
from wgdesk.platforms.linux import network as linux
from wgdesk.platforms.windows import network as windows

Answers = dict[tuple[str, ...], tuple[int, str, str]]  # argv -> (returncode, stdout, stderr)

LINKS = [
    {"ifname": "lo", "link_type": "loopback"},
    {"ifname": "eth0", "link_type": "ether", "linkinfo": {}},
    {"ifname": "wlan0", "link_type": "ether"},
    {"ifname": "office", "link_type": "none", "linkinfo": {"info_kind": "tun"}},
    {"ifname": "wwan0", "link_type": "none"},
]
WLAN_DEFAULT = [
    {"dst": "default", "gateway": "192.168.178.1", "dev": "wlan0", "protocol": "dhcp", "metric": 600},
    {"dst": "default", "dev": "office", "scope": "link", "metric": 5},  # a tunnel's: never the network
]

# `nmcli -t -f ACTIVE,SSID device wifi list --rescan no ifname wlan0` (NetworkManager 1.42)
NMCLI_WIFI = "no:FRITZ!Box 7590 XY\nyes:Caf\u00e9\\: Wi-Fi\nno:\nno:eduroam\n"
# `iw dev wlan0 link` (iw 5.19), associated and not
IW_LINK = (
    "Connected to 64:70:02:aa:bb:cc (on wlan0)\n"
    "\tSSID: \\x20Cafe Wifi\\xc3\\xa9\n"
    "\tfreq: 2412\n"
    "\tRX: 4071588 bytes (24016 packets)\n"
    "\tTX: 400297 bytes (2656 packets)\n"
    "\tsignal: -52 dBm\n"
    "\trx bitrate: 72.2 MBit/s MCS 7 short GI\n"
    "\ttx bitrate: 65.0 MBit/s MCS 7\n"
    "\n"
    "\tbss flags:\tshort-preamble short-slot-time\n"
    "\tdtim period:\t1\n"
    "\tbeacon int:\t100\n"
)
IW_NOT_CONNECTED = "Not connected.\n"


class Recorder:
    """Stands in for a command runner: answers each argv from `answers` and records the calls."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], *args: Any, **kw: Any) -> CompletedProcess[str]:
        self.calls.append(list(argv))
        code, out, err = self.answers.get(tuple(argv), (1, "", "no recorded answer"))
        return CompletedProcess(list(argv), code, out, err)


@pytest.fixture
def sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A /sys/class/net where wlan0 is a wireless device and eth0 is not; nmcli and iw installed."""
    net = tmp_path / "net"
    (net / "wlan0" / "wireless").mkdir(parents=True)
    (net / "eth0").mkdir()
    monkeypatch.setattr(linux, "SYS_CLASS_NET", net)
    for name in ("nmcli", "iw"):
        prog = tmp_path / name
        prog.write_text("#!/bin/sh\nexit 99\n")  # never run: the recorder answers
        prog.chmod(0o755)
        monkeypatch.setattr(linux, name.upper(), str(prog))
    return tmp_path


def linux_answers(routes: list[dict[str, Any]], **more: tuple[int, str, str]) -> Answers:
    answers: Answers = {
        (linux.IP, "-j", "-d", "link", "show"): (0, json.dumps(LINKS), ""),
        (linux.IP, "-j", "-4", "route", "show", "default", "table", "main"): (0, json.dumps(routes), ""),
        (linux.IP, "-j", "-6", "route", "show", "default", "table", "main"): (0, "[]", ""),
    }
    for key, value in more.items():
        answers[_ARGV[key]] = value
    return answers


_ARGV: dict[str, tuple[str, ...]] = {}


def _argvs() -> dict[str, tuple[str, ...]]:
    return {
        "wifi_list": (
            linux.NMCLI,
            "-t",
            "-f",
            "ACTIVE,SSID",
            "device",
            "wifi",
            "list",
            "--rescan",
            "no",
            "ifname",
            "wlan0",
        ),
        "iw": (linux.IW, "dev", "wlan0", "link"),
        "neigh_wlan": (linux.IP, "-j", "neigh", "show", "to", "192.168.178.1", "dev", "wlan0"),
        "neigh_eth": (linux.IP, "-j", "neigh", "show", "to", "10.1.0.1", "dev", "eth0"),
        "nm_wlan": (
            linux.NMCLI,
            "--escape",
            "no",
            "--get-values",
            "GENERAL.CONNECTION",
            "device",
            "show",
            "wlan0",
        ),
        "nm_eth": (
            linux.NMCLI,
            "--escape",
            "no",
            "--get-values",
            "GENERAL.CONNECTION",
            "device",
            "show",
            "eth0",
        ),
    }


def run_linux(monkeypatch: pytest.MonkeyPatch, answers: Answers) -> tuple[NetworkIdentity | None, list[str]]:
    recorder = Recorder(answers)
    monkeypatch.setattr(linux, "command", recorder)
    found = linux.current_network()
    names = {v: k for k, v in _ARGV.items()}
    base = {
        (linux.IP, "-j", "-d", "link", "show"): "links",
        (linux.IP, "-j", "-4", "route", "show", "default", "table", "main"): "route4",
        (linux.IP, "-j", "-6", "route", "show", "default", "table", "main"): "route6",
    }
    return found, [names.get(tuple(c)) or base.get(tuple(c)) or " ".join(c) for c in recorder.calls]


@pytest.fixture(autouse=True)
def argvs(sysfs: Path) -> None:
    _ARGV.clear()
    _ARGV.update(_argvs())


def test_wifi_by_networkmanager_ssid_with_an_escaped_colon(monkeypatch: pytest.MonkeyPatch) -> None:
    found, calls = run_linux(monkeypatch, linux_answers(WLAN_DEFAULT, wifi_list=(0, NMCLI_WIFI, "")))
    assert found == NetworkIdentity("wifi", "wifi:Caf\u00e9: Wi-Fi", "Caf\u00e9: Wi-Fi", "wlan0")
    assert calls == ["links", "route4", "wifi_list"]  # no neighbour look-up, no scan, no iw


def test_wifi_by_iw_when_networkmanager_does_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = linux_answers(
        WLAN_DEFAULT,
        wifi_list=(8, "", "Error: NetworkManager is not running.\n"),
        iw=(0, IW_LINK, ""),
    )
    found, calls = run_linux(monkeypatch, answers)
    # iw escapes a leading space and the bytes of a non-ASCII character
    assert found == NetworkIdentity("wifi", "wifi: Cafe Wifi\u00e9", " Cafe Wifi\u00e9", "wlan0")
    assert calls == ["links", "route4", "wifi_list", "iw"]


def test_wifi_by_iw_when_nmcli_is_not_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(linux, "NMCLI", str(tmp_path / "absent" / "nmcli"))
    found, calls = run_linux(monkeypatch, linux_answers(WLAN_DEFAULT, iw=(0, IW_LINK, "")))
    assert found is not None and found.key == "wifi: Cafe Wifi\u00e9"
    assert calls == ["links", "route4", "iw"]


def test_wifi_without_an_ssid_falls_back_to_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    neigh = [{"dst": "192.168.178.1", "lladdr": "3C:A6:2F:01:02:03", "state": ["STALE"]}]
    answers = linux_answers(
        WLAN_DEFAULT,
        wifi_list=(0, "no:FRITZ!Box 7590 XY\n", ""),  # NetworkManager sees the AP list, none active
        iw=(0, IW_NOT_CONNECTED, ""),
        neigh_wlan=(0, json.dumps(neigh), ""),
        nm_wlan=(0, "\n", ""),
    )
    found, calls = run_linux(monkeypatch, answers)
    assert found == NetworkIdentity(
        "wifi", "gateway:3c:a6:2f:01:02:03", "192.168.178.1 (3c:a6:2f:01:02:03) on wlan0", "wlan0"
    )
    assert calls == ["links", "route4", "wifi_list", "iw", "neigh_wlan", "nm_wlan"]


def test_wired_is_labelled_with_networkmanagers_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = [
        {"dst": "default", "gateway": "192.168.178.1", "dev": "wlan0", "metric": 600},
        {"dst": "default", "gateway": "10.1.0.1", "dev": "eth0", "metric": 100},  # the lower metric wins
        {"dst": "default", "gateway": "10.2.0.1", "dev": "eth0", "metric": 1, "flags": ["linkdown"]},
    ]
    neigh = [{"dst": "10.1.0.1", "lladdr": "00:1b:2c:3d:4e:5f", "state": ["REACHABLE"]}]
    answers = linux_answers(
        routes, neigh_eth=(0, json.dumps(neigh), ""), nm_eth=(0, "Wired connection 1\n", "")
    )
    found, calls = run_linux(monkeypatch, answers)
    assert found == NetworkIdentity("wired", "gateway:00:1b:2c:3d:4e:5f", "Wired connection 1", "eth0")
    assert calls == ["links", "route4", "neigh_eth", "nm_eth"]


def test_a_gateway_still_being_resolved_is_no_network_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = [{"dst": "default", "gateway": "10.1.0.1", "dev": "eth0"}]
    neigh = [{"dst": "10.1.0.1", "state": ["INCOMPLETE"]}]
    found, calls = run_linux(monkeypatch, linux_answers(routes, neigh_eth=(0, json.dumps(neigh), "")))
    assert found is None
    assert calls == ["links", "route4", "neigh_eth"]


def test_only_a_tunnels_default_route_is_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    found, calls = run_linux(monkeypatch, linux_answers(WLAN_DEFAULT[1:]))
    assert found is None
    assert calls == ["links", "route4", "route6"]


def test_mobile_broadband_without_a_gateway_is_other(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = [{"dst": "default", "dev": "wwan0", "scope": "link"}]
    answers = linux_answers(routes)
    answers[
        (linux.NMCLI, "--escape", "no", "--get-values", "GENERAL.CONNECTION", "device", "show", "wwan0")
    ] = (
        0,
        "Telekom\n",
        "",
    )
    found, _ = run_linux(monkeypatch, answers)
    assert found == NetworkIdentity("other", "link:wwan0", "Telekom", "wwan0")


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ("yes:Home", ["yes", "Home"]),
        ("yes:a\\:b\\\\c:", ["yes", "a:b\\c", ""]),
        ("no:", ["no", ""]),
    ],
)
def test_nmcli_terse_fields(line: str, fields: list[str]) -> None:
    assert linux.nmcli_fields(line) == fields


@pytest.mark.parametrize(
    ("text", "mac"),
    [
        ("0:1b:2c:3d:4e:5f", "00:1b:2c:3d:4e:5f"),  # macOS arp
        ("00-1B-2C-3D-4E-5F", "00:1b:2c:3d:4e:5f"),  # Windows
        ("00:00:00:00:00:00", None),
        ("(incomplete)", None),
        ("", None),
    ],
)
def test_mac_addresses_are_normalised(text: str, mac: str | None) -> None:
    assert normal_mac(text) == mac


# --- macOS ---------------------------------------------------------------------------------------------

ROUTE_GET = (
    "   route to: default\n"
    "destination: default\n"
    "       mask: default\n"
    "    gateway: 192.168.1.1\n"
    "  interface: {interface}\n"
    "      flags: <UP,GATEWAY,DONE,STATIC,PRCLONING,GLOBAL>\n"
    " recvpipe  sendpipe  ssthresh  rtt,msec    rttvar  hopcount      mtu     expire\n"
    "       0         0         0         0         0         0      1500         0\n"
)
ROUTE = (darwin.ROUTE, "-n", "get", "default")


def run_with(
    monkeypatch: pytest.MonkeyPatch, module: Any, answers: Answers, detect: Callable[[], Any]
) -> tuple[Any, list[list[str]]]:
    recorder = Recorder(answers)
    monkeypatch.setattr(module, "run", lambda argv, env, **kw: recorder(argv))
    return detect(), recorder.calls


def test_macos_wifi(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: Answers = {
        ROUTE: (0, ROUTE_GET.format(interface="en0"), ""),
        (darwin.NETWORKSETUP, "-getairportnetwork", "en0"): (0, "Current Wi-Fi Network: Cafe Wifi\n", ""),
    }
    found, calls = run_with(monkeypatch, darwin, answers, darwin.current_network)
    assert found == NetworkIdentity("wifi", "wifi:Cafe Wifi", "Cafe Wifi", "en0")
    assert calls == [list(ROUTE), [darwin.NETWORKSETUP, "-getairportnetwork", "en0"]]


def test_macos_wired_by_the_gateways_mac(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: Answers = {
        ROUTE: (0, ROUTE_GET.format(interface="en7"), ""),
        (darwin.NETWORKSETUP, "-getairportnetwork", "en7"): (
            10,
            "en7 is not a Wi-Fi interface.\n",
            "** Error: Error obtaining wireless information.\n",
        ),
        (darwin.ARP, "-n", "192.168.1.1"): (
            0,
            "? (192.168.1.1) at 0:1b:2c:3d:4e:5f on en7 ifscope [ethernet]\n",
            "",
        ),
    }
    found, calls = run_with(monkeypatch, darwin, answers, darwin.current_network)
    assert found == NetworkIdentity(
        "wired", "gateway:00:1b:2c:3d:4e:5f", "192.168.1.1 (00:1b:2c:3d:4e:5f) on en7", "en7"
    )
    assert calls == [
        list(ROUTE),
        [darwin.NETWORKSETUP, "-getairportnetwork", "en7"],
        [darwin.ARP, "-n", "192.168.1.1"],
    ]


def test_macos_unresolved_gateway_no_route_and_vpn_default(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: Answers = {
        ROUTE: (0, ROUTE_GET.format(interface="en0"), ""),
        (darwin.NETWORKSETUP, "-getairportnetwork", "en0"): (
            0,
            "You are not associated with an AirPort network.\n",
            "",
        ),
        (darwin.ARP, "-n", "192.168.1.1"): (
            1,
            "? (192.168.1.1) at (incomplete) on en0 ifscope [ethernet]\n",
            "",
        ),
    }
    assert run_with(monkeypatch, darwin, answers, darwin.current_network)[0] is None
    no_route: Answers = {ROUTE: (1, "", "route: writing to routing socket: not in table\n")}
    found, calls = run_with(monkeypatch, darwin, no_route, darwin.current_network)
    assert found is None and calls == [list(ROUTE)]
    vpn: Answers = {ROUTE: (0, ROUTE_GET.format(interface="utun4"), "")}
    found, calls = run_with(monkeypatch, darwin, vpn, darwin.current_network)
    assert found is None and calls == [list(ROUTE)]


# --- Windows -------------------------------------------------------------------------------------------

POWERSHELL = (
    windows.POWERSHELL,
    "-NoProfile",
    "-NonInteractive",
    "-ExecutionPolicy",
    "Bypass",
    "-Command",
    windows.NETWORK_SCRIPT,
)


def test_windows_script_asks_for_the_right_things() -> None:
    script = windows.NETWORK_SCRIPT
    for part in (
        "Get-NetRoute -AddressFamily IPv4 -DestinationPrefix '0.0.0.0/0'",
        "-notmatch 'Wintun|WireGuard'",
        "Get-NetNeighbor -InterfaceIndex $r.InterfaceIndex -IPAddress $r.NextHop",
        "Get-NetConnectionProfile -InterfaceIndex $r.InterfaceIndex",
        "netsh wlan show interfaces",
        "ConvertTo-Json -Compress",
    ):
        assert part in script
    assert windows.POWERSHELL.endswith(r"\System32\WindowsPowerShell\v1.0\powershell.exe")


@pytest.mark.parametrize(
    ("answer", "identity"),
    [
        (
            {
                "interface": "Wi-Fi",
                "gateway": "192.168.1.1",
                "mac": "3C-A6-2F-01-02-03",
                "state": "Reachable",
                "medium": 9,
                "profile": "Cafe Wifi 2",
                "ssid": "Cafe Wifi",
            },
            NetworkIdentity("wifi", "wifi:Cafe Wifi", "Cafe Wifi", "Wi-Fi"),
        ),
        (
            {
                "interface": "Ethernet",
                "gateway": "10.1.0.1",
                "mac": "00-1B-2C-3D-4E-5F",
                "state": "Stale",
                "medium": 14,
                "profile": "Network 2",
                "ssid": None,
            },
            NetworkIdentity("wired", "gateway:00:1b:2c:3d:4e:5f", "Network 2", "Ethernet"),
        ),
        (
            {
                "interface": "Ethernet",
                "gateway": "10.1.0.1",
                "mac": "00-00-00-00-00-00",
                "state": "Incomplete",
                "medium": 14,
                "profile": None,
                "ssid": None,
            },
            None,
        ),
        (
            {
                "interface": "Cellular",
                "gateway": "0.0.0.0",
                "mac": None,
                "state": "",
                "medium": 8,
                "profile": "Telekom",
                "ssid": None,
            },
            NetworkIdentity("other", "link:Cellular", "Telekom", "Cellular"),
        ),
        (None, None),
    ],
)
def test_windows(monkeypatch: pytest.MonkeyPatch, answer: Any, identity: NetworkIdentity | None) -> None:
    answers: Answers = {POWERSHELL: (0, json.dumps(answer) + "\r\n", "")}
    found, calls = run_with(monkeypatch, windows, answers, windows.current_network)
    assert found == identity
    assert calls == [list(POWERSHELL)]
