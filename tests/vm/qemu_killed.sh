#!/usr/bin/env bash
# QEMU SIGKILLed mid-race (what the OOM killer does) is a harness failure, never a kernel bug: exit 2
# with one line naming QEMU's death, console.log kept, no kernel-crash finding, no QEMU, disk image or
# temp dir left.
source "$(dirname "$0")/lib.sh"
mkdir -p "$RESULTS/work"
"$BIN" run "$TOP/tests/vm/smoke.toml" --kernel debian --duration 60 --quiet --results "$RESULTS" --workdir "$RESULTS/work" \
  >"$RESULTS/out" 2>"$RESULTS/err" &
pid=$!
# --quiet: the only stderr line is the error. The guest's heartbeat says when it races.
racing() { grep -q '"phase":"race"' "$RESULTS"/vm-smoke/*/vm0/heartbeat.json 2>/dev/null; }
for _ in $(seq 600); do
  racing && break
  kill -0 $pid 2>/dev/null || { cat "$RESULTS/err"; fail "fsrace exited before the race started"; }
  sleep 0.5
done
racing || fail "the guest never started racing"
qpids="$(pgrep -f "qemu-system.*$RESULTS/work" || true)"
[ "$(wc -w <<<"$qpids")" = 1 ] || fail "expected one QEMU of this test, found: ${qpids:-none}"
kill -KILL $qpids
wait_one_line_error $pid "^fsrace: vm-error: .*QEMU was killed by SIGKILL" "after QEMU was SIGKILLed"
RUN="$(ls -d "$RESULTS"/vm-smoke/*/)"
F="$RUN/findings.json"
[ "$(json "$F" 'd["findings_by_class"].get("kernel-crash", 0)')" = 0 ] || fail "a kernel-crash finding for a killed QEMU"
[ "$(json "$F" 'd["status"].startswith("error: vm-error")')" = True ] || fail "run status is not a vm-error: $(json "$F" 'd["status"]')"
[ "$(json "$F" '[c["status"] for c in d["cases"]][0]')" = "not finished: QEMU died (vm-error)" ] || fail "case status: $(json "$F" '[c["status"] for c in d["cases"]]')"
grep -q "fsrace-agent: started" "$RUN/console.log" || fail "console.log was not kept"
[ -z "$(ls "$RESULTS/work")" ] || { ls -la "$RESULTS/work"; fail "disk images / temp files left in the work directory"; }
no_qemu_left
echo "$ERR"
echo "PASS: QEMU SIGKILLed -> vm-error, exit 2, console kept, nothing left"
