#!/usr/bin/env python3
"""Tunnel throughput and latency of every data path, against wireguard-go in the same run.

Engines ("kinds"): `go` (Debian's wireguard-go), `wgdesk` (the compiled data path, offload I/O),
`portable` (compiled, portable I/O: no vnet header, no GSO/GRO, one packet per system call, as
macOS and Windows run it; sends and TUN writes on a second thread — `portable-1thread` without it,
`wgdesk-2threads` the offload path with it), `pure` and `pure-portable` (the pure-Python reference path), and
`main` (the engine of another checkout, `--baseline DIR`: today's engine, for before/after).
For each pairing builds two network namespaces joined by a veth (both tunnel ends on this
machine); all pairings stay up and are measured round-robin (the shared machine's load drifts, so
interleaving keeps the ratios fair): iperf3 TCP throughput through the tunnel in both directions
(median and range of N runs), ping round-trip time (median of all N x 100 pings), each engine's CPU
use (% of one core during iperf) and CPU seconds per GB carried (both directions, per side), peak
RSS, and the CPU seconds each engine uses while the tunnels then sit idle for 10 s (timers only,
no polling). Ratios are against wireguard-go ↔ wireguard-go measured in the same run. Needs root.

Run: sudo .venv/bin/python benchmarks/throughput.py [--seconds 5] [--runs 3] [--pairs go-go,wgdesk-go]
     [--baseline /path/to/checkout] [--profile out.txt]
`--profile` additionally samples both engines of wgdesk → wgdesk with py-spy (when installed in
the venv; otherwise the sender under cProfile) and prints where each one's time goes.
`--perf KIND` instead profiles KIND ↔ KIND with `perf record` (native code: kernel, libcrypto, the
compiled module, the interpreter) and prints CPU seconds per GB and µs per packet for each side.
"""

from __future__ import annotations

import argparse
import json
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.interop.wgnet import INNER4, Topology, build, wait_handshake  # noqa: E402
from tests.netns import namespaces, wait_for  # noqa: E402

PAIRS = [
    ("go", "go"),
    ("wgdesk", "go"),
    ("wgdesk", "wgdesk"),
    ("portable", "portable"),
    ("pure", "go"),
    ("pure", "pure"),
    ("pure-portable", "pure-portable"),
]
BASELINE_PAIRS = [("main", "go"), ("main", "main")]
EXTRA_KINDS = ("portable-1thread", "wgdesk-2threads")  # on request (--pairs): the writer thread's effect
LABEL = {
    "go": "wireguard-go",
    "wgdesk": "wgdesk",
    "portable": "wgdesk portable",
    "pure": "wgdesk pure",
    "pure-portable": "wgdesk pure portable",
    "portable-1thread": "wgdesk portable, one thread",
    "wgdesk-2threads": "wgdesk, writer thread",
    "main": "wgdesk before (baseline)",
}
KIND_ENV = {
    "wgdesk": {"WGDESK_PURE_PYTHON": "0"},
    "portable": {"WGDESK_PURE_PYTHON": "0", "WGDESK_PORTABLE": "1"},
    "pure": {"WGDESK_PURE_PYTHON": "1"},
    "pure-portable": {"WGDESK_PURE_PYTHON": "1", "WGDESK_PORTABLE": "1"},
    "portable-1thread": {"WGDESK_PURE_PYTHON": "0", "WGDESK_PORTABLE": "1", "WGDESK_IO_THREAD": "0"},
    "wgdesk-2threads": {"WGDESK_PURE_PYTHON": "0", "WGDESK_IO_THREAD": "1"},
    "main": {},
}
IDLE_SECONDS = 10
BASELINE: Path | None = None

_BASELINE_LAUNCHER = """\
# runs the wgdesk engine of another checkout (the venv's editable install would import this one)
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path.insert(0, {root!r})
from wgdesk.engine.main import main
sys.exit(main(sys.argv[2:]))
"""


def engine_spec(kind: str, workdir: Path) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """(implementation, environment, launcher) of a kind."""
    env = {"LOG_LEVEL": "error", **KIND_ENV.get(kind, {})}
    if kind == "go":
        return "go", env, ()
    if kind == "main":
        if BASELINE is None:
            raise SystemExit("the main kind needs --baseline DIR")
        launcher = workdir / "baseline_engine.py"
        launcher.write_text(_BASELINE_LAUNCHER.format(root=str(BASELINE)))
        return "wgdesk", env, (sys.executable, str(launcher))
    return "wgdesk", env, ()


def build_pair(na: Any, nb: Any, a: str, b: str, workdir: Path, **kw: Any) -> Topology:
    impl_a, env_a, launcher_a = engine_spec(a, workdir)
    impl_b, env_b, launcher_b = engine_spec(b, workdir)
    return build(
        na, nb, impl_a, impl_b, workdir, env_a=env_a, env_b=env_b, launcher_a=launcher_a,
        launcher_b=launcher_b, **kw,
    )  # fmt: skip


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def iperf_tcp(topo: Topology, client: int, seconds: int, moved: list[float] | None = None) -> float:
    """Mbit/s received; `moved` gets the bytes carried appended."""
    server_ns, client_ns = (topo.nb, topo.na) if client == 0 else (topo.na, topo.nb)
    server = server_ns.popen(
        "iperf3", "-s", "-1", "-p", "5201", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert wait_for(lambda: "5201" in server_ns.exec("ss", "-Hltn").stdout, 10)
    out = client_ns.exec(
        "iperf3", "-c", INNER4[1 - client], "-p", "5201", "-t", str(seconds), "-J", timeout=seconds + 30
    ).stdout
    server.wait(10)
    end = json.loads(out)["end"]
    if moved is not None:
        moved.append(float(end["sum_received"]["bytes"]))
    return float(end["sum_received"]["bits_per_second"]) / 1e6


def ping_ms(topo: Topology) -> list[float]:
    """Round-trip times of 100 pings 20 ms apart (the tunnel otherwise idle)."""
    out = topo.na.exec("ping", "-n", "-c", "100", "-i", "0.02", INNER4[1]).stdout
    times = [float(t) for t in re.findall(r"time=([\d.]+) ms", out)]
    assert len(times) >= 95, out
    return times


def measure_all(
    pairs: list[tuple[str, str]], seconds: int, runs: int, workdir: Path
) -> dict[tuple[str, str], dict[str, Any]]:
    """All pairs up at once (idle tunnels cost nothing), measured round-robin.

    The machine is shared, so its load drifts: interleaving the runs of the pairs (a->b and b->a
    of every pair, then the next round) keeps the ratios fair. CPU is counted over each pair's own
    iperf runs only; idle CPU over 10 s with every tunnel quiet.
    """
    with ExitStack() as stack:
        topos = {}
        for a, b in pairs:
            na, nb = stack.enter_context(namespaces("ba", "bb"))
            topo = build_pair(na, nb, a, b, workdir, endpoints=(0, 1))
            topo.ping(0, INNER4[1])
            wait_handshake(topo.a, topo.b.public)
            topos[(a, b)] = topo
        samples: dict[tuple[str, str], dict[str, list[float]]] = {
            pair: {"a_to_b": [], "b_to_a": [], "ping": [], "cpu_a": [], "cpu_b": [], "wall": [], "bytes": []}
            for pair in pairs
        }
        for round_ in range(runs):
            for pair, topo in topos.items():
                print(
                    f"round {round_ + 1}/{runs}: {LABEL[pair[0]]} <-> {LABEL[pair[1]]}",
                    file=sys.stderr,
                    flush=True,
                )
                got = samples[pair]
                pids = (topo.a.proc.pid, topo.b.proc.pid)
                cpu0 = [cpu_seconds(p) for p in pids]
                t0 = time.monotonic()
                got["a_to_b"].append(iperf_tcp(topo, 0, seconds, got["bytes"]))
                got["b_to_a"].append(iperf_tcp(topo, 1, seconds, got["bytes"]))
                got["wall"].append(time.monotonic() - t0)
                got["cpu_a"].append(cpu_seconds(pids[0]) - cpu0[0])
                got["cpu_b"].append(cpu_seconds(pids[1]) - cpu0[1])
                got["ping"].extend(ping_ms(topo))
        all_pids = {pair: (t.a.proc.pid, t.b.proc.pid) for pair, t in topos.items()}
        idle0 = {pair: [cpu_seconds(p) for p in pids] for pair, pids in all_pids.items()}
        time.sleep(IDLE_SECONDS)
        results = {}
        for pair, got in samples.items():
            pids = all_pids[pair]
            wall = sum(got["wall"])
            results[pair] = {
                "a_to_b": statistics.median(got["a_to_b"]),
                "b_to_a": statistics.median(got["b_to_a"]),
                "range": " / ".join(f"{min(got[k]):.0f}-{max(got[k]):.0f}" for k in ("a_to_b", "b_to_a")),
                "ping": statistics.median(got["ping"]),
                "ping_mean": statistics.fmean(got["ping"]),
                "cpu_a": 100 * sum(got["cpu_a"]) / wall,
                "cpu_b": 100 * sum(got["cpu_b"]) / wall,
                "gb_a": sum(got["cpu_a"]) / (sum(got["bytes"]) / 1e9),
                "gb_b": sum(got["cpu_b"]) / (sum(got["bytes"]) / 1e9),
                "rss_a": rss_mib(pids[0]),
                "rss_b": rss_mib(pids[1]),
                "idle_a": cpu_seconds(pids[0]) - idle0[pair][0],
                "idle_b": cpu_seconds(pids[1]) - idle0[pair][1],
            }
        for topo in topos.values():
            topo.a.stop()
            topo.b.stop()
        return results


def profile(seconds: int, workdir: Path, out: Path) -> str:
    stats_file = workdir / "engine.prof"
    with namespaces("pa", "pb") as (na, nb):
        launcher = (sys.executable, "-m", "cProfile", "-o", str(stats_file))
        topo = build(
            na,
            nb,
            "wgdesk",
            "go",
            workdir,
            endpoints=(0, 1),
            env_a={"LOG_LEVEL": "error"},
            launcher_a=launcher,
        )
        topo.ping(0, INNER4[1])
        mbit = iperf_tcp(topo, 0, seconds)
        topo.a.stop()
        topo.b.stop()
    with out.open("w") as f:
        f.write(f"wgdesk -> wireguard-go under cProfile: {mbit:.0f} Mbit/s\n")
        pstats.Stats(str(stats_file), stream=f).sort_stats("tottime").print_stats(25)
    return out.read_text()


def rekey_run(impl_b: str, seconds: int, workdir: Path) -> str:
    """One long iperf3 (1 s intervals) through wgdesk <-> impl_b across the 120 s rekey.

    The flow uses CUBIC: the namespaces inherit this machine's default, BBR, whose ProbeRTT phase
    cuts the window to 4 packets for 200 ms whenever the minimum RTT has not been refreshed for 10 s
    — a dip every 10 s on any tunnel (wireguard-go <-> wireguard-go too) that would hide or fake one
    at the rekey.
    """
    with namespaces("ra", "rb") as (na, nb):
        topo = build(
            na, nb, "wgdesk", impl_b, workdir, endpoints=(0, 1),
            env_a={"LOG_LEVEL": "error"}, env_b={"LOG_LEVEL": "error"},
        )  # fmt: skip
        topo.ping(0, INNER4[1])
        first = wait_handshake(topo.a, topo.b.public)
        server = topo.nb.popen(
            "iperf3", "-s", "-1", "-p", "5201", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert wait_for(lambda: "5201" in topo.nb.exec("ss", "-Hltn").stdout, 10)
        started = int(time.time())
        out = topo.na.exec(
            "iperf3", "-c", INNER4[1], "-p", "5201", "-t", str(seconds), "-i", "1", "-C", "cubic", "-J",
            timeout=seconds + 60,
        ).stdout
        server.wait(10)
        last = int(topo.a.peer(topo.b.public)["handshake"])
        topo.a.stop()
        topo.b.stop()
    rates = [i["sum"]["bits_per_second"] / 1e6 for i in json.loads(out)["intervals"]]
    median = statistics.median(rates)
    worst = min(range(len(rates)), key=rates.__getitem__)
    rekey = last - first - (started - first)  # seconds into the iperf run
    window = rates[max(0, rekey - 3) : rekey + 4]
    return (
        f"wgdesk -> {LABEL[impl_b]} over {seconds} s in 1 s intervals: median {median:.0f} Mbit/s, "
        f"lowest {rates[worst]:.0f} at second {worst + 1} ({rates[worst] / median:.0%} of the median); "
        f"rekey at second {rekey}: seconds {max(0, rekey - 3) + 1}-{rekey + 4} "
        f"{' '.join(f'{r:.0f}' for r in window)} (lowest {min(window, default=0) / median:.0%} of the median)"
    )


def leaf_profile(raw: Path, top: int = 18) -> str:
    """Self time per function from a py-spy raw file (`frame;frame;... count` lines), in %."""
    totals: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        leaf = re.sub(r":\d+\)$", ")", stack.rsplit(";", 1)[-1])
        leaf = re.sub(r"\(/\S*/(wgdesk|lib/python[\d.]+)/", r"(\1/", leaf)
        totals[leaf] = totals.get(leaf, 0) + int(count)
    whole = sum(totals.values()) or 1
    rows = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join(f"{100 * n / whole:5.1f} %  {name}" for name, n in rows)


def pyspy_profile(seconds: int, workdir: Path, out: Path, py_spy: str) -> str:
    """Sample both engines of wgdesk -> wgdesk (idle time included: epoll shows as waiting)."""
    with namespaces("pa", "pb") as (na, nb):
        topo = build(
            na, nb, "wgdesk", "wgdesk", workdir, endpoints=(0, 1),
            env_a={"LOG_LEVEL": "error"}, env_b={"LOG_LEVEL": "error"},
        )  # fmt: skip
        topo.ping(0, INNER4[1])
        raws = [workdir / "send.raw", workdir / "recv.raw"]
        samplers = [
            subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--nonblocking",
                    "--idle",
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    "-d",
                    str(seconds),
                    "-p",
                    str(iface.proc.pid),
                    "-o",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for iface, raw in zip((topo.a, topo.b), raws, strict=True)
        ]
        mbit = iperf_tcp(topo, 0, seconds)
        for sampler in samplers:
            sampler.wait(30)
        topo.a.stop()
        topo.b.stop()
    text = f"wgdesk -> wgdesk sampled by py-spy: {mbit:.0f} Mbit/s (self time, idle included)\n"
    for title, raw in zip(("sender", "receiver"), raws, strict=True):
        text += f"\n{title}:\n{leaf_profile(raw)}\n"
    out.write_text(text)
    return text


def perf_profile(kind: str, seconds: int, workdir: Path) -> str:
    """Where the CPU of both engines of KIND <-> KIND goes during one iperf3 run, from `perf record`
    (native frames: the kernel, libcrypto, the compiled module, the interpreter as one block)."""
    text = ""
    with namespaces("pa", "pb") as (na, nb):
        topo = build_pair(na, nb, kind, kind, workdir, endpoints=(0, 1))
        topo.ping(0, INNER4[1])
        data = [workdir / f"perf-{side}.data" for side in ("send", "recv")]
        recorders = []
        for iface, out in zip((topo.a, topo.b), data, strict=True):
            argv = ["perf", "record", "-F", "1000", "-p", str(iface.proc.pid), "-o", str(out)]
            argv += ["--", "sleep", str(seconds)]
            recorders.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        pids = (topo.a.proc.pid, topo.b.proc.pid)
        cpu0 = [cpu_seconds(p) for p in pids]
        moved: list[float] = []
        mbit = iperf_tcp(topo, 0, seconds, moved)
        cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
        for recorder in recorders:
            recorder.wait(60)
        topo.a.stop()
        topo.b.stop()
    gb = moved[0] / 1e9
    packets = moved[0] / 1380  # TCP payload per 1420-byte tunnel packet
    text += f"{LABEL[kind]} -> {LABEL[kind]} under perf: {mbit:.0f} Mbit/s\n"
    for side, out, used in zip(("sender", "receiver"), data, cpu, strict=True):
        text += (
            f"\n{side}: {used:.2f} CPU s, {used / gb:.2f} s/GB, {1e6 * used / packets:.2f} µs per packet\n"
        )
        for sort, limit in (("dso", 6), ("dso,sym", 14)):
            report = subprocess.run(
                ["perf", "report", "-i", str(out), "--no-children", "--sort", sort, "--stdio"],
                capture_output=True, text=True,
            ).stdout  # fmt: skip
            rows = [line.rstrip() for line in report.splitlines() if re.match(r"^\s+\d+\.\d+%", line)]
            text += "\n".join(rows[:limit]) + "\n"
    return text


def print_table(results: dict[tuple[str, str], dict[str, Any]], seconds: int, runs: int) -> None:
    base = results[("go", "go")]
    print(
        f"\nTCP through the tunnel, iperf3 -t {seconds}, median of {runs} interleaved rounds; "
        "CPU = % of one core over the pair's iperf runs\n"
    )
    header = (
        "pair (a <-> b)",
        "a->b Mbit/s",
        "ratio",
        "b->a Mbit/s",
        "ratio",
        "ping ms median / mean",
        "CPU a",
        "CPU b",
        "CPU s/GB a",
        "CPU s/GB b",
        "RSS a MiB",
        "RSS b MiB",
        f"idle CPU s a/b ({IDLE_SECONDS} s)",
        "range a->b / b->a",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for (a, b), r in results.items():
        row = (
            f"{LABEL[a]} <-> {LABEL[b]}",
            f"{r['a_to_b']:.0f}",
            f"{r['a_to_b'] / base['a_to_b']:.2f}",
            f"{r['b_to_a']:.0f}",
            f"{r['b_to_a'] / base['b_to_a']:.2f}",
            f"{r['ping']:.3f} / {r['ping_mean']:.3f}",
            f"{r['cpu_a']:.0f}%",
            f"{r['cpu_b']:.0f}%",
            f"{r['gb_a']:.1f}",
            f"{r['gb_b']:.1f}",
            f"{r['rss_a']:.0f}",
            f"{r['rss_b']:.0f}",
            f"{r['idle_a']:.2f} / {r['idle_b']:.2f}",
            r["range"],
        )
        print("| " + " | ".join(row) + " |")


def _pair(text: str) -> tuple[str, str]:
    for kind in sorted(LABEL, key=len, reverse=True):
        if text.startswith(kind + "-") and text[len(kind) + 1 :] in LABEL:
            return kind, text[len(kind) + 1 :]
    raise SystemExit(f"unknown pair {text!r}: KIND-KIND with kinds {', '.join(LABEL)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pairs", help="comma-separated KIND-KIND pairs (default: all)")
    parser.add_argument("--baseline", type=Path, help="another checkout: adds its engine as 'main'")
    parser.add_argument("--profile", type=Path, help="also profile wgdesk; write the summary here")
    parser.add_argument("--profile-only", action="store_true", help="skip the throughput rows")
    parser.add_argument("--perf", metavar="KIND", help="only: profile KIND <-> KIND with perf record")
    parser.add_argument(
        "--rekey", type=int, metavar="SECONDS", help="only: one long run across the rekey (130)"
    )
    args = parser.parse_args()
    global BASELINE
    BASELINE = args.baseline.resolve() if args.baseline else None
    pairs = PAIRS + (BASELINE_PAIRS if BASELINE else [])
    if args.pairs:
        pairs = [_pair(p) for p in args.pairs.split(",")]
    if ("go", "go") not in pairs:
        pairs.insert(0, ("go", "go"))
    workdir = Path(tempfile.mkdtemp(prefix="wgdesk-bench-"))
    if args.perf:
        print(perf_profile(args.perf, args.seconds, workdir))
        return
    if args.rekey:
        for impl_b in ("wgdesk", "go"):
            print(rekey_run(impl_b, args.rekey, workdir), flush=True)
        return
    results = (
        {} if args.profile_only and args.profile else measure_all(pairs, args.seconds, args.runs, workdir)
    )
    if results:
        print_table(results, args.seconds, args.runs)
    if args.profile:
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if py_spy:
            print(f"\nprofiling wgdesk -> wgdesk (py-spy, {args.seconds} s) …", file=sys.stderr)
            print("\n" + pyspy_profile(args.seconds, workdir, args.profile, py_spy))
        else:
            print(f"\nprofiling wgdesk -> wireguard-go (cProfile, {args.seconds} s) …", file=sys.stderr)
            print("\n" + profile(args.seconds, workdir, args.profile))


if __name__ == "__main__":
    main()
