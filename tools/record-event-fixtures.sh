#!/usr/bin/env bash
# Records the events.bin / ops.bin fixtures of tests/data/events/ on the running kernel (root, probes).
# The unit tests (tests/unit/kernel_events_test.cpp) decode and analyze them; re-record after a change
# of the events.bin format and update the expectations there.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$top/fsrace" run --local "$top/tests/data/events/tiny.toml" --results "$out" --quiet >/dev/null || true
run="$(ls -d "$out"/fixture/*/)"
for fs in ext4 xfs; do
  cp "$run/$fs-punch-vs-fault/events.bin" "$top/tests/data/events/$fs.events.bin"
  cp "$run/$fs-punch-vs-fault/ops.bin" "$top/tests/data/events/$fs.ops.bin"
  echo "recorded tests/data/events/$fs.{events,ops}.bin on $(uname -r)"
done
