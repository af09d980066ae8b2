#include "probes/kernel_info.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <dirent.h>
#include <fmt/core.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

namespace fsrace::probes {

namespace {

bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void collect_btf(const struct btf* b, uint32_t first, std::set<std::string>& tps, std::set<std::string>& funcs) {
  uint32_t n = btf__type_cnt(b);
  for (uint32_t id = first; id < n; ++id) {
    const struct btf_type* t = btf__type_by_id(b, id);
    if (!t) continue;
    const char* name = btf__name_by_offset(b, t->name_off);
    if (!name || !*name) continue;
    if (btf_is_typedef(t) && std::strncmp(name, "btf_trace_", 10) == 0) tps.insert(name + 10);
    else if (btf_is_func(t)) funcs.insert(name);
  }
}

class RunningKernel : public KernelInfo {
 public:
  RunningKernel() {
    struct utsname u;
    release_ = uname(&u) == 0 ? u.release : "unknown";
    if (geteuid() != 0) {
      bpf_unavailable_ = "BPF needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN): run fsrace as root";
    } else {
      int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "fsr_probe", 4, 4, 1, nullptr);
      if (fd < 0) {
        int e = errno;
        bpf_unavailable_ = e == ENOSYS ? "this kernel has no bpf() syscall (CONFIG_BPF_SYSCALL=n)"
                                       : fmt::format("bpf() map creation refused: {} (lockdown, seccomp or memlock limit)", strerror(e));
      } else {
        close(fd);
      }
    }
    // BTF: vmlinux, then every loaded module's split BTF
    struct btf* vm = btf__load_vmlinux_btf();
    if (vm) {
      has_btf_ = true;
      collect_btf(vm, 1, btf_tp_, btf_func_);
      uint32_t base_n = btf__type_cnt(vm);
      if (DIR* d = opendir("/sys/kernel/btf")) {
        while (dirent* de = readdir(d)) {
          std::string n = de->d_name;
          if (n == "." || n == ".." || n == "vmlinux") continue;
          struct btf* m = btf__parse_split(("/sys/kernel/btf/" + n).c_str(), vm);
          if (!m) continue;
          collect_btf(m, base_n, btf_tp_, btf_func_);
          btf__free(m);
        }
        closedir(d);
      }
      btf__free(vm);
    }
    // kallsyms
    std::ifstream ks("/proc/kallsyms");
    std::string line;
    while (std::getline(ks, line)) {
      size_t a = line.find(' ');
      if (a == std::string::npos || a + 3 >= line.size()) continue;
      char type = line[a + 1];
      if (type != 't' && type != 'T') continue;
      size_t s = a + 3, e = line.find_first_of(" \t", s);
      ksyms_.insert(line.substr(s, e == std::string::npos ? std::string::npos : e - s));
    }
    // tracefs
    for (const char* p : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"})
      if (exists(std::string(p) + "/events")) {
        tracefs_ = p;
        break;
      }
    if (tracefs_.empty() && geteuid() == 0 && exists("/sys/kernel/tracing")) {
      if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nullptr) == 0 && exists("/sys/kernel/tracing/events"))
        tracefs_ = "/sys/kernel/tracing";
    }
    // kprobes: the perf kprobe PMU (what libbpf uses), else legacy tracefs kprobe_events
    if (!exists("/sys/bus/event_source/devices/kprobe/type") && !(tracefs_.size() && exists(tracefs_ + "/kprobe_events")))
      kprobes_unavailable_ = "kprobes not configured in this kernel (no kprobe PMU, no tracefs kprobe_events: CONFIG_KPROBES=n)";
    if (!tracefs_.empty()) {
      for (const char* ev : {"iomap_iter_dstmap", "iomap_iter_srcmap", "iomap_writepage_map"}) {
        std::string f = slurp(tracefs_ + "/events/iomap/" + ev + "/format");
        if (f.empty()) continue;
        iomap_f_stale_ = parse_stale_flag(f);
        break;
      }
    }
  }

  std::string release() const override { return release_; }
  std::string bpf_unavailable() const override { return bpf_unavailable_; }
  bool has_btf() const override { return has_btf_; }
  bool btf_has_tracepoint(const std::string& e) const override { return btf_tp_.count(e) > 0; }
  bool btf_has_func(const std::string& f) const override { return btf_func_.count(f) > 0; }
  bool ksym_exists(const std::string& f) const override { return ksyms_.count(f) > 0; }
  std::optional<bool> tracefs_has_event(const std::string& c, const std::string& e) const override {
    if (tracefs_.empty()) return std::nullopt;
    return exists(fmt::format("{}/events/{}/{}/id", tracefs_, c, e));
  }
  std::string kprobes_unavailable() const override { return kprobes_unavailable_; }
  uint64_t iomap_f_stale() const override { return iomap_f_stale_; }

 private:
  std::string release_, bpf_unavailable_, kprobes_unavailable_, tracefs_;
  bool has_btf_ = false;
  uint64_t iomap_f_stale_ = 0;
  std::set<std::string> btf_tp_, btf_func_, ksyms_;
};

}  // namespace

std::unique_ptr<KernelInfo> running_kernel() { return std::make_unique<RunningKernel>(); }

uint64_t parse_stale_flag(const std::string& fmt_text) {
  static const std::regex shift(R"(\{\s*\(\s*1U?L?L?\s*<<\s*(\d+)\s*\)\s*,\s*"STALE"\s*\})");
  static const std::regex hex(R"(\{\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*"STALE"\s*\})");
  std::smatch m;
  if (std::regex_search(fmt_text, m, shift)) {
    int s = std::stoi(m[1]);
    return s >= 0 && s < 64 ? 1ull << s : 0;
  }
  if (std::regex_search(fmt_text, m, hex)) return std::stoull(m[1], nullptr, 0);
  return 0;
}

RecordedKernelInfo::RecordedKernelInfo(const nlohmann::json& f) {
  release_ = f.value("release", "recorded");
  bpf_unavailable_ = f.value("bpf_unavailable", "");
  kprobes_unavailable_ = f.value("kprobes_unavailable", "");
  has_btf_ = f.value("btf", false);
  tracefs_ = f.value("tracefs", false);
  iomap_f_stale_ = f.value("iomap_f_stale", uint64_t(0));
  auto set = [&](const char* k, std::set<std::string>& s) {
    if (f.contains(k))
      for (const auto& x : f[k]) s.insert(x.get<std::string>());
  };
  set("btf_tracepoints", btf_tp_);
  set("btf_funcs", btf_func_);
  set("ksyms", ksyms_);
  set("tracefs_events", tracefs_events_);
}

nlohmann::json facts_to_json(const KernelInfo& k) {
  nlohmann::json j;
  j["release"] = k.release();
  j["bpf_unavailable"] = k.bpf_unavailable();
  j["kprobes_unavailable"] = k.kprobes_unavailable();
  j["btf"] = k.has_btf();
  j["iomap_f_stale"] = k.iomap_f_stale();
  j["btf_tracepoints"] = nlohmann::json::array();
  j["btf_funcs"] = nlohmann::json::array();
  j["ksyms"] = nlohmann::json::array();
  j["tracefs_events"] = nlohmann::json::array();
  bool tracefs = false;
  std::vector<const ProbeSpec*> specs;  // the probes and the kernel-delay hooks
  for (const auto& p : probe_catalog()) specs.push_back(&p);
  for (const auto& h : delay_hooks()) specs.push_back(&h.spec);
  for (const ProbeSpec* sp : specs) {
    const ProbeSpec& p = *sp;
    auto add = [&j](const char* key, const std::string& v) {  // once (a delay hook may share a probe's tracepoint)
      if (std::find(j[key].begin(), j[key].end(), v) == j[key].end()) j[key].push_back(v);
    };
    if (p.tracepoint) {
      if (k.btf_has_tracepoint(p.tp_event)) add("btf_tracepoints", p.tp_event);
      auto t = k.tracefs_has_event(p.tp_category, p.tp_event);
      if (t) tracefs = true;
      if (t.value_or(false)) add("tracefs_events", p.name);
    } else {
      if (k.btf_has_func(p.func)) add("btf_funcs", p.func);
      if (k.ksym_exists(p.func)) add("ksyms", p.func);
    }
  }
  j["tracefs"] = tracefs;
  return j;
}

}  // namespace fsrace::probes
