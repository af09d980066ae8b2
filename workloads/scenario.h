// Scenario interface and registry. A scenario creates its test files (stamped, through the op log),
// then races threads over them until the deadline; verification and the oracle are shared (harness/).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/campaign.h"
#include "core/oplog.h"

namespace fsrace {

struct TestFile {
  std::string name;  // relative to the test directory
  std::string path;  // absolute
  uint64_t file_id;  // stamped into every block: run nonce << 32 | index
  uint64_t blocks;
};

struct ScenarioEnv {
  std::string dir;  // mounted test directory
  const ScenarioConfig* cfg = nullptr;
  uint64_t seed = 1;
  double duration_s = 1;
  uint64_t run_nonce = 0;
  OpLog* log = nullptr;
  const std::atomic<bool>* stop = nullptr;  // set on SIGINT / SIGTERM
  // Called for every test file once it exists (probes filter on these inodes).
  std::function<void(const TestFile&, int fd)> on_file;
  // Quiescent points: every quiesce_ms of racing, all workers stop and quiesce(round) runs alone
  // (the runner compares page cache with O_DIRECT and checks space). 0 or no callback: off.
  double quiesce_ms = 0;
  std::function<void(uint32_t round)> quiesce;
  // Called on each racing thread before its first op (error injection enlists the thread there).
  std::function<void()> on_worker_start;
  // An errno the kernel is being made to return (error injection, ENOMEM): syscalls failing with it, or
  // coming back short, are counted (RaceStats::injected_failures) but not fatal. 0: none tolerated.
  int tolerated_errno = 0;
  // fallocate modes the filesystem under test lacks (FilesystemInfo::unsupported_ops: "zero-range",
  // "falloc", "shift" on ceph): those ops are not issued, each attempt is counted in
  // RaceStats::ops_by_kind as "<op>-skipped-unsupported", and the runner notes why.
  std::vector<std::string> unsupported_ops;
  // ScenarioSpec::staging_mib > 0: the scratch block device (not the filesystem under test) the scenario
  // reads O_DIRECT from into its mappings; "" when it could not be made (staging_error says why).
  std::string staging_dev;
  uint64_t staging_bytes = 0;
  std::string staging_error;
  bool op_unsupported(const std::string& op) const {
    for (const auto& o : unsupported_ops)
      if (o == op) return true;
    return false;
  }
};

struct RaceStats {
  std::map<std::string, uint64_t> ops_by_kind;
  std::map<std::string, uint64_t> errors_by_kind;  // failed syscalls (not findings by themselves)
  struct Failure {
    std::string kind;  // op kind name
    int64_t result;    // -errno, or the short byte count
    std::string message;
  };
  std::vector<Failure> fatal_errors;  // syscall failures the scenario does not allow (first 20)
  uint64_t injected_failures = 0;     // failures with ScenarioEnv::tolerated_errno, or short transfers then
  double seconds = 0;
  uint64_t quiescent_rounds = 0;
  std::map<std::string, std::string> widening;  // technique -> what ran, or why it is unavailable
  std::map<std::string, uint64_t> widening_counts;
  uint64_t total_ops() const {
    uint64_t t = 0;
    for (const auto& [k, v] : ops_by_kind) t += v;
    return t;
  }
};

class Scenario {
 public:
  virtual ~Scenario() = default;
  virtual const ScenarioSpec& spec() const = 0;
  // The interleaving the scenario targets, the kernel paths involved, what it can find.
  virtual std::string description() const = 0;
  virtual std::vector<std::string> finding_classes() const = 0;
  // The test files this configuration uses (names, stamp ids, sizes): they go into the op log header.
  virtual std::vector<TestFile> plan_files(const ScenarioEnv& env) const = 0;
  // Creates and initialises the files (recorded as init ops in the op log, thread 0).
  virtual void setup(ScenarioEnv& env, const std::vector<TestFile>& files) = 0;
  // Runs the race until the deadline or env.stop.
  virtual RaceStats race(ScenarioEnv& env, const std::vector<TestFile>& files) = 0;
};

// All scenarios, in listing order.
const std::vector<std::unique_ptr<Scenario>>& scenarios();
Scenario* find_scenario(const std::string& name);
std::vector<ScenarioSpec> scenario_catalog();

// Shared helpers for scenarios.
enum class InitMode { kStamped, kSparse, kHalf };
// Creates the files: kStamped writes every block (one init op per file), kSparse leaves holes
// (ftruncate only), kHalf stamps even blocks and leaves odd ones as holes.
void init_files(ScenarioEnv& env, const std::vector<TestFile>& files, InitMode mode);
// Writes stamped blocks [b0, b0+n) of `f` with generation `gen` via pwrite; returns the syscall result.
int64_t write_stamped(int fd, const TestFile& f, uint64_t b0, uint64_t n, uint64_t gen, void* buf);
// Decodes `n` blocks of `buf` and records one observation per block on the last op of `tl`.
void record_blocks(ThreadLog& tl, const void* buf, uint64_t b0, uint64_t n);
// A page-aligned buffer (for O_DIRECT and stamping).
struct AlignedBuf {
  explicit AlignedBuf(size_t bytes);
  ~AlignedBuf();
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  void* p;
  size_t size;
  char* c() { return static_cast<char*>(p); }
};

}  // namespace fsrace
