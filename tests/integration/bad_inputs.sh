#!/usr/bin/env bash
# Every bad input: exit 2, one line that names the thing and the fix, earlier results untouched.
source "$(dirname "$0")/common.sh"
need_host ext4
# An earlier run that must survive everything below.
"$FSRACE" run --quiet --workdir "$WORK" "$TOP/campaigns/default.toml" --fs ext4 --duration 0.5 --results "$TMP/res" --quiet > /dev/null 2>&1
earlier="$(run_dir_of "$TMP/res")"
[ -n "$earlier" ] || fail "setup run failed"
before="$(cd "$earlier" && find . -type f -exec sha256sum {} + | sort)"

expect2() {  # expect2 NAME PATTERN CMD...
  local name="$1" pat="$2"
  shift 2
  "$@" > "$TMP/o" 2> "$TMP/e"
  local rc=$?
  [ "$rc" = 2 ] || { cat "$TMP/o" "$TMP/e"; fail "$name: exit $rc, expected 2"; }
  [ "$(wc -l < "$TMP/e")" = 1 ] || { cat "$TMP/e"; fail "$name: error is not one line"; }
  grep -q -- "$pat" "$TMP/e" || { cat "$TMP/e"; fail "$name: error does not say '$pat'"; }
  pass "$name: $(cat "$TMP/e")"
}

printf '[campaign]\nseed = 1\nduraton_s = 3\n' > "$TMP/typo.toml"
printf '[scenario.punch-vs-fault]\nmmap_readers = 999\n' > "$TMP/range.toml"
printf '[fs.ext4]\nmount_options = "no_such_option_xyz"\n[campaign]\nfilesystems = ["ext4"]\n' > "$TMP/mount.toml"
printf '[fs.ext4]\nmkfs_options = ["-b", "12345"]\n[campaign]\nfilesystems = ["ext4"]\n' > "$TMP/mkfs.toml"

expect2 "campaign is a device" "/dev/zero is not a regular file" "$FSRACE" run --quiet --workdir "$WORK" /dev/zero --results "$TMP/res"
head -c 2000000 /dev/zero | tr '\0' '#' > "$TMP/huge.toml"
expect2 "huge campaign" "more than a campaign can be" "$FSRACE" run --quiet --workdir "$WORK" "$TMP/huge.toml" --results "$TMP/res"
expect2 "missing campaign" "does not exist" "$FSRACE" run --quiet --workdir "$WORK" "$TMP/nope.toml" --results "$TMP/res"
expect2 "unknown key" "typo.toml:3:1: unknown key 'duraton_s'" "$FSRACE" run --quiet --workdir "$WORK" "$TMP/typo.toml" --results "$TMP/res"
expect2 "out of range" "range.toml:2:16: 'mmap_readers' = 999 is out of range" "$FSRACE" run --quiet --workdir "$WORK" "$TMP/range.toml" --results "$TMP/res"
expect2 "unknown fs" "unknown filesystem; allowed: ext4, xfs" "$FSRACE" run --quiet --workdir "$WORK" --fs btrfs --results "$TMP/res"
expect2 "bad duration" "out of range" "$FSRACE" run --quiet --workdir "$WORK" --duration -3 --results "$TMP/res"
expect2 "negative seed" "^fsrace: --seed -1: must be a whole number from 0 to 9007199254740991" "$FSRACE" run --quiet --workdir "$WORK" --seed -1 --results "$TMP/res"
expect2 "seed over 2^53" "^fsrace: --seed 18446744073709551615: must be a whole number" "$FSRACE" run --quiet --workdir "$WORK" --seed 18446744073709551615 --results "$TMP/res"
expect2 "fractional seed" "^fsrace: --seed 1.5: must be a whole number" "$FSRACE" run --quiet --workdir "$WORK" --seed 1.5 --results "$TMP/res"
expect2 "unknown option" "see 'fsrace --help'" "$FSRACE" run --quiet --workdir "$WORK" --frobnicate
expect2 "not root" "needs root" setpriv --reuid=65534 --regid=65534 --clear-groups "$FSRACE" run --quiet --workdir "$WORK" --results "$TMP/res-nobody"
expect2 "no mkfs" "mkfs.ext4 not found: run 'make deps'" env PATH=/nonexistent "$FSRACE" run --quiet --workdir "$WORK" --fs ext4 --results "$TMP/res"
expect2 "no loop device" "no loop device support" unshare -m bash -c \
  "touch $TMP/fake-loop && mount --bind $TMP/fake-loop /dev/loop-control && exec \"$FSRACE\" run --workdir $WORK --quiet --fs ext4 --results $TMP/res"
expect2 "existing run dir" "already holds a run" "$FSRACE" run --quiet --workdir "$WORK" --fs ext4 --run-dir "$earlier" --duration 0.5
expect2 "not a run dir" "is not an fsrace run directory" "$FSRACE" report "$TMP"
expect2 "bad mkfs options" "'mkfs.ext4 -b 12345 /dev/loop[0-9]*' failed.*check mkfs_options in \[fs.ext4\]" "$FSRACE" run --quiet --workdir "$WORK" "$TMP/mkfs.toml" --results "$TMP/res2" --duration 0.5
expect2 "bad mount options" "mount -t ext4 .* failed" "$FSRACE" run --quiet --workdir "$WORK" "$TMP/mount.toml" --results "$TMP/res3" --duration 0.5
# A failure mid-run keeps what it wrote: the run dir says what went wrong.
failed="$(run_dir_of "$TMP/res3")"
[ -s "$failed/campaign.toml" ] || fail "failed run lost its campaign.toml"
json "$failed/findings.json" 'd["status"]' | grep -q "^error: mount" || fail "failed run does not record its error"
# report follows the stored run's status: a failed run is not a pass
expect2 "report of a failed run" "the run did not complete (status: error: mount" "$FSRACE" report "$failed"
expect2 "duplicate --fs" "ext4 is listed twice" "$FSRACE" run --quiet --workdir "$WORK" --fs ext4,ext4 --results "$TMP/res4"
expect2 "duplicate --scenario" "punch-vs-read is listed twice" "$FSRACE" run --quiet --workdir "$WORK" --scenario punch-vs-read,punch-vs-read --results "$TMP/res4"
printf '[campaign]\nfilesystems = ["xfs", "xfs"]\n' > "$TMP/dup.toml"
expect2 "duplicate in a campaign" "dup.toml:2:15: 'filesystems' lists xfs twice" "$FSRACE" run --quiet --workdir "$WORK" "$TMP/dup.toml" --results "$TMP/res4"
# malformed findings.json documents: one line, exit 2, never a crash or undefined behaviour
mal="$TMP/malformed"
for doc in '{"schema": "fsrace-findings/1", "status": "complete", "cases": [{"case": "x", "ops": {"total": 5}}]}' \
           '{"schema": "fsrace-findings/1", "status": "complete", "cases": [{"case": "x", "ops": 7}], "findings": [{"class": 3}]}' \
           '{"schema": "fsrace-findings/1", "status": "complete", "run": [], "findings_by_class": {"stale": "many"}}' \
           '[1, 2]'; do
  rm -rf "$mal"; mkdir -p "$mal"; echo "$doc" > "$mal/findings.json"
  "$FSRACE" report "$mal" > "$TMP/o" 2> "$TMP/e"; rc=$?
  case "$rc" in
    0|1) ;;  # what is there renders
    2) [ "$(wc -l < "$TMP/e")" = 1 ] || { cat "$TMP/e"; fail "malformed findings.json: error is not one line"; } ;;
    *) cat "$TMP/o" "$TMP/e"; fail "malformed findings.json $doc: exit $rc" ;;
  esac
  grep -q "internal error" "$TMP/e" && { cat "$TMP/e"; fail "malformed findings.json: internal error"; }
  echo "ok: malformed findings.json -> exit $rc $(cat "$TMP/e")"
done

# a link planted in a run directory is never followed: the case directory must be new
mkdir -p "$TMP/victim" "$TMP/planted-run"
ln -s "$TMP/victim" "$TMP/planted-run/ext4-punch-vs-fault"
expect2 "planted case directory" "cannot create case directory $TMP/planted-run/ext4-punch-vs-fault: File exists" \
  "$FSRACE" run --quiet --workdir "$WORK" --fs ext4 --duration 0.5 --run-dir "$TMP/planted-run"
[ -z "$(ls -A "$TMP/victim")" ] || fail "the case wrote through a planted link: $(ls "$TMP/victim")"

after="$(cd "$earlier" && find . -type f -exec sha256sum {} + | sort)"
[ "$before" = "$after" ] || fail "earlier run was modified"
assert_no_leftovers
pass "earlier results intact"
