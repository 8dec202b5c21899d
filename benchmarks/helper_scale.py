"""The helper under one member's largest allowed bring-up (issue 13 item 3, issue 18).

A config at the protocol's size limit (400 KiB of text) holds about 27 000 AllowedIPs; the security
review's was 27 000 /32s in 392 KB. Three measurements:

1. planning: parse + `TunnelManager._plan` of that config (what `up` does under the manager's lock
   before it changes anything), median of --rounds; target < 1 s;
2. route installation: its routes through a TUN link in a namespace of its own, with
   `platform.routes_add` (netlink batches), and — for comparison, the way it was done before — one
   ``ip route add`` per route for --ip-sample routes, extrapolated to all;
3. in the helper lab, as two throwaway members of the helper's group: member B brings the config up
   (and takes it down) while member A asks for ``status`` every 20 ms; prints how long B's ``up``
   took and A's status latency (median, 95th percentile, max); target: max < 100 ms.

Needs root (namespaces, accounts). Prints numbers; asserts nothing. ``--before PATH`` runs the
same measurements against another checkout's code (e.g. a worktree of an older commit, with this
one's tests/helper/{lab,members,test_threats}.py copied in: the lab and the member helpers).

    sudo .venv/bin/python benchmarks/helper_scale.py [--engine wireguard-go|wgdesk-engine]
"""

from __future__ import annotations

import argparse
import functools
import inspect
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if "--before" in sys.argv:
    ROOT = Path(sys.argv[sys.argv.index("--before") + 1]).resolve()
sys.path.insert(0, str(ROOT))

from tests.as_user import argv_as  # noqa: E402
from tests.helper.lab import ENGINES, genkey, lab  # noqa: E402
from tests.helper.members import largest_config  # noqa: E402
from tests.helper.test_threats import request_as, throwaway_account  # noqa: E402
from tests.netns import IP, namespaces, unique_name  # noqa: E402
from wgdesk.helper.logbook import LogBook  # noqa: E402
from wgdesk.helper.settings import Settings  # noqa: E402
from wgdesk.helper.tunnels import TunnelManager  # noqa: E402

try:
    from wgdesk.helper.events import Events
except ImportError:  # --before a checkout from before the helper's split (issue 14)
    from wgdesk.helper.tunnels import Events  # type: ignore[attr-defined,no-redef]


def plan_seconds(text: str, rounds: int) -> list[tuple[float, float]]:
    """parse + `_plan`, as `up` runs them (both signatures: before and after the change), as (wall
    seconds, CPU seconds of this process): on a shared machine the wall time follows the load."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = (
            Settings(persistent_dir=tmp) if "persistent_dir" in Settings.__dataclass_fields__ else Settings()
        )
        manager = TunnelManager(settings, Path(tmp), LogBook(), Events())
        new_style = "resolved" in inspect.signature(manager._plan).parameters
        times = []
        for _ in range(rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            if new_style:
                parse = getattr(manager, "_parse", None)
                if parse is None:  # since the helper's split by concept (issue 14)
                    from wgdesk.helper.validation import parse
                cfg = parse("big", text)
                manager._plan("big", cfg, manager._resolve_all(cfg), None, False, 1000)
            else:
                manager._plan("big", text, None, False)
            times.append((time.perf_counter() - t0, time.process_time() - c0))
        return times


ROUTE_INSTALL = """
import json, subprocess, sys, time, ipaddress
sys.path.insert(0, {root!r})
try:
    from wgdesk.platforms.linux import iproute as linux  # the backend package (issue 14)
    from wgdesk.platforms.linux.programs import IP
except ImportError:
    from wgdesk.platforms import linux  # the flat module before it
    IP = linux.IP
nets = [ipaddress.ip_network(n) for n in sys.stdin.read().split(",")]
out = {{}}
if hasattr(linux, "routes_add"):
    t = time.perf_counter()
    linux.routes_add(nets, "bench0", "main")
    out["netlink_add"] = time.perf_counter() - t
    t = time.perf_counter()
    linux.routes_del(nets, "bench0", "main")
    out["netlink_del"] = time.perf_counter() - t
sample = nets[:{sample}]
t = time.perf_counter()
for n in sample:
    subprocess.run([IP, "route", "add", str(n), "dev", "bench0"], check=True)
out["ip_each"] = (time.perf_counter() - t) / len(sample)
for n in sample:
    subprocess.run([IP, "route", "del", str(n), "dev", "bench0"], check=True)
from pyroute2 import IPRoute
t = time.perf_counter()
with IPRoute() as ipr:
    index = ipr.link_lookup(ifname="bench0")[0]
    for n in sample:
        ipr.route("add", dst=str(n), oif=index)
out["pyroute2_each"] = (time.perf_counter() - t) / len(sample)
print(json.dumps(out))
"""


def route_install(count: int, ip_sample: int) -> dict[str, float]:
    nets = [ipaddress.ip_network(f"10.{1 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}/32") for i in range(count)]
    code = ROUTE_INSTALL.format(root=str(ROOT), sample=ip_sample)
    with namespaces("hsb") as (ns,):
        ns.exec(IP, "tuntap", "add", "bench0", "mode", "tun")
        ns.exec(IP, "link", "set", "bench0", "up")
        out = subprocess.run(
            ns.argv(sys.executable, "-c", code),
            input=",".join(map(str, nets)),
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def status_during_bring_up(engine: str, rounds: int) -> dict[str, Any]:
    """Member B's ``up`` (and ``down``) of the largest config while member A polls ``status``."""
    with (
        throwaway_account() as (_a, uid_a, group, gid),
        throwaway_account() as (_b, uid_b, _g, _gb),
        lab() as L,
    ):
        h = L.start_helper(settings=f'group = "{group}"\n', engine=ENGINES[engine])
        text, count = largest_config(L.client_private, L.server_public, "10.98.2.2:51820")
        try:
            status_as_member(h.socket, uid_a, gid)  # the member's connection is open before we start
            _inside.clear()
            ups: list[str] = []
            downs: list[str] = []
            for _ in range(rounds):
                name = unique_name("wgbig")
                for verb, args, into in (
                    ("up", {"name": name, "config": text, "kill_switch": False}, ups),
                    ("down", {"name": name}, downs),
                ):
                    thread, result = in_background(
                        functools.partial(request_as, h.socket, uid_b, gid, verb, wait=1800, **args)
                    )
                    while thread.is_alive():
                        status_as_member(h.socket, uid_a, gid)
                        thread.join(0.02)
                    reply = result["reply"]
                    failed = "" if "ok" in reply else f" ({', '.join(f'{k}: {v}' for k, v in reply.items())})"
                    into.append(f"{result['seconds']:.2f}{failed}")
        finally:  # before the accounts go
            for proc in _loops.values():
                proc.kill()
                proc.wait()
            _loops.clear()
        return {"allowed_ips": count, "up": ups, "down": downs, "status": list(_inside)}


def in_background(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``call`` on a thread; the dict gets its ``reply`` and how many ``seconds`` it took."""
    out: dict[str, Any] = {}

    def run() -> None:
        t0 = time.perf_counter()
        out["reply"] = call()
        out["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


STATUS_LOOP = """
import json, sys, time
from wgdesk.client import HelperClient
c = HelperClient(sys.argv[1], timeout=1800)
for line in sys.stdin:
    t0 = time.perf_counter()
    r = c.request("status")
    print(json.dumps({"seconds": time.perf_counter() - t0, "result": r}), flush=True)
"""

_loops: dict[tuple[str, int], subprocess.Popen[str]] = {}


def status_as_member(sock: Path, uid: int, gid: int) -> Any:
    """``status`` over one long-lived connection of ``uid`` (latency measured inside that process)."""
    key = (str(sock), uid)
    proc = _loops.get(key)
    if proc is None or proc.poll() is not None:
        proc = _loops[key] = subprocess.Popen(
            argv_as(uid, gid, STATUS_LOOP, str(sock)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("status\n")
    proc.stdin.flush()
    answer = json.loads(proc.stdout.readline())
    _inside.append(answer["seconds"])
    return answer["result"]


_inside: list[float] = []
"""Status latencies as the member's client measured them."""


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", choices=sorted(ENGINES), default="wireguard-go")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ip-sample", type=int, default=1000)
    p.add_argument("--before", metavar="PATH", help="measure the code of another checkout")
    p.add_argument("--skip-lab", action="store_true", help="planning and route installation only")
    p.add_argument("--lab-only", action="store_true", help="only the bring-up with status beside it")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (namespaces, throwaway accounts)", file=sys.stderr)
        return 1
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    print(f"code: {ROOT} (commit {commit.stdout.strip()}), load average {load()}")
    if not args.lab_only:
        measure_planning_and_routes(args.rounds, args.ip_sample)
    if not args.skip_lab:
        measure_status_beside_bring_up(args.engine, args.rounds)
    return 0


def measure_planning_and_routes(rounds: int, ip_sample: int) -> None:
    private, public = genkey()
    text, count = largest_config(private, public, "192.0.2.1:51820")
    times = plan_seconds(text, rounds)
    wall, cpu = [t[0] for t in times], [t[1] for t in times]
    print(
        f"planning {count} AllowedIPs ({len(text)} characters), {len(times)} rounds: wall median "
        f"{statistics.median(wall):.3f} s (min {min(wall):.3f}, max {max(wall):.3f}), CPU median "
        f"{statistics.median(cpu):.3f} s (target < 1 s); load {load()}"
    )
    r = route_install(count, ip_sample)
    if "netlink_add" in r:
        print(
            f"route installation, {count} routes: netlink batches {r['netlink_add']:.2f} s to add, "
            f"{r['netlink_del']:.2f} s to delete; load {load()}"
        )
    print(
        f"route installation, one `ip route add` each ({ip_sample} measured): "
        f"{r['ip_each'] * 1000:.2f} ms per route = {r['ip_each'] * count:.1f} s for {count}; load {load()}"
    )
    print(
        f"route installation, pyroute2 IPRoute.route('add') each ({ip_sample} measured): "
        f"{r['pyroute2_each'] * 1000:.3f} ms per route = {r['pyroute2_each'] * count:.1f} s for {count}; "
        f"load {load()}"
    )


def measure_status_beside_bring_up(engine: str, rounds: int) -> None:
    lab_result = status_during_bring_up(engine, rounds)
    lat = sorted(lab_result["status"])
    p95 = lat[min(len(lat) - 1, int(len(lat) * 0.95))]
    print(
        f"member B's up of {lab_result['allowed_ips']} AllowedIPs ({engine}): "
        + ", ".join(lab_result["up"])
        + " s; down: "
        + ", ".join(lab_result["down"])
        + f" s; load {load()}"
    )
    print(
        f"member A's status meanwhile ({len(lat)} requests): median {statistics.median(lat) * 1000:.1f} ms, "
        f"95th percentile {p95 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms (target < 100 ms)"
    )


if __name__ == "__main__":
    sys.exit(main())
