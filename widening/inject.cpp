#include "widening/inject.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <vector>

#include "probes/attach.h"
#include "probes/events.h"
#include "probes/fsrace_events.h"
#include "widening/techniques.h"
#include "inject.skel.h"  // generated at build time by bpftool gen skeleton

namespace fsrace::widening {

namespace {

constexpr const char* kFailDir = "/sys/kernel/debug/fail_function";

// Writes `value` to a debugfs / procfs attribute; "" on success, else the errno text.
std::string write_attr(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno_text(errno);
  ssize_t n = write(fd, value.data(), value.size());
  int e = errno;
  close(fd);
  return n == ssize_t(value.size()) ? "" : errno_text(n < 0 ? e : EIO);
}

std::string read_attr(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

const char* errno_name(int e) { return e == EEXIST ? "EEXIST" : e == ENOMEM ? "ENOMEM" : "?"; }

}  // namespace

struct InjectSession::Impl {
  inject_bpf* skel = nullptr;
  bpf_link* link = nullptr;
  int own_filter = -1;
  std::map<std::string, std::string> saved;  // fail_function attribute -> value before the run
  bool fail_armed = false;
  ~Impl() {
    bpf_link__destroy(link);
    inject_bpf__destroy(skel);
    if (own_filter >= 0) close(own_filter);
  }
};

InjectSession::InjectSession(const KernelInfo& k, InjectOptions opt) : impl_(std::make_unique<Impl>()), opt_(std::move(opt)) {
  if (opt_.technique != "override-return" && opt_.technique != "fail-function")
    throw std::invalid_argument(fmt::format("unknown error-injection technique '{}'", opt_.technique));
  if (opt_.err != EEXIST && opt_.err != ENOMEM)
    throw std::invalid_argument(fmt::format("error injection supports EEXIST (17) and ENOMEM (12), not {}", opt_.err));
  if (!(opt_.ratio > 0 && opt_.ratio <= 1)) throw std::invalid_argument(fmt::format("injection ratio {} out of range (0, 1]", opt_.ratio));
  TechniqueStatus t = detect_technique(opt_.technique, k);
  if (!t.available) {
    error_ = t.detail;
    return;
  }
  auto& im = *impl_;
  if (opt_.technique == "override-return") {
    im.skel = inject_bpf__open();
    if (!im.skel) {
      error_ = fmt::format("cannot open the injection BPF object: {}", errno_text(errno));
      return;
    }
    auto* cfg = const_cast<fsr_inject_config*>(&im.skel->rodata->icfg);
    cfg->threshold = uint64_t(std::llround(opt_.ratio * 4294967296.0));
    cfg->retval = -int64_t(opt_.err);
    int filter = opt_.filter_fd;
    if (filter < 0) filter = im.own_filter = bpf_map_create(BPF_MAP_TYPE_HASH, "fsr_filter", sizeof(fsr_inode_key), 4, 1024, nullptr);
    if (filter < 0 || bpf_map__reuse_fd(im.skel->maps.fsr_filter, filter) != 0) {
      error_ = fmt::format("cannot set up the test-inode filter for injection: {}", errno_text(errno));
      return;
    }
    if (int e = inject_bpf__load(im.skel)) {
      error_ = fmt::format("the kernel refused the injection program (bpf_override_return): {}", errno_text(-e));
      return;
    }
    im.link = bpf_program__attach_kprobe(im.skel->progs.inject_filemap_add, false, kInjectFunction);
    if (!im.link) {
      int e = errno;
      im.link = nullptr;
      error_ = fmt::format("cannot attach the injection kprobe to {}: {}{}", kInjectFunction, errno_text(e),
                           e == EINVAL ? " (not error-injectable on this kernel: see /sys/kernel/debug/error_injection/list)" : "");
      return;
    }
    armed_ = true;
    return;
  }
  // fail-function
  std::string dir = kFailDir;
  bool listed = false;
  {
    std::ifstream in(dir + "/injectable");
    for (std::string l; std::getline(in, l);)
      if (l.rfind(std::string(kInjectFunction) + "\t", 0) == 0 || l.rfind(std::string(kInjectFunction) + " ", 0) == 0) listed = true;
  }
  if (!listed) {
    error_ = fmt::format("{} is not in {}/injectable on this kernel", kInjectFunction, dir);
    return;
  }
  for (const char* a : {"probability", "interval", "times", "task-filter", "verbose", "space"}) im.saved[a] = read_attr(dir + "/" + a);
  if (auto e = write_attr(dir + "/inject", kInjectFunction); !e.empty()) {
    error_ = fmt::format("cannot add {} to {}/inject: {}", kInjectFunction, dir, e);
    return;
  }
  im.fail_armed = true;
  // ratio >= 1 %: a percentage per call; below: every N-th call (fail_function's probability is whole percent)
  bool pct = opt_.ratio >= 0.01;
  std::vector<std::pair<std::string, std::string>> set = {
      {fmt::format("{}/retval", kInjectFunction), fmt::format("{:#x}", uint64_t(-int64_t(opt_.err)))},
      {"probability", pct ? fmt::format("{}", std::lround(opt_.ratio * 100)) : "100"},
      {"interval", pct ? "1" : fmt::format("{}", std::lround(1 / opt_.ratio))},
      {"times", "-1"},
      {"space", "0"},
      {"verbose", "0"},
      {"task-filter", "Y"},
  };
  for (const auto& [a, v] : set)
    if (auto e = write_attr(dir + "/" + a, v); !e.empty()) {
      error_ = fmt::format("cannot set {}/{} = {}: {}", dir, a, v, e);
      stop();
      return;
    }
  armed_ = true;
}

InjectSession::~InjectSession() { stop(); }

void InjectSession::add_inode(uint64_t st_dev, uint64_t ino) {
  if (impl_->own_filter < 0) return;
  fsr_inode_key key{};
  key.dev = kernel_dev(st_dev);
  key.ino = ino;
  uint32_t idx = inodes_++;
  bpf_map_update_elem(impl_->own_filter, &key, &idx, BPF_ANY);
}

void InjectSession::enlist_current_thread() {
  if (!armed_ || stopped_) return;
  if (opt_.technique == "fail-function") {
    write_attr("/proc/thread-self/make-it-fail", "1");
    return;
  }
  uint32_t tid = uint32_t(gettid());
  uint8_t one = 1;
  bpf_map__update_elem(impl_->skel->maps.fsr_inject_tasks, &tid, sizeof tid, &one, sizeof one, BPF_ANY);
}

void InjectSession::stop() {
  if (stopped_) return;
  stopped_ = true;
  auto& im = *impl_;
  if (im.link) {
    bpf_link__destroy(im.link);
    im.link = nullptr;
    int ncpu = libbpf_num_possible_cpus();
    std::vector<fsr_inject_stats> v(size_t(ncpu > 0 ? ncpu : 1));
    uint32_t zero = 0;
    if (bpf_map__lookup_elem(im.skel->maps.fsr_inject_stats, &zero, sizeof zero, v.data(), v.size() * sizeof(v[0]), 0) == 0)
      for (const auto& x : v) {
        hits_ += x.hits;
        injected_ += x.injected;
      }
  }
  if (im.fail_armed) {
    std::string dir = kFailDir;
    write_attr(dir + "/inject", fmt::format("!{}", kInjectFunction));
    for (const auto& [a, v] : im.saved)
      if (!v.empty()) write_attr(dir + "/" + a, v);
    im.fail_armed = false;
  }
}

nlohmann::json InjectSession::report() const {
  nlohmann::json j = {{"technique", opt_.technique}, {"function", kInjectFunction}, {"errno", errno_name(opt_.err)},
                      {"ratio", opt_.ratio}, {"armed", armed_}};
  if (!armed_) j["error"] = error_;
  else if (opt_.technique == "override-return") j.update({{"hits", hits_}, {"injected", injected_}});
  else j["injected"] = "not counted (fail_function keeps no count)";
  return j;
}

}  // namespace fsrace::widening
