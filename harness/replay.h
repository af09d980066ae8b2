// `fsrace replay RUN_DIR [--finding N] [--repeat K]`: reruns the case a finding came from (same
// scenario, filesystem, parameters and seed, on the running kernel) and reports how often a finding of
// the same class shows up again.
#pragma once
#include <string>

#include "harness/runner.h"

namespace fsrace {

struct ReplayOptions {
  std::string run_dir;
  size_t finding = 0;  // index into findings.json "findings"
  unsigned repeat = 1;
  RunOptions run;      // results root, workdir, verbosity (campaign is filled from the run)
};

// Returns the exit code: 1 if it reproduced at least once, 0 if never, 130 if interrupted (SIGINT/SIGTERM).
int replay(const ReplayOptions& opt);

}  // namespace fsrace
