// The campaign runner (host mode): expands the campaign into cases (fs x scenario x repetition), runs
// each on a fresh loop-device filesystem, then hands op log + kernel log to the analyzer and writes the
// results directory.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "harness/campaign.h"
#include "harness/findings.h"

namespace fsrace {

struct RunOptions {
  Campaign campaign;
  std::string results_root = "results";
  std::string workdir = "/var/tmp";
  std::string run_dir;  // explicit run directory (the VM runner passes one); default results/<campaign>/<id>
  bool log_ops = true;
  bool inject_corruption = false;  // test-only
  bool verbose = true;
  bool probes = true;  // eBPF probes per case (issue 3); also off when the campaign's [probes] enabled = false
};

struct RunOutcome {
  std::string dir;
  uint64_t findings = 0;
  bool interrupted = false;
};

RunOutcome run_host(const RunOptions& opt);

}  // namespace fsrace
