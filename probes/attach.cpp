#include "probes/attach.h"

#include <bpf/bpf.h>
#include <fmt/core.h>

#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace fsrace::probes {

namespace {

// While an object loads, libbpf's messages are collected here so a rejected program's reason (the
// verifier's last words) ends up in the probe's unavailable reason instead of a bare EACCES.
std::mutex capture_mu;
std::string* capture = nullptr;

int libbpf_print(enum libbpf_print_level level, const char* fmt_s, va_list ap) {
  static const bool debug = std::getenv("FSRACE_BPF_DEBUG") != nullptr;
  if (capture && level != LIBBPF_DEBUG) {
    va_list cp;
    va_copy(cp, ap);
    char small[1024];
    int n = vsnprintf(small, sizeof small, fmt_s, cp);
    va_end(cp);
    if (n > 0) {
      if (size_t(n) < sizeof small) {
        capture->append(small, size_t(n));
      } else {
        std::string big(size_t(n) + 1, '\0');
        va_copy(cp, ap);
        vsnprintf(big.data(), big.size(), fmt_s, cp);
        va_end(cp);
        big.resize(size_t(n));
        *capture += big;
      }
      if (capture->size() > (4u << 20)) capture->erase(0, capture->size() - (1u << 20));
    }
  }
  if (!debug) return 0;  // warnings are turned into per-probe reasons; FSRACE_BPF_DEBUG=1 shows libbpf's log
  return vfprintf(stderr, fmt_s, ap);
}

std::string notes_before(const std::vector<Candidate>& cands, AttachMode mode) {
  std::string joined;
  for (const auto& c : cands)
    if (c.mode != mode && !c.skip.empty() && int(c.mode) < int(mode))
      joined += fmt::format("{}{}: {}", joined.empty() ? "" : "; ", attach_mode_name(c.mode), c.skip);
  return joined;
}

}  // namespace

std::string errno_text(int e) {
  const char* n = e == EPERM ? "EPERM" : e == EACCES ? "EACCES" : e == ENOENT ? "ENOENT" : e == EINVAL ? "EINVAL"
                : e == EOPNOTSUPP ? "EOPNOTSUPP" : e == 524 ? "ENOTSUPP" : e == E2BIG ? "E2BIG" : e == ESRCH ? "ESRCH" : "";
  return *n ? fmt::format("{} ({})", n, e == 524 ? "not supported" : strerror(e)) : strerror(e);
}

Attacher::~Attacher() {
  detach_all();
  for (auto& i : instances_) i.ops->destroy(i.skel);
}

Attacher::RunStats Attacher::run_stats() const {
  RunStats st;
  for (const auto& in : instances_) {
    bpf_program* p;
    bpf_object__for_each_program(p, in.ops->obj(in.skel)) {
      int fd = bpf_program__fd(p);
      if (fd < 0) continue;
      bpf_prog_info info{};
      uint32_t len = sizeof info;
      if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) continue;
      st.run_ns += info.run_time_ns;
      st.runs += info.run_cnt;
      if (info.recursion_misses) {
        st.misses += info.recursion_misses;
        st.misses_by_program[bpf_program__name(p)] += info.recursion_misses;
      }
      if (info.run_cnt) {
        auto& e = st.by_program[bpf_program__name(p)];
        e.first += info.run_time_ns;
        e.second += info.run_cnt;
      }
    }
  }
  return st;
}

void Attacher::detach_all() {
  for (auto* l : links_) bpf_link__destroy(l);
  links_.clear();
  attached_.clear();
  paused_ = false;
}

void Attacher::pause() {
  if (paused_) return;
  for (auto* l : links_) bpf_link__destroy(l);
  links_.clear();
  paused_ = true;
}

bool Attacher::resume(std::string& err) {
  if (!paused_) return true;
  paused_ = false;
  bool ok = true;
  for (auto* p : attached_) {
    if (bpf_link* l = bpf_program__attach(p)) {
      links_.push_back(l);
    } else if (ok) {
      err = fmt::format("re-attach of {} failed: {}", bpf_program__name(p), errno_text(errno));
      ok = false;
    }
  }
  return ok;
}

void* Attacher::load(const BpfObjectOps& ops, const Picks& picks, std::string& err, int& eno) {
  libbpf_set_print(libbpf_print);
  void* s = ops.open();
  if (!s) {
    eno = errno;
    err = fmt::format("cannot open the {} BPF object: {}", ops.name, errno_text(eno));
    return nullptr;
  }
  bpf_object* obj = ops.obj(s);
  bpf_program* p;
  bpf_object__for_each_program(p, obj) bpf_program__set_autoload(p, false);
  for (const auto& [spec, mode] : picks)
    for (const auto& name : spec->programs(mode)) {
      bpf_program* prog = bpf_object__find_program_by_name(obj, name.c_str());
      if (!prog) {
        ops.destroy(s);
        eno = ENOENT;
        err = fmt::format("program {} missing from {}.bpf.o", name, ops.name);
        return nullptr;
      }
      bpf_program__set_autoload(prog, true);
    }
  for (const auto& [name, fd] : maps_) {
    bpf_map* m = bpf_object__find_map_by_name(obj, name.c_str());
    if (!m || bpf_map__reuse_fd(m, fd) != 0) {
      eno = errno;
      ops.destroy(s);
      err = fmt::format("cannot share map {} with {}.bpf.o", name, ops.name);
      return nullptr;
    }
  }
  std::memcpy(ops.cfg(s), config_.data(), config_.size());
  std::string log;
  int r;
  {
    std::lock_guard<std::mutex> g(capture_mu);
    capture = &log;
    r = bpf_object__load(obj);
    capture = nullptr;
  }
  if (r != 0) {
    eno = -r;
    std::string why = verifier_summary(log);
    err = fmt::format("load failed: {}{}", errno_text(eno), why.empty() ? "" : " — " + why);
    ops.destroy(s);
    return nullptr;
  }
  return s;
}

bool Attacher::attach(void* s, const BpfObjectOps& ops, const ProbeSpec& spec, AttachMode mode, std::string& err, int& eno) {
  std::vector<bpf_link*> mine;
  std::vector<bpf_program*> progs;
  for (const auto& name : spec.programs(mode)) {
    bpf_program* prog = bpf_object__find_program_by_name(ops.obj(s), name.c_str());
    bpf_link* l = prog ? bpf_program__attach(prog) : nullptr;
    if (!l) {
      eno = prog ? errno : ENOENT;
      err = fmt::format("attach of {} failed: {}", name, errno_text(eno));
      if (eno == 524 && mode == AttachMode::kFentry)
        err += fmt::format(" (the BPF trampoline cannot take {}: before 6.6 x86 attaches fentry/fexit only to "
                           "functions with at most 6 arguments)", spec.func);
      for (auto* x : mine) bpf_link__destroy(x);
      return false;
    }
    mine.push_back(l);
    progs.push_back(prog);
  }
  links_.insert(links_.end(), mine.begin(), mine.end());
  attached_.insert(attached_.end(), progs.begin(), progs.end());
  return true;
}

ProbeResult Attacher::one_by_one(const BpfObjectOps& ops, const ProbeSpec& spec, std::vector<Candidate> cands) {
  ProbeResult r;
  r.spec = &spec;
  for (auto& c : cands) {
    if (c.skip.empty()) {
      auto it = refused.find(c.mode);
      if (it != refused.end()) c.skip = it->second;
    }
    if (!c.skip.empty()) continue;
    std::string err;
    int eno = 0;
    void* s = load(ops, {{&spec, c.mode}}, err, eno);
    if (s && attach(s, ops, spec, c.mode, err, eno)) {
      keep(ops, s);
      r.mode = c.mode;
      r.reason = notes_before(cands, c.mode);
      return r;
    }
    if (s) ops.destroy(s);
    c.skip = err;
    if (mode_wide(eno, err) && !spec.tracepoint) {
      refused[c.mode] = fmt::format("refused by this kernel ({})", err);
      c.skip = refused[c.mode];
    }
  }
  r.mode = AttachMode::kNone;
  r.reason = summarize_reasons(cands);
  return r;
}

std::vector<Candidate> Attacher::plan(const ProbeSpec& spec) {
  auto cands = plan_probe(spec, k, refused);
  auto f = failed.find(spec.id);
  if (f != failed.end())
    for (auto& c : cands) {
      auto it = f->second.find(c.mode);
      if (c.skip.empty() && it != f->second.end()) c.skip = it->second;
    }
  return cands;
}

std::string Attacher::fallback_notes(const std::vector<Candidate>& cands, AttachMode mode) { return notes_before(cands, mode); }

AttachMode Attacher::first_usable(const std::vector<Candidate>& cands) {
  for (const auto& c : cands)
    if (c.skip.empty()) return c.mode;
  return AttachMode::kNone;
}

std::vector<ProbeResult> Attacher::load_and_attach(const BpfObjectOps& ops, const Picks& picks,
                                                   const std::map<int, std::vector<Candidate>>& plans) {
  std::vector<ProbeResult> out;
  if (picks.empty()) return out;
  std::string err;
  int eno = 0;
  void* s = load(ops, picks, err, eno);
  if (s) keep(ops, s);
  for (const auto& [spec, mode] : picks) {
    const auto& cands = plans.at(spec->id);
    if (s) {
      std::string aerr;
      int aeno = 0;
      if (attach(s, ops, *spec, mode, aerr, aeno)) {
        out.push_back({spec, mode, notes_before(cands, mode), false});
        continue;
      }
    }
    // the load or this attach failed: this probe alone, from its first candidate on
    out.push_back(one_by_one(ops, *spec, cands));
  }
  return out;
}

}  // namespace fsrace::probes
