// The campaign runner (host mode, and the VM guest agent): runs each case of the campaign's matrix on a
// fresh testbed, writes the case's files, judges them with analyze_case (harness/analyze.h) and writes
// the results through the one results writer (harness/results.h).
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/campaign.h"
#include "core/findings.h"

namespace fsrace {

struct CaseAnalysis;

inline constexpr const char* kModeVmGuest = "vm-guest";  // the runner inside a VM guest (fsrace agent)

struct RunOptions {
  Campaign campaign;
  std::string results_root = "results";
  std::string workdir = "/var/tmp";
  std::string run_dir;  // explicit run directory (the VM runner passes one); default results/<campaign>/<id>
  bool log_ops = true;
  bool inject_corruption = false;  // test-only
  bool verbose = true;
  // ---- VM guest agent (harness/agent.cpp); host mode leaves these at their defaults ----
  std::string mode = "host";                    // recorded in findings.json run.mode: host | vm-guest
  bool in_vm_guest() const { return mode == kModeVmGuest; }
  std::map<std::string, std::string> devices;   // fs type -> block device to mkfs instead of a loop device
  Shard shard;                                  // run this 1/N of the case matrix (--shard I/N)
  std::vector<std::string> only_cases;          // run just these case names (VM jobs split the matrix)
  // VM guest, the boot after a power cut ([vm] power_cut): this case's race ran in the boot before; its
  // directory (copied into this boot's share by the host) gets the reads after the cut, fsck, analysis.
  std::string after_power_cut;
  nlohmann::json run_extra = nlohmann::json::object();  // merged into findings.json "run"
  // Called when a case enters a phase (setup, race, verify, analysis, done); dir = the test directory.
  std::function<void(const std::string& case_name, const std::string& phase, const std::string& dir)> on_phase;
  bool probes = true;  // eBPF probes per case (issue 3); also off when the campaign's [probes] enabled = false
  // Host mode on a cluster filesystem (ceph): starts daemons on the host; refused without it.
  bool allow_host_cluster = false;
  std::string ceph_objectstore = "memstore";  // FSRACE_CEPH_OBJECTSTORE: memstore | bluestore
  // fsrace explore (harness/explore.h): cases come from this, one at a time, each asked for after the
  // previous one was judged (its directory and analysis; nullptr for the first); nullopt ends the run.
  // The matrix, shard and only_cases are then not used.
  std::function<std::optional<CaseSpec>(const std::string* last_dir, const CaseAnalysis* last)> next_case;
};

struct RunOutcome {
  std::string dir;
  uint64_t findings = 0;
  bool interrupted = false;
};

RunOutcome run_host(const RunOptions& opt);

// Counts as progress (the VM hang watch) and tells opt.on_phase that `case_name` entered `phase`.
// (dir: the test directory while the filesystem is mounted, else "").
void report_phase(const RunOptions& opt, const std::string& case_name, const char* phase, const std::string& dir = "");

}  // namespace fsrace
