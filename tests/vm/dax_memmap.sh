#!/usr/bin/env bash
# DAX on memmap= legacy pmem ([vm] pmem = "memmap", the fallback for a QEMU without NVDIMMs): the kernel
# command line reserves guest RAM for the pmem driver (nd_e820), the testbed makes it fsdax with ndctl, and
# ext4-dax + xfs-dax run punch-vs-fault 3 s each with statx confirming DAX: no finding on Debian's kernel.
source "$(dirname "$0")/lib.sh"
command -v ndctl >/dev/null || skip "ndctl missing (make deps installs it)"
run_vm 0 "$TOP/tests/vm/dax_memmap.toml" --kernel "${FSRACE_SMOKE_KERNEL:-debian}"
[ -d "$RUN" ] || fail "no run directory in the output"
[ "$(json "$RUN/vm.json" 'd["pmem"]')" = memmap ] || fail "vm.json does not say memmap"
argv="$(json "$RUN/vm.json" '" ".join(d["vms"][0]["boots"][0]["qemu_argv"])')"
[[ "$argv" == *"memmap=256M!1024M memmap=384M!1408M"* ]] || fail "no memmap= regions on the kernel command line: $argv"
[[ "$argv" != *"nvdimm"* ]] || fail "memmap mode still gave QEMU NVDIMMs"
[ "$(json "$RUN/findings.json" '",".join(sorted(c["case"] for c in d["cases"] if c["status"] == "complete"))')" = \
  "ext4-dax-punch-vs-fault,xfs-dax-punch-vs-fault" ] || fail "not every case completed: $(json "$RUN/findings.json" '[(c["case"], c["status"]) for c in d["cases"]]')"
for c in ext4-dax-punch-vs-fault xfs-dax-punch-vs-fault; do
  [ "$(json "$RUN/$c/findings.json" 'd["cases"][0]["dax"]["mode"] == "fsdax" and d["cases"][0]["dax"]["all_files_dax"]')" = True ] ||
    fail "$c ran without fsdax + DAX files"
done
[ "$(json "$RUN/findings.json" 'sum(d["findings_by_class"].values())')" = 0 ] || fail "findings: $(json "$RUN/findings.json" 'd["findings_by_class"]')"
no_qemu_left
echo "PASS: ext4-dax + xfs-dax on memmap= legacy pmem, fsdax confirmed by statx, no finding"
