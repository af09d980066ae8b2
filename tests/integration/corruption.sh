#!/usr/bin/env bash
# The oracle end to end: a test helper corrupts four blocks on disk between race and verify (an
# overwritten generation, pre-punch data, zeroes, another file's stamp); each must be reported at its
# block with its class in the verify-disk phase, and nothing else may be reported as bad data.
source "$(dirname "$0")/common.sh"
need_host ext4 xfs
for FS in ext4 xfs; do
  "$FSRACE" run --workdir "$WORK" "$TOP/campaigns/default.toml" --fs "$FS" --duration 1 --results "$TMP/$FS" --quiet --inject-corruption \
    > "$TMP/out" 2> "$TMP/err"
  rc=$?
  [ "$rc" = 1 ] || { cat "$TMP/out" "$TMP/err"; fail "$FS: exit $rc, expected 1"; }
  dir="$(run_dir_of "$TMP/$FS")"
  got="$(json "$dir/findings.json" "sorted((f['file'], f['block'], f['class']) for f in d['findings'] if f['phase']=='verify-disk')")"
  want="[('f0', 1, 'stale'), ('f0', 3, 'stale-after-punch'), ('f0', 5, 'lost-write'), ('f0', 7, 'foreign')]"
  [ "$got" = "$want" ] || { cat "$TMP/out"; fail "$FS: verify-disk findings $got, want $want"; }
  others="$(json "$dir/findings.json" "[f['class'] for f in d['findings'] if f['phase']!='verify-disk' and f['class'] not in ('space-leak',) and f['class'] not in d.get('informational_by_class', {})]")"
  [ "$others" = "[]" ] || fail "$FS: unexpected findings $others"
  assert_no_leftovers
  reanalysis_same "$dir"
  pass "$FS: 4 corrupted blocks reported with the right class; re-analysis gives the same findings"
done
