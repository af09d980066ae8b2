# Shared helpers of the VM integration tests (sourced). They boot Debian 12's kernel under QEMU (TCG
# here) through the real CLI; skip (exit 77) only when the machine cannot run QEMU at all.
set -euo pipefail
TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export FSRACE_TOP="$TOP"
BIN="${FSRACE_BIN:-$TOP/build/harness/fsrace}"
RESULTS="$(mktemp -d /var/tmp/fsrace-vmtest.XXXXXX)"
trap "rm -rf \"$RESULTS\"" EXIT

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "needs root (the guest agent runs as root over the host root share)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing: run 'make deps'"
[ -x /bin/busybox ] || skip "busybox-static missing: run 'make deps'"

# run_vm EXPECTED_RC ARGS...: runs `fsrace run ARGS --results $RESULTS`, checks the exit code, sets RUN
# (the run directory) and OUT/ERR (stdout/stderr).
run_vm() {
  local want=$1
  shift
  set +e
  "$BIN" run "$@" --results "$RESULTS" >"$RESULTS/out" 2>"$RESULTS/err"
  local rc=$?
  set -e
  OUT="$(cat "$RESULTS/out")"
  ERR="$(cat "$RESULTS/err")"
  if [[ ",$want," != *",$rc,"* ]]; then  # want: one exit code, or a list "0,1"
    echo "--- stdout"; echo "$OUT"; echo "--- stderr"; echo "$ERR"
    # The run directory goes away with this test: show the guest's stall / lockup / hang reports and
    # the task states the runner asked for, so a CI log is enough to diagnose a hang.
    local run; run="$(sed -n 's/^results: //p' "$RESULTS/out" | tail -1)"
    for c in "$run"/console*.log; do
      [ -f "$c" ] || continue
      if grep -qE "soft lockup|rcu_preempt detected stall|blocked for more than|sysrq: Show" "$c"; then
        echo "--- $c: stall / lockup / task-state reports (first 400 lines)"
        grep -nE -A60 "soft lockup|rcu_preempt detected stall|blocked for more than|sysrq: Show Blocked" "$c" | head -400
      fi
    done
    fail "fsrace run $* exited $rc, expected $want"
  fi
  RUN="$(sed -n 's/^results: //p' "$RESULTS/out" | tail -1)"
}

# No QEMU of this test may survive it (the runner kills QEMU on every path).
no_qemu_left() {
  sleep 0.5
  if pgrep -f "qemu-system.*$RESULTS" >/dev/null; then
    pgrep -af "qemu-system.*$RESULTS"
    fail "a qemu process of this test is still running"
  fi
}

json() {  # json FILE PYTHON-EXPR (d = the document)
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

# reanalysis_same RUN: `fsrace analyze` of the stored run gives the run's own findings (reanalysis_same.sh).
reanalysis_same() { bash "$TOP/tests/integration/reanalysis_same.sh" "$BIN" "$1" || fail "re-analysis of $1"; }

# wait_one_line_error PID PATTERN WHAT: the fsrace run PID (stderr in $RESULTS/err) exits 2 with exactly one
# "fsrace: " line, matching PATTERN, and no Python traceback; sets ERR.
wait_one_line_error() {
  local pid=$1 pat=$2 what=$3 rc
  set +e
  wait "$pid"
  rc=$?
  set -e
  ERR="$(cat "$RESULTS/err")"
  [ "$rc" = 2 ] || { echo "$ERR"; fail "exit $rc $what, expected 2"; }
  ! grep -q Traceback <<<"$ERR" || { echo "$ERR"; fail "a Python traceback $what"; }
  [ "$(grep -c '^fsrace: ' <<<"$ERR")" = 1 ] || { echo "$ERR"; fail "expected exactly one 'fsrace:' line $what"; }
  grep -q "$pat" <<<"$ERR" || { echo "$ERR"; fail "the error $what does not say '$pat'"; }
}
