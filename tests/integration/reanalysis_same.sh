#!/usr/bin/env bash
# reanalysis_same.sh FSRACE RUN: `fsrace analyze` of the stored run RUN (into a scratch --out) gives the
# run's own findings, case by case and for the run (timing fields dropped; VM runs with their consoles
# and vm.json), and leaves every file of RUN untouched. Exit 0 or 1 with what differs.
set -u
fsrace="$1" run="${2%/}"
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp -d /tmp/fsrace-reanalysis.XXXXXX)"
trap 'rm -rf "$out"' EXIT
sums() { (cd "$run" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
before="$(sums)"
"$fsrace" analyze "$run" --out "$out" > "$out/analyze.log" 2>&1
rc=$?
[ "$rc" -le 1 ] || { cat "$out/analyze.log"; echo "FAIL: fsrace analyze $run: exit $rc"; exit 1; }
python3 "$here/same_findings.py" "$run/findings.json" "$out/findings.json" || { echo "FAIL: re-analysis of $run differs"; exit 1; }
for c in "$run"/*/race.json; do
  c="$(basename "$(dirname "$c")")"
  python3 "$here/same_findings.py" "$run/$c/findings.json" "$out/$c/findings.json" > "$out/case.log" ||
    { cat "$out/case.log"; echo "FAIL: re-analysis of case $c differs"; exit 1; }
done
[ "$before" = "$(sums)" ] || { echo "FAIL: fsrace analyze --out changed files of $run"; exit 1; }
