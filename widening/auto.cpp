#include "widening/auto.h"

#include <algorithm>
#include <fmt/core.h>
#include <fmt/format.h>

#include "widening/delay.h"
#include "widening/techniques.h"

namespace fsrace::widening {
namespace {

// Scenario -> the delay points whose window its racing ops open (filtered by filesystem below) and the
// kwiden techniques that widen them. The reasons are in docs/widening-auto.md.
struct Row {
  const char* scenario;
  std::vector<std::string> points;
  std::vector<std::string> techniques;
};
const std::vector<Row>& rows() {
  static const std::vector<Row> v = {
      // page-cache refill vs punch (seed 001): the punch window, and the fill itself (failed insertions retried)
      {"punch-vs-fault", {"punch-free", "pagecache-dropped", "fill-added"}, {"override-return", "fail-function"}},
      {"punch-vs-read", {"punch-free", "pagecache-dropped", "fill-added"}, {"override-return", "fail-function"}},
      // mkwrite's delalloc / the allocator's zero range and fallocate: write mappings, writeback of them
      {"mkwrite-vs-fallocate", {"punch-free", "iomap-mapped", "xfs-write-mapped", "xfs-wb-mapped"}, {"xfs-errortag"}},
      // DIO's mapping vs page-cache fills and mmap stores
      {"dio-vs-mmap", {"iomap-mapped", "fill-added", "xfs-write-mapped"}, {"dm-delay"}},
      {"dio-vs-buffered", {"iomap-mapped", "fill-added", "xfs-write-mapped", "xfs-wb-mapped"}, {"dm-delay"}},
      // stale write / writeback mappings (xfs_iomap_valid, xfs/559) vs punch, conversion, writes
      {"writeback-vs-write", {"xfs-wb-mapped", "xfs-write-mapped", "iomap-mapped", "punch-free"}, {"xfs-errortag", "dm-delay"}},
  };
  return v;
}

std::string joined(const std::vector<std::string>& v) { return fmt::format("{}", fmt::join(v, ", ")); }

}  // namespace

const std::vector<DelayProfile>& auto_delay_profiles() {
  // 300 us on 30 % of the hits is the setting the issue measured by hand; the others trade width for count
  static const std::vector<DelayProfile> v = {{300, 0.3}, {1000, 0.1}, {100, 0.6}};
  return v;
}

AutoRelevant auto_relevant(const std::string& scenario, const std::string& fs, uint64_t variant) {
  AutoRelevant r;
  std::vector<std::string> points, techniques;
  const Row* row = nullptr;
  for (const auto& x : rows())
    if (x.scenario == scenario) row = &x;
  if (row) {
    points = row->points;
    techniques = row->techniques;
  } else {  // mixed and any scenario not in the table: everything that fires on this filesystem
    points = probes::delay_point_names();
    techniques = {"override-return", "fail-function", "xfs-errortag", "dm-delay"};
  }
  for (const auto& p : points) {
    const probes::DelayPoint* dp = probes::find_delay_point(p);
    if (dp && !probes::delay_hooks_for(*dp, fs).empty()) r.points.push_back(p);
  }
  for (const auto& t : techniques) {
    if (t == "xfs-errortag" && fs != "xfs") continue;
    if (t == "dm-delay" && variant % 2 == 0) continue;
    r.techniques.push_back(t);
  }
  return r;
}

AutoChoice choose_auto_widening(const AutoCaps& caps, const std::string& scenario, const std::string& fs, uint64_t variant) {
  AutoChoice c;
  c.variant = variant;
  c.relevant = auto_relevant(scenario, fs, variant);
  const auto& profiles = auto_delay_profiles();
  c.profile = profiles[variant % profiles.size()];
  for (const auto& p : c.relevant.points) {
    if (!caps.delays_unavailable.empty()) {
      c.unavailable[p] = caps.delays_unavailable;
      continue;
    }
    auto it = caps.point_reason.find(p);
    if (it == caps.point_reason.end()) c.unavailable[p] = "not detected";
    else if (!it->second.empty()) c.unavailable[p] = it->second;
    else c.kdelay.push_back(p);
  }
  bool injecting = false;
  for (const auto& t : c.relevant.techniques) {
    auto it = caps.technique_reason.find(t);
    std::string why = it == caps.technique_reason.end() ? "not detected" : it->second;
    bool inject = t == "override-return" || t == "fail-function";
    if (inject && injecting) continue;  // one injection technique at most: the first available
    if (!why.empty()) {
      c.unavailable[t] = why;
      continue;
    }
    c.kwiden.push_back(t);
    injecting |= inject;
  }
  return c;
}

bool explicit_widening(const ScenarioConfig& sc) { return !sc.kdelay.empty() || !sc.kwiden.empty(); }

ScenarioConfig apply_auto_widening(const ScenarioConfig& sc, const AutoChoice& c) {
  if (explicit_widening(sc)) return sc;
  ScenarioConfig out = sc;
  out.kdelay = c.kdelay;
  out.kwiden = c.kwiden;
  if (!c.kdelay.empty()) {
    out.params["kdelay_us"] = c.profile.delay_us;
    out.params["kdelay_ratio"] = c.profile.ratio;
  }
  return out;
}

AutoCaps detect_auto_caps(const probes::KernelInfo& k, const std::string& fs) {
  AutoCaps caps;
  caps.delays_unavailable = delays_unavailable(k);
  for (const auto& p : probes::delay_points()) {
    std::vector<probes::Candidate> tried;
    bool ok = false;
    auto hooks = probes::delay_hooks_for(p, fs);
    for (const auto* h : hooks) {
      auto c = probes::plan_probe(h->spec, k);
      for (const auto& x : c) ok |= x.skip.empty();
      tried.insert(tried.end(), c.begin(), c.end());
    }
    caps.point_reason[p.name] = ok ? "" : hooks.empty() ? fmt::format("no hook fires on {}", fs) : probes::summarize_reasons(tried);
  }
  for (const auto& t : probes::kernel_technique_names()) {
    if (t == "dm-flakey") continue;
    if (t == "xfs-errortag" && fs != "xfs") continue;
    TechniqueStatus s = detect_technique(t, k);
    caps.technique_reason[t] = s.available ? "" : (s.detail.empty() ? "unavailable" : s.detail);
  }
  return caps;
}

nlohmann::json auto_widening_json(const AutoChoice& c) {
  nlohmann::json un = nlohmann::json::object();
  for (const auto& [k, v] : c.unavailable) un[k] = v;
  nlohmann::json j = {{"mode", "auto"},
                      {"variant", c.variant},
                      {"relevant", {{"kdelay", c.relevant.points}, {"kwiden", c.relevant.techniques}}},
                      {"armed", {{"kdelay", c.kdelay}, {"kwiden", c.kwiden}}},
                      {"unavailable", un}};
  if (!c.kdelay.empty()) j["armed"].update({{"kdelay_us", c.profile.delay_us}, {"kdelay_ratio", c.profile.ratio}});
  return j;
}

std::string auto_widening_note(const AutoChoice& c) {
  std::vector<std::string> armed;
  if (!c.kdelay.empty())
    armed.push_back(fmt::format("kdelay {} ({} us on {:.0f} % of hits)", joined(c.kdelay), c.profile.delay_us, c.profile.ratio * 100));
  for (const auto& t : c.kwiden) armed.push_back(t);
  std::vector<std::string> un;
  for (const auto& [k, v] : c.unavailable) un.push_back(fmt::format("{} ({})", k, v));
  return fmt::format("auto widening (variant {}): armed {}{}", c.variant, armed.empty() ? "nothing" : joined(armed),
                     un.empty() ? "" : "; unavailable: " + fmt::format("{}", fmt::join(un, "; ")));
}

}  // namespace fsrace::widening
