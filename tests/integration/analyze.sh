#!/usr/bin/env bash
# fsrace analyze on stored runs: a case directory and a run directory are judged again from their files
# (the same findings as the run), --in-place replaces only findings.json / summary.txt, and bad inputs —
# not a run, a truncated ops.bin, a damaged race.json — give one line and exit 2, while a missing
# events.bin only costs the kernel-event explanations (a note), never the analysis.
source "$(dirname "$0")/common.sh"
need_host ext4
"$FSRACE" run --workdir "$WORK" "$TOP/campaigns/default.toml" --fs ext4 --duration 1 --results "$TMP/res" --quiet --inject-corruption \
  > "$TMP/out" 2> "$TMP/err"
[ $? = 1 ] || { cat "$TMP/out" "$TMP/err"; fail "corruption run: expected exit 1"; }
run="$(run_dir_of "$TMP/res")"; run="${run%/}"
case="$run/ext4-punch-vs-fault"
reanalysis_same "$run"

# a case directory alone, default output beside it (DIR/reanalysis)
"$FSRACE" analyze "$case" > "$TMP/a.out" 2>&1; rc=$?
[ "$rc" = 1 ] || { cat "$TMP/a.out"; fail "analyze CASE: exit $rc, expected 1 (the corrupted blocks)"; }
python3 "$TOP/tests/integration/same_findings.py" "$case/findings.json" "$case/reanalysis/findings.json" || fail "case re-analysis differs"
rm -rf "$case/reanalysis"

# --in-place: findings.json rewritten (same content), inputs byte for byte unchanged
inputs="$(sha256sum "$case/ops.bin" "$case/events.bin" "$case/kmsg.log" "$case/race.json")"
cp "$case/findings.json" "$TMP/orig.json"
"$FSRACE" analyze "$run" --in-place > /dev/null 2>&1; [ $? = 1 ] || fail "analyze --in-place: expected exit 1"
[ "$inputs" = "$(sha256sum "$case/ops.bin" "$case/events.bin" "$case/kmsg.log" "$case/race.json")" ] || fail "--in-place changed an input file"
python3 "$TOP/tests/integration/same_findings.py" "$TMP/orig.json" "$case/findings.json" || fail "--in-place changed the findings"

expect_error() {  # expect_error WHAT PATTERN ARGS...: exit 2 and one line matching PATTERN
  local what="$1" pat="$2"; shift 2
  "$FSRACE" analyze "$@" > "$TMP/e.out" 2> "$TMP/e.err"; local rc=$?
  [ "$rc" = 2 ] || { cat "$TMP/e.out" "$TMP/e.err"; fail "$what: exit $rc, expected 2"; }
  [ "$(wc -l < "$TMP/e.err")" = 1 ] || { cat "$TMP/e.err"; fail "$what: expected a one-line error"; }
  grep -q "$pat" "$TMP/e.err" || { cat "$TMP/e.err"; fail "$what: error does not say '$pat'"; }
  echo "ok: $what: $(cat "$TMP/e.err")"
}
expect_error "not a run directory" "is not an fsrace run or case directory" "$TMP"
expect_error "nonexistent directory" "does not exist" "$TMP/nope"
bad="$TMP/bad"; cp -r "$case" "$bad"
truncate -s 100 "$bad/ops.bin"
expect_error "truncated ops.bin" "ops.bin" "$bad" --out "$TMP/bad.out"
cp "$case/ops.bin" "$bad/ops.bin"; echo '{"schema": "fsrace-race/1"' > "$bad/race.json"
expect_error "damaged race.json" "race.json" "$bad" --out "$TMP/bad.out"
cp "$case/race.json" "$bad/race.json"; rm "$bad/events.bin"
"$FSRACE" analyze "$bad" --out "$TMP/noev" > "$TMP/n.out" 2> "$TMP/n.err"; rc=$?
[ "$rc" = 1 ] || { cat "$TMP/n.out" "$TMP/n.err"; fail "missing events.bin: exit $rc, expected 1 (analysis goes on)"; }
grep -q "events.bin is missing" "$TMP/n.err" || { cat "$TMP/n.err"; fail "missing events.bin: no note"; }
got="$(json "$TMP/noev/findings.json" "sorted(f['class'] for f in d['findings'] if f['phase']=='verify-disk')")"
[ "$got" = "['foreign', 'lost-write', 'stale', 'stale-after-punch']" ] || fail "missing events.bin: findings $got"
assert_no_leftovers
pass "fsrace analyze: same findings from the files, --in-place keeps the inputs, bad inputs exit 2 with one line"
