// A probe session: loads the five probe families with libbpf, attaching every probe with the best mode
// the running kernel allows (tp_btf -> raw_tp -> tracepoint; fentry/fexit -> kprobe/kretprobe, falling
// back on real load/attach failures), shares one filter map, lock map, ring buffer and stats map
// between them, and streams the ring buffer to events.bin from a reader thread.
#pragma once
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <functional>
#include <string>
#include <vector>

#include "probes/catalog.h"

namespace fsrace::probes {

struct SessionOptions {
  uint64_t ringbuf_bytes = 16ull << 20;       // power of two
  std::vector<std::string> required;          // probe names that must attach (else ProbeError)
  std::vector<std::string> exclude;           // probe names not to load (unavailable, "excluded by the campaign")
  bool lock_snapshot = true;                  // read invalidate_lock state at each inode event
  // The kernel's BPF run-time statistics (bpf_enable_stats) for SessionStats' CPU figures. They cost
  // every program run two clock reads and a per-CPU update (a 12-round benchmark on ext4 punch-vs-fault
  // measured 90.6 % vs 96.9 % of the unprobed ops per CPU-second with them on for the whole race and
  // off, wide CIs), so they are sampled: on from start_cpu_window() for cpu_window_s, off after.
  bool cpu_stats = true;
  double cpu_window_s = 0.5;
  // Turning the statistics on or off flips a kernel static key (bpf_stats_enabled_key, text patching on
  // every CPU). In a QEMU guest under TCG, flipping it while the probes' trampolines run hot livelocks
  // both vCPUs at the key's site in __bpf_prog_enter_recur (soft lockups, RCU stalls; seen 3 times under
  // host load, backtraces in fentry trampolines of up_read / up_write). false: the statistics go on
  // before any program is attached and off after they are all detached, and the window's figures are
  // the difference of the counters at its start and end. The VM agent sets false.
  bool cpu_stats_flip_while_attached = true;
  // Called after each BPF object load / attach while the session starts: loading takes seconds under
  // QEMU's TCG, and the VM agent's hang detector must see that as progress.
  std::function<void()> on_progress;
  std::string events_path;                    // "" = no file (fsrace probes / benchmarks)
  uint64_t spill_bytes = 256ull << 20;        // events held in memory before writing (see Impl::flush)
  nlohmann::json header_extra;                // merged into the events.bin header
};

struct ProbeResult {
  const ProbeSpec* spec = nullptr;
  AttachMode mode = AttachMode::kNone;  // kNone: unavailable
  std::string reason;                   // why unavailable, or which modes failed before `mode`
  bool required = false;
};

// A required probe could not be attached, or BPF is unusable while probes are required.
class ProbeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SessionStats {
  uint64_t events = 0;          // records written to events.bin
  uint64_t dropped = 0;         // ring buffer full (counted in BPF)
  uint64_t hits = 0;
  nlohmann::json per_probe;     // name -> {hits, emitted, dropped}
  // CPU the probes cost over the sampling window (SessionOptions::cpu_window_s): time in the BPF programs
  // (kernel run-time statistics, when the kernel allows; bpf_stats false otherwise), the ring-buffer reader
  // thread's CPU time and the whole process's CPU time in the same window (the share's denominator).
  bool bpf_stats = false;
  uint64_t bpf_run_ns = 0, bpf_runs = 0, reader_cpu_ns = 0, process_cpu_ns = 0, window_ns = 0;
  nlohmann::json bpf_programs;  // program -> {ns, runs}, the costliest first
  uint64_t bpf_misses = 0;      // program runs the kernel skipped (recursion protection): events lost uncounted
};

// One line from libbpf's output of a failed bpf_object__load: "verifier on <prog>: <last lines of the
// verifier log>" (joined with " | "), else libbpf's last warning; "" if there is nothing useful.
std::string verifier_summary(const std::string& libbpf_log, size_t max_lines = 3);

// Whether a load/attach failure (errno, and the message the loader made of it) means the attach mode is
// refused on this kernel for every probe (EPERM, ...) rather than a problem of this probe's program
// (the verifier rejecting it, the trampoline not taking this function).
bool mode_wide(int eno, const std::string& err);

class ProbeSession {
 public:
  // Plans, loads and attaches. Never throws for a missing probe unless it is required; BPF being
  // unusable (not root, ...) leaves every probe unavailable with the reason.
  ProbeSession(const KernelInfo& k, SessionOptions opt);
  ~ProbeSession();
  ProbeSession(const ProbeSession&) = delete;
  ProbeSession& operator=(const ProbeSession&) = delete;

  const std::vector<ProbeResult>& results() const { return results_; }
  size_t attached() const;
  // Adds a test inode to the kernel-side filter. st_dev as from fstat(2).
  void add_inode(uint64_t st_dev, uint64_t ino, const std::string& name);
  // Detaches, drains the ring buffer, writes the trailer and renames events.bin into place.
  // Opens the CPU sampling window (call when the race starts): statistics on for cpu_window_s, or until
  // stop(). A no-op without cpu_stats or when called again.
  void start_cpu_window();
  SessionStats stop();
  // Benchmark support ([probes] toggle_ms): detaches every attached program (kept loaded, events
  // staged so far stay held) or attaches them again. false with `err` when a program would not
  // attach again. Not thread-safe against stop().
  bool set_attached(bool on, std::string& err);
  nlohmann::json probes_json() const;
  uint64_t events_so_far() const { return events_.load(); }
  std::string setup_error() const { return setup_error_; }  // BPF-wide problem, if any
  // Whether the run-time statistics were switched on and off around the sampling window while programs
  // were attached (false: on from before the first attach until after the last detach).
  bool stats_flipped_while_attached() const;
  // The test-inode filter map (shared with a DelaySession), -1 when BPF is unusable.
  int filter_fd() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<ProbeResult> results_;
  std::atomic<uint64_t> events_{0};
  std::string setup_error_;
  bool stopped_ = false;
  SessionStats final_;
};

// Stops the session (events.bin written) and returns the case's "probes" record: what attached in which
// mode, what was unavailable and why, event and drop counts, and the CPU the probes cost over the
// sampling window (results/README.md). The events themselves are read back by the analysis.
nlohmann::json stop_and_record(ProbeSession& probe);

}  // namespace fsrace::probes
