#!/usr/bin/env bash
# Kernel-side widening benchmark (issue 5; prints figures, not a timed test): race attempts per second and
# the overlap share (modifying ops overlapped by a read of the same blocks, from ops.bin) of one scenario
# in a guest, without kernel-side widening and with each technique fsrace drives there (dm-delay,
# override-return, fail-function, xfs-errortag), plus the test files' extent count after the race. A
# technique the kernel lacks is printed as unavailable with the reason. VM mode, root.
# Usage: bench/kwiden_vm.sh KERNEL [SECONDS, default 5] [SCENARIO, default punch-vs-read]
#   KERNEL: a bzImage (e.g. "$(python3 kernels/kbuild.py path stock | head -1)") or 'debian'
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
kernel="${1:?usage: bench/kwiden_vm.sh KERNEL [SECONDS] [SCENARIO]}"
secs="${2:-5}"
scenario="${3:-punch-vs-read}"
out="$(mktemp -d /var/tmp/fsrace-kwiden-bench.XXXXXX)"
trap 'rm -rf "$out"' EXIT
echo "kernel-side widening: $scenario, ${secs} s per case, kernel $kernel, probes off"
printf '%-46s %-5s %10s %9s %8s  %s\n' technique fs "ops/s" overlap extents "ran / why not"
for t in none "dm-delay|dm_delay_ms = 1" "override-return|kinject_errno = 17\nkinject_ratio = 0.05" \
         "fail-function|kinject_errno = 12\nkinject_ratio = 0.02" "xfs-errortag|xfs_minlen_alloc = 1"; do
  name="${t%%|*}"
  lines=""
  [ "$name" = none ] || lines="kwiden = [\"$name\"]\n${t#*|}\n"
  printf '[campaign]\nname = "kwiden-bench"\nseed = 5\nduration_s = %s\nfilesystems = ["ext4", "xfs"]\nscenarios = ["%s"]\n[probes]\nenabled = false\n[scenario.%s]\n%b' \
    "$secs" "$scenario" "$scenario" "$lines" > "$out/c.toml"
  "$top/fsrace" run "$out/c.toml" --kernel "$kernel" --jobs 1 --results "$out/r" --quiet > "$out/log" 2>&1 || true
  dir="$(sed -n 's/^results: //p' "$out/log" | tail -1)"
  [ -n "$dir" ] && [ -f "$dir/findings.json" ] || { echo "$name: run failed: $(tail -3 "$out/log")"; continue; }
  python3 - "$dir/findings.json" "$name" "${t#*|}" <<'PY'
import json, sys
d, name, params = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3].replace("\\n", ", ")
for c in d["cases"]:
    ops = c["ops"]["total"] / max(c["ops"]["seconds"], 1e-9)
    ov = c["ops"].get("overlap", {})
    w = c.get("kernel_widening", {}).get(name, {})
    why = "" if name == "none" else ("ran" if w.get("ran") else "unavailable: " + w.get("error", w.get("detail", "?")))
    label = name if name == "none" else f"{name} ({params})"
    print(f"{label[:46]:46} {c['fs']:5} {ops:10.0f} {100 * ov.get('share', 0):8.1f}% {sum(c.get('extents', {}).values()):8}  {why[:90]}")
print(f"{'':46} findings: {sum(d['findings_by_class'].values())}")
PY
done
