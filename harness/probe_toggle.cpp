#include "harness/probe_toggle.h"

#include <algorithm>
#include <chrono>

#include "core/util.h"
#include "probes/loader.h"

namespace fsrace {
namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

nlohmann::json toggle_summary(const std::vector<ToggleSegment>& segs, uint64_t period_ms) {
  auto rate = [](const ToggleSegment& s) { return s.ns ? double(s.ops) * 1e9 / double(s.ns) : 0.0; };
  auto per_cpu = [](const ToggleSegment& s) { return s.cpu_ns ? double(s.ops) * 1e9 / double(s.cpu_ns) : 0.0; };
  ToggleSegment on{true}, off{false};
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : segs) {
    ToggleSegment& t = s.attached ? on : off;
    t.ns += s.ns;
    t.ops += s.ops;
    t.cpu_ns += s.cpu_ns;
    list.push_back({{"attached", s.attached}, {"start_ns", s.start_ns}, {"ns", s.ns}, {"ops", s.ops}, {"cpu_ns", s.cpu_ns}});
  }
  std::vector<double> r_ops, r_cpu;
  for (size_t i = 0; i < segs.size(); ++i) {
    if (!segs[i].attached) continue;
    double n = 0, o = 0, c = 0;
    for (size_t j : {i - 1, i + 1}) {  // i - 1 wraps to SIZE_MAX for i = 0: out of range, skipped
      if (j >= segs.size() || segs[j].attached || !segs[j].ops) continue;
      n += 1;
      o += rate(segs[j]);
      c += per_cpu(segs[j]);
    }
    if (!n || !o || !c) continue;
    r_ops.push_back(rate(segs[i]) / (o / n));
    r_cpu.push_back(per_cpu(segs[i]) / (c / n));
  }
  auto totals = [&](const ToggleSegment& t) {
    return nlohmann::json{{"ns", t.ns}, {"ops", t.ops}, {"cpu_ns", t.cpu_ns}, {"ops_per_s", rate(t)}, {"ops_per_cpu_s", per_cpu(t)}};
  };
  return {{"period_ms", period_ms},
          {"attached", totals(on)},
          {"detached", totals(off)},
          {"pair_ratios_ops", r_ops},
          {"pair_ratios_ops_per_cpu", r_cpu},
          {"median_ratio_ops", median(r_ops)},
          {"median_ratio_ops_per_cpu", median(r_cpu)},
          {"segments", list}};
}

ProbeToggler::ProbeToggler(probes::ProbeSession& s, uint64_t period_ms) : s_(s), period_ms_(period_ms) {
  th_ = std::thread([this] { main(); });
}

ProbeToggler::~ProbeToggler() {
  if (th_.joinable()) finish();
}

void ProbeToggler::main() {
  bool attached = true;
  uint64_t t0 = now_ns(), ops0 = progress_counter().load(), cpu0 = process_cpu_ns();
  std::unique_lock<std::mutex> g(mu_);
  while (!cv_.wait_for(g, std::chrono::milliseconds(period_ms_), [this] { return done_; })) {
    ToggleSegment seg{attached, now_ns() - t0, progress_counter().load() - ops0, process_cpu_ns() - cpu0, t0};
    segs_.push_back(seg);
    g.unlock();
    std::string err;
    if (!s_.set_attached(!attached, err) && error_.empty()) error_ = err;
    attached = !attached;
    g.lock();
    t0 = now_ns();
    ops0 = progress_counter().load();
    cpu0 = process_cpu_ns();
  }
  if (!attached) {
    std::string err;
    if (!s_.set_attached(true, err) && error_.empty()) error_ = err;
  }
}

nlohmann::json ProbeToggler::finish() {
  {
    std::lock_guard<std::mutex> g(mu_);
    done_ = true;
  }
  cv_.notify_all();
  if (th_.joinable()) th_.join();
  nlohmann::json j = toggle_summary(segs_, period_ms_);
  if (!error_.empty()) j["error"] = error_;
  return j;
}

}  // namespace fsrace
