#!/usr/bin/env bash
# A probe the campaign marks required but the kernel lacks stops the run with exit 2 and one line naming
# the probe and the reason; the same probe not required only shows up as unavailable.
set -uo pipefail
bin="${FSRACE_BIN:?FSRACE_BIN not set (run through ctest)}"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (loop devices, mount, BPF)"; exit 77; }
[ -e /dev/loop-control ] || { echo "SKIP: no /dev/loop-control"; exit 77; }
missing="$("$bin" probes --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(next((p["name"] for p in d["probes"] if p["attach"] == "unavailable"), ""))')"
[ -n "$missing" ] || { echo "SKIP: every probe attaches on this kernel: nothing to require that is missing"; exit 77; }
out="$(mktemp -d /var/tmp/fsrace-req-test.XXXXXX)"
trap 'rm -rf "$out"' EXIT
cat > "$out/c.toml" <<TOML
[campaign]
name = "required"
duration_s = 0.5
filesystems = ["ext4"]
[probes]
required = ["$missing"]
TOML
"$bin" run --local "$out/c.toml" --results "$out/res" --quiet > "$out/stdout" 2> "$out/stderr"
rc=$?
echo "required $missing -> exit $rc: $(cat "$out/stderr" | tail -1)"
[ "$rc" -eq 2 ] || { echo "FAIL: expected exit 2"; exit 1; }
grep -q "required probe unavailable on kernel .*$missing" "$out/stderr" || { echo "FAIL: message does not name the probe"; exit 1; }
[ "$(grep -c . "$out/stderr")" -eq 1 ] || { echo "FAIL: more than one line on stderr"; cat "$out/stderr"; exit 1; }
mount | grep -q "$out" && { echo "FAIL: mount left behind"; exit 1; }
losetup -a | grep -q "$out" && { echo "FAIL: loop device left behind"; exit 1; }
echo ok
