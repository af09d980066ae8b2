#!/usr/bin/env bash
# Probe overhead benchmark (issue 3; prints figures, not a timed test): ops/s of the default punch-vs-fault
# campaign in host mode with every available probe attached vs --no-probes. Three runs per round with the
# same seed: no probes, probes as a normal run has them (with the kernel's BPF run-time statistics that the
# report's probe CPU share comes from), and probes with those statistics off ([probes] cpu_stats = false:
# what the probes alone cost). The order rotates from round to round so drift over the session favours no
# mode, after one unmeasured warm-up run. Per-run throughput on a small VM swings by ~10 %, so the figure
# to read is the median of the per-round ratios with its distribution-free 95 % confidence interval (order
# statistics of the ratios).
# Usage: bench/probes_overhead.sh [SECONDS per run, default 4] [ROUNDS, default 12]
# [FILESYSTEMS, default "ext4 xfs"]. Root.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-4}"
reps="${2:-12}"
filesystems="${3:-ext4 xfs}"
out="$(mktemp -d /var/tmp/fsrace-bench.XXXXXX)"
trap 'rm -rf "$out"' EXIT
{ cat "$top/campaigns/default.toml"; printf '\n[probes]\ncpu_stats = false\n'; } > "$out/nostats.toml"
echo "probe overhead: punch-vs-fault, host mode, kernel $(uname -r), ${secs} s x ${reps} rounds"
for fs in $filesystems; do
  "$top/fsrace" run --local --fs "$fs" --duration 1 --results "$out/warmup" --quiet > /dev/null || true
  : > "$out/rows"
  for r in $(seq "$reps"); do
    case $((r % 3)) in
      0) order="none probes nostats" ;;
      1) order="probes nostats none" ;;
      *) order="nostats none probes" ;;
    esac
    for mode in $order; do
      args=(--local --fs "$fs" --duration "$secs" --seed "$r" --results "$out/$mode" --quiet)
      case "$mode" in
        none) args+=(--no-probes) ;;
        nostats) args+=("$out/nostats.toml") ;;
      esac
      "$top/fsrace" run "${args[@]}" > /dev/null || true
      dir="$(ls -td "$out/$mode"/*/*/ | head -1)"
      echo "$r $mode $dir" >> "$out/rows"
    done
  done
  python3 - "$fs" "$out/rows" <<'PY'
import json, statistics, sys
from math import comb
fs, rows = sys.argv[1], [l.split() for l in open(sys.argv[2])]
runs = {}
for r, mode, d in rows:
    c = json.load(open(d + "/findings.json"))["cases"][0]
    runs.setdefault(mode, {})[int(r)] = c
def ops(c): return c["ops"]["total"] / c["ops"]["seconds"]
def ops_per_cpu(c): return c["ops"]["total"] / (c["ops"]["cpu_ns"] / 1e9)  # per CPU-second of fsrace, kernel time included
sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
def ci(v):  # distribution-free 95 % CI of the median: k-th smallest / largest, P(Bin(n, 1/2) < k) <= 2.5 %
    n, k = len(v), 0
    while k + 1 <= n and sum(comb(n, i) for i in range(k + 1)) / 2 ** n <= 0.025:
        k += 1
    s = sorted(v)
    return f"95 % CI {s[k-1]:.1f} .. {s[n-k]:.1f} %" if k >= 1 else "too few rounds for a 95 % CI (need 6)"
base = runs["none"]
for mode in ("none", "probes", "nostats"):
    v = [ops(runs[mode][r]) for r in sorted(runs[mode])]
    print(f"{fs:5} {mode:8} median {statistics.median(v):9.0f} mean {statistics.mean(v):9.0f} sd {sd(v):7.0f} ops/s  {' '.join(f'{x:.0f}' for x in v)}")
p = [runs["probes"][r]["probes"] for r in sorted(runs["probes"])]
print(f"{fs:5} probes: attached {p[0]['attached']}, events/run {' '.join(str(x.get('events', 0)) for x in p)}, "
      f"dropped {' '.join(str(x.get('dropped', 0)) for x in p)}")
cpu = [100 * x.get("cpu", {}).get("share", 0) for x in p]
print(f"{fs:5} probe CPU (BPF programs + event reader) as a share of fsrace's CPU time, per run: "
      f"{' '.join(f'{x:.1f}' for x in cpu)} %, median {statistics.median(cpu):.1f} %  (a direct figure: no run-to-run noise)")
for mode, what in (("probes", "probes (as runs have them)"), ("nostats", "probes without run-time stats")):
    pairs = [100 * ops(runs[mode][r]) / ops(base[r]) for r in sorted(runs[mode]) if r in base]
    print(f"{fs:5} {mode:8} per round, % of no probes: {' '.join(f'{x:.0f}' for x in pairs)} (sd {sd(pairs):.1f})")
    print(f"{fs:5} RESULT: {what}: median throughput {statistics.median(pairs):.1f} % of no probes "
          f"({ci(pairs)}, {len(pairs)} rounds)  (target >= 95 %)")
    eff = [100 * ops_per_cpu(runs[mode][r]) / ops_per_cpu(base[r]) for r in sorted(runs[mode]) if r in base]
    print(f"{fs:5} {mode:8} ops per CPU-second (fsrace's user + kernel time, the BPF programs included), % of no probes: "
          f"median {statistics.median(eff):.1f} % ({ci(eff)}), per round {' '.join(f'{x:.0f}' for x in eff)}")
PY
done
