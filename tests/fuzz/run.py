"""Run fuzz targets and report: ``scripts/fuzz [TARGET...] [-n N] [--time S]``.

Each target runs in its own process (`tests.fuzz.worker`, atheris + libFuzzer) on a scratch corpus seeded
from the committed seeds, so the repository is never written to. Printed per target: inputs, seconds,
inputs/s, coverage (libFuzzer's ``cov`` = covered edges and ``ft`` = features), the corpus size reached,
peak and growth of the resident set, and findings. A finding (exception, broken invariant, hang, memory
growth) leaves the input in the findings directory; replay it with
``.venv/bin/python -m tests.fuzz.worker TARGET FILE``. The exit status is 1 if any target found something.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
INPUT_TIMEOUT = 10
"""Seconds one input may take before libFuzzer calls it a hang (a finding)."""
RSS_LIMIT_MB = 2048


@dataclass
class Result:
    target: str
    inputs: int = 0
    seconds: float = 0.0
    coverage: str = "-"
    corpus: int = 0
    peak_rss_mb: float = 0.0
    rss_growth_mb: float | None = None
    slowest_s: int = 0
    findings: list[str] = field(default_factory=list)
    log: Path | None = None

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


def seed_dirs(target: str) -> list[Path]:
    module = importlib.import_module(f"tests.fuzz.targets.{target}")
    dirs = [CORPUS / target, *(ROOT / d for d in getattr(module, "EXTRA_SEEDS", ()))]
    return [d for d in dirs if d.is_dir()]


def max_len(target: str) -> int:
    module = importlib.import_module(f"tests.fuzz.targets.{target}")
    return int(getattr(module, "MAX_LEN", 4096))


_COV = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)(?: corp: (\d+))?")
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")


def parse_log(result: Result, text: str, elapsed: float, returncode: int, findings_dir: Path) -> None:
    for m in _COV.finditer(text):
        result.inputs = max(result.inputs, int(m.group(1)))
        result.coverage = f"cov {m.group(2)} ft {m.group(3)}"
        if m.group(4):
            result.corpus = int(m.group(4))
    stats = [
        json.loads(line[len("fuzz-stats ") :]) for line in text.splitlines() if line.startswith("fuzz-stats ")
    ]
    if stats:
        last = stats[-1]
        result.inputs = max(result.inputs, last["inputs"])
        result.peak_rss_mb = last["peak_rss_mb"]
        if last["baseline_rss_mb"]:
            result.rss_growth_mb = round(last["rss_mb"] - last["baseline_rss_mb"], 1)
    m = re.search(r"stat::peak_rss_mb:\s+(\d+)", text)
    if m:
        result.peak_rss_mb = max(result.peak_rss_mb, float(m.group(1)))
    m = re.search(r"stat::slowest_unit_time_sec:\s+(\d+)", text)
    if m:
        result.slowest_s = int(m.group(1))
    m = re.search(r"stat::number_of_executed_units:\s+(\d+)", text)
    if m:
        result.inputs = max(result.inputs, int(m.group(1)))
    result.seconds = elapsed
    for pattern, what in (
        (r"=== Uncaught Python exception: ===\n(.*?)\n", "exception"),
        (r"ALARM: working on the last Unit for (\d+) seconds", "hang"),
        (r"out-of-memory \(used: (\d+)Mb", "out of memory"),
    ):
        for m in re.finditer(pattern, text):
            result.findings.append(f"{what}: {m.group(1)}")
    if returncode != 0 and not result.findings:
        tail = text.strip().splitlines()[-3:]
        result.findings.append(f"exit status {returncode}: {' | '.join(tail)}")
    for path in sorted(findings_dir.glob(f"{result.target}-*")):
        result.findings.append(f"input saved: {path}")


def scratch_parent() -> str | None:
    """The caller's TMPDIR, else /dev/shm (the imports target writes and fsyncs a store per input)."""
    if os.environ.get("TMPDIR"):
        return None
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


@contextmanager
def removed(directory: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_target(
    target: str, runs: int, seconds: int | None, findings_dir: Path, verbose: bool, work: Path
) -> Result:
    corpus = work / target
    corpus.mkdir(parents=True, exist_ok=True)
    log_path = findings_dir / f"{target}.log"
    cmd = [
        sys.executable, "-m", "tests.fuzz.worker", target, str(corpus), *map(str, seed_dirs(target)),
        f"-runs={runs}", f"-timeout={INPUT_TIMEOUT}", f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-max_len={max_len(target)}", "-print_final_stats=1", f"-artifact_prefix={findings_dir}/{target}-",
    ]  # fmt: skip
    dictionary = ROOT / "tests" / "fuzz" / "dicts" / f"{target}.dict"
    if dictionary.exists():
        cmd.append(f"-dict={dictionary}")
    if seconds:
        cmd.append(f"-max_total_time={seconds}")
    # what a target creates (stores, sockets, engine directories) goes under one scratch directory that is
    # removed here, also when libFuzzer ends the worker without running its Python exit handlers
    scratch = Path(tempfile.mkdtemp(prefix=f"wgdesk-fuzz-{target}-", dir=scratch_parent()))
    env = {**os.environ, "FUZZ_RUNS": str(runs), "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log, removed(scratch):
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if verbose:
                sys.stderr.write(line)
        proc.wait()
    elapsed = time.monotonic() - started
    result = Result(target, log=log_path)
    parse_log(result, log_path.read_text(encoding="utf-8"), elapsed, proc.returncode, findings_dir)
    return result


def table(results: list[Result]) -> str:
    head = f"{'target':<13} {'inputs':>9} {'seconds':>8} {'inputs/s':>9} {'coverage':<20} {'corpus':>6} "
    head += f"{'peak RSS':>9} {'RSS growth':>10} {'slowest':>7}  findings"
    lines = [head]
    for r in results:
        growth = "-" if r.rss_growth_mb is None else f"{r.rss_growth_mb:+.1f} MB"
        found = len([f for f in r.findings if not f.startswith("input")])
        lines.append(
            f"{r.target:<13} {r.inputs:>9} {r.seconds:>8.1f} {r.rate:>9.0f} {r.coverage:<20} {r.corpus:>6} "
            f"{r.peak_rss_mb:>6.0f} MB {growth:>10} {r.slowest_s:>5} s  {found}"
        )
    for r in results:
        for finding in r.findings:
            lines.append(f"{r.target}: {finding}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=f"default: all ({', '.join(TARGETS)})")
    parser.add_argument("-n", "--runs", type=int, default=100_000, help="inputs per target (default 100000)")
    parser.add_argument("--time", type=int, default=None, help="stop each target after this many seconds")
    parser.add_argument("--findings", type=Path, default=None, help="where logs and failing inputs go")
    parser.add_argument("--keep-corpus", type=Path, default=None, help="keep the grown corpus here")
    parser.add_argument("-v", "--verbose", action="store_true", help="show libFuzzer's output")
    args = parser.parse_args(argv)
    targets = args.targets or list(TARGETS)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r}; choose from {', '.join(TARGETS)}")
    findings_dir = args.findings or Path(tempfile.mkdtemp(prefix="wgdesk-fuzz-"))
    findings_dir.mkdir(parents=True, exist_ok=True)
    work = args.keep_corpus or Path(tempfile.mkdtemp(prefix="wgdesk-fuzz-corpus-"))
    results = []
    try:
        for target in targets:
            result = run_target(target, args.runs, args.time, findings_dir.resolve(), args.verbose, work)
            results.append(result)
            print(table([result]).splitlines()[1], flush=True)
    finally:
        if args.keep_corpus is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(results))
    print(f"\nlogs: {findings_dir}")
    return 1 if any(r.findings for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
