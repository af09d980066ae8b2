#!/usr/bin/env bash
# fsrace run --shard I/N: N shards are the campaign's matrix exactly (disjoint, complete, the same split
# from the flag, GitLab's CI_NODE_INDEX / CI_NODE_TOTAL and a Kubernetes Indexed Job's
# JOB_COMPLETION_INDEX + FSRACE_SHARD_TOTAL), and `fsrace report A B --out M` merges the shards' run
# directories into one findings.json / junit.xml / report.html whose statistics are the whole matrix.
source "$(dirname "$0")/common.sh"
# Debian's python3 (python3-jsonschema from make deps), not whatever python3 comes first on PATH
DEBIAN_PY=/usr/bin/python3
"$DEBIAN_PY" -c "import jsonschema" 2>/dev/null || fail "python3-jsonschema missing: make deps installs it"

# 1. The split, from the plan (no root needed): every case in exactly one shard, for several N.
camp="$TOP/campaigns/all-scenarios.toml"
"$FSRACE" plan "$camp" --json >"$TMP/all.json" || fail "plan failed"
for n in 1 2 3 5; do
  for i in $(seq 1 $n); do "$FSRACE" plan "$camp" --json --shard "$i/$n" >"$TMP/p$i.json" || fail "plan --shard $i/$n failed"; done
  python3 - "$TMP" "$n" <<'PY' || exit 1
import json, sys
tmp, n = sys.argv[1], int(sys.argv[2])
allc = [c["name"] for c in json.load(open(f"{tmp}/all.json"))["cases"]]
parts = [[c["name"] for c in json.load(open(f"{tmp}/p{i}.json"))["cases"]] for i in range(1, n + 1)]
flat = [x for p in parts for x in p]
if sorted(flat) != sorted(allc) or len(flat) != len(set(flat)):
    print(f"FAIL: {n} shards are not a partition of the {len(allc)}-case matrix: {[len(p) for p in parts]}"); sys.exit(1)
print(f"ok: {n} shard(s) partition the {len(allc)} cases: sizes {[len(p) for p in parts]}")
PY
done
# the schedulers' variables give the same split as the flag
CI_NODE_INDEX=2 CI_NODE_TOTAL=3 "$FSRACE" plan "$camp" --json >/dev/null || fail "plan under GitLab variables"

# 2. Bad shard inputs: one line, exit 2, no run directory.
bad() {  # bad "ENV=.. ENV2=.." ARGS...: expects exit 2 and one line
  local envs="$1"; shift
  env $envs "$FSRACE" run "$TOP/campaigns/default.toml" --duration 1 --results "$TMP/bad" --workdir "$WORK" "$@" >"$TMP/bad.out" 2>"$TMP/bad.err"
  local rc=$?
  [ $rc = 2 ] || { cat "$TMP/bad.err"; fail "'$envs $*' exited $rc, want 2"; }
  [ "$(wc -l <"$TMP/bad.err")" = 1 ] || { cat "$TMP/bad.err"; fail "'$envs $*': want one line"; }
  [ ! -e "$TMP/bad" ] || fail "'$envs $*' created a results directory"
  echo "ok: $envs $* -> $(cat "$TMP/bad.err")"
}
bad "" --shard 0/2
bad "" --shard 3/2
bad "" --shard two/3
bad "" --shard 1/0
bad "" --shard 3/3   # the default campaign has 2 cases: shard 3 of 3 is empty
bad "JOB_COMPLETION_INDEX=1"
bad "JOB_COMPLETION_INDEX=x FSRACE_SHARD_TOTAL=2"
bad "JOB_COMPLETION_INDEX=2 FSRACE_SHARD_TOTAL=2"
bad "CI_NODE_INDEX=1"
bad "CI_NODE_INDEX=3 CI_NODE_TOTAL=2"

need_host ext4 xfs
# 3. Two shards of the default campaign, one from the flag, one from a Kubernetes index; merged.
"$FSRACE" run "$TOP/campaigns/default.toml" --duration 1 --shard 1/2 --inject-corruption --results "$TMP/r" --run-dir "$TMP/s1" \
  --workdir "$WORK" --quiet >"$TMP/s1.out" 2>&1
[ $? = 1 ] || { tail "$TMP/s1.out"; fail "shard 1/2 should find the injected corruption"; }
JOB_COMPLETION_INDEX=1 FSRACE_SHARD_TOTAL=2 "$FSRACE" run "$TOP/campaigns/default.toml" --duration 1 --results "$TMP/r" \
  --run-dir "$TMP/s2" --workdir "$WORK" --quiet >"$TMP/s2.out" 2>&1
rc=$?
[ $rc = 0 ] || [ $rc = 1 ] || { tail "$TMP/s2.out"; fail "shard 2/2 exited $rc"; }
"$FSRACE" report "$TMP/s1" "$TMP/s2" --out "$TMP/merged" >"$TMP/merge.out"
[ $? = 1 ] || fail "the merge of a shard with findings must exit 1"
"$DEBIAN_PY" "$TOP/tests/integration/check_reports.py" "$TMP/merged" || exit 1
"$FSRACE" plan "$TOP/campaigns/default.toml" --json >"$TMP/def.json"
python3 - "$TMP" <<'PY' || exit 1
import json, sys
t = sys.argv[1]
m = json.load(open(f"{t}/merged/findings.json"))
want = sorted(c["name"] for c in json.load(open(f"{t}/def.json"))["cases"])
got = sorted(c["case"] for c in m["cases"])
if got != want: print("FAIL: merged cases", got, "!= matrix", want); sys.exit(1)
sh = sorted((r["shard"]["index"], r["shard"]["total"]) for r in m["run"]["merged_from"])
if sh != [(1, 2), (2, 2)]: print("FAIL: shards recorded", sh); sys.exit(1)
if "shards_missing" in m["run"]: print("FAIL: no shard is missing", m["run"]["shards_missing"]); sys.exit(1)
s1 = json.load(open(f"{t}/s1/findings.json"))
if sum(m["findings_by_class"].values()) < sum(s1["findings_by_class"].values()): print("FAIL: merged lost findings"); sys.exit(1)
print("ok: merged = the matrix", got)
PY
grep -q 'tests="2"' "$TMP/merged/junit.xml" || fail "merged junit.xml must hold both cases"
# a merge missing a shard says so
"$FSRACE" report "$TMP/s1" --html --out "$TMP/one" >/dev/null
grep -q "shards missing" "$TMP/one/report.html" || fail "the report of one shard alone must say which shards are missing"
"$FSRACE" report "$TMP/s1" "$TMP/s1/" --out "$TMP/twice" >"$TMP/twice.out" 2>"$TMP/twice.err"
[ $? = 2 ] || fail "the same run given twice must be refused"
assert_no_leftovers
pass "shards partition the matrix and merge into one report"
