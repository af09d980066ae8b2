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
# Nothing was left behind by the refused runs.
left="$(find "$RESULTS" -name campaign.toml | wc -l)"
[ "$left" = 0 ] || { find "$RESULTS" -name campaign.toml; fail "refused runs left $left run directories"; }
no_qemu_left
echo "PASS: bad inputs"
