#!/usr/bin/env bash
# A guest agent that stops making progress (test hook: FIFREEZE of the test filesystem mid-race in the
# first of two cases, so the writer blocks in the kernel) -> hang finding for that case with task states
# (sysrq-w), then the VM is restarted and the second case runs to completion; exit 1, no qemu left.
source "$(dirname "$0")/lib.sh"
run_vm 1 "$TOP/tests/vm/hang.toml" --kernel debian
F="$RUN/findings.json"
[ "$(json "$F" 'd["findings_by_class"].get("hang", 0)')" = 1 ] || fail "no hang finding"
log="$(json "$F" '"\n".join(l for f in d["findings"] if f["class"]=="hang" for l in f.get("kernel_log", []))')"
grep -q "sysrq: Show Blocked State" <<<"$log" || fail "hang finding lacks the sysrq-w output"
grep -q "state:D" <<<"$log" || fail "hang finding shows no blocked (D) task"
detail="$(json "$F" '[f["detail"] for f in d["findings"] if f["class"]=="hang"][0]')"
grep -q "\[D\]" <<<"$detail" || fail "hang detail lacks the blocked thread from the heartbeat"
[ "$(json "$F" '[f["case"] for f in d["findings"] if f["class"]=="hang"][0]')" = ext4-punch-vs-fault ] || fail "hang finding not on the hung case"
# The restart: the second case ran in a fresh boot of the VM and completed; each boot kept its console.
[ "$(json "$F" '",".join(c["case"]+":"+c["status"] for c in d["cases"])')" = \
  "ext4-punch-vs-fault:not finished: the guest hung,ext4-punch-vs-read:complete" ] || \
  fail "cases: $(json "$F" '[(c["case"], c["status"]) for c in d["cases"]]')"
[ "$(json "$F" '[c for c in d["cases"] if c["case"]=="ext4-punch-vs-read"][0]["ops"]["total"] > 100')" = True ] || fail "too few ops in the second case"
[ "$(json "$RUN/vm.json" '",".join(b["outcome"]+":"+b["case"] for b in d["vms"][0]["boots"])')" = \
  "hang:ext4-punch-vs-fault,exited:" ] || fail "vm.json boots: $(json "$RUN/vm.json" '[(b["outcome"], b["case"]) for b in d["vms"][0]["boots"]]')"
grep -q "TEST HOOK freeze" "$RUN/console.log" || fail "console.log (boot 0) lacks the hook"
grep -q "fsrace-agent: started" "$RUN/console-vm0-boot1.log" || fail "no console for the restarted boot"
! grep -q "TEST HOOK" "$RUN/console-vm0-boot1.log" || fail "the test hook fired again after the restart"
[ -s "$RUN/ext4-punch-vs-read/ops.bin" ] || fail "the second case's ops.bin was not moved into the run directory"
[ "$(json "$F" 'len(d["run"]["vm"]["boot_to_agent_s"])')" = 2 ] || fail "boot time not recorded per boot"
reanalysis_same "$RUN"  # the hang / crash and the restarted boot, judged again from the stored files
no_qemu_left
echo "PASS: hang reported with task states, VM restarted, second case complete, exit 1"
