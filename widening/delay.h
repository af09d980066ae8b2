// Kernel-side race-window widening with BPF: a DelaySession loads probes/delay.bpf.c and attaches the
// hooks of the requested delay points (catalog.h, delay_points()) with the probes' fallback order
// (tp_btf -> raw_tp -> tracepoint; fentry/fexit -> kprobe/kretprobe). Each hook busy-waits `delay_us`
// on a `ratio` share of its hits on the test inodes (the probe session's filter map when one runs,
// else the session's own, fed by add_inode) and counts hits, delays and time spent per hook.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "probes/catalog.h"

namespace fsrace::widening {
using namespace ::fsrace::probes;  // kernel facts and attach machinery (probes/)


struct DelayOptions {
  std::vector<std::string> points;  // delay point names (campaign: kdelay)
  std::string fs;                   // the case's filesystem: hooks of another filesystem are not attached ("": all)
  double delay_us = 100;            // per delayed hit, 1..FSR_DELAY_MAX_US
  double ratio = 1.0;               // share of hits that wait, 0..1
  int filter_fd = -1;               // a ProbeSession's filter map; -1: the session creates its own
};

struct DelayHookResult {
  const DelayHook* hook = nullptr;
  const DelayPoint* point = nullptr;
  AttachMode mode = AttachMode::kNone;  // kNone: unavailable
  std::string reason;                   // why unavailable, or which modes were skipped before `mode`
  uint64_t hits = 0, delayed = 0, ns = 0, max_ns = 0;
};

// Why BPF delays cannot run on this kernel at all ("" = they can): BPF unusable, or no bpf_loop helper
// (kernel < 5.17).
std::string delays_unavailable(const KernelInfo& k);

// The names of the programs in the built delay object (opened, not loaded: no root needed).
std::vector<std::string> delay_object_programs();

class DelaySession {
 public:
  // Loads and attaches; never throws for a hook that cannot attach (its reason is kept). Throws
  // std::invalid_argument for an unknown point name or out-of-range delay / ratio (the campaign
  // parser has rejected those before).
  DelaySession(const KernelInfo& k, DelayOptions opt);
  ~DelaySession();
  DelaySession(const DelaySession&) = delete;
  DelaySession& operator=(const DelaySession&) = delete;

  // Adds a test inode to the session's own filter (no-op when the probe session's filter is shared).
  void add_inode(uint64_t st_dev, uint64_t ino);
  // Detaches every hook and reads the counters.
  void stop();
  const std::vector<DelayHookResult>& results() const { return results_; }
  size_t attached() const;
  std::string setup_error() const { return setup_error_; }
  // Per point: hooks with attach mode or reason and counters; points without a hook for this
  // filesystem say so. Format documented in results/README.md ("kernel_delays").
  nlohmann::json report() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  DelayOptions opt_;
  std::vector<DelayHookResult> results_;
  std::string setup_error_;
  uint32_t inodes_ = 0;
  bool stopped_ = false;
};

}  // namespace fsrace::widening
