#!/usr/bin/env bash
# Report benchmark (issue 16; prints figures, not a timed test): what `fsrace report` costs on a long case
# and what report.html costs a browser. One host run of punch-vs-fault on ext4 with probes and
# --inject-corruption (so there are itemised findings with timelines), then:
#   - `fsrace report RUN --out D` ROUNDS times: wall time and peak RSS (median and range), output sizes;
#   - headless chromium loading report.html#selftest vs about:blank, alternating, ROUNDS times each:
#     the medians and their difference (what the page itself costs).
# Usage: bench/report_bench.sh [SECONDS of racing, default 60] [ROUNDS, default 3]. Root (host mode).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-60}"
rounds="${2:-3}"
out="$(mktemp -d /var/tmp/fsrace-report-bench.XXXXXX)"
trap 'rm -rf "$out"' EXIT
fsrace="$top/fsrace"
chromium="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$chromium" ] || { echo "report bench: chromium missing (make deps installs it)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "report bench: /usr/bin/time missing (Debian package time)" >&2; exit 2; }
echo "report bench: punch-vs-fault on ext4, ${secs} s with probes and --inject-corruption, kernel $(uname -r)"
set +e
"$fsrace" run "$top/campaigns/default.toml" --fs ext4 --duration "$secs" --inject-corruption --results "$out/res" --quiet \
  >"$out/run.out" 2>"$out/run.err"
rc=$?
set -e
[ "$rc" = 1 ] || { tail -5 "$out/run.err"; echo "report bench: the run exited $rc, expected 1 (injected findings)" >&2; exit 2; }
run="$(ls -d "$out"/res/*/*/ | head -1)"
case_dir="$(ls -d "$run"*/ | head -1)"
printf '  case: %s ops.bin, %s events.bin, %s\n' "$(du -h "$case_dir/ops.bin" | cut -f1)" "$(du -h "$case_dir/events.bin" | cut -f1)" \
  "$(grep -m1 'race:' "$out/run.out" | sed 's/^ *//')"
for i in $(seq "$rounds"); do
  rm -rf "$out/rep"
  /usr/bin/time -f "%e %M" -o "$out/time.$i" "$fsrace" report "$run" --out "$out/rep" >/dev/null 2>&1 || true
done
python3 - "$out" "$rounds" <<'PY'
import os, statistics, sys
out, n = sys.argv[1], int(sys.argv[2])
t, m = [], []
for i in range(1, n + 1):
    a, b = open(f"{out}/time.{i}").read().split()[-2:]
    t.append(float(a)); m.append(int(b) / 1024)
print(f"  fsrace report: median {statistics.median(t):.2f} s (range {min(t):.2f}-{max(t):.2f}, {n} runs), "
      f"peak RSS median {statistics.median(m):.0f} MiB")
sizes = {f: os.path.getsize(f"{out}/rep/{f}") for f in ("report.html", "trace.json", "junit.xml", "findings.json")}
print("  outputs: " + ", ".join(f"{k} {v / 1024:.1f} KiB" if v < 1 << 20 else f"{k} {v / (1 << 20):.1f} MiB" for k, v in sizes.items()))
PY
load() {  # load URL -> ms
  local t0 t1
  t0=$(date +%s%N)
  timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$out/prof" \
    --virtual-time-budget=5000 --dump-dom "$1" >"$out/dom" 2>/dev/null || true
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
load about:blank >/dev/null  # warm-up, unmeasured
pg=(); bl=()
for i in $(seq "$rounds"); do
  pg+=("$(load "file://$out/rep/report.html#selftest")")
  grep -q '"timelines":[1-9]' "$out/dom" || { echo "report bench: the page's selftest did not run" >&2; exit 2; }
  bl+=("$(load about:blank)")
done
python3 - "${pg[*]}" "${bl[*]}" <<'PY'
import statistics, sys
p = [int(x) for x in sys.argv[1].split()]; b = [int(x) for x in sys.argv[2].split()]
mp, mb = statistics.median(p), statistics.median(b)
print(f"  chromium load + selftest of report.html: median {mp:.0f} ms ({p}), about:blank {mb:.0f} ms ({b}): "
      f"the page costs {mp - mb:.0f} ms")
PY
