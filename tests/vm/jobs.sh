#!/usr/bin/env bash
# --jobs 2: the ext4 and XFS cases run in two VMs at once (own disks, own share and console each) and
# merge into one run directory with the host-mode layout.
source "$(dirname "$0")/lib.sh"
run_vm 0 "$TOP/tests/vm/smoke.toml" --kernel debian --jobs 2 --duration 1
F="$RUN/findings.json"
[ "$(json "$F" 'd["run"]["vm"]["jobs"]')" = 2 ] || fail "not 2 VMs"
[ "$(json "$F" 'len(d["run"]["vm"]["boot_to_agent_s"])')" = 2 ] || fail "boot time not recorded per VM"
[ "$(json "$F" '",".join(sorted(c["case"]+":"+c["status"] for c in d["cases"]))')" = \
  "ext4-punch-vs-fault:complete,xfs-punch-vs-fault:complete" ] || fail "cases not complete"
for f in console.log console-vm1.log ext4-punch-vs-fault/ops.bin xfs-punch-vs-fault/ops.bin; do
  [ -s "$RUN/$f" ] || fail "$f missing"
done
no_qemu_left
echo "PASS: 2 VMs, merged results"
