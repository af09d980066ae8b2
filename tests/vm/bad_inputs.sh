#!/usr/bin/env bash
# Bad VM inputs: each a single clear line naming the thing and the fix, exit 2, no run directory left.
source "$(dirname "$0")/lib.sh"
C="$TOP/tests/vm/smoke.toml"
expect2() {  # expect2 'message regex' ARGS...
  local re=$1
  shift
  run_vm 2 "$C" "$@"
  [ "$(grep -c '^fsrace: ' <<<"$ERR")" = 1 ] || { echo "$ERR"; fail "expected exactly one 'fsrace:' line for $*"; }
  grep -q "$re" <<<"$ERR" || { echo "$ERR"; fail "message for $* does not match '$re'"; }
  echo "ok: $* -> $(echo "$ERR" | grep '^fsrace: ')"
}
D="$RESULTS/fixtures"
mkdir -p "$D/nomods" "$D/no9p" "$D/arm"
expect2 "does not exist" --kernel "$D/nonexistent-bzImage"
expect2 "is not a Linux kernel image" --kernel /etc/passwd
python3 - "$D/arm/vmlinux" <<'PY'
import struct, sys
h = bytearray(64); h[:4] = b"\x7fELF"; h[4] = 2; h[5] = 1; h[6] = 1
struct.pack_into("<HHI", h, 16, 2, 183, 1)   # ET_EXEC, EM_AARCH64
open(sys.argv[1], "wb").write(bytes(h) + b"Linux version 6.1.0-arm64\0")
PY
expect2 "kernel for arm64, not x86_64" --kernel "$D/arm/vmlinux"
# Debian's modular kernel without its modules tree (image and config copied, modules not).
PYTHONPATH="$TOP" python3 -m vm kernel debian >/dev/null  # fetch + unpack Debian's kernel into .cache once
K="$(ls "$TOP"/.cache/kernels/linux-image-*/boot/vmlinuz-* | head -1)"
REL="${K##*/vmlinuz-}"
cp "$K" "$D/nomods/vmlinuz-$REL"
cp "$(dirname "$K")/config-$REL" "$D/nomods/"
[ -d "/lib/modules/$REL" ] && skip "/lib/modules/$REL exists on this host: the missing-modules case cannot be staged"
expect2 "is modular.*modules were not found.*--modules" --kernel "$D/nomods/vmlinuz-$REL"
expect2 "is not a directory" --kernel "$D/nomods/vmlinuz-$REL" --modules "$D/nowhere"
# A kernel built without 9p (its config lacks CONFIG_9P_FS): refused before booting.
cp "$K" "$D/no9p/vmlinuz-$REL"
grep -v '^CONFIG_9P_FS=' "$(dirname "$K")/config-$REL" >"$D/no9p/config-$REL"
expect2 "lacks 9p filesystem (CONFIG_9P_FS" --kernel "$D/no9p/vmlinuz-$REL" --modules "$(dirname "$K")/../lib/modules/$REL"
# ... and one without virtio-blk.
grep -v '^CONFIG_VIRTIO_BLK=' "$(dirname "$K")/config-$REL" >"$D/no9p/config-$REL"
expect2 "lacks virtio block devices (CONFIG_VIRTIO_BLK" --kernel "$D/no9p/vmlinuz-$REL" --modules "$(dirname "$K")/../lib/modules/$REL"
expect2 "exclude each other" --kernel debian --local
expect2 "work directory /nonexistent-fsrace-workdir does not exist: pass an existing directory with --workdir" \
  --kernel debian --workdir /nonexistent-fsrace-workdir
# A full results filesystem while the run sets up its VM (campaign.toml fits, the guest's share files do
# not): one line naming the file and the fix, no disk image left in the work directory.
FULL="$RESULTS/full"
WORK="$RESULTS/work"
mkdir -p "$FULL" "$WORK"
trap 'umount "$FULL" 2>/dev/null || true; rm -rf "$RESULTS"' EXIT
mount -t tmpfs -o size=4k fsrace-test-full "$FULL"
expect2 "campaign.in.toml: No space left on device (in the run directory): free space .* or pick another --results / --run-dir" \
  --kernel debian --quiet --run-dir "$FULL/run" --workdir "$WORK"
[ -z "$(ls -A "$WORK")" ] || { ls -laR "$WORK"; fail "disk images / temp dirs left in the work directory"; }
[ ! -e "$FULL/run" ] || { ls -laR "$FULL"; fail "a run directory was left although nothing ran"; }
umount "$FULL"
# Nothing was left behind by the refused runs.
left="$(find "$RESULTS" -name campaign.toml | wc -l)"
[ "$left" = 0 ] || { find "$RESULTS" -name campaign.toml; fail "refused runs left $left run directories"; }
no_qemu_left
# The results filesystem fills up mid-run (after the first case, while the second runs): one line, exit 2,
# the first case's results intact, no QEMU, disk image or host temp file left.
mount -t tmpfs -o size=64m fsrace-test-full "$FULL"
"$BIN" run "$C" --kernel debian --quiet --run-dir "$FULL/run" --workdir "$WORK" >"$RESULTS/out" 2>"$RESULTS/err" &
pid=$!
first="$FULL/run/vm0/ext4-punch-vs-fault/findings.json"
for _ in $(seq 600); do
  [ -s "$first" ] && break
  kill -0 $pid 2>/dev/null || { cat "$RESULTS/err"; fail "fsrace exited before the first case ended"; }
  sleep 0.5
done
[ -s "$first" ] || fail "the first case never ended"
dd if=/dev/zero of="$FULL/filler" bs=1M 2>/dev/null || true  # now the results filesystem is full
wait_one_line_error $pid "No space left on device.*free space" "with a full results filesystem"
echo "ok: results filesystem full mid-run -> $ERR"
done_case=""
for p in "$FULL"/run/ext4-punch-vs-fault "$FULL"/run/vm0/ext4-punch-vs-fault; do  # moved up to the run, or not yet
  [ -s "$p/findings.json" ] && done_case="$p"
done
[ -n "$done_case" ] && [ "$(json "$done_case/findings.json" 'd["status"]')" = complete ] && [ -s "$done_case/ops.bin" ] || \
  fail "the first case's results were not kept intact"
[ -s "$FULL/run/campaign.toml" ] && [ -s "$FULL/run/console.log" ] || fail "campaign.toml / console.log not kept"
[ -z "$(find "$FULL/run" -maxdepth 1 -name '*.tmp')" ] || fail "host temp files left in the run directory"
[ -z "$(ls -A "$WORK")" ] || { ls -laR "$WORK"; fail "disk images / temp dirs left in the work directory"; }
no_qemu_left
echo "PASS: bad inputs"
