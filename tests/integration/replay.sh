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
pass "replay reproduced 2/2 and rejects bad input"
