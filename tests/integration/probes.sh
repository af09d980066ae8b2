#!/usr/bin/env bash
# Host-mode punch-vs-fault with probes on one filesystem ($1: ext4 | xfs), then probe_check on the case:
# page-cache events for the test inode inside the punched / read ranges, none for other files (a noise
# process keeps filling and dropping the page cache of another file meanwhile), invalidate_lock state
# on the punch path, timestamps interleaving with ops.bin. Exit 77 (skip) with the reason where root,
# loop devices, mkfs or BPF are unavailable.
set -uo pipefail
fs="${1:?usage: probes.sh ext4|xfs}"
bin="${FSRACE_BIN:?FSRACE_BIN not set (run through ctest)}"
check="${PROBE_CHECK:?PROBE_CHECK not set (run through ctest)}"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (loop devices, mount, BPF)"; exit 77; }
command -v "mkfs.$fs" >/dev/null || { echo "SKIP: mkfs.$fs missing: run 'make deps'"; exit 77; }
[ -e /dev/loop-control ] || { echo "SKIP: no /dev/loop-control (loop devices unavailable)"; exit 77; }
line="$("$bin" probes | grep 'filemap:mm_filemap_add_to_page_cache')"
case "$line" in
  *unavailable*) echo "SKIP: page-cache probes cannot attach here: $line"; exit 77 ;;
esac
out="$(mktemp -d /var/tmp/fsrace-probes-test.XXXXXX)"
noise_pid=""
keep=0
cleanup() {
  [ -n "$noise_pid" ] && kill "$noise_pid" 2>/dev/null
  wait 2>/dev/null
  if [ "$keep" -eq 1 ]; then rm -f "$out/noise"; echo "kept for inspection: $out"; else rm -rf "$out"; fi
}
trap cleanup EXIT
# noise: another file's page cache churns all the time (must never show up in events.bin)
head -c 4194304 /dev/urandom > "$out/noise"
python3 - "$out/noise" <<'PY' &
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
while True:
    for off in range(0, 4194304, 65536):
        os.pread(fd, 65536, off)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
PY
noise_pid=$!
"$bin" run --local --fs "$fs" --duration 3 --seed 11 --results "$out/res" --quiet > "$out/run.txt" 2>&1
rc=$?
cat "$out/run.txt" | grep -E 'result:|probes:|race:'
# exit 1 = the kernel did something wrong (a finding): not this test's subject, but keep the evidence
if [ "$rc" -eq 1 ]; then keep=1; echo "note: the run reported findings (kept below):"; grep -E '^finding:' "$out/run.txt"; fi
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then keep=1; echo "FAIL: fsrace run exited $rc"; cat "$out/run.txt"; exit 1; fi
case_dir="$(ls -d "$out"/res/default/*/"$fs"-punch-vs-fault)"
"$check" "$case_dir" || { keep=1; exit 1; }
# The benchmark's in-race toggle ([probes] toggle_ms): detached stretches hold no events, the probes
# come back after each, and the event accounting still adds up.
{ cat "$(dirname "$0")/../../campaigns/default.toml"; printf '\n[probes]\ncpu_stats = false\ntoggle_ms = 200\n'; } > "$out/toggle.toml"
"$bin" run --local --fs "$fs" --duration 2.5 --seed 12 --results "$out/tog" --quiet "$out/toggle.toml" > "$out/tog.txt" 2>&1
rc=$?
grep -E 'probe toggle' "$out/tog.txt"
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then keep=1; echo "FAIL: toggled fsrace run exited $rc"; cat "$out/tog.txt"; exit 1; fi
"$check" "$(ls -d "$out"/tog/default/*/"$fs"-punch-vs-fault)" || { keep=1; exit 1; }
