#!/usr/bin/env bash
# Kernel-side delays (BPF busy-wait at a kernel point, probes/delay.bpf.c) on one filesystem ($1: ext4 |
# xfs): punch-vs-fault for 3 s without delays, then with kdelay = ["punch-free"] (after the punch dropped
# the page cache, before the blocks are freed), same seed. Asserts that the delay point attached and
# delayed punches, that the punches in ops.bin got longer by about the delay (median), that the run
# without kdelay has no kernel delay at all, and that neither run reports a finding on this kernel.
# Exit 77 (skip) with the reason where root, loop devices, mkfs or the delay hook are unavailable.
set -uo pipefail
fs="${1:?usage: kdelay.sh ext4|xfs}"
source "$(dirname "$0")/common.sh"
durations="${OP_DURATIONS:?OP_DURATIONS not set (run through ctest)}"
need_host "$fs"
delay_us=500

# a bad point name is a usage error naming the file, line, key and the allowed values (no root needed)
printf '[scenario.punch-vs-fault]\nkdelay = ["punch-free", "bogus"]\n' > "$TMP/bad.toml"
"$FSRACE" run --local "$TMP/bad.toml" --workdir "$WORK" --results "$TMP/bad" > "$TMP/bad.out" 2>&1
rc=$?
[ "$rc" -eq 2 ] || fail "bad kdelay point: exit $rc, want 2"
grep -q "bad.toml:2:10: unknown kernel delay point 'bogus' in 'kdelay'; allowed: punch-free, " "$TMP/bad.out" ||
  { cat "$TMP/bad.out"; fail "bad kdelay point: message does not name file:line, key and allowed values"; }
pass "unknown delay point rejected: $(head -1 "$TMP/bad.out")"

"$FSRACE" widening --json > "$TMP/widening.json" 2>&1 || fail "fsrace widening failed: $(cat "$TMP/widening.json")"
hook="$(json "$TMP/widening.json" "[h for p in d['delay_points'] if p['name']=='punch-free' for h in p['hooks'] if h['fs']=='$fs'][0]")"
case "$hook" in
  *"'attach': 'unavailable'"*) skip "the punch-free hook cannot attach for $fs here: $hook" ;;
esac

campaign() {  # $1 name, $2 extra scenario lines
  printf '[campaign]\nname = "%s"\nseed = 5\nduration_s = 3\nfilesystems = ["%s"]\nscenarios = ["punch-vs-fault"]\n[probes]\nenabled = false\n[scenario.punch-vs-fault]\n%b' \
    "$1" "$fs" "$2" > "$TMP/$1.toml"
}
campaign plain ""
campaign delayed "kdelay = [\"punch-free\"]\nkdelay_us = $delay_us\nkdelay_ratio = 1.0\n"
for c in plain delayed; do
  "$FSRACE" run --local "$TMP/$c.toml" --workdir "$WORK" --results "$TMP/res" --quiet > "$TMP/$c.out" 2>&1
  rc=$?
  if [ "$rc" -ne 0 ]; then
    cat "$TMP/$c.out"
    [ "$rc" -eq 1 ] && fail "$c run reported a finding on this stock kernel" || fail "$c run exited $rc"
  fi
done
assert_no_leftovers
plain_dir="$(ls -d "$TMP"/res/plain/*/ | head -1)"
delayed_dir="$(ls -d "$TMP"/res/delayed/*/ | head -1)"
grep -E 'race:|kernel delay' "$TMP/delayed.out"

# delays off unless asked
[ "$(json "$plain_dir/findings.json" "'kernel_delays' in d['cases'][0]")" = False ] || fail "the run without kdelay armed kernel delays"
grep -q "kernel delay" "$plain_dir/summary.txt" && fail "the run without kdelay shows kernel delays in summary.txt"

# the point ran, delayed every punch, and says so in findings.json and summary.txt
p="d['cases'][0]['kernel_delays']['points']['punch-free']"
[ "$(json "$delayed_dir/findings.json" "$p['ran']")" = True ] || fail "punch-free did not run: $(json "$delayed_dir/findings.json" "$p")"
delayed="$(json "$delayed_dir/findings.json" "$p['delayed']")"
punches="$(json "$delayed_dir/findings.json" "d['cases'][0]['ops']['by_kind'].get('punch', 0)")"
[ "$delayed" -gt 0 ] || fail "no delay applied at punch-free ($delayed)"
[ "$delayed" -ge "$punches" ] || fail "fewer delays ($delayed) than punches ($punches) at ratio 1"
grep -q "kernel delay: punch-free \[.*\]: .* hits, $delayed delayed ($delay_us us at 100 % of hits)" "$delayed_dir/summary.txt" ||
  { cat "$delayed_dir/summary.txt"; fail "summary.txt does not report the punch-free delays"; }
pass "punch-free: $delayed delays applied for $punches punches"

# the punches themselves got longer by about the delay (ops.bin, same clock)
plain_med="$("$durations" "$plain_dir/$fs-punch-vs-fault" | python3 -c 'import json,sys; print(json.load(sys.stdin)["punch"]["median_ns"])')"
delayed_med="$("$durations" "$delayed_dir/$fs-punch-vs-fault" | python3 -c 'import json,sys; print(json.load(sys.stdin)["punch"]["median_ns"])')"
echo "median punch: $((plain_med / 1000)) us without delays, $((delayed_med / 1000)) us with $delay_us us at punch-free"
[ "$delayed_med" -ge $((delay_us * 1000)) ] || fail "median delayed punch $delayed_med ns < the delay ${delay_us} us"
[ "$delayed_med" -ge $((plain_med + delay_us * 800)) ] || fail "median punch grew by less than 80 % of the delay"
pass "$fs: kernel delays at punch-free widened the punch window (median punch $((plain_med / 1000)) -> $((delayed_med / 1000)) us), no finding"
