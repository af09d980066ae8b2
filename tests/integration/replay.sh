#!/usr/bin/env bash
# `fsrace replay`: reruns the case of a finding with the same seed and parameters. A test run whose
# findings come from the corruption helper reproduces every time; bad arguments are exit 2.
source "$(dirname "$0")/common.sh"
need_host ext4
"$FSRACE" run --workdir "$WORK" --fs ext4 --duration 1 --quiet --inject-corruption --results "$TMP/res" > /dev/null 2>&1
dir="$(run_dir_of "$TMP/res")"
[ -n "$dir" ] || fail "setup run failed"
"$FSRACE" replay "$dir" --finding 2 --repeat 2 --workdir "$WORK" --results "$TMP/replays" > "$TMP/out" 2>&1
rc=$?
cat "$TMP/out"
[ "$rc" = 1 ] || fail "exit $rc, expected 1 (reproduced)"
grep -q "^reproduced 2/2$" "$TMP/out" || fail "did not reproduce 2/2"
[ "$(ls -d "$TMP"/replays/default/*/ | wc -l)" = 2 ] || fail "expected two new run directories"
"$FSRACE" replay "$dir" --finding 99 > "$TMP/out" 2> "$TMP/err"
[ $? = 2 ] && grep -q "does not exist" "$TMP/err" || fail "bad --finding not rejected"
"$FSRACE" replay "$TMP" > "$TMP/out" 2> "$TMP/err"
[ $? = 2 ] && grep -q "is not an fsrace run directory" "$TMP/err" || fail "bad directory not rejected"
assert_no_leftovers
# SIGINT mid-replay: exit 130 and says so (no "reproduced 0/K" verdict), nothing left behind.
"$FSRACE" replay "$dir" --finding 2 --repeat 50 --workdir "$WORK" --results "$TMP/replays-int" > "$TMP/out" 2> "$TMP/err" &
pid=$!
for _ in $(seq 1 600); do [ -n "$(ls -d "$TMP"/replays-int/default/*/ 2>/dev/null)" ] && break; sleep 0.1; done
sleep 0.5
kill -INT $pid
wait $pid
rc=$?
cat "$TMP/out" "$TMP/err"
[ "$rc" = 130 ] || fail "interrupted replay: exit $rc, expected 130"
grep -q "^interrupted after [0-9]* of 50 run(s)" "$TMP/out" || fail "interrupted replay does not say so"
! grep -q "^reproduced" "$TMP/out" || fail "interrupted replay printed a verdict"
grep -q "^fsrace: interrupted" "$TMP/err" || fail "no 'fsrace: interrupted' line"
assert_no_leftovers
pass "replay reproduced 2/2, rejects bad input, and exits 130 when interrupted"
