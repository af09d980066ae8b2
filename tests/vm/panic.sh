#!/usr/bin/env bash
# A guest that panics on purpose (test hook: sysrq-c mid-race in the first of two cases) -> kernel-crash
# finding with the panic text from console.log and the workload state, then the VM is restarted and the
# second case runs to completion; exit 1, no qemu left.
source "$(dirname "$0")/lib.sh"
run_vm 1 "$TOP/tests/vm/panic.toml" --kernel debian
F="$RUN/findings.json"
[ "$(json "$F" 'd["findings_by_class"].get("kernel-crash", 0)')" -ge 1 ] || fail "no kernel-crash finding"
log="$(json "$F" '"\n".join(l for f in d["findings"] if f["class"]=="kernel-crash" for l in f.get("kernel_log", []))')"
grep -q "Kernel panic - not syncing: sysrq triggered crash" <<<"$log" || fail "kernel-crash lacks the panic text"
grep -q "sysrq_handle_crash" <<<"$log" || fail "kernel-crash lacks the panic's stack"
detail="$(json "$F" '[f["detail"] for f in d["findings"] if f["class"]=="kernel-crash"][0]')"
grep -q "phase race" <<<"$detail" || fail "kernel-crash lacks the workload state (phase race): $detail"
[ "$(json "$F" '",".join(sorted({f["case"] for f in d["findings"] if f["class"]=="kernel-crash"}))')" = ext4-punch-vs-fault ] || \
  fail "kernel-crash finding not on the crashed case"
grep -q "Kernel panic - not syncing" "$RUN/console.log" || fail "console.log lacks the panic"
grep -q "not finished: the guest kernel crashed" "$RUN/summary.txt" || fail "summary does not say the case crashed"
# The restart: the second case ran in a fresh boot and completed, its console apart and panic-free.
[ "$(json "$F" '",".join(c["case"]+":"+c["status"] for c in d["cases"])')" = \
  "ext4-punch-vs-fault:not finished: the guest kernel crashed,ext4-punch-vs-read:complete" ] || \
  fail "cases: $(json "$F" '[(c["case"], c["status"]) for c in d["cases"]]')"
grep -q "fsrace-agent: started" "$RUN/console-vm0-boot1.log" || fail "no console for the restarted boot"
! grep -q "Kernel panic" "$RUN/console-vm0-boot1.log" || fail "the restarted boot panicked too"
reanalysis_same "$RUN"  # the hang / crash and the restarted boot, judged again from the stored files
no_qemu_left
echo "PASS: kernel-crash reported, VM restarted, second case complete, exit 1"
