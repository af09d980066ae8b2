#!/usr/bin/env bash
# fsrace explore on the running kernel: a short budget over two scenarios on ext4 runs every base arm
# first, writes explore.json (every round with its near-miss signals, the allocation table, the
# variants and exclusions) and the usual run files, stays within its budget, and prints the table.
# Bad inputs (a budget that is not a duration, an unknown filesystem, a round length out of range)
# give one line and exit 2 with nothing written.
source "$(dirname "$0")/common.sh"
need_host ext4
"$FSRACE" explore --workdir "$WORK" --budget 40s --round 1 --fs ext4 --scenario punch-vs-read,dio-vs-mmap --seed 5 \
  --results "$TMP/res" > "$TMP/out" 2> "$TMP/err"
rc=$?
[ $rc = 0 ] || { cat "$TMP/out" "$TMP/err"; fail "explore on the stock kernel: exit $rc, expected 0 (no finding)"; }
run="$(run_dir_of "$TMP/res")"; run="${run%/}"
E="$run/explore.json"
[ -s "$E" ] || fail "no explore.json"
py() { python3 -c "import json,sys; d=json.load(open('$E')); $1"; }
py 'assert d["schema"] == "fsrace-explore/1"' || fail "explore.json schema"
py 'r=d["rounds"]; assert len(r) >= 4, len(r)' || fail "fewer than 4 rounds in 40 s: $(py 'print(len(d["rounds"]))')"
py 'r=d["rounds"]; assert {x["arm"] for x in r[:2]} == {"ext4-punch-vs-read-base", "ext4-dio-vs-mmap-base"}, [x["arm"] for x in r[:2]]' \
  || fail "the base variants do not come first"
py 'r=d["rounds"]; assert all(set(x["signals"]) >= {"fill_in_invalidation", "fill_in_dio_write", "stale_iomap", "dio_invalidate_failed", "lock_contention", "overlap_share"} for x in r)' \
  || fail "a round without its signals"
py 'assert d["elapsed_s"] <= d["budget_s"] + 15, d["elapsed_s"]' || fail "over budget: $(py 'print(d["elapsed_s"])') s"
py 'assert sum(x["rounds"] for x in d["table"]["rows"]) == sum(1 for x in d["rounds"] if not x["repeat"])' || fail "table and rounds disagree"
py 'assert any(x["scenario"] == "dio-vs-buffered" and x["variant"] == "shifts" for x in d["excluded"])' || fail "exclusions not recorded"
# every round is a case of the run, judged as usual
for c in $(py 'print(" ".join(x["case"] for x in d["rounds"]))'); do
  [ -s "$run/$c/findings.json" ] && [ -s "$run/$c/race.json" ] || fail "round $c has no case files"
done
grep -q "allocation by time" "$TMP/out" || fail "no allocation table printed"
grep -q "fsrace explore: round 0 r000-" "$TMP/err" || fail "no line per round"
overhead="$(py 'r=d["rounds"]; import statistics; print(round(statistics.median(x["seconds"] for x in r) - d["round_s"], 2))')"

expect_error() {  # expect_error WHAT PATTERN ARGS...: exit 2, one line matching PATTERN, no run written
  local what="$1" pat="$2"; shift 2
  "$FSRACE" explore --results "$TMP/bad" "$@" > "$TMP/e.out" 2> "$TMP/e.err"; local rc=$?
  [ $rc = 2 ] || { cat "$TMP/e.out" "$TMP/e.err"; fail "$what: exit $rc, expected 2"; }
  [ "$(wc -l < "$TMP/e.err")" -le 1 ] && grep -qE -- "$pat" "$TMP/e.err" || { cat "$TMP/e.err"; fail "$what: message"; }
  [ ! -e "$TMP/bad" ] || fail "$what: wrote $TMP/bad"
}
expect_error "budget not a duration" "--budget 'soon' is not a duration" --budget soon
expect_error "zero budget" "--budget '0s' is not a duration" --budget 0s
expect_error "unknown filesystem" "unknown filesystem" --fs btrfs
expect_error "round out of range" "round" --round 0
echo "PASS: $(py 'print(len(d["rounds"]))') rounds in $(py 'print(round(d["elapsed_s"]))') s (budget 40 s, 1 s races);" \
     "median per-round overhead beyond the race: $overhead s (setup, verify, analysis, signals)"
