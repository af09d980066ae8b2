#!/usr/bin/env bash
# SIGINT while the guest races: QEMU killed, disk images and temp files removed, results so far kept
# (findings.json with status interrupted), exit 130, no qemu left.
source "$(dirname "$0")/lib.sh"
mkdir -p "$RESULTS/work"
"$BIN" run "$TOP/tests/vm/smoke.toml" --kernel debian --duration 60 --results "$RESULTS" --workdir "$RESULTS/work" \
  >"$RESULTS/out" 2>"$RESULTS/err" &
pid=$!
for _ in $(seq 600); do
  grep -q "racing for" "$RESULTS"/vm-smoke/*/console.log 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { cat "$RESULTS/err"; fail "fsrace exited before the race started"; }
  sleep 0.5
done
grep -q "racing for" "$RESULTS"/vm-smoke/*/console.log || fail "the guest never started racing"
[ -n "$(ls "$RESULTS/work")" ] || fail "no VM work directory (disk images) during the run"
kill -INT $pid
set +e
wait $pid
rc=$?
set -e
[ "$rc" = 130 ] || { cat "$RESULTS/err"; fail "exit $rc after SIGINT, expected 130"; }
RUN="$(ls -d "$RESULTS"/vm-smoke/*/)"
[ "$(json "$RUN/findings.json" 'd["status"]')" = interrupted ] || fail "findings.json status is not interrupted"
[ -s "$RUN/console.log" ] || fail "console.log was not kept"
[ -z "$(ls "$RESULTS/work")" ] || { ls -la "$RESULTS/work"; fail "disk images / temp files left in the work directory"; }
no_qemu_left
echo "PASS: SIGINT -> exit 130, results kept, nothing left"
