// `fsrace run --kernel K`: the hand-over from the C++ CLI to the VM runner (vm/, Python).
#pragma once
#include <string>

namespace fsrace {
struct RunOptions;

struct VmLaunch {
  std::string kernel;   // --kernel PATH | debian
  std::string modules;  // --modules DIR
  int jobs = 0;         // --jobs N (0: from the core count)
  std::string explore;  // fsrace explore --kernel K: "BUDGET_S,ROUND_S,REPEATS" for the guest agent
};

// `fsrace run --kernel K`: creates the run directory with the resolved campaign.toml (so the guest
// agent and the VM runner see exactly what was validated here) and execs the VM runner
// (python3 -m vm). Returns only on error (throws Fatal).
[[noreturn]] void exec_vm_runner(const RunOptions& ropt, const VmLaunch& l);
}  // namespace fsrace
