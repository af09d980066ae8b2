#!/usr/bin/env bash
# ceph in a Debian-kernel guest: the single-node cluster comes up (mon, mgr, OSD on memstore, MDS on
# 127.0.0.1, cephx), the kernel client mounts it, dio-vs-mmap (generic/647's interleaving) and
# punch-vs-read run on cephfs, ext4 runs the same in the same guest (the ops/s comparison), and the
# cluster stops with no daemon left. Prints the figures it measured.
# Stock 6.1's ceph client has a real DIO / mmap incoherence: ceph_direct_read_write drops the page
# cache before the OSD write and never after, so a fault inside the write caches the old data for good.
# dio-vs-mmap on ceph may report it; every itemised finding there must carry that explanation
# (explained_by "dio-refill", from the events), and nothing else may be found.
source "$(dirname "$0")/lib.sh"
for t in ceph-mon ceph-mgr ceph-osd ceph-mds ceph ceph-authtool monmaptool; do
  command -v $t >/dev/null || skip "$t missing: run 'make deps' (ceph-mon ceph-osd ceph-mds ceph-mgr ceph-common)"
done
run_vm 0,1 "$TOP/tests/vm/ceph.toml" --kernel "${FSRACE_CEPH_KERNEL:-debian}" --jobs 1
[ -d "$RUN" ] || fail "no run directory in the output"
[ "$(json "$RUN/findings.json" 'd["status"]')" = complete ] || fail "status is not complete"
unexplained="$(json "$RUN/findings.json" '[(f["case"], f["class"], f.get("block")) for f in d["findings"] if not f.get("informational") and not (f["case"] == "ceph-dio-vs-mmap" and f.get("explained_by") == "dio-refill")]')"
[ "$unexplained" = "[]" ] || fail "findings other than ceph's explained DIO refill on the stock kernel: $unexplained"
for c in ceph-punch-vs-read ext4-dio-vs-mmap ext4-punch-vs-read; do
  [ "$(json "$RUN/$c/findings.json" 'sum(d["findings_by_class"].values())')" = 0 ] || fail "$c: findings (beyond the itemised ones)"
done
refills="$(json "$RUN/findings.json" 'sum(1 for f in d["findings"] if f.get("explained_by") == "dio-refill")')"
total="$(json "$RUN/ceph-dio-vs-mmap/findings.json" 'sum(d["findings_by_class"].values())')"
[ "$total" = 0 ] || [ "$refills" -gt 0 ] || fail "ceph-dio-vs-mmap: $total findings, none itemised with the refill explanation"
[ "$(json "$RUN/findings.json" '",".join(sorted(c["case"] + "=" + c["status"] for c in d["cases"]))')" = \
  "ceph-dio-vs-mmap=complete,ceph-punch-vs-read=complete,ext4-dio-vs-mmap=complete,ext4-punch-vs-read=complete" ] \
  || fail "cases not all complete: $(json "$RUN/findings.json" '[(c["case"], c["status"]) for c in d["cases"]]')"
for c in ceph-dio-vs-mmap ceph-punch-vs-read; do
  R="$RUN/$c/race.json"
  [ -s "$R" ] || fail "$c: no race.json"
  [ "$(json "$R" 'd["case"]["ops"]["total"] > 50')" = True ] || fail "$c: too few ops"
  [ "$(json "$R" 'd["inputs"]["space_check"]["applicable"]')" = False ] || fail "$c: space check not marked not applicable"
  [ "$(json "$R" 'd["case"]["fsck"]["applicable"]')" = False ] || fail "$c: fsck not marked not applicable"
  [ "$(json "$R" 'd["case"]["cluster"]["dead_daemons"]')" = "[]" ] || fail "$c: a ceph daemon died"
done
R="$RUN/ceph-punch-vs-read/race.json"
[ "$(json "$R" 'd["case"]["ops"]["by_kind"].get("punch", 0) > 0')" = True ] || fail "no hole punched on cephfs"
[ "$(json "$R" 'd["case"]["ops"]["by_kind"].get("zero-range-skipped-unsupported", 0) > 0')" = True ] \
  || fail "zero-range was not skipped (and counted) on ceph"
[ "$(json "$R" 'd["case"]["ops"]["by_kind"].get("zero-range", 0)')" = 0 ] || fail "zero-range issued on ceph"
grep -q "ceph_fallocate accepts only PUNCH_HOLE" "$R" || fail "the unsupported ops' reason is not in race.json"
[ -s "$RUN/vm0/ceph-logs/mon.a.log" ] && [ -s "$RUN/vm0/ceph-logs/osd.0.log" ] || fail "the daemons' logs were not kept in the run dir"
grep -q "fsrace: ceph cluster stopped (4 daemons were running, none left)" "$RUN/console.log" || fail "cluster teardown not clean"
no_qemu_left
G="$RUN/vm0/findings.json"
start="$(json "$G" 'round(d["run"]["ceph_cluster"]["start_s"], 1)')"
rss="$(json "$G" 'd["run"]["ceph_cluster"]["daemon_rss_kib"]')"
ops() { json "$RUN/$1/race.json" 'round(d["case"]["ops"]["total"] / d["case"]["ops"]["seconds"])'; }
echo "PASS: ceph cluster up in $start s (under ${FSRACE_ACCEL:-the detected accelerator}), daemons' RSS KiB $rss;" \
     "dio-vs-mmap ops/s ceph $(ops ceph-dio-vs-mmap) vs ext4 $(ops ext4-dio-vs-mmap);" \
     "punch-vs-read ceph $(ops ceph-punch-vs-read) vs ext4 $(ops ext4-punch-vs-read);" \
     "ceph dio-vs-mmap findings $total, itemised and explained as a DIO refill: $refills"
