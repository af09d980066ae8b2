// VM mode, host side, after the guests are gone: turns what the VM runner (vm/, Python) recorded in
// <run>/vm.json, the guests' own results (<run>/vm<i>/findings.json) and the serial consoles into the
// run's findings.json / summary.txt / kmsg.log, with the same layout as host mode. The console goes
// through the one kernel-log analyzer (kmsg_scan), so panics and messages printed while the guest died
// are findings too (kernel-crash); hangs and VM failures come from vm.json.
#pragma once
#include <string>

namespace fsrace {

struct VmReportResult {
  int exit_code = 0;      // 0 no finding, 1 findings, 2 error (boot-failed, QEMU failed, guest error), 130 interrupted
  std::string error;      // one line, for exit code 2
  std::string summary;
};

VmReportResult vm_report(const std::string& run_dir);

}  // namespace fsrace

namespace fsrace {
struct RunOptions;

struct VmLaunch {
  std::string kernel;   // --kernel PATH | debian
  std::string modules;  // --modules DIR
  int jobs = 0;         // --jobs N (0: from the core count)
};

// `fsrace run --kernel K`: creates the run directory with the resolved campaign.toml (so the guest
// agent and the VM runner see exactly what was validated here) and execs the VM runner
// (python3 -m vm). Returns only on error (throws UsageError).
[[noreturn]] void exec_vm_runner(const RunOptions& ropt, const VmLaunch& l);
}  // namespace fsrace
