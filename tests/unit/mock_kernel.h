// Kernel facts for the planner set by hand (tests without root or for kernels not running here).
#pragma once
#include <optional>
#include <set>
#include <string>

#include "probes/catalog.h"

namespace fsrace::probes {

// MockKernelInfo: every fact set by hand.
class MockKernelInfo : public KernelInfo {
 public:
  std::string release() const override { return "mock"; }
  std::string bpf_unavailable() const override { return bpf; }
  bool has_btf() const override { return btf; }
  bool btf_has_tracepoint(const std::string& e) const override { return btf_tps.count(e) > 0; }
  bool btf_has_func(const std::string& f) const override { return btf_funcs.count(f) > 0; }
  bool ksym_exists(const std::string& f) const override { return ksyms.count(f) > 0; }
  std::optional<bool> tracefs_has_event(const std::string& c, const std::string& e) const override {
    if (!tracefs) return std::nullopt;
    return events.count(c + ":" + e) > 0;
  }
  std::string kprobes_unavailable() const override { return kprobes; }
  uint64_t iomap_f_stale() const override { return stale; }
  std::string bpf, kprobes;
  bool btf = true, tracefs = true;
  uint64_t stale = 0;
  std::set<std::string> btf_tps, btf_funcs, ksyms, events;
};

}  // namespace fsrace::probes
