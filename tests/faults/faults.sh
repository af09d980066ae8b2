#!/usr/bin/env bash
# The harness fault-injection suite (issue 15; ctest label `faults`): each fault a user's overnight run
# can meet, injected for real, then the same checks after every one of them:
#   - outcome: the exit code and the one line (or finding class) the fault must end in, never a kernel
#     finding made by the harness;
#   - logs kept: what the run wrote so far is still there (findings.json / console.log / the stored run);
#   - leftovers: no QEMU, mount, loop device, dm device, work-directory entry or BPF link of this suite.
# Prints the table (fault | outcome | logs | leftovers) and fails on any row that is not "ok ok none".
# Host rows need root, loop devices and ext4 on the running kernel; VM rows need QEMU (Debian's kernel).
source "$(dirname "$0")/../integration/common.sh"
need_host ext4
SUITE_TMP="$TMP"
VMOK=1
command -v qemu-system-x86_64 >/dev/null && [ -x /bin/busybox ] || VMOK=0

bpf_links() { bpftool link list 2>/dev/null | grep -c '^[0-9]*:' || true; }
BASE_LINKS="$(bpf_links)"
leftovers() {  # what this suite's runs left behind, "none" if nothing
  local l=()
  pgrep -f "qemu-system.*$SUITE_TMP" >/dev/null && l+=("qemu")
  grep -q " $SUITE_TMP/" /proc/mounts && l+=("mount")
  for f in /sys/block/loop*/loop/backing_file; do
    [ -r "$f" ] && grep -q "^$SUITE_TMP/" "$f" && l+=("loop:$(basename "$(dirname "$(dirname "$f")")")")
  done
  if command -v dmsetup >/dev/null; then
    local dm; dm="$(dmsetup ls 2>/dev/null | awk '/^fsrace-/ {print $1}' | head -3 | tr '\n' ' ')"
    [ -n "$dm" ] && l+=("dm:$dm")
  fi
  [ -n "$(ls -A "$WORK" 2>/dev/null)" ] && l+=("workdir:$(ls -A "$WORK" | head -3 | tr '\n' ' ')")
  local n; n="$(bpf_links)"
  [ "$n" -gt "$BASE_LINKS" ] && l+=("bpf-links:+$((n - BASE_LINKS))")
  if [ ${#l[@]} = 0 ]; then echo none; else echo "${l[*]}"; fi
}

ROWS=()
BAD=0
row() {  # row FAULT OUTCOME(ok|why) LOGS(ok|why)
  local left; sleep 0.5; left="$(leftovers)"
  ROWS+=("$(printf '%-44s | %-44s | %-24s | %s' "$1" "$2" "$3" "$left")")
  [ "$2" = ok ] && [ "$3" = ok ] && [ "$left" = none ] || BAD=$((BAD + 1))
  # clean up after a bad row so the next one is judged alone
  pkill -9 -f "qemu-system.*$SUITE_TMP" 2>/dev/null || true
  rm -rf "${WORK:?}"/* 2>/dev/null || true
}
# expect RC WANT_RC ERRFILE [REGEX]: "ok" or why not
expect() {
  local rc=$1 want=$2 err=$3 re="${4:-}"
  [ "$rc" = "$want" ] || { echo "exit $rc, want $want: $(tail -1 "$err" | cut -c1-60)"; return; }
  if [ -n "$re" ] && ! grep -qE "$re" "$err"; then echo "no line matching '$re'"; return; fi
  echo ok
}
# wait_for FILE REGEX PID [TIMEOUT_S]: until the file matches (0) or the process ended / time ran out (1)
wait_for() {
  local i
  for i in $(seq $((${4:-120} * 20))); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
# A host run in the background: bg_run NAME ARGS... -> PID, stderr in $TMP/NAME.err
bg_run() {
  local name=$1; shift
  "$FSRACE" run --workdir "$WORK" "$@" --results "$TMP/$name" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PID=$!
}
run_status() { json "$(run_dir_of "$TMP/$1")/findings.json" 'd["status"]' 2>/dev/null || echo "no findings.json"; }

# --- host mode: signals in each phase ---
for spec in "INT setup" "TERM race" "HUP race" "INT analysis"; do
  sig=${spec% *}; phase=${spec#* }; name="sig-$sig-$phase"
  bg_run "$name" "$TOP/campaigns/default.toml" --fs ext4 --duration 3
  case $phase in
    setup) wait_for "$TMP/$name.err" "case 1/1:" $PID 60 ;;
    race) wait_for "$TMP/$name.err" "racing" $PID 120 && sleep 0.5 ;;
    analysis) wait_for "$TMP/$name.err" "analysing" $PID 120 ;;
  esac
  kill -$sig $PID 2>/dev/null; wait $PID; rc=$?
  out="$(expect $rc 130 "$TMP/$name.err" "interrupt")"
  st="$(run_status "$name")"
  [ "$phase" = setup ] && [ "$st" = "no findings.json" ] && logs=ok || { [ "$st" = interrupted ] && logs=ok || logs="status: $st"; }
  row "SIG$sig in $phase (host)" "$out" "$logs"
done

# --- fsrace SIGKILLed mid-race, then the next run ---
bg_run killed "$TOP/campaigns/default.toml" --fs ext4 --duration 60
if wait_for "$TMP/killed.err" "racing" $PID 120; then
  kill -9 $PID; wait $PID 2>/dev/null
  "$FSRACE" run --workdir "$WORK" "$TOP/campaigns/default.toml" --fs ext4 --duration 1 --results "$TMP/after-kill" --quiet \
    >"$TMP/after-kill.out" 2>"$TMP/after-kill.err"
  rc=$?
  out="$(expect $rc 0 "$TMP/after-kill.err" "removed|cleaned|left by")"
  [ -f "$(run_dir_of "$TMP/killed")/campaign.toml" ] && logs=ok || logs="killed run's dir gone"
else
  kill -9 $PID 2>/dev/null; out="never raced"; logs="-"
fi
row "fsrace SIGKILLed mid-race, then rerun" "$out" "$logs"

# --- the results filesystem full ---
mkdir -p "$TMP/full"
mount -t tmpfs -o size=192k fsrace-faults-full "$TMP/full"
"$FSRACE" run --workdir "$WORK" "$TOP/campaigns/default.toml" --fs ext4 --duration 2 --results "$TMP/full" \
  >"$TMP/full.out" 2>"$TMP/full.err"
rc=$?
out="$(expect $rc 2 "$TMP/full.err" "No space left|full")"
[ "$(grep -c . "$TMP/full.err")" -le 3 ] && logs=ok || logs="$(grep -c . "$TMP/full.err") stderr lines"
umount "$TMP/full"
row "results filesystem full (host)" "$out" "$logs"

# --- two runs into one run dir at once ---
bg_run twice-a "$TOP/campaigns/default.toml" --fs ext4 --duration 4 --run-dir "$TMP/shared-run"
pa=$PID
wait_for "$TMP/twice-a.err" "racing|setup" $pa 60
"$FSRACE" run --workdir "$WORK" "$TOP/campaigns/default.toml" --fs ext4 --duration 1 --run-dir "$TMP/shared-run" \
  --results "$TMP/twice-b" >"$TMP/twice-b.out" 2>"$TMP/twice-b.err"
rcb=$?
wait $pa; rca=$?
out="$(expect $rcb 2 "$TMP/twice-b.err" "run-dir|in use|taken|another")"
[ "$rca" = 0 ] && [ "$(json "$TMP/shared-run/findings.json" 'd["status"]')" = complete ] && logs=ok || logs="first run: exit $rca"
row "two runs into one --run-dir at once" "$out" "$logs"

# --- damaged stored files fed to report / analyze / events / replay ---
"$FSRACE" run --workdir "$WORK" "$TOP/campaigns/default.toml" --fs ext4 --duration 1 --results "$TMP/good" --quiet >/dev/null 2>&1
GOOD="$(run_dir_of "$TMP/good")"; GOOD="${GOOD%/}"
CASE="$(ls -d "$GOOD"/*/ | head -1)"; CASE="${CASE%/}"
sum_before="$(cd "$GOOD" && find . -type f ! -name '*.tmp' -exec sha256sum {} + | sort | sha256sum)"
for what in ops.bin events.bin findings.json kmsg.log; do
  bad="$TMP/bad-$what"; rm -rf "$bad"; cp -a "$GOOD" "$bad"
  f="$bad/$(basename "$CASE")/$what"; [ "$what" = findings.json ] && f="$bad/findings.json"
  [ -f "$f" ] || { row "damaged $what" "no $what in the run" "-"; continue; }
  sz=$(stat -c %s "$f"); head -c $((sz / 2)) "$f" >"$f.x"; printf 'garbage\xff\x00' >>"$f.x"; mv "$f.x" "$f"
  res=ok
  for cmd in "report $bad --out $TMP/rep-$what" "analyze $bad/$(basename "$CASE")" "events $bad/$(basename "$CASE")"; do
    [ "$what" != events.bin ] && [[ "$cmd" == events* ]] && continue
    [ "$what" = findings.json ] && [[ "$cmd" != report* ]] && continue  # analyze / events read the case files only
    [ "$what" = events.bin ] && [[ "$cmd" == report* ]] && continue  # a clean run's report reads no events.bin
    $FSRACE $cmd >"$TMP/dmg.out" 2>"$TMP/dmg.err"; rc=$?
    # damaged input: exit 2 with one line naming the file, or (kmsg.log is text) any verdict without a crash
    if [ "$what" = kmsg.log ]; then [ $rc -le 2 ] || res="${cmd%% *}: exit $rc"
    else r="$(expect $rc 2 "$TMP/dmg.err" "$what")"; [ "$r" = ok ] || res="${cmd%% *}: $r"; fi
  done
  row "damaged $what -> report / analyze / events" "$res" ok
done
sum_after="$(cd "$GOOD" && find . -type f ! -name '*.tmp' -exec sha256sum {} + | sort | sha256sum)"
[ "$sum_before" = "$sum_after" ] && row "the stored run after all of that" ok ok || row "the stored run after all of that" "changed" "-"

# --- VM mode: guest panic, guest hang, QEMU killed, SIGINT during boot ---
if [ "$VMOK" = 1 ]; then
  "$FSRACE" run "$TOP/tests/vm/panic.toml" --kernel debian --workdir "$WORK" --results "$TMP/panic" --quiet >"$TMP/panic.out" 2>"$TMP/panic.err"
  rc=$?
  R="$(run_dir_of "$TMP/panic")"
  out="$(expect $rc 1 "$TMP/panic.err")"
  [ "$out" = ok ] && [ "$(json "$R/findings.json" 'd["findings_by_class"].get("kernel-crash", 0)')" -ge 1 ] || out="${out/ok/no kernel-crash finding}"
  grep -q "Kernel panic" "$R/console.log" 2>/dev/null && logs=ok || logs="console.log lacks the panic"
  row "guest kernel panic (sysrq-c mid-race)" "$out" "$logs"

  "$FSRACE" run "$TOP/tests/vm/hang.toml" --kernel debian --workdir "$WORK" --results "$TMP/hang" --quiet >"$TMP/hang.out" 2>"$TMP/hang.err"
  rc=$?
  R="$(run_dir_of "$TMP/hang")"
  out="$(expect $rc 1 "$TMP/hang.err")"
  [ "$out" = ok ] && [ "$(json "$R/findings.json" 'd["findings_by_class"].get("hang", 0)')" -ge 1 ] || out="${out/ok/no hang finding}"
  grep -q "sysrq" "$R/console.log" 2>/dev/null && logs=ok || logs="no task states in console.log"
  row "guest hang (FIFREEZE mid-race)" "$out" "$logs"

  bg_run qkill "$TOP/tests/vm/smoke.toml" --kernel debian --duration 60 --quiet
  for _ in $(seq 600); do grep -q '"phase":"race"' "$TMP"/qkill/*/*/vm0/heartbeat.json 2>/dev/null && break; kill -0 $PID 2>/dev/null || break; sleep 0.5; done
  pkill -KILL -f "qemu-system.*$SUITE_TMP" 2>/dev/null
  wait $PID; rc=$?
  out="$(expect $rc 2 "$TMP/qkill.err" "vm-error: .*QEMU was killed by SIGKILL")"
  R="$(run_dir_of "$TMP/qkill")"
  [ "$(json "$R/findings.json" 'd["findings_by_class"].get("kernel-crash", 0)')" = 0 ] || out="a kernel-crash finding for a killed QEMU"
  grep -q "fsrace-agent: started" "$R/console.log" 2>/dev/null && logs=ok || logs="console.log not kept"
  row "QEMU SIGKILLed mid-race" "$out" "$logs"

  bg_run vmint "$TOP/tests/vm/smoke.toml" --kernel debian --duration 30
  wait_for "$TMP/vmint.err" "booting" $PID 300 && sleep 1
  kill -INT $PID; wait $PID; rc=$?
  out="$(expect $rc 130 "$TMP/vmint.err")"
  row "SIGINT during VM boot" "$out" ok
else
  ROWS+=("VM rows skipped: qemu-system-x86_64 or busybox-static missing (make deps)")
fi

echo
printf '%-44s | %-44s | %-24s | %s\n' "fault" "outcome" "logs kept" "leftovers"
printf '%s\n' "${ROWS[@]}"
echo
[ "$BAD" = 0 ] || fail "$BAD fault(s) did not end classified, with logs kept and nothing left behind"
pass "every fault ended classified, logs kept, nothing left behind (${#ROWS[@]} rows)"
