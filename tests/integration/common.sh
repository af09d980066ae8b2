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

# reanalysis_same RUN: `fsrace analyze` of the stored run gives the run's own findings (reanalysis_same.sh).
reanalysis_same() { bash "$TOP/tests/integration/reanalysis_same.sh" "$FSRACE" "$1" || fail "re-analysis of $1"; }
