// Loading and attaching libbpf skeleton objects with the planner's attach-mode fallback (tp_btf ->
// raw_tp -> tracepoint; fentry/fexit -> kprobe/kretprobe), shared by the probe session (loader.cpp)
// and the kernel-delay session (delay.cpp). Internal to probes/.
#pragma once
#include <bpf/libbpf.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "probes/catalog.h"
#include "probes/loader.h"

namespace fsrace::probes {

std::string errno_text(int e);  // "EPERM (Operation not permitted)"

// One skeleton type behind a uniform interface. `cfg` points at the skeleton's .rodata configuration
// block (written before load).
struct BpfObjectOps {
  std::string name;
  std::function<void*()> open;
  std::function<bpf_object*(void*)> obj;
  std::function<void*(void*)> cfg;
  std::function<void(void*)> destroy;
};

template <class S, class Cfg>
BpfObjectOps make_object_ops(const char* name, S* (*open)(const bpf_object_open_opts*), void (*destroy)(S*), Cfg cfg) {
  BpfObjectOps f;
  f.name = name;
  f.open = [open] { return static_cast<void*>(open(nullptr)); };
  f.obj = [](void* s) { return static_cast<S*>(s)->obj; };
  f.cfg = [cfg](void* s) { return const_cast<void*>(static_cast<const volatile void*>(cfg(static_cast<S*>(s)))); };
  f.destroy = [destroy](void* s) { destroy(static_cast<S*>(s)); };
  return f;
}

using Picks = std::vector<std::pair<const ProbeSpec*, AttachMode>>;

// The loaded objects and links of one session, the maps every object shares (by name -> fd, given to
// each object with bpf_map__reuse_fd) and the configuration block copied into each before load. Modes
// found refused kernel-wide (`refused`) or failing for one probe (`failed`) are remembered.
class Attacher {
 public:
  Attacher(const KernelInfo& k, std::vector<std::pair<std::string, int>> shared_maps, std::string config)
      : k(k), maps_(std::move(shared_maps)), config_(std::move(config)) {}
  ~Attacher();
  Attacher(const Attacher&) = delete;
  Attacher& operator=(const Attacher&) = delete;

  // Opens one instance of `ops` with only the programs of `picks`, loads it. nullptr + err/eno on failure.
  void* load(const BpfObjectOps& ops, const Picks& picks, std::string& err, int& eno);
  // Attaches the programs of one probe in a loaded instance; on failure destroys what it attached.
  bool attach(void* s, const BpfObjectOps& ops, const ProbeSpec& spec, AttachMode mode, std::string& err, int& eno);
  // Tries the candidates of one probe in order, each in its own object instance.
  ProbeResult one_by_one(const BpfObjectOps& ops, const ProbeSpec& spec, std::vector<Candidate> cands);
  // The planner's candidates, with the modes already seen failing for this probe alone skipped.
  std::vector<Candidate> plan(const ProbeSpec& spec);
  // "fentry/fexit: <why>; ..." for the modes before `mode` that were skipped.
  static std::string fallback_notes(const std::vector<Candidate>& cands, AttachMode mode);
  // The first usable mode of `cands`, kNone if none.
  static AttachMode first_usable(const std::vector<Candidate>& cands);
  // Loads every probe of `picks` in one instance of `ops` and attaches each; a probe whose attach (or
  // the whole load) fails is retried alone from its first candidate on. Results by probe.
  std::vector<ProbeResult> load_and_attach(const BpfObjectOps& ops, const Picks& picks,
                                           const std::map<int, std::vector<Candidate>>& plans);
  void keep(const BpfObjectOps& ops, void* s) { instances_.push_back({&ops, s}); }
  void detach_all();
  // Benchmark support ([probes] toggle_ms): destroys every link but keeps the programs loaded, and
  // attaches them again. resume() returns false with the first failure in `err` (what attached stays).
  void pause();
  bool resume(std::string& err);
  // Time the kernel spent in the loaded programs and how often they ran (counted while BPF run-time
  // statistics are enabled: bpf_enable_stats / kernel.bpf_stats_enabled; zero otherwise).
  struct RunStats {
    uint64_t run_ns = 0, runs = 0;
    std::map<std::string, std::pair<uint64_t, uint64_t>> by_program;  // name -> {run_ns, runs}
    // Runs the kernel skipped (bpf_prog_info.recursion_misses: the program was already running on that
    // CPU): an event it would have made is missing without a drop being counted.
    uint64_t misses = 0;
    std::map<std::string, uint64_t> misses_by_program;
  };
  RunStats run_stats() const;

  const KernelInfo& k;
  std::map<AttachMode, std::string> refused;
  std::map<int, std::map<AttachMode, std::string>> failed;  // probe id -> mode -> why it failed for that probe

 private:
  struct Instance {
    const BpfObjectOps* ops;
    void* skel;
  };
  std::vector<std::pair<std::string, int>> maps_;
  std::string config_;
  std::vector<Instance> instances_;
  std::vector<bpf_link*> links_;
  std::vector<bpf_program*> attached_;  // the programs of links_ (also while paused: what resume attaches)
  bool paused_ = false;
};

}  // namespace fsrace::probes
