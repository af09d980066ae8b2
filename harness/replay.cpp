#include "harness/replay.h"

#include <fmt/core.h>
#include <iostream>
#include <nlohmann/json.hpp>

#include "harness/report.h"
#include "harness/results.h"
#include "core/util.h"
#include "workloads/scenario.h"

namespace fsrace {

int replay(const ReplayOptions& opt) {
  std::string fpath = opt.run_dir + "/findings.json", cpath = opt.run_dir + "/campaign.toml";
  if (!path_exists(fpath) || !path_exists(cpath))
    throw Fatal(fmt::format("{} is not an fsrace run directory (needs findings.json and campaign.toml)", opt.run_dir));
  auto doc = nlohmann::json::parse(read_file(fpath), nullptr, false);
  if (doc.is_discarded() || doc.value("schema", "") != kFindingsSchema)
    throw Fatal(fmt::format("{} is not a readable fsrace findings file", fpath));
  const auto& findings = doc["findings"];
  if (findings.empty()) throw Fatal(fmt::format("{} has no finding to replay", opt.run_dir));
  if (opt.finding >= findings.size())
    throw Fatal(fmt::format("--finding {} does not exist: {} has findings 0..{}", opt.finding, opt.run_dir,
                                 findings.size() - 1));
  const auto& f = findings[opt.finding];
  std::string cls = f.value("class", ""), case_name = f.value("case", "");
  const nlohmann::json* cinfo = nullptr;
  for (const auto& c : doc["cases"])
    if (c.value("case", "") == case_name) cinfo = &c;
  if (!cinfo) throw Fatal(fmt::format("{}: finding {} names case '{}' which the run does not list", fpath, opt.finding, case_name));

  Campaign c = parse_campaign(read_file(cpath), cpath, scenario_catalog());
  std::string fs = cinfo->value("fs", ""), sc = cinfo->value("scenario", "");
  CampaignOverrides ov;
  ov.filesystems = {fs};
  ov.scenarios = {sc};
  ov.seed = cinfo->value("seed", c.seed);  // the case's own seed, so repetition 0 reproduces it
  apply_overrides(c, ov, scenario_catalog());
  c.repetitions = 1;
  std::string kernel = doc["run"].value("kernel", "");
  if (kernel != kernel_release())
    std::cerr << fmt::format("fsrace: note: the run was on kernel {}, this is {}\n", kernel, kernel_release());

  std::cout << fmt::format("replaying finding {} ({} in {}, seed {}) {} time(s)\n", opt.finding, cls, case_name, c.seed, opt.repeat);
  unsigned reproduced = 0, ran = 0;
  for (unsigned k = 0; k < opt.repeat; ++k) {
    RunOptions ro = opt.run;
    ro.campaign = c;
    ro.inject_corruption = cinfo->contains("injected");  // a test run: replay its corruption too
    RunOutcome o = run_host(ro);
    ++ran;
    auto rdoc = nlohmann::json::parse(read_file(o.dir + "/findings.json"));
    // An informational finding (stale-iomap-seen, ...) is counted apart from the failing ones.
    const char* counts = f.value("informational", false) ? "informational_by_class" : "findings_by_class";
    uint64_t same = rdoc.value(counts, nlohmann::json::object()).value(cls, uint64_t(0));
    reproduced += same > 0;
    std::cout << fmt::format("  run {}/{}: {} {} finding(s) -> {}\n", k + 1, opt.repeat, same, cls, o.dir);
    if (o.interrupted) {  // not a verdict: "reproduced 0/K" would read as "does not reproduce"
      std::cout << fmt::format("interrupted after {} of {} run(s); reproduced {}/{} so far\n", ran, opt.repeat, reproduced, ran);
      return 130;
    }
  }
  std::cout << fmt::format("reproduced {}/{}\n", reproduced, opt.repeat);
  return reproduced ? 1 : 0;
}

}  // namespace fsrace
