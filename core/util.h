// Small shared helpers: clocks, atomic file writes, the one-line environment error.
#pragma once
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <time.h>

namespace fsrace {

// The one exception type: "cannot continue". A configuration or environment problem the user must fix
// (exit 2), or an interruption (SIGINT / SIGTERM while a step could not finish: exit 130). Caught once
// in main and printed as one line ("fsrace: <what>"). Everything recoverable is a value instead (see
// docs/ARCHITECTURE.md, "Errors").
class Fatal : public std::runtime_error {
 public:
  explicit Fatal(const std::string& what, int exit_code = 2) : std::runtime_error(what), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};
inline constexpr int kExitInterrupted = 130;

// CLOCK_MONOTONIC in nanoseconds: the clock of ops.bin, kmsg correlation and (later) probe events.
inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// User + system CPU time of this process (every thread), ns; 0 if the clock is unavailable.
inline uint64_t process_cpu_ns() {
  timespec ts{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// Timestamps around plain loads and stores (mmap ops): clock_gettime's ordered TSC read waits for earlier
// instructions to retire, not for their stores to leave the store buffer, and later loads may run before
// it. Without fences an mmap store recorded as ended can still be invisible to another CPU, and an mmap
// load recorded as started can have read older data: the op log would claim an order the CPUs did not
// have, and the oracle would call the in-flight store a torn block.
inline void fence_stores_before_timestamp() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_mfence();  // drains the store buffer; the vDSO's lfence then orders the TSC read after it
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}
inline void fence_loads_after_timestamp() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_lfence();  // no later load starts before the TSC read has completed
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

// Work done by this process: bumped by every recorded op (ThreadLog::op) and every runner phase change.
// The VM guest agent reports it in its heartbeat; the host declares a `hang` when it stops moving.
inline std::atomic<uint64_t>& progress_counter() {
  static std::atomic<uint64_t> c{0};
  return c;
}

// Writes `data` to `path` through a temp file in the same directory + fsync + rename, so a reader
// (or an interrupted run) sees either the old file or the complete new one.
void write_file_atomic(const std::string& path, std::string_view data);

// Reads a whole file; throws Fatal naming the file when it cannot.
std::string read_file(const std::string& path);

// mkdir -p; throws Fatal naming the directory.
void make_dirs(const std::string& path);

bool path_exists(const std::string& path);

// "20261121-101500" in local time.
std::string timestamp_id();

// Kernel release of the running kernel (uname -r).
std::string kernel_release();

// splitmix64: the one PRNG step used for seeds, stamps and workload choices.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Small fast deterministic RNG for workloads (seeded per thread from the campaign seed).
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() { return splitmix64(s_); }
  // Uniform in [0, n) for n > 0.
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  double unit() { return double(next() >> 11) * (1.0 / double(1ull << 53)); }

 private:
  uint64_t s_;
};

}  // namespace fsrace
