#!/usr/bin/env bash
# Boot Debian's kernel, run a short punch-vs-fault campaign on ext4 and XFS in the guest: no finding,
# results complete (same layout as host mode), QEMU-start -> agent-start time recorded, the probes loaded
# without a refusal (page cache by tp_btf, the rwsem by fentry).
# FSRACE_SMOKE_KERNEL=<id|name|path> runs the same checks on another kernel, e.g. an `fsrace kernel build`.
source "$(dirname "$0")/lib.sh"
run_vm 0 "$TOP/tests/vm/smoke.toml" --kernel "${FSRACE_SMOKE_KERNEL:-debian}"
[ -d "$RUN" ] || fail "no run directory in the output"
for f in findings.json summary.txt kmsg.log campaign.toml console.log vm.json \
         ext4-punch-vs-fault/ops.bin ext4-punch-vs-fault/findings.json ext4-punch-vs-fault/summary.txt \
         xfs-punch-vs-fault/ops.bin xfs-punch-vs-fault/findings.json xfs-punch-vs-fault/kmsg.log; do
  [ -s "$RUN/$f" ] || fail "$f missing or empty in $RUN"
done
[ "$(json "$RUN/findings.json" 'd["status"]')" = complete ] || fail "status is not complete"
[ "$(json "$RUN/findings.json" 'd["run"]["mode"]')" = vm ] || fail "run.mode is not vm"
[ "$(json "$RUN/findings.json" 'sum(d["findings_by_class"].values())')" = 0 ] || fail "findings on a clean run"
[ "$(json "$RUN/findings.json" '",".join(c["status"] for c in d["cases"])')" = "complete,complete" ] || fail "cases not complete"
[ "$(json "$RUN/findings.json" 'min(c["ops"]["total"] for c in d["cases"]) > 100')" = True ] || fail "too few ops"
boot="$(json "$RUN/findings.json" 'd["run"]["vm"]["boot_to_agent_s"][0]')"
python3 -c "import sys; b=float(sys.argv[1]); sys.exit(0 if 0 < b < 300 else 1)" "$boot" || fail "boot time $boot not recorded"
grep -q "QEMU start -> agent start: " "$RUN/summary.txt" || fail "summary lacks the boot time"
grep -q "accel tcg\|accel kvm" "$RUN/summary.txt" || fail "summary lacks the accelerator"
# One BPF build must load on 6.1: no probe may be unavailable because this kernel refused or the verifier
# rejected its program (only "not in this kernel"-style reasons are legitimate), and the hot paths get
# their best modes (tp_btf page-cache probes, fentry on the rwsem).
bad="$(json "$RUN/findings.json" '"; ".join(c["fs"] + " " + k + ": " + v for c in d["cases"] for k, v in c["probes"]["unavailable"].items() if "load failed" in v or "refused" in v)')"
[ -z "$bad" ] || fail "probes refused in the 6.1 guest: $bad"
modes="$(json "$RUN/findings.json" '" ".join(c["probes"]["modes"].get(p, "none") for c in d["cases"] for p in ("filemap:mm_filemap_add_to_page_cache", "down_write()"))')"
[ "$modes" = "tp_btf fentry/fexit tp_btf fentry/fexit" ] || fail "page-cache / rwsem probe modes in the guest: $modes (expected tp_btf and fentry/fexit per case)"
# In a guest the statistics' static key must not flip while programs run (it livelocked TCG guests).
flipped="$(json "$RUN/findings.json" '[c["case"] for c in d["cases"] if c["probes"]["cpu"]["stats_flipped_while_attached"]]')"
[ "$flipped" = "[]" ] || fail "BPF statistics switched while programs were attached in the guest: $flipped"
"$BIN" report "$RUN" >/dev/null || fail "fsrace report on the VM run failed"
reanalysis_same "$RUN"
no_qemu_left
echo "PASS: ext4 + xfs in the guest, no finding, QEMU start -> agent start ${boot} s"
