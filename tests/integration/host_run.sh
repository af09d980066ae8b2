#!/usr/bin/env bash
# Host-mode punch-vs-fault on one filesystem: a few seconds of racing ends with no finding, complete
# results (findings.json, summary, kmsg.log, ops.bin per case), and nothing left behind.
source "$(dirname "$0")/common.sh"
FS="${1:?filesystem}"
need_host "$FS"
"$FSRACE" run --workdir "$WORK" "$TOP/campaigns/default.toml" --fs "$FS" --duration 3 --results "$TMP/res" --quiet > "$TMP/out" 2> "$TMP/err"
rc=$?
cat "$TMP/out"
dir="$(run_dir_of "$TMP/res")"
[ -n "$dir" ] || fail "no run directory"
[ "$rc" = 0 ] || { cat "$TMP/err"; fail "exit $rc, expected 0 (no finding on this kernel)"; }
for f in findings.json summary.txt kmsg.log campaign.toml "$FS-punch-vs-fault/ops.bin" "$FS-punch-vs-fault/findings.json" \
         "$FS-punch-vs-fault/summary.txt" "$FS-punch-vs-fault/kmsg.log"; do
  [ -s "$dir/$f" ] || [ "$f" = kmsg.log ] || [ "$f" = "$FS-punch-vs-fault/kmsg.log" ] || fail "missing $f"
  [ -e "$dir/$f" ] || fail "missing $f"
done
[ "$(json "$dir/findings.json" 'd["status"]')" = complete ] || fail "status not complete"
# Informational classes (stale-iomap-seen: the kernel detected and handled a stale mapping) are not failures.
[ "$(json "$dir/findings.json" 'len([f for f in d["findings"] if f["class"] not in d.get("informational_by_class", {})])')" = 0 ] \
  || fail "findings on a stock kernel"
# The race really ran: every op kind happened and the oracle checked many blocks.
for k in punch write read mmap-read; do
  n="$(json "$dir/findings.json" "d['cases'][0]['ops']['by_kind'].get('$k',0)")"
  [ "$n" -gt 100 ] || fail "only $n $k ops"
done
blocks="$(json "$dir/findings.json" "d['cases'][0]['oracle']['blocks_checked']")"
[ "$blocks" -gt 10000 ] || fail "oracle checked only $blocks blocks"
[ "$(json "$dir/findings.json" "d['cases'][0]['kernel_log']['captured']")" = True ] || fail "kernel log not captured"
# report prints the same summary again and keeps the exit code.
"$FSRACE" report "$dir" > "$TMP/report" || fail "report exit $?"
diff -q "$TMP/report" "$dir/summary.txt" >/dev/null || fail "report differs from summary.txt"
assert_no_leftovers
pass "$FS: $blocks blocks verified, no finding"
