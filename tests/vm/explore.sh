#!/usr/bin/env bash
# fsrace explore --kernel debian: one guest runs the rounds (the agent's --explore), every base arm
# first; the rounds' case directories, explore.json and the run's findings.json come back to the run
# directory like a campaign's cases; the stock kernel gives no finding. Prints rounds and round time.
source "$(dirname "$0")/lib.sh"
set +e
"$BIN" explore --kernel "${FSRACE_VM_KERNEL:-debian}" --budget 40s --round 1 --fs ext4,xfs --scenario punch-vs-fault \
  --seed 3 --results "$RESULTS" > "$RESULTS/out" 2> "$RESULTS/err"
rc=$?
set -e
[ $rc = 0 ] || { cat "$RESULTS/out" "$RESULTS/err"; fail "explore --kernel: exit $rc, expected 0"; }
RUN="$(sed -n 's/^results: //p' "$RESULTS/out" | tail -1)"
[ -d "$RUN" ] || fail "no run directory in the output"
E="$RUN/explore.json"
[ -s "$E" ] || fail "explore.json did not come back from the guest"
rounds="$(json "$E" 'len(d["rounds"])')"
[ "$rounds" -ge 2 ] || fail "only $rounds round(s) in 40 s"
[ "$(json "$E" '",".join(sorted(x["arm"] for x in d["rounds"][:2]))')" = "ext4-punch-vs-fault-base,xfs-punch-vs-fault-base" ] \
  || fail "base variants not first: $(json "$E" '[x["arm"] for x in d["rounds"]]')"
for c in $(json "$E" '" ".join(x["case"] for x in d["rounds"])'); do
  [ -s "$RUN/$c/findings.json" ] || fail "round $c: no case directory in the run"
done
[ "$(json "$RUN/findings.json" 'len(d["cases"])')" = "$rounds" ] || fail "findings.json does not list every round"
[ "$(json "$RUN/findings.json" 'd["status"]')" = complete ] || fail "status is not complete"
grep -q "round(s) in the guest" "$RESULTS/out" || fail "no allocation table printed"
no_qemu_left
echo "PASS: $rounds rounds in the guest in $(json "$E" 'round(d["elapsed_s"])') s of a 40 s budget (1 s races, TCG):" \
     "median round $(json "$E" 'round(sorted(x["seconds"] for x in d["rounds"])[len(d["rounds"]) // 2], 1)') s (setup with mkfs and probe loading dominates)"
