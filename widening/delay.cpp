#include "widening/delay.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/core.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <stdexcept>

#include "probes/attach.h"
#include "probes/events.h"
#include "probes/fsrace_events.h"
#include "delay.skel.h"  // generated at build time by bpftool gen skeleton

namespace fsrace::widening {

namespace {

const BpfObjectOps& delay_ops() {
  static const BpfObjectOps ops =
      make_object_ops("delay", delay_bpf__open_opts, delay_bpf__destroy, [](delay_bpf* s) { return &s->rodata->dcfg; });
  return ops;
}

}  // namespace

std::string delays_unavailable(const KernelInfo& k) {
  std::string bpf = k.bpf_unavailable();
  if (!bpf.empty()) return bpf;
  if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_FUNC_loop, nullptr) <= 0)
    return "this kernel has no bpf_loop helper (needs 5.17 or later): the delay busy-wait cannot be expressed";
  return "";
}

std::vector<std::string> delay_object_programs() {
  std::vector<std::string> v;
  delay_bpf* s = delay_bpf__open();
  if (!s) return v;
  bpf_program* p;
  bpf_object__for_each_program(p, s->obj) v.push_back(bpf_program__name(p));
  delay_bpf__destroy(s);
  return v;
}

struct DelaySession::Impl {
  int fd_filter = -1, fd_stats = -1, fd_stash = -1;
  bool own_filter = false;
  std::unique_ptr<Attacher> at;
  ~Impl() {
    at.reset();
    for (int fd : {own_filter ? fd_filter : -1, fd_stats, fd_stash})
      if (fd >= 0) close(fd);
  }
};

DelaySession::DelaySession(const KernelInfo& k, DelayOptions opt) : impl_(std::make_unique<Impl>()), opt_(std::move(opt)) {
  if (!(opt_.delay_us >= 1 && opt_.delay_us <= FSR_DELAY_MAX_US))
    throw std::invalid_argument(fmt::format("kernel delay {} us out of range 1..{}", opt_.delay_us, FSR_DELAY_MAX_US));
  if (!(opt_.ratio >= 0 && opt_.ratio <= 1)) throw std::invalid_argument(fmt::format("kernel delay ratio {} out of range 0..1", opt_.ratio));
  fsr_delay_config cfg{};
  for (const auto& name : opt_.points) {
    const DelayPoint* p = find_delay_point(name);
    if (!p) throw std::invalid_argument(fmt::format("unknown kernel delay point '{}'", name));
    for (const DelayHook* h : delay_hooks_for(*p, opt_.fs)) {
      DelayHookResult r;
      r.hook = h;
      r.point = p;
      results_.push_back(r);
      cfg.delay_ns[h->spec.id] = uint64_t(std::llround(opt_.delay_us * 1000));
      cfg.threshold[h->spec.id] = uint64_t(std::llround(opt_.ratio * 4294967296.0));
    }
  }
  if (results_.empty()) return;
  setup_error_ = delays_unavailable(k);
  auto& im = *impl_;
  if (setup_error_.empty()) {
    im.fd_filter = opt_.filter_fd;
    if (im.fd_filter < 0) {
      im.own_filter = true;
      im.fd_filter = bpf_map_create(BPF_MAP_TYPE_HASH, "fsr_filter", sizeof(fsr_inode_key), 4, 1024, nullptr);
    }
    im.fd_stats = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "fsr_delay_stats", 4, sizeof(fsr_delay_stats), FSR_DELAY_MAX_HOOKS, nullptr);
    im.fd_stash = bpf_map_create(BPF_MAP_TYPE_HASH, "fsr_delay_stash", 4, 8, 1024, nullptr);
    if (im.fd_filter < 0 || im.fd_stats < 0 || im.fd_stash < 0)
      setup_error_ = fmt::format("cannot create the delay BPF maps: {}", errno_text(errno));
  }
  if (!setup_error_.empty()) {
    for (auto& r : results_) r.reason = setup_error_;
    return;
  }
  im.at = std::make_unique<Attacher>(
      k, std::vector<std::pair<std::string, int>>{{"fsr_filter", im.fd_filter}, {"fsr_delay_stats", im.fd_stats}, {"fsr_delay_stash", im.fd_stash}},
      std::string(reinterpret_cast<const char*>(&cfg), sizeof cfg));
  Picks picks;
  std::map<int, std::vector<Candidate>> plans;
  for (auto& r : results_) {
    auto cands = im.at->plan(r.hook->spec);
    plans[r.hook->spec.id] = cands;
    AttachMode pick = Attacher::first_usable(cands);
    if (pick == AttachMode::kNone) r.reason = summarize_reasons(cands);
    else picks.push_back({&r.hook->spec, pick});
  }
  for (const auto& pr : im.at->load_and_attach(delay_ops(), picks, plans))
    for (auto& r : results_)
      if (&r.hook->spec == pr.spec) {
        r.mode = pr.mode;
        r.reason = pr.reason;
      }
}

DelaySession::~DelaySession() = default;

size_t DelaySession::attached() const {
  size_t n = 0;
  for (const auto& r : results_) n += r.mode != AttachMode::kNone;
  return n;
}

void DelaySession::add_inode(uint64_t st_dev, uint64_t ino) {
  if (!impl_->own_filter || impl_->fd_filter < 0) return;
  fsr_inode_key key{};
  key.dev = kernel_dev(st_dev);
  key.ino = ino;
  uint32_t idx = inodes_++;
  bpf_map_update_elem(impl_->fd_filter, &key, &idx, BPF_ANY);
}

void DelaySession::stop() {
  if (stopped_) return;
  stopped_ = true;
  auto& im = *impl_;
  if (im.at) im.at->detach_all();
  if (im.fd_stats < 0) return;
  int ncpu = libbpf_num_possible_cpus();
  std::vector<fsr_delay_stats> v(size_t(ncpu > 0 ? ncpu : 1));
  for (auto& r : results_) {
    uint32_t key = uint32_t(r.hook->spec.id);
    if (bpf_map_lookup_elem(im.fd_stats, &key, v.data()) != 0) continue;
    for (const auto& x : v) {
      r.hits += x.hits;
      r.delayed += x.delayed;
      r.ns += x.ns;
      r.max_ns = std::max<uint64_t>(r.max_ns, x.max_ns);
    }
  }
}

nlohmann::json DelaySession::report() const {
  nlohmann::json j = {{"delay_us", opt_.delay_us}, {"ratio", opt_.ratio}, {"cap_us", FSR_DELAY_MAX_US}, {"fs", opt_.fs}};
  if (!setup_error_.empty()) j["error"] = setup_error_;
  j["points"] = nlohmann::json::object();
  for (const auto& name : opt_.points) {
    const DelayPoint* p = find_delay_point(name);
    nlohmann::json pj = {{"hooks", nlohmann::json::array()}, {"hits", 0}, {"delayed", 0}, {"delayed_ns", 0}, {"max_ns", 0}};
    size_t ran = 0;
    std::string why;
    for (const auto& r : results_) {
      if (r.point != p) continue;
      nlohmann::json h = {{"name", r.hook->spec.name},
                          {"attach", r.mode == AttachMode::kNone ? "unavailable" : attach_mode_name(r.mode)}};
      if (!r.reason.empty()) h[r.mode == AttachMode::kNone ? "reason" : "fallback"] = r.reason;
      if (r.mode != AttachMode::kNone) {
        ++ran;
        h.update({{"hits", r.hits}, {"delayed", r.delayed}, {"delayed_ns", r.ns}, {"max_ns", r.max_ns}});
        pj["hits"] = pj["hits"].get<uint64_t>() + r.hits;
        pj["delayed"] = pj["delayed"].get<uint64_t>() + r.delayed;
        pj["delayed_ns"] = pj["delayed_ns"].get<uint64_t>() + r.ns;
        pj["max_ns"] = std::max(pj["max_ns"].get<uint64_t>(), r.max_ns);
      } else {
        why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", r.hook->spec.name, r.reason);
      }
      pj["hooks"].push_back(h);
    }
    pj["ran"] = ran > 0;
    if (pj["hooks"].empty()) pj["unavailable"] = fmt::format("no hook of this point fires on {}", opt_.fs);
    else if (!ran) pj["unavailable"] = why;
    j["points"][name] = pj;
  }
  return j;
}

}  // namespace fsrace::widening
