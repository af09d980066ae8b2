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

// Runs the rounds, writes explore.json (the allocation table, every round) and one reproducer campaign
// per finding arm (repro-<arm>.toml) into the run directory; returns the run's exit code (0 / 1 / 130).
int run_explore(ExploreOptions o);

}  // namespace fsrace
