#!/usr/bin/env bash
# A guest that panics on purpose (test hook: sysrq-c mid-race) -> kernel-crash finding with the panic
# text from console.log and the workload state, exit 1, no qemu left.
source "$(dirname "$0")/lib.sh"
run_vm 1 "$TOP/tests/vm/panic.toml" --kernel debian
F="$RUN/findings.json"
[ "$(json "$F" 'd["findings_by_class"].get("kernel-crash", 0)')" -ge 1 ] || fail "no kernel-crash finding"
log="$(json "$F" '"\n".join(l for f in d["findings"] if f["class"]=="kernel-crash" for l in f.get("kernel_log", []))')"
grep -q "Kernel panic - not syncing: sysrq triggered crash" <<<"$log" || fail "kernel-crash lacks the panic text"
grep -q "sysrq_handle_crash" <<<"$log" || fail "kernel-crash lacks the panic's stack"
detail="$(json "$F" '[f["detail"] for f in d["findings"] if f["class"]=="kernel-crash"][0]')"
grep -q "phase race" <<<"$detail" || fail "kernel-crash lacks the workload state (phase race): $detail"
grep -q "Kernel panic - not syncing" "$RUN/console.log" || fail "console.log lacks the panic"
grep -q "not finished: the guest kernel crashed" "$RUN/summary.txt" || fail "summary does not say the case crashed"
no_qemu_left
echo "PASS: kernel-crash reported, exit 1"
