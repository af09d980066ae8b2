#!/usr/bin/env bash
# SIGINT and SIGTERM in the middle of a race: exit 130, results so far kept (status interrupted), and no
# mount, loop device or work directory left behind.
source "$(dirname "$0")/common.sh"
need_host ext4 xfs
for sig in INT TERM; do
  "$FSRACE" run --workdir "$WORK" "$TOP/campaigns/default.toml" --duration 60 --results "$TMP/$sig" > "$TMP/out" 2> "$TMP/err" &
  pid=$!
  for _ in $(seq 1 600); do grep -q "racing" "$TMP/err" && break; sleep 0.1; done  # 60 s: probes load slowly on a busy box
  grep -q "racing" "$TMP/err" || { kill -9 $pid; cat "$TMP/err"; fail "race never started"; }
  sleep 0.5
  kill -$sig $pid
  wait $pid
  rc=$?
  [ "$rc" = 130 ] || { cat "$TMP/err"; fail "SIG$sig: exit $rc, expected 130"; }
  dir="$(run_dir_of "$TMP/$sig")"
  [ "$(json "$dir/findings.json" 'd["status"]')" = interrupted ] || fail "SIG$sig: status not 'interrupted'"
  [ -s "$dir/summary.txt" ] && [ -s "$dir/campaign.toml" ] || fail "SIG$sig: results missing"
  [ "$(json "$dir/findings.json" 'len(d["cases"])')" = 1 ] || fail "SIG$sig: the second case should not have started"
  assert_no_leftovers
  pass "SIG$sig: clean stop"
done
