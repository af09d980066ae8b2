# Shared helpers for the host-mode integration tests (sourced). They need root, loop devices and the
# mkfs tools; without them a test prints why and exits 77, which ctest reports as skipped.
set -u
TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FSRACE="${FSRACE_BIN:-$TOP/build/harness/fsrace}"
export FSRACE_TOP="$TOP"
TMP="$(mktemp -d /tmp/fsrace-it.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "PASS: $*"; }

need_host() {
  [ "$(id -u)" = 0 ] || skip "needs root (loop devices, mkfs, mount)"
  [ -c /dev/loop-control ] || skip "no loop device support (/dev/loop-control missing)"
  for fs in "$@"; do
    command -v "mkfs.$fs" >/dev/null || skip "mkfs.$fs missing (make deps)"
    grep -qw "$fs" /proc/filesystems || modprobe "$fs" 2>/dev/null || true
    grep -qw "$fs" /proc/filesystems || skip "running kernel lacks $fs"
  done
}

WORK="$TMP/work"
mkdir -p "$WORK"
# Asserts that no mount, loop device or work directory of this test's runs (--workdir "$WORK") is left.
assert_no_leftovers() {
  if grep -q " $WORK/" /proc/mounts; then grep " $WORK/" /proc/mounts; fail "mount left behind"; fi
  for f in /sys/block/loop*/loop/backing_file; do
    [ -r "$f" ] || continue
    if grep -q "^$WORK/" "$f"; then fail "loop device left behind: $f -> $(cat "$f")"; fi
  done
  if [ -n "$(ls -A "$WORK")" ]; then ls -la "$WORK"; fail "work directory left behind"; fi
}

# json FILE PYTHON-EXPR: evaluates EXPR with the parsed file bound to d; prints the result.
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

run_dir_of() { ls -d "$1"/*/*/ 2>/dev/null | head -1; }

# reanalysis_same RUN_DIR: `fsrace analyze` of the stored run (into a scratch --out) gives the run's own
# findings, case by case and for the run (timing fields dropped), and leaves the run's files untouched.
reanalysis_same() {
  local run="$1" out="$TMP/reanalysis.$RANDOM" before after
  before="$(cd "$run" && find . -type f -print0 | sort -z | xargs -0 sha256sum)"
  "$FSRACE" analyze "$run" --out "$out" > "$TMP/analyze.out" 2>&1
  local rc=$?
  [ "$rc" -le 1 ] || { cat "$TMP/analyze.out"; fail "fsrace analyze $run: exit $rc"; }
  python3 "$TOP/tests/integration/same_findings.py" "$run/findings.json" "$out/findings.json" || fail "re-analysis of $run differs"
  for c in "$run"/*/race.json; do
    c="$(basename "$(dirname "$c")")"
    python3 "$TOP/tests/integration/same_findings.py" "$run/$c/findings.json" "$out/$c/findings.json" >/dev/null ||
      { python3 "$TOP/tests/integration/same_findings.py" "$run/$c/findings.json" "$out/$c/findings.json"; fail "re-analysis of case $c differs"; }
  done
  after="$(cd "$run" && find . -type f -print0 | sort -z | xargs -0 sha256sum)"
  [ "$before" = "$after" ] || fail "fsrace analyze --out changed files of $run"
  rm -rf "$out"
}
