// `fsrace explore`: the budgeted, event-steered search (harness/explore.h) driven through the runner's
// case source (RunOptions::next_case). Host mode here; VM mode runs the same loop in the guest agent.
#pragma once
#include <string>

#include "harness/runner.h"

namespace fsrace {

struct ExploreOptions {
  RunOptions run;          // campaign (filesystems, scenarios, seed, [fs.*], [scenario.*]), results, workdir
  double budget_s = 600;   // wall time for the rounds (setup + race + verify + analysis)
  double round_s = 3;      // race seconds per round
  unsigned repeats = 3;    // reruns of a round that found something (its reproduction rate)
};

// The rounds through run_host (host mode, or the guest agent in VM mode): writes explore.json (the
// allocation table, every round) and a reproducer campaign per finding arm (repro-<arm>.toml) into the
// run directory. `table` gets the allocation table as text.
RunOutcome explore_rounds(ExploreOptions o, std::string* table = nullptr);

// `fsrace explore` in host mode: explore_rounds, then the table, the result line, the reports; returns
// the exit code (0 / 1 / 130).
int run_explore(ExploreOptions o);

// "BUDGET_S,ROUND_S,REPEATS" as the VM runner hands it to the guest agent, and back.
std::string explore_spec(const ExploreOptions& o);
void parse_explore_spec(const std::string& spec, ExploreOptions& o);

}  // namespace fsrace
