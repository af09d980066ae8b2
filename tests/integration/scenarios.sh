#!/usr/bin/env bash
# Every scenario on ext4 and XFS for a short race (campaigns/all-scenarios.toml): no finding on this
# kernel, every case complete, every op kind the scenario uses actually ran, quiescent checks happened.
source "$(dirname "$0")/common.sh"
need_host ext4 xfs
"$FSRACE" run --workdir "$WORK" "$TOP/campaigns/all-scenarios.toml" --results "$TMP/res" --quiet > "$TMP/out" 2> "$TMP/err"
rc=$?
cat "$TMP/out"
[ "$rc" = 0 ] || { cat "$TMP/err"; fail "exit $rc, expected 0"; }
dir="$(run_dir_of "$TMP/res")"
[ "$(json "$dir/findings.json" 'len(d["cases"])')" = 14 ] || fail "not 14 cases"
bad="$(json "$dir/findings.json" "[c['case'] for c in d['cases'] if c['status']!='complete' or c['ops']['total']<1000 or c['oracle']['blocks_checked']<1000 or c['ops']['quiescent_rounds']<2]")"
[ "$bad" = "[]" ] || fail "incomplete or idle cases: $bad"
assert_no_leftovers
pass "7 scenarios x 2 filesystems: no finding"
