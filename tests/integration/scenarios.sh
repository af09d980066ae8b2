#!/usr/bin/env bash
# Every scenario on ext4 and XFS for a short race (campaigns/all-scenarios.toml): no finding on this
# kernel, every case complete, every op kind the scenario uses actually ran, quiescent checks happened.
source "$(dirname "$0")/common.sh"
need_host ext4 xfs
"$FSRACE" run --workdir "$WORK" "$TOP/campaigns/all-scenarios.toml" --results "$TMP/res" --quiet > "$TMP/out" 2> "$TMP/err"
rc=$?
cat "$TMP/out"
dir="$(run_dir_of "$TMP/res")"
# The one exception to "no finding": O_DIRECT writes colliding with cached I/O in the mixing scenarios,
# where the kernel itself reported the page-cache invalidation failure ("Possible data corruption") and
# the oracle saw the stale cache it announces. Every failing finding must then be such a data finding
# (explained_by dio-collision) or one of those kernel messages escalated by it.
if [ "$rc" = 1 ]; then
  other="$(python3 - "$dir/findings.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
def collision(f):
    if f.get('informational') or f.get('explained_by') == 'dio-collision':
        return True
    if f['class'] == 'dio-invalidate-failed':  # probe events of the same collisions
        return True
    return f['phase'] == 'kernel-log' and any(r in f.get('detail', '') for r in ("'dio-invalidate-failure'", "'dio-collision'"))
bad = sorted({(f['case'], f['class']) for f in d['findings'] if not collision(f)})
# classes with findings beyond the kept ones: every kept one of the class must be a collision
kept = {}
for f in d['findings']:
    kept[f['class']] = kept.get(f['class'], 0) + 1
bad += sorted(c for c, n in d['findings_by_class'].items() if c not in kept)
print(bad)
PY
)"
  [ "$other" = "[]" ] || fail "findings on this kernel: $other"
  echo "note: findings only from kernel-reported DIO collisions (explained_by dio-collision)"
elif [ "$rc" != 0 ]; then
  cat "$TMP/err"; fail "exit $rc, expected 0"
fi
[ "$(json "$dir/findings.json" 'len(d["cases"])')" = 14 ] || fail "not 14 cases"
bad="$(json "$dir/findings.json" "[c['case'] for c in d['cases'] if c['status']!='complete' or c['ops']['total']<(200 if c.get('kernel_delays') else 1000) or c['oracle']['blocks_checked']<1000 or c['ops']['quiescent_rounds']<2]")"
# (widening = "auto" arms kernel delays: those cases race fewer, wider ops; 200 still rules out an idle case)
[ "$bad" = "[]" ] || fail "incomplete or idle cases: $bad"
assert_no_leftovers
reanalysis_same "$dir"
pass "7 scenarios x 2 filesystems: no finding; fsrace analyze of the stored run gives the same findings"
