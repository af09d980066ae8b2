#!/usr/bin/env bash
# Probe overhead benchmark (issue 3; prints figures, not a timed test): ops/s of the default punch-vs-fault
# campaign in host mode with every available probe attached vs --no-probes. Runs come in pairs with the same
# seed, in alternating order (ABBA: drift over the session favours neither side), after one unmeasured
# warm-up run. Per-run throughput on a small VM swings by ~10 %, so the figure to read is the median of the
# per-pair ratios with its distribution-free 95 % confidence interval (order statistics of the ratios).
# Usage: bench/probes_overhead.sh [SECONDS per run, default 4] [PAIRS, default 12]
# [FILESYSTEMS, default "ext4 xfs"]. Root.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-4}"
reps="${2:-12}"
filesystems="${3:-ext4 xfs}"
out="$(mktemp -d /var/tmp/fsrace-bench.XXXXXX)"
trap 'rm -rf "$out"' EXIT
opsps() {  # run dir -> ops/s of its single case
  python3 -c 'import json,sys; c=json.load(open(sys.argv[1]+"/findings.json"))["cases"][0]; print(c["ops"]["total"]/c["ops"]["seconds"])' "$1"
}
echo "probe overhead: punch-vs-fault, host mode, kernel $(uname -r), ${secs} s x ${reps} pairs"
for fs in $filesystems; do
  base=(); probed=(); events=()
  "$top/fsrace" run --local --fs "$fs" --duration 1 --results "$out/warmup" --quiet > /dev/null || true
  for r in $(seq "$reps"); do
    order="none probes"; [ $((r % 4)) = 2 ] || [ $((r % 4)) = 3 ] && order="probes none"
    for mode in $order; do
      flag=""; [ "$mode" = none ] && flag="--no-probes"
      "$top/fsrace" run --local --fs "$fs" --duration "$secs" --seed "$r" --results "$out/$mode" --quiet $flag > /dev/null || true
      dir="$(ls -td "$out/$mode"/default/*/ | head -1)"
      v="$(opsps "$dir")"
      if [ "$mode" = none ]; then base+=("$v"); else probed+=("$v"); events+=("$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]+"/findings.json"))["cases"][0]["probes"]; print(c.get("events",0), c.get("dropped",0), c["attached"], round(100*c.get("cpu",{}).get("share",0),2))' "$dir")"); fi
    done
  done
  python3 - "$fs" "${base[*]}" "${probed[*]}" "${events[*]}" <<'PY'
import statistics, sys
fs, base, probed, ev = sys.argv[1], list(map(float, sys.argv[2].split())), list(map(float, sys.argv[3].split())), sys.argv[4].split()
b, p = statistics.median(base), statistics.median(probed)
mb, mp = statistics.mean(base), statistics.mean(probed)
sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
triples = [ev[i:i+4] for i in range(0, len(ev), 4)]
print(f"{fs:5} no probes: median {b:9.0f} mean {mb:9.0f} sd {sd(base):7.0f} ops/s  {' '.join(f'{x:.0f}' for x in base)}")
print(f"{fs:5} probes:    median {p:9.0f} mean {mp:9.0f} sd {sd(probed):7.0f} ops/s  {' '.join(f'{x:.0f}' for x in probed)}  "
      f"(attached {triples[0][2]}, events/run {' '.join(t[0] for t in triples)}, dropped {' '.join(t[1] for t in triples)})")
# pairwise ratios (each probed run against the unprobed run just before it) show the run-to-run spread
pairs = [100 * x / y for x, y in zip(probed, base)]
cpu = [float(t[3]) for t in triples]
print(f"{fs:5} probe CPU (BPF programs + event reader) as a share of fsrace's CPU time, per run: "
      f"{' '.join(f'{x:.1f}' for x in cpu)} %, median {statistics.median(cpu):.1f} %  (a direct figure: no run-to-run noise)")
print(f"{fs:5} probes/none = {100*p/b:.1f} % of medians, {100*mp/mb:.1f} % of means, per pair {' '.join(f'{x:.0f}' for x in pairs)} "
      f"(sd {sd(pairs):.1f})")
# Distribution-free CI for the median ratio: the k-th smallest and k-th largest ratios, k the largest with
# P(Binomial(n, 1/2) < k) <= 2.5 %.
from math import comb
n = len(pairs)
k = 0
while k + 1 <= n and sum(comb(n, i) for i in range(k + 1)) / 2 ** n <= 0.025:
    k += 1
s = sorted(pairs)
ci = f"95 % CI {s[k-1]:.1f} .. {s[n-k]:.1f} %" if k >= 1 else "too few pairs for a 95 % CI (need 6)"
print(f"{fs:5} RESULT: median per-pair throughput with probes = {statistics.median(pairs):.1f} % of without ({ci}, {n} pairs)  (target >= 95 %)")
PY
done
