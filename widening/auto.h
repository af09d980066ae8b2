// Automatic kernel-side widening ([campaign] widening = "auto"): for a case whose scenario names no
// kdelay / kwiden of its own, the techniques that are relevant to its scenario x filesystem and that the
// kernel supports are armed, with a delay profile (length, share of hits) that rotates with the case's
// repetition, so a campaign run without knowing the bug still widens the windows fsrace knows how to
// widen. What was relevant but unavailable is reported with the reason, never armed or faked.
//
// The choice is a pure function of the kernel's capabilities (AutoCaps, detected once per case by
// detect_auto_caps) x scenario x filesystem x variant: choose_auto_widening.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/campaign.h"
#include "probes/catalog.h"

namespace fsrace::widening {

// What the kernel allows, for one filesystem. A key absent from a map = not detected (treated as
// unavailable with "not detected").
struct AutoCaps {
  std::string delays_unavailable;                    // "" = BPF delays can run (bpf usable, bpf_loop)
  std::map<std::string, std::string> point_reason;   // delay point -> "" (a hook of it can attach) or why not
  std::map<std::string, std::string> technique_reason;  // kwiden technique -> "" (available) or why not
};

// One delay profile of the rotation: every armed delay point waits delay_us on a `ratio` share of hits.
struct DelayProfile {
  double delay_us = 300, ratio = 0.3;
};
// The rotation, in order: variant v uses profile v % size.
const std::vector<DelayProfile>& auto_delay_profiles();

// The techniques worth arming for a scenario on a filesystem (before asking the kernel): delay points
// whose hooks fire on `fs` and whose window the scenario's ops open, and kwiden techniques. dm-flakey is
// never chosen (a power cut is a different judgement: campaigns/power-cut.toml). dm-delay only on odd
// variants (it slows every bio of the case). Unknown scenarios get every point of the filesystem.
struct AutoRelevant {
  std::vector<std::string> points;
  std::vector<std::string> techniques;
};
AutoRelevant auto_relevant(const std::string& scenario, const std::string& fs, uint64_t variant);

struct AutoChoice {
  uint64_t variant = 0;
  AutoRelevant relevant;
  std::vector<std::string> kdelay;  // armed delay points
  DelayProfile profile;
  std::vector<std::string> kwiden;  // armed techniques (at most one error injection: override-return first)
  std::map<std::string, std::string> unavailable;  // relevant but not armed -> why
};

AutoChoice choose_auto_widening(const AutoCaps& caps, const std::string& scenario, const std::string& fs, uint64_t variant);

// The scenario config the widening plan runs with: `sc` with the choice's kdelay, kwiden and delay
// parameters. A scenario that names its own kdelay or kwiden is returned unchanged (explicit wins).
ScenarioConfig apply_auto_widening(const ScenarioConfig& sc, const AutoChoice& c);
bool explicit_widening(const ScenarioConfig& sc);

// The running kernel's capabilities for `fs` (plan_probe over each point's hooks, detect_technique).
AutoCaps detect_auto_caps(const probes::KernelInfo& k, const std::string& fs);

// race.json's "auto_widening" record (format in results/README.md) and the case summary's one line.
nlohmann::json auto_widening_json(const AutoChoice& c);
std::string auto_widening_note(const AutoChoice& c);

}  // namespace fsrace::widening
