"""One fuzzing process: ``python -m tests.fuzz.worker TARGET [libFuzzer flags...]`` (`scripts/fuzz` runs it).

The target's code is imported under atheris' instrumentation (only ``wgdesk``), so libFuzzer sees Python
branch coverage. Around the target this adds the invariants every target shares:

* memory: the resident set is sampled after a warm-up and then every `CHECK_EVERY` inputs; growing by more
  than ``FUZZ_RSS_GROWTH_MB`` (default 48) over the rest of the run is a finding (a leak of 50 bytes an
  input over 10⁶ inputs is caught);
* time: libFuzzer's ``-timeout`` bounds one input (a hang is a finding, reported as a timeout);
* exceptions: anything the target raises is a finding; targets raise only where an invariant broke.

Every `CHECK_EVERY` inputs a ``fuzz-stats {json}`` line goes to stderr (inputs, RSS now, baseline, peak) for
the runner's report.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time

import atheris

CHECK_EVERY = 5000
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MemoryGrowth(AssertionError):
    """The process kept growing: something the target touches retains memory per input."""


def main() -> None:
    target = sys.argv[1]
    runs = int(os.environ.get("FUZZ_RUNS", "0"))
    limit = float(os.environ.get("FUZZ_RSS_GROWTH_MB", "48"))
    warmup = max(500, min(50_000, runs // 10)) if runs else 20_000
    with atheris.instrument_imports(include=["wgdesk"]):
        module = importlib.import_module(f"tests.fuzz.targets.{target}")
    one_input = module.setup()
    state = {"count": 0, "baseline": 0.0, "started": time.monotonic()}

    def report(final: bool = False) -> None:
        now = rss_mb()
        stats = {
            "target": target,
            "inputs": state["count"],
            "seconds": round(time.monotonic() - state["started"], 1),
            "rss_mb": round(now, 1),
            "baseline_rss_mb": round(state["baseline"], 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "final": final,
        }
        print("fuzz-stats " + json.dumps(stats), file=sys.stderr, flush=True)
        if state["baseline"] and now - state["baseline"] > limit:
            raise MemoryGrowth(
                f"resident set grew from {state['baseline']:.1f} MB to {now:.1f} MB "
                f"after {state['count']} inputs (limit: +{limit:.0f} MB)"
            )

    def test_one_input(data: bytes) -> None:
        one_input(data)
        state["count"] += 1
        count = state["count"]
        if count == warmup:
            state["baseline"] = rss_mb()
        if count % CHECK_EVERY == 0:
            report()
        if count == runs:
            report(final=True)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
