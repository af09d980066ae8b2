#!/usr/bin/env bash
# Probe overhead benchmark (issue 3; prints figures, not a timed test): ops/s of the default punch-vs-fault
# campaign in host mode with every available probe attached vs none. Two measurements:
#
# 1. Toggled (the precise one): a few long races with [probes] toggle_ms, in which every probe is detached
#    and attached again in alternating stretches (harness/probe_toggle.h). Each attached stretch is
#    compared with the mean of its detached neighbours in the same race, so what differs between runs
#    (how the racing threads collide, the file's layout, host noise) cancels. The figure is the median of
#    all stretches' ratios with its distribution-free 95 % confidence interval.
# 2. Separate runs (end to end, noisier): per round, same seed, one run without probes and one with them
#    as a normal run has them (kernel BPF run-time statistics over the first 0.5 s, from which the
#    report's probe CPU share comes); the order alternates after an unmeasured warm-up. Per-run
#    throughput on a small VM swings by ~10 %, so this median's CI is wide.
#
# Usage: bench/probes_overhead.sh [SECONDS per separate run, default 6] [ROUNDS, default 12]
#        [FILESYSTEMS, default "ext4 xfs"] [TOGGLED RACES, default 3] [SECONDS per toggled race, default 40]
# Environment: TOGGLE_MS (stretch length, default 500). Root.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-6}"
reps="${2:-12}"
filesystems="${3:-ext4 xfs}"
truns="${4:-3}"
tsecs="${5:-40}"
tms="${TOGGLE_MS:-500}"
out="$(mktemp -d /var/tmp/fsrace-bench.XXXXXX)"
trap 'rm -rf "$out"' EXIT
{ cat "$top/campaigns/default.toml"; printf '\n[probes]\ncpu_stats = false\ntoggle_ms = %s\n' "$tms"; } > "$out/toggle.toml"
echo "probe overhead: punch-vs-fault, host mode, kernel $(uname -r)"
echo "  toggled: ${truns} races of ${tsecs} s, stretches of ${tms} ms; separate runs: ${secs} s x ${reps} rounds"
for fs in $filesystems; do
  "$top/fsrace" run --local --fs "$fs" --duration 1 --results "$out/warmup" --quiet > /dev/null || true
  : > "$out/rows"
  for r in $(seq "$truns"); do
    "$top/fsrace" run --local --fs "$fs" --duration "$tsecs" --seed "$r" --results "$out/toggle" --quiet "$out/toggle.toml" \
      > /dev/null || true
    echo "$r toggle $(ls -td "$out/toggle"/*/*/ | head -1)" >> "$out/rows"
  done
  for r in $(seq "$reps"); do
    if (( r % 2 )); then order="none probes"; else order="probes none"; fi
    for mode in $order; do
      args=(--local --fs "$fs" --duration "$secs" --seed "$r" --results "$out/$mode" --quiet)
      [[ $mode == none ]] && args+=(--no-probes)
      "$top/fsrace" run "${args[@]}" > /dev/null || true
      echo "$r $mode $(ls -td "$out/$mode"/*/*/ | head -1)" >> "$out/rows"
    done
  done
  python3 - "$fs" "$out/rows" <<'PY'
import json, statistics, sys
from math import comb
fs, rows = sys.argv[1], [l.split() for l in open(sys.argv[2])]
runs = {}
for r, mode, d in rows:
    runs.setdefault(mode, {})[int(r)] = json.load(open(d + "/findings.json"))["cases"][0]
def ci(v):  # distribution-free 95 % CI of the median: k-th smallest / largest, P(Bin(n, 1/2) < k) <= 2.5 %
    n, k = len(v), 0
    while k + 1 <= n and sum(comb(n, i) for i in range(k + 1)) / 2 ** n <= 0.025:
        k += 1
    s = sorted(v)
    return f"95 % CI {s[k-1]:.1f} .. {s[n-k]:.1f} %" if k >= 1 else "too few for a 95 % CI (need 6)"
sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0

tog = [runs["toggle"][r]["probes"].get("toggle") for r in sorted(runs.get("toggle", {}))]
tog = [t for t in tog if t]
if tog:
    for key, what in (("pair_ratios_ops", "ops/s"), ("pair_ratios_ops_per_cpu", "ops per CPU-second")):
        v = [100 * x for t in tog for x in t[key]]
        print(f"{fs:5} toggled: per-race medians {' '.join(f'{100 * statistics.median(t[key]):.1f}' for t in tog)} %")
        print(f"{fs:5} RESULT (toggled, {what}): probes attached run at a median {statistics.median(v):.1f} % of detached "
              f"({ci(v)}, {len(v)} stretches of {tog[0]['period_ms']} ms, sd {sd(v):.1f})  (target >= 95 %)")
    on = sum(t["attached"]["ops"] for t in tog) / (sum(t["attached"]["ns"] for t in tog) / 1e9)
    off = sum(t["detached"]["ops"] for t in tog) / (sum(t["detached"]["ns"] for t in tog) / 1e9)
    print(f"{fs:5} toggled totals: attached {on:.0f} ops/s, detached {off:.0f} ops/s ({100 * on / off:.1f} %)")
    errs = [t["error"] for t in tog if "error" in t]
    if errs: print(f"{fs:5} toggled: re-attach errors: {errs}")

def ops(c): return c["ops"]["total"] / c["ops"]["seconds"]
def ops_per_cpu(c): return c["ops"]["total"] / (c["ops"]["cpu_ns"] / 1e9)  # per CPU-second of fsrace, kernel time included
if "probes" in runs and "none" in runs:
    base = runs["none"]
    for mode in ("none", "probes"):
        v = [ops(runs[mode][r]) for r in sorted(runs[mode])]
        print(f"{fs:5} {mode:8} median {statistics.median(v):9.0f} mean {statistics.mean(v):9.0f} sd {sd(v):7.0f} ops/s  {' '.join(f'{x:.0f}' for x in v)}")
    p = [runs["probes"][r]["probes"] for r in sorted(runs["probes"])]
    print(f"{fs:5} probes: attached {p[0]['attached']}, events/run {' '.join(str(x.get('events', 0)) for x in p)}, "
          f"dropped {' '.join(str(x.get('dropped', 0)) for x in p)}")
    cpu = [100 * x.get("cpu", {}).get("share", 0) for x in p]
    print(f"{fs:5} probe CPU (BPF programs + event reader) as a share of fsrace's CPU time, per run: "
          f"{' '.join(f'{x:.1f}' for x in cpu)} %, median {statistics.median(cpu):.1f} %  (a direct figure: no run-to-run noise)")
    pairs = [100 * ops(runs["probes"][r]) / ops(base[r]) for r in sorted(runs["probes"]) if r in base]
    print(f"{fs:5} separate runs, per round, % of no probes: {' '.join(f'{x:.0f}' for x in pairs)} (sd {sd(pairs):.1f})")
    print(f"{fs:5} RESULT (separate runs): median throughput {statistics.median(pairs):.1f} % of no probes "
          f"({ci(pairs)}, {len(pairs)} rounds)  (target >= 95 %)")
    eff = [100 * ops_per_cpu(runs["probes"][r]) / ops_per_cpu(base[r]) for r in sorted(runs["probes"]) if r in base]
    print(f"{fs:5} separate runs, ops per CPU-second (fsrace's user + kernel time, BPF included), % of no probes: "
          f"median {statistics.median(eff):.1f} % ({ci(eff)}), per round {' '.join(f'{x:.0f}' for x in eff)}")
PY
done
