// The probe catalog (every probe fsrace knows, by family, with the BPF programs of each attach mode)
// and the attach planner: which modes a probe could use on a kernel, in order, and why a mode is
// skipped. Pure logic over a KernelInfo (real: probes/kernel_info.cpp; tests: a mock), so the
// fallback rules are unit-tested without root.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fsrace::probes {

enum class AttachMode { kNone, kTpBtf, kRawTp, kTracepoint, kFentry, kKprobe };
const char* attach_mode_name(AttachMode m);  // "tp_btf", "raw_tp", "tracepoint", "fentry/fexit", "kprobe/kretprobe"

struct ProbeSpec {
  int id = 0;                 // enum fsr_probe_id
  std::string name;           // tracepoints "category:event", functions "function()"
  std::string family;         // pagecache, lock, iomap, ext4, entry
  std::string what;           // one line: what it records and why
  bool tracepoint = false;
  std::string tp_category, tp_event;  // tracepoints
  std::string func;                   // function probes
  std::string prog;                   // program stem: <mode prefix>__<prog> in <family>.bpf.c
  bool has_entry = true;              // function probes: entry program (fentry/kprobe)
  bool has_exit = false;              // function probes: exit program (fexit/kretprobe)
  bool classic = true;                // tracepoints: a classic-tracepoint program exists
  std::string classic_missing;        // why not, when classic == false
  bool needs_iomap_stale = false;     // needs the IOMAP_F_STALE value from tracefs
  // BPF program names for `mode`, empty if the probe has none for that mode.
  std::vector<std::string> programs(AttachMode mode) const;
};

const std::vector<ProbeSpec>& probe_catalog();
const ProbeSpec* find_probe(const std::string& name);  // by name, or by bare tracepoint event / function name
std::vector<std::string> probe_families();

// What the planner needs to know about a kernel. Each answer is a fact about the running kernel
// (or, in tests, a recorded one).
class KernelInfo {
 public:
  virtual ~KernelInfo() = default;
  virtual std::string release() const = 0;
  // Why BPF cannot be used at all ("" = usable): not root, no bpf() syscall, ...
  virtual std::string bpf_unavailable() const = 0;
  virtual bool has_btf() const = 0;                                        // vmlinux BTF present
  virtual bool btf_has_tracepoint(const std::string& event) const = 0;     // btf_trace_<event> typedef
  virtual bool btf_has_func(const std::string& func) const = 0;            // FUNC in vmlinux or module BTF
  virtual bool ksym_exists(const std::string& func) const = 0;             // /proc/kallsyms
  // tracefs: nullopt when tracefs is not mounted (cannot tell); else whether the event exists
  virtual std::optional<bool> tracefs_has_event(const std::string& category, const std::string& event) const = 0;
  // Why kprobes cannot be used ("" = configured), e.g. "kprobes not configured (CONFIG_KPROBES=n)"
  virtual std::string kprobes_unavailable() const = 0;
  // IOMAP_F_STALE on this kernel, from the iomap tracepoints' print formats; 0 if not published.
  virtual uint64_t iomap_f_stale() const = 0;
};

// A mode the planner considered for a probe: usable (skip empty) or skipped with the reason.
struct Candidate {
  AttachMode mode = AttachMode::kNone;
  std::string skip;
};

// Attach order: tracepoints tp_btf -> raw_tp -> classic tracepoint; functions fentry/fexit ->
// kprobe/kretprobe. `mode_refused` carries modes found refused at runtime for every probe (e.g.
// fentry failing with EPERM on the first attempt): they are skipped with that reason.
std::vector<Candidate> plan_probe(const ProbeSpec& p, const KernelInfo& k,
                                  const std::map<AttachMode, std::string>& mode_refused = {});

// "tp_btf: <why>; raw_tp: <why>; ..." for a probe none of whose modes worked; identical reasons
// are merged ("tp_btf, raw_tp: tracepoint not in this kernel").
std::string summarize_reasons(const std::vector<Candidate>& tried);

// ---- kernel-side delays (probes/delay.bpf.c, widening/delay.h) ----

// One place the delay object attaches to: a tracepoint or a function (its ProbeSpec: id = enum
// fsr_delay_hook_id, family "delay", planned and attached like a probe).
struct DelayHook {
  ProbeSpec spec;
  std::string fs;       // the filesystem whose code fires it; "" = generic (any filesystem)
  std::string context;  // what the kernel holds when it fires, checked in the 6.1 and 6.18 sources
};

// A named delay point of the campaign (kdelay = [...]): one or more hooks on the same window.
struct DelayPoint {
  std::string name;
  std::string widens;      // the interleaving it widens
  std::vector<int> hooks;  // DelayHook ids
};

const std::vector<DelayHook>& delay_hooks();    // indexed by enum fsr_delay_hook_id
const std::vector<DelayPoint>& delay_points();
const DelayPoint* find_delay_point(const std::string& name);
std::vector<std::string> delay_point_names();
// The hooks of `point` that fire on filesystem `fs` (generic hooks and those of `fs`; "" = every hook).
std::vector<const DelayHook*> delay_hooks_for(const DelayPoint& point, const std::string& fs);

// ---- the other kernel-side widening techniques (detected by widening/techniques.h) ----
// name -> what it is, in listing order: override-return, fail-function, dm-delay, dm-flakey, xfs-errortag.
const std::vector<std::pair<std::string, std::string>>& kernel_techniques();
// Whether a run drives technique `name` or only detects and reports it (all five are driven now; kept for
// techniques added detected-only).
bool kernel_technique_driven(const std::string& name);
std::vector<std::string> kernel_technique_names();
// The function the error-injection techniques (override-return, fail-function) make fail.
constexpr const char* kInjectFunction = "__filemap_add_folio";

}  // namespace fsrace::probes
