#!/usr/bin/env bash
# fsrace SIGKILLed mid-race (as the OOM killer does) leaves its mount, loop device and image behind; the
# next run in the same work directory must remove them (saying what it removed) and leave nothing of its
# own. Two runs into one --run-dir at once: the second is refused (exit 2), the first's results intact.
source "$(dirname "$0")/common.sh"
need_host ext4
"$FSRACE" run --workdir "$WORK" "$TOP/campaigns/default.toml" --fs ext4 --duration 60 --results "$TMP/res" > "$TMP/out1" 2> "$TMP/err1" &
pid=$!
for _ in $(seq 1 300); do grep -q "racing for" "$TMP/err1" && break; sleep 0.1; done
grep -q "racing for" "$TMP/err1" || { kill -9 $pid; cat "$TMP/err1"; fail "the first run never started racing"; }
kill -9 $pid; wait $pid 2>/dev/null
grep -q " $WORK/" /proc/mounts || fail "the killed run left no mount: nothing to recover (test is void)"
left="$(ls "$WORK")"
echo "left by the killed run: $left $(grep " $WORK/" /proc/mounts | cut -d' ' -f1-2)"
"$FSRACE" run --workdir "$WORK" "$TOP/campaigns/default.toml" --fs ext4 --duration 1 --results "$TMP/res2" --quiet > "$TMP/out2" 2> "$TMP/err2"
rc=$?
[ "$rc" = 0 ] || { cat "$TMP/out2" "$TMP/err2"; fail "second run: exit $rc"; }
grep -q "removed what a killed fsrace (pid $pid) left behind: .*mount .*work directory" "$TMP/err2" || { cat "$TMP/err2"; fail "no cleanup line for pid $pid"; }
echo "$(grep 'removed what' "$TMP/err2")"
assert_no_leftovers
# a run directory is taken exclusively
"$FSRACE" run --workdir "$WORK" "$TOP/campaigns/default.toml" --fs ext4 --duration 4 --run-dir "$TMP/one" --quiet > "$TMP/o1" 2> "$TMP/e1" &
p1=$!
for _ in $(seq 1 100); do [ -f "$TMP/one/findings.json" ] && break; sleep 0.1; done
"$FSRACE" run --workdir "$WORK" "$TOP/campaigns/default.toml" --fs xfs --duration 1 --run-dir "$TMP/one" --quiet > "$TMP/o2" 2> "$TMP/e2"
rc=$?
wait $p1; rc1=$?
[ "$rc" = 2 ] || { cat "$TMP/e2"; fail "second run into the same --run-dir: exit $rc, expected 2"; }
grep -q "another fsrace run is writing $TMP/one" "$TMP/e2" || { cat "$TMP/e2"; fail "refusal does not name the directory"; }
[ "$rc1" = 0 ] || { cat "$TMP/e1"; fail "first run: exit $rc1"; }
[ "$(json "$TMP/one/findings.json" '[c["fs"] for c in d["cases"]]')" = "['ext4']" ] || fail "the run dir holds a mix of two runs"
assert_no_leftovers
pass "leftovers of a SIGKILLed run removed by the next run; a run directory is never shared"
