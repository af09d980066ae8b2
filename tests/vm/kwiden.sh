#!/usr/bin/env bash
# Kernel-side widening that fsrace drives, in a guest (VM mode, TCG):
#   kwiden.sh debian  Debian 12's kernel (device-mapper as modules, no error injection): dm-delay puts the
#                     filesystem on a delay target and every O_DIRECT op waits for it (median op time in
#                     ops.bin >= the delay); override-return is reported unavailable with the reason; no finding.
#   kwiden.sh custom  the stock guest build from kernels/kbuild.py (skipped without it): page-cache insertions
#                     fail with EEXIST through bpf_override_return (counted: injected > 0) and with ENOMEM
#                     through fail_function (the workload sees ENOMEM / short reads, tolerated), on ext4 and
#                     XFS; no finding either way, because a correct kernel hides a lost insertion race and
#                     never turns ENOMEM into wrong data.
#   kwiden.sh power-cut Debian 12's kernel: dm-flakey ends each race in a power cut (writes dropped,
#                     unmount, journal replay at the next mount) on ext4 and XFS; what fsync made durable
#                     survived, fsck is clean, no finding. Then the self-check (an fsync recorded but not
#                     made): the oracle must report the dropped writes after the cut (exit 1).
#   kwiden.sh xfs-debug the xfs-debug guest build (CONFIG_XFS_DEBUG; skipped without it): errortag
#                     bmap_alloc_minlen_extent set for writeback-vs-write's race on XFS fragments the test
#                     files (more extents than the same seed without it); the ext4 case reports the
#                     technique as XFS only; no finding.
source "$(dirname "$0")/lib.sh"
durations="${OP_DURATIONS:?OP_DURATIONS not set (run through ctest)}"
mode="${1:?usage: kwiden.sh debian|power-cut|custom|xfs-debug}"
campaign() {  # $1 file, $2 filesystems, $3 scenario, $4 scenario lines
  printf '[campaign]\nname = "kwiden"\nseed = 11\nduration_s = 3\nfilesystems = [%s]\nscenarios = ["%s"]\n[probes]\nenabled = false\n[scenario.%s]\n%b' \
    "$2" "$3" "$3" "$4" > "$1"
}

if [ "$mode" = debian ]; then
  delay_ms=20
  campaign "$RESULTS/c.toml" '"ext4"' dio-vs-buffered "kwiden = [\"dm-delay\", \"override-return\"]\ndm_delay_ms = $delay_ms\n"
  run_vm 0 "$RESULTS/c.toml" --kernel debian
  w='d["cases"][0]["kernel_widening"]'
  [ "$(json "$RUN/findings.json" "$w['dm-delay']['ran']")" = True ] || fail "dm-delay did not run: $(json "$RUN/findings.json" "$w['dm-delay']")"
  table="$(json "$RUN/findings.json" "$w['dm-delay']['table']")"
  case "$table" in "0 "*" delay "*" 0 $delay_ms") ;; *) fail "unexpected dm table: $table" ;; esac
  grep -q "kernel widening: dm-delay ran: filesystem on /dev/dm-" "$RUN/summary.txt" || fail "summary.txt does not say dm-delay ran"
  [ "$(json "$RUN/findings.json" "$w['override-return']['ran']")" = False ] || fail "override-return ran on Debian's kernel"
  why="$(json "$RUN/findings.json" "$w['override-return']['detail']")"
  case "$why" in *CONFIG_BPF_KPROBE_OVERRIDE*) ;; *) fail "override-return unavailable without the reason: $why" ;; esac
  for k in dio-read dio-write; do
    med="$("$durations" "$RUN/ext4-dio-vs-buffered" | python3 -c "import json,sys; print(json.load(sys.stdin)['$k']['median_ns'])")"
    echo "median $k with dm-delay $delay_ms ms: $((med / 1000)) us"
    [ "$med" -ge $((delay_ms * 1000000)) ] || fail "median $k $med ns < the dm-delay $delay_ms ms: the delay did not apply"
  done
  no_qemu_left
  echo "PASS: dm-delay under ext4 in the Debian guest ($table), O_DIRECT ops waited for it; override-return reported unavailable: $why"
  exit 0
fi

if [ "$mode" = power-cut ]; then
  campaign "$RESULTS/c.toml" '"ext4", "xfs"' punch-vs-fault "kwiden = [\"dm-flakey\"]\n"
  run_vm 0 "$RESULTS/c.toml" --kernel debian --duration 2
  for i in 0 1; do
    w="d['cases'][$i]['kernel_widening']['dm-flakey']"
    name="$(json "$RUN/findings.json" "d['cases'][$i]['case']")"
    [ "$(json "$RUN/findings.json" "$w['ran']")" = True ] || fail "$name: the power cut did not run: $(json "$RUN/findings.json" "$w")"
    case "$(json "$RUN/findings.json" "$w['table_at_cut']")" in *" flakey "*" 0 0 180 1 drop_writes") ;; *) fail "$name: no drop_writes table at the cut" ;; esac
    [ -n "$(json "$RUN/findings.json" "$w['journal_recovery']")" ] || fail "$name: the mount after the cut replayed no journal"
    [ "$(json "$RUN/findings.json" "$w['fsck']['clean']")" = True ] || fail "$name: fsck after the cut: $(json "$RUN/findings.json" "$w['fsck']")"
    nd="$(json "$RUN/findings.json" "$w['non_durable_ops']")"
    [ "$nd" -gt 0 ] || fail "$name: every op was durable at the cut: nothing was at risk"
    [ "$(json "$RUN/findings.json" "$w['reads_after_cut']")" -gt 0 ] || fail "$name: nothing read after the cut"
    echo "$name: $nd ops not durable at the cut, journal replayed: $(json "$RUN/findings.json" "$w['journal_recovery']")"
  done
  grep -q "kernel widening: dm-flakey ran: power cut after the race on /dev/dm-" "$RUN/summary.txt" || fail "summary.txt does not say the power cut ran"
  reanalysis_same "$RUN"
  campaign "$RESULTS/s.toml" '"xfs"' writeback-vs-write "kwiden = [\"dm-flakey\"]\npower_cut_selfcheck = 1\n"
  run_vm 1 "$RESULTS/s.toml" --kernel debian --duration 2
  n="$(json "$RUN/findings.json" 'len(d["findings"])')"
  [ "$n" -gt 0 ] || fail "self-check: no finding although the recorded fsyncs never happened"
  # The self-check claims every op before the cut durable: lost writes are read back (after-power-cut), and a lost
  # punch leaves its blocks allocated, which the space check after the cut reports as space-leak (phase space) -
  # the same evidence. Nothing else may appear.
  [ "$(json "$RUN/findings.json" '"after-power-cut" in set(f["phase"] for f in d["findings"]) and set((f["phase"], f["class"]) for f in d["findings"] if f["phase"] != "after-power-cut") <= {("space", "space-leak")}')" = True ] ||
    fail "self-check: findings outside the reads after the cut (and the space-leak a lost punch leaves): $(json "$RUN/findings.json" 'sorted(set((f["phase"], f["class"]) for f in d["findings"]))')"
  reanalysis_same "$RUN"
  no_qemu_left
  echo "PASS: power cut on ext4 and XFS in the Debian guest: journal replayed, fsync'ed data intact, fsck clean; the self-check's dropped writes were reported ($n findings)"
  exit 0
fi

if [ "$mode" = xfs-debug ]; then
  img="$(python3 "$TOP/kernels/kbuild.py" path xfs-debug 2>/dev/null | head -1)" || true
  [ -n "$img" ] && [ -f "$img" ] ||
    skip "kernel variant xfs-debug not built: python3 kernels/kbuild.py build xfs-debug --fragment kernels/xfs-debug.config"
  extents='sum(d["cases"][-1]["extents"].values())'
  campaign "$RESULTS/plain.toml" '"xfs"' writeback-vs-write ""
  run_vm 0 "$RESULTS/plain.toml" --kernel "$img"
  plain="$(json "$RUN/findings.json" "$extents")"
  campaign "$RESULTS/tag.toml" '"ext4", "xfs"' writeback-vs-write "kwiden = [\"xfs-errortag\"]\nxfs_minlen_alloc = 1\n"
  run_vm 0 "$RESULTS/tag.toml" --kernel "$img"
  w='d["cases"][1]["kernel_widening"]["xfs-errortag"]'
  [ "$(json "$RUN/findings.json" "$w['ran']")" = True ] || fail "xfs-errortag did not run: $(json "$RUN/findings.json" "$w")"
  [ "$(json "$RUN/findings.json" "$w['errortags']['bmap_alloc_minlen_extent']")" = 1 ] || fail "errortag not recorded"
  grep -q "kernel widening: xfs-errortag ran: bmap_alloc_minlen_extent = 1 in /sys/fs/xfs/" "$RUN/summary.txt" ||
    fail "summary.txt does not say the errortag ran"
  why="$(json "$RUN/findings.json" 'd["cases"][0]["kernel_widening"]["xfs-errortag"]["detail"]')"
  [ "$why" = "XFS only (this case runs ext4)" ] || fail "ext4 case: unexpected xfs-errortag detail: $why"
  tagged="$(json "$RUN/findings.json" "$extents")"
  echo "writeback-vs-write on XFS, same seed: $plain extents in the test files without the errortag, $tagged with it"
  [ "$tagged" -gt "$plain" ] || fail "bmap_alloc_minlen_extent did not fragment the files ($tagged extents vs $plain without)"
  no_qemu_left
  echo "PASS: XFS errortag bmap_alloc_minlen_extent armed for the race ($plain -> $tagged extents), no finding"
  exit 0
fi

[ "$mode" = custom ] || fail "unknown mode $mode"
img="$(python3 "$TOP/kernels/kbuild.py" path stock 2>/dev/null | head -1)" || true
[ -n "$img" ] && [ -f "$img" ] || skip "kernel variant stock not built: python3 kernels/kbuild.py build stock"
grep -q '^CONFIG_BPF_KPROBE_OVERRIDE=y' "$(dirname "$img")/config" || skip "the stock build predates error injection in kernels/guest.config: rebuild it"
for inj in "override-return 17" "fail-function 12"; do
  set -- $inj
  campaign "$RESULTS/$1.toml" '"ext4", "xfs"' punch-vs-read "kwiden = [\"$1\"]\nkinject_errno = $2\nkinject_ratio = 0.05\n"
  run_vm 0 "$RESULTS/$1.toml" --kernel "$img"
  for c in 0 1; do
    w="d['cases'][$c]['kernel_widening']['$1']"
    [ "$(json "$RUN/findings.json" "$w['ran']")" = True ] || fail "$1 did not run: $(json "$RUN/findings.json" "$w")"
    grep -q "kernel widening: $1 ran: __filemap_add_folio failed with" "$RUN/summary.txt" || fail "summary.txt does not say $1 ran"
  done
  if [ "$1" = override-return ]; then
    for c in 0 1; do
      inj_n="$(json "$RUN/findings.json" "d['cases'][$c]['kernel_widening']['override-return']['injection']['injected']")"
      [ "$inj_n" -gt 0 ] || fail "override-return armed but injected nothing in case $c"
      echo "case $c: $inj_n page-cache insertions failed with EEXIST, no finding"
    done
  else
    seen="$(json "$RUN/findings.json" "sum(c['ops'].get('injected_failures', 0) for c in d['cases'])")"
    [ "$seen" -gt 0 ] || fail "fail_function armed with ENOMEM, but no syscall saw ENOMEM or came back short"
    echo "fail_function ENOMEM: $seen reads / writes failed or came back short (tolerated), no finding"
  fi
done
no_qemu_left
echo "PASS: error injection into page-cache insertions on ext4 and XFS in the custom guest, no finding"
