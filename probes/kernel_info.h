// Facts about the running kernel for the attach planner: BTF (vmlinux + loaded modules), tracefs
// events, kallsyms, kprobe support, the IOMAP_F_STALE value. Also a recorded form (JSON) so tests
// and `fsrace probes --facts FILE` can plan for another kernel (e.g. Debian 6.1) without booting it.
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <set>
#include <string>

#include "probes/catalog.h"

namespace fsrace::probes {

// The running kernel. Mounts tracefs at /sys/kernel/tracing if it is not mounted and we are root
// (noted in notes()).
std::unique_ptr<KernelInfo> running_kernel();

// A kernel described by a JSON document (see facts_to_json): used by unit tests and `--facts`.
class RecordedKernelInfo : public KernelInfo {
 public:
  explicit RecordedKernelInfo(const nlohmann::json& facts);
  std::string release() const override { return release_; }
  std::string bpf_unavailable() const override { return bpf_unavailable_; }
  bool has_btf() const override { return has_btf_; }
  bool btf_has_tracepoint(const std::string& e) const override { return btf_tp_.count(e) > 0; }
  bool btf_has_func(const std::string& f) const override { return btf_func_.count(f) > 0; }
  bool ksym_exists(const std::string& f) const override { return ksyms_.count(f) > 0; }
  std::optional<bool> tracefs_has_event(const std::string& c, const std::string& e) const override {
    if (!tracefs_) return std::nullopt;
    return tracefs_events_.count(c + ":" + e) > 0;
  }
  std::string kprobes_unavailable() const override { return kprobes_unavailable_; }
  uint64_t iomap_f_stale() const override { return iomap_f_stale_; }

  std::string release_, bpf_unavailable_, kprobes_unavailable_;
  bool has_btf_ = false, tracefs_ = false;
  uint64_t iomap_f_stale_ = 0;
  std::set<std::string> btf_tp_, btf_func_, ksyms_, tracefs_events_;
};

// The facts the catalog's probes depend on, as JSON (the input format of RecordedKernelInfo).
nlohmann::json facts_to_json(const KernelInfo& k);

// IOMAP_F_STALE from an iomap tracepoint print fmt ("{ (1U << 15), "STALE" }"); 0 if absent.
uint64_t parse_stale_flag(const std::string& print_fmt);

}  // namespace fsrace::probes
