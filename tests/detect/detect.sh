#!/usr/bin/env bash
# Detection proof on real kernel bugs (VM mode, TCG): the campaign must flag the kernel built with one
# of the seeds' fixes reverted and stay clean on the stock build of the same source.
#   detect.sh invalidate-lock   seed 001: kernels/patches/no-invalidate-lock-in-fault.patch, punch-vs-fault
#   detect.sh ext4-da-recheck   seed 002: kernels/patches/revert-ext4-da-recheck.patch, mkwrite-vs-fallocate
#   detect.sh ext4-punch-fdatasync  the power cut: kernels/patches/ext4-punch-no-datasync.patch (fdatasync
#                               after a punch not durable, generic/392), writeback-vs-write + dm-flakey
#   detect.sh dio-invalidate    kernels/patches/no-dio-post-write-invalidate.patch (no page-cache
#                               invalidation after an O_DIRECT write), dio-vs-buffered on ext4 + XFS
#   detect.sh ext4-punch-lock   kernels/patches/ext4-punch-no-invalidate-lock.patch (ext4_punch_hole
#                               without invalidate_lock), punch-vs-fault on ext4
#   detect.sh xfs-falloc-mmaplock  kernels/patches/xfs-falloc-no-mmaplock.patch (xfs_file_fallocate
#                               without XFS_MMAPLOCK_EXCL), punch-vs-fault on XFS
#   detect.sh ceph-punch-lock   seed 001 on ceph: kernels/patches/ceph-punch-no-invalidate-lock.patch
#                               (ceph_fallocate without invalidate_lock), punch-vs-fault on the guest's cluster
#   detect.sh dax-redirty       seed 003: kernels/patches/dax-no-redirty.patch (a write fault on an existing
#                               DAX entry no longer dirties it), dax-sync-vs-write-fault on ext4-dax + xfs-dax
# The kernels come from `python3 kernels/kbuild.py build <variant>` (stock from cold: 36 min measured on 2
# cores; a variant after it: ~1 min with ccache), so CI does not build them: without them the test is
# skipped (exit 77) with the command to run. The buggy run's report.html is opened in chromium (the real
# race's timeline: thread and kernel lanes, the highlighted read; screenshot in $FSRACE_TEST_OUT).
source "$(dirname "$0")/../integration/common.sh"
case "${1:?invalidate-lock|ext4-da-recheck|ext4-punch-fdatasync|dio-invalidate|ext4-punch-lock|xfs-falloc-mmaplock|ceph-punch-lock|dax-redirty}" in
  invalidate-lock) buggy=no-invalidate-lock; campaign=detect-invalidate-lock; want='stale-after-punch' ;;
  ext4-da-recheck) buggy=ext4-da-no-recheck; campaign=detect-ext4-da-recheck; want='ext4-reservation'
    no_read=1 ;;  # reservation and space findings: timelines without a read to highlight
  ext4-punch-fdatasync) buggy=ext4-punch-no-datasync; campaign=detect-ext4-punch-fdatasync; want='stale-after-punch'
    explain='a durability failure' ;;
  dio-invalidate) buggy=no-dio-invalidate; campaign=detect-dio-invalidate; want='stale' ;;
  ext4-punch-lock) buggy=ext4-punch-no-invalidate-lock; campaign=detect-ext4-punch-lock; want='stale-after-punch' ;;
  xfs-falloc-mmaplock) buggy=xfs-falloc-no-mmaplock; campaign=detect-xfs-falloc-mmaplock; want='stale-after-punch' ;;
  ceph-punch-lock) buggy=ceph-punch-no-invalidate-lock; campaign=detect-ceph-punch-lock; want='stale-after-punch' ;;
  dax-redirty) buggy=dax-no-redirty; campaign=detect-dax-redirty; want='dax-unflushed'
    stock_known="dax-locked-entry-skip dax-concurrent-writeback"  # stock 6.1's writeback races (dax_check.cpp)
    no_read=1 ;;  # the finding is a store a sync did not flush: no read to highlight
  *) fail "unknown detection $1" ;;
esac
[ "$(id -u)" = 0 ] || skip "needs root"
case "$1" in ceph-*) command -v ceph-mon >/dev/null || skip "ceph-mon missing (make deps installs ceph): the ceph cases need it" ;; esac
[ "$1" != dax-redirty ] || command -v ndctl >/dev/null || skip "ndctl missing (make deps installs it): the DAX cases need it"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (make deps)"
for v in stock "$buggy"; do
  python3 "$TOP/kernels/kbuild.py" path "$v" >/dev/null 2>&1 || skip "kernel variant $v not built: python3 kernels/kbuild.py build $v"
done
kernel() { echo "$(python3 "$TOP/kernels/kbuild.py" path "$1" | head -1)"; }
run() {  # run VARIANT RESULTS
  "$FSRACE" run "$TOP/campaigns/$campaign.toml" --kernel "$(kernel "$1")" --duration 20 --results "$2" > "$TMP/out.$1" 2>&1
  echo $?
}
rc_bug="$(run "$buggy" "$TMP/bug")"
rc_stock="$(run stock "$TMP/stock")"
grep -E '^result' "$TMP/out.$buggy" "$TMP/out.stock"
[ "$rc_bug" = 1 ] || { tail -20 "$TMP/out.$buggy"; fail "$buggy: exit $rc_bug, expected 1 (findings)"; }
# ${stock_known:-}: the explanations (explained_by, space-separated) of real bugs the stock kernel has too;
# findings explained that way are allowed on stock and do not count for the buggy kernel (its bug is another
# mechanism).
known="${stock_known:-}"
n="$(json "$(run_dir_of "$TMP/bug")/findings.json" "sum(1 for f in d['findings'] if f['class'] == '$want' and f.get('explained_by') not in '$known'.split()) if '$known' else d['findings_by_class'].get('$want', 0)")"
[ "$n" -gt 0 ] || fail "$buggy: no $want finding${known:+ other than those explained as $known}"
if [ -n "$known" ] && [ "$rc_stock" = 1 ]; then
  other="$(json "$(run_dir_of "$TMP/stock")/findings.json" "sorted(set((f['class'], f.get('explained_by', '')) for f in d['findings'] if f.get('explained_by') not in '$known'.split()))")"
  [ "$other" = "[]" ] || fail "stock: findings besides the known $known: $other"
  echo "stock: $(json "$(run_dir_of "$TMP/stock")/findings.json" "len(d['findings'])") finding(s), all explained as $known (a bug of the stock kernel)"
else
  [ "$rc_stock" = 0 ] || { tail -20 "$TMP/out.stock"; fail "stock: exit $rc_stock, expected 0 (no finding)"; }
fi
# The real race in a browser: the first finding's timeline, as the developer would read it
DEBIAN_PY=/usr/bin/python3
source "$TOP/tests/integration/browser.sh"
RUN="$(run_dir_of "$TMP/bug")"
RUN="${RUN%/}"
st="$(browse "$RUN/report.html" "detect-$1")" || exit 1
"$DEBIAN_PY" - "$st" "${no_read:-0}" <<'PY' || exit 1
import json, sys
r = json.loads(sys.argv[1])
ok = r["timelines"] >= 1 and r["thread_lanes"] >= 1 and r["kernel_lanes"] >= 1 and r["resources"] == 0
ok = ok and (sys.argv[2] == "1" or r["read_highlighted"] == 1)
if not ok:
    print("FAIL: report.html of the buggy run:", r); sys.exit(1)
PY
[ -z "${explain:-}" ] || grep -q "$explain" "$RUN/report.html" || fail "report.html does not explain the finding as '$explain'"
pass "$buggy flagged ($n $want), stock clean; report in chromium: $OUT/detect-$1.png"
