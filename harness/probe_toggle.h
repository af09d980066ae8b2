// Probe overhead measured inside one race (campaign [probes] toggle_ms, used by bench/probes_overhead.sh):
// every probe is detached and attached again in alternating stretches of toggle_ms, and the workload's
// ops/s and ops per CPU-second are compared between neighbouring stretches. Separate runs differ by
// ±10 % on a 2-core VM (how the racing threads collide, host noise); neighbouring stretches of one race
// share the file layout, the page-cache state and the machine's mood, so their ratio is far tighter.
#pragma once
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fsrace {
namespace probes {
class ProbeSession;
}

// One stretch between two toggles; the attach or detach itself (the kernel's RCU grace periods) is in
// neither stretch.
struct ToggleSegment {
  bool attached = false;
  uint64_t ns = 0, ops = 0, cpu_ns = 0;
  uint64_t start_ns = 0;  // CLOCK_MONOTONIC, like ops.bin and events.bin
};

// The case's probes.toggle record: totals per state, and for each attached stretch the ratio of its rate
// to the mean of its detached neighbours (ops/s and ops per CPU-second), with their median.
nlohmann::json toggle_summary(const std::vector<ToggleSegment>& segs, uint64_t period_ms);

// Toggles on its own thread from construction (the probes attached) until finish(), which leaves them attached.
class ProbeToggler {
 public:
  ProbeToggler(probes::ProbeSession& s, uint64_t period_ms);
  ~ProbeToggler();
  ProbeToggler(const ProbeToggler&) = delete;
  ProbeToggler& operator=(const ProbeToggler&) = delete;
  // Stops toggling (the stretch in progress is dropped: the race was ending in it), re-attaches, and
  // returns toggle_summary plus any re-attach error.
  nlohmann::json finish();

 private:
  void main();
  probes::ProbeSession& s_;
  uint64_t period_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::vector<ToggleSegment> segs_;
  std::string error_;
  std::thread th_;
};

}  // namespace fsrace
