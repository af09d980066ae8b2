// VM mode, host side, after the guests are gone: turns what the VM runner (vm/, Python) recorded in
// <run>/vm.json, the guests' own results (<run>/vm<i>/findings.json) and the serial consoles into the
// run's findings.json / summary.txt / kmsg.log, with the same layout as host mode. The console goes
// through the one kernel-log analyzer (kmsg_scan), so panics and messages printed while the guest died
// are findings too (kernel-crash); hangs and VM failures come from vm.json.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace fsrace {

struct VmReportResult {
  int exit_code = 0;      // 0 no finding, 1 findings, 2 error (boot-failed, QEMU failed, guest error), 130 interrupted
  std::string error;      // one line, for exit code 2
  std::string summary;
};

// Merges the run: every VM's cases (their documents from `case_docs`, keyed by case name; cases without
// one are "not finished"), the consoles through the kernel-log analyzer, hangs and VM failures from
// vm.json. Writes findings.json / summary.txt / kmsg.log into `out_dir`.
VmReportResult vm_merge(const std::string& run_dir, const std::map<std::string, nlohmann::json>& case_docs,
                        const std::string& out_dir);
// The case documents stored in a run directory (<run>/<case>/findings.json).
std::map<std::string, nlohmann::json> stored_case_docs(const std::string& run_dir);
// `fsrace vm-report DIR`: vm_merge of the stored case documents, into DIR.
VmReportResult vm_report(const std::string& run_dir);

}  // namespace fsrace

