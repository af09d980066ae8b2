#!/usr/bin/python3
"""Simulated bisections: fsrace bisect's flaky-aware decision (kernels/bisect.py) against the naive
"one run per step, a clean run is good" strategy (`git bisect run`, ktest), over the same culprits.

    /usr/bin/python3 bench/bisect_sim.py [--seeds 200] [--ns 16,128,1000] [--ps 0.05,0.1,0.2,0.5,1]
        [--skip 0.05] [--confidence 0.99] [--max-runs 300] [--build-cost 3] [--jobs 2]

For each (N candidates, p = the chance one campaign run detects the bug at a bad commit) it runs --seeds
bisections with a culprit drawn per seed (uniform in 1..N), infra skips at rate --skip, and prints one table
row: how often the culprit was named right, named wrong, or the bisection ended inconclusive (budget spent,
or "not reproduced" at the bad end), and the mean test runs and builds; beside it the naive strategy's
accuracy, runs and builds. The figures are the simulation's, deterministic given the seeds: rerunning
prints the same table. `make bench-bisect` runs the defaults; docs/bisect.md quotes the table.
"""
import argparse
import importlib.util
import math
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "fsrace_bisect", Path(__file__).resolve().parent.parent / "kernels" / "bisect.py")
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)


def culprit_of(n: int, seed: int) -> int:
    return random.Random(seed * 7919 + n).randint(1, n)


def one(args):
    n, p, seed, skip, confidence, max_runs, build_cost = args
    c = culprit_of(n, seed)
    cfg = B.Config(confidence=confidence, max_runs=max_runs, build_cost=build_cost)
    r = B.simulate(n, c, p, seed, skip_rate=skip, cfg=cfg)
    v = r["verdict"]
    named = v.kind == "culprit"
    q = B.simulate_naive(n, c, p, seed, skip_rate=skip)
    return (n, p, named and v.culprit == c, named and v.culprit != c, r["runs"], r["builds"],
            q["correct"], q["runs"], q["builds"])


def wilson(k: int, m: int, z: float = 1.96):
    if m == 0:
        return (0.0, 1.0)
    ph = k / m
    d = 1 + z * z / m
    c = (ph + z * z / (2 * m)) / d
    h = z * math.sqrt(ph * (1 - ph) / m + z * z / (4 * m * m)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def floats(s):
    try:
        return [float(x) for x in s.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r}: a comma-separated list of numbers")


def ints(s):
    try:
        v = [int(x) for x in s.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r}: a comma-separated list of integers")
    if not v or min(v) < 1:
        raise argparse.ArgumentTypeError(f"{s!r}: candidate counts must be >= 1")
    return v


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        sys.stderr.write(f"bisect_sim: {message}\n")
        sys.exit(2)


def main(argv=None) -> int:
    ap = _Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--ns", type=ints, default=[16, 128, 1000])
    ap.add_argument("--ps", type=floats, default=[0.05, 0.1, 0.2, 0.5, 1.0])
    ap.add_argument("--skip", type=float, default=0.05, help="infra-skip rate per run")
    ap.add_argument("--confidence", type=float, default=0.99)
    ap.add_argument("--max-runs", type=int, default=300, help="test-run budget per bisection (the CLI's default)")
    ap.add_argument("--build-cost", type=float, default=3.0, help="a build, in test runs")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args(argv)
    if a.seeds < 1:
        ap.error(f"--seeds {a.seeds}: must be >= 1")
    if any(not 0 < p <= 1 for p in a.ps):
        ap.error(f"--ps {a.ps}: each p must be in (0, 1]")
    if not 0 <= a.skip < 1:
        ap.error(f"--skip {a.skip}: must be in [0, 1)")
    if not 0.5 < a.confidence < 1:
        ap.error(f"--confidence {a.confidence}: must be in (0.5, 1)")
    if a.max_runs < 1 or a.build_cost < 0 or a.jobs < 1:
        ap.error("--max-runs and --jobs must be >= 1, --build-cost >= 0")

    work = [(n, p, s, a.skip, a.confidence, a.max_runs, a.build_cost)
            for n in a.ns for p in a.ps for s in range(a.seeds)]
    t0 = time.monotonic()
    if a.jobs == 1:
        rows = list(map(one, work))
    else:
        with ProcessPoolExecutor(a.jobs) as ex:
            rows = list(ex.map(one, work, chunksize=8))
    wall = time.monotonic() - t0

    print(f"simulated bisections: {a.seeds} culprits per row, infra skips {a.skip:.0%}, confidence "
          f"{a.confidence}, budget {a.max_runs} runs, a build = {a.build_cost:g} runs "
          f"({len(work)} bisections x 2 strategies in {wall:.0f} s)")
    print()
    print("|     N |    p | fsrace: right (95 % CI)      | wrong | inconcl. | runs  | builds | "
          "naive: right | runs | builds |")
    print("|------:|-----:|:-----------------------------|------:|---------:|------:|-------:|"
          "-------------:|-----:|-------:|")
    for n in a.ns:
        for p in a.ps:
            r = [x for x in rows if x[0] == n and x[1] == p]
            m = len(r)
            right = sum(x[2] for x in r)
            wrong = sum(x[3] for x in r)
            lo, hi = wilson(right, m)
            nright = sum(x[6] for x in r)
            print(f"| {n:5d} | {p:4.2f} | {right / m:6.1%} ({lo:5.1%}-{hi:6.1%})     | {wrong / m:5.1%} | "
                  f"{(m - right - wrong) / m:8.1%} | {sum(x[4] for x in r) / m:5.1f} | {sum(x[5] for x in r) / m:6.1f} | "
                  f"{nright / m:12.1%} | {sum(x[7] for x in r) / m:4.1f} | {sum(x[8] for x in r) / m:6.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
