// The VM guest agent (`fsrace agent`, started by the guest's init, never by a user): runs the campaign
// like host mode but on the guest's virtio disks, writes the same results into the result share, and
// reports liveness to the host through <out>/heartbeat.json (progress counter, phase, the state and
// current syscall of every thread) so the host can tell a hang from a slow run and say which ops were
// in flight when the guest died. Test-only hooks (campaign [vm] test_hook) crash or wedge the guest
// on purpose; they refuse to run outside an fsrace guest.
#pragma once
#include <string>

#include "harness/runner.h"

namespace fsrace {

struct AgentOptions {
  std::string out_dir;          // the result share (this VM's run directory)
  double heartbeat_s = 0.5;
  double fs_wait_s = 120;       // filesystem modules may still be loading when the agent starts
  bool test_hook = true;        // false in a VM restarted after a hang / crash: the hook fires once per VM
  std::string explore;          // fsrace explore --kernel K: "BUDGET_S,ROUND_S,REPEATS" (rounds instead of --cases)
};

// Runs the campaign; returns the exit code (0, 1, 2, 130) after writing <out>/agent-exit.
int run_agent(RunOptions ropt, const AgentOptions& a);

}  // namespace fsrace
