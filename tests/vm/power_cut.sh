#!/usr/bin/env bash
# [vm] power_cut on Debian's kernel: after each case's race the guest records the cut and the host kills
# QEMU (SIGKILL) with the filesystem mounted; the VM boots again on the same NVDIMM backing files / disk
# images, mounts (journal / log replay), reads every block (judged by what completed fsyncs made durable)
# and runs fsck. ext4-dax, xfs-dax and ext4 (virtio disk): no finding on the stock kernel, every case
# verified after its cut, fsck clean. Then the self-check (fsyncs recorded but not made) must report the
# loss on every filesystem. Prints the cut / reboot / verify times per case.
source "$(dirname "$0")/lib.sh"
command -v ndctl >/dev/null || skip "ndctl missing (make deps installs it)"
check_cuts() {  # RUN: every case verified after its cut; prints the figures
  python3 - "$1" <<'PY'
import json, os, sys
run = sys.argv[1]
vm = json.load(open(os.path.join(run, "vm.json")))
boots = vm["vms"][0]["boots"]
d = json.load(open(os.path.join(run, "findings.json")))
cases = sorted(c["case"] for c in d["cases"] if c["status"] == "complete")
assert cases == ["ext4-dax-punch-vs-fault", "ext4-punch-vs-fault", "xfs-dax-punch-vs-fault"], [(c["case"], c["status"]) for c in d["cases"]]
cut = [b for b in boots if b["outcome"] == "power-cut"]
assert sorted(b["case"] for b in cut) == cases, [(b["outcome"], b["case"]) for b in boots]
after = {b["after_power_cut"]: b for b in boots if b.get("after_power_cut")}
for b in cut:
    c = json.load(open(os.path.join(run, b["case"], "findings.json")))["cases"][0]
    w = c["kernel_widening"]["vm-power-cut"]
    assert w["ran"] and w["reads_after_cut"] > 0 and w["fsck"]["clean"], (b["case"], w)
    nb = after[b["case"]]
    print(f"{b['case']}: cut {b['power_cut_s']:.1f} s after QEMU start; reboot to agent {nb['boot_s']:.2f} s; "
          f"mount + replay {w['mount_s']:.2f} s, verify {w['verify_s']:.2f} s ({w['reads_after_cut']} reads), "
          f"{'journal replayed' if w['journal_recovery'] else 'no recovery logged'}; {w['non_durable_ops']} ops not durable")
PY
}
run_vm 0 "$TOP/tests/vm/power_cut.toml" --kernel "${FSRACE_SMOKE_KERNEL:-debian}"
[ -d "$RUN" ] || fail "no run directory in the output"
check_cuts "$RUN" || fail "power cut results (above)"
[ "$(json "$RUN/findings.json" 'sum(d["findings_by_class"].values())')" = 0 ] || fail "findings on the stock kernel: $(json "$RUN/findings.json" 'd["findings_by_class"]')"
reanalysis_same "$RUN"
no_qemu_left
echo "PASS: power cut + reboot + verify on ext4-dax, xfs-dax and ext4, no finding, fsck clean"
run_vm 1 "$TOP/tests/vm/power_cut_selfcheck.toml" --kernel "${FSRACE_SMOKE_KERNEL:-debian}"
check_cuts "$RUN" || fail "self-check power cut results (above)"
python3 - "$RUN" <<'PY' || fail "the self-check's lost writes were not reported on every filesystem"
import json, sys
d = json.load(open(sys.argv[1] + "/findings.json"))
by = {}
for f in d["findings"]:
    if f["phase"] == "verify-disk" or "power cut" in f.get("detail", ""):
        by.setdefault(f["case"], []).append(f["class"])
print({k: sorted(set(v)) for k, v in by.items()})
assert sorted(by) == ["ext4-dax-punch-vs-fault", "ext4-punch-vs-fault", "xfs-dax-punch-vs-fault"], sorted(by)
PY
no_qemu_left
echo "PASS: self-check: the unmade fsyncs' writes reported lost after the cut on every filesystem"
