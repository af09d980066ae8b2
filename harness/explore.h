// fsrace explore: a budgeted search over scenarios x filesystems x parameter sets x widening, steered
// by near misses in the probe events (docs/explore.md). The policy is pure (no I/O): the runner asks
// it for the next round and reports each round's signals and findings back; tests drive it directly.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/campaign.h"
#include "core/oplog.h"
#include "probes/events.h"

namespace fsrace {

// A parameter set a round may run with: overrides of the scenario's params (only those the scenario
// has) and the campaign widening mode for the round ("off" / "auto").
struct ExploreVariant {
  std::string name;
  std::map<std::string, double> params;
  std::string widening = "off";
  std::string what;  // one line for the docs and the table
};
const std::vector<ExploreVariant>& explore_variants();

// Near misses of one round, from its events.bin and race.json (each defined in docs/explore.md).
struct NearMisses {
  uint64_t fill_in_invalidation = 0;  // a page-cache insertion inside another thread's truncation / punch / invalidation
  uint64_t fill_in_dio_write = 0;     // an insertion by a non-DIO thread inside an O_DIRECT write of the same pages
  uint64_t stale_iomap = 0;           // revalidations that caught a stale cached mapping (iomap / XFS)
  uint64_t dio_invalidate_failed = 0; // an O_DIRECT write's page-cache invalidation that failed
  uint64_t lock_contention = 0;       // invalidate_lock contention episodes on the test files
  double overlap_share = 0;           // share of modifying ops that overlapped a read of the same blocks
  nlohmann::json to_json() const;
};
// `ops` (the round's op log) adds the op-level windows: insertions during a punch / zero range /
// collapse / insert / truncate or an O_DIRECT write of the same pages by another thread, which the
// host (no function probes) sees only this way.
NearMisses near_misses(const probes::EventsData& ev, const nlohmann::json& case_info, const OpLogData* ops = nullptr);
// The round's reward in [0, 1): more (and stronger) near misses score higher; saturating.
double near_miss_score(const NearMisses& n);

struct ExploreArm {
  std::string fs, scenario;
  size_t variant = 0;  // index into explore_variants()
  std::string name() const;
};

struct RoundResult {
  NearMisses signals;
  std::map<std::string, uint64_t> findings_by_class;  // failing findings only
  double seconds = 0;                                   // wall time of the round (setup to analysis)
  bool error = false;                                   // the round could not run (its record says why)
};

// UCB1 over the arms: first every arm once, in an order that puts each (fs, scenario) pair's base
// variant before its other variants (seeded shuffle within those tiers), then the arm with the highest
// mean score + 0.5 sqrt(ln n / pulls). A round with a finding of a class not seen before retires its arm
// and schedules `repeats` reruns of it (fresh seeds) for a reproduction rate; later rounds' findings
// of an already found class add no reward. Deterministic given the seed and the results.
class Explorer {
 public:
  Explorer(std::vector<ExploreArm> arms, uint64_t seed, unsigned repeats = 3);
  // The next arm to run, or nullopt when every arm is retired.
  std::optional<size_t> next();
  void record(size_t arm, const RoundResult& r);
  const std::vector<ExploreArm>& arms() const { return arms_; }
  // The allocation table: per arm pulls, seconds, mean score, signals summed, findings, repro.
  nlohmann::json table() const;
  std::string table_text(size_t max_rows = 20) const;
  bool is_repeat(size_t arm) const;

 private:
  struct Stat {
    uint64_t pulls = 0, repeats_done = 0, repeats_found = 0;
    double score_sum = 0, seconds = 0;
    bool retired = false, found = false;
    std::map<std::string, uint64_t> findings;
    NearMisses signals;
  };
  std::vector<ExploreArm> arms_;
  std::vector<Stat> st_;
  std::vector<size_t> first_order_;  // the initial sweep
  size_t swept_ = 0;
  uint64_t total_pulls_ = 0;
  unsigned repeats_;
  std::vector<size_t> pending_repeats_;
  std::optional<size_t> last_repeat_;
  std::map<std::string, bool> classes_found_;
};

// (scenario, variant) pairs explore leaves out, with the reason (recorded in explore.json).
const std::map<std::pair<std::string, std::string>, std::string>& explore_exclusions();
// Arms for the campaign's filesystems x scenarios (where the scenario runs on the fs) x variants.
std::vector<ExploreArm> explore_arms(const Campaign& c);
// The round's case: the campaign's scenario config with the variant's params (those it has) applied.
CaseSpec explore_case(const Campaign& c, const ExploreArm& arm, size_t round, uint64_t seed);
// "30m", "90s", "1h", "45" (seconds): seconds, or nullopt when not a duration.
std::optional<double> parse_budget(const std::string& s);

}  // namespace fsrace
