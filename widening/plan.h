// The widening plan of one case: every kernel-side technique its scenario asks for (kdelay, kwiden),
// each behind the same small interface — arm for the race, disarm after it, report what ran or why it
// could not. The runner asks the plan which device-mapper layer the testbed must stack, hands it the
// device once the filesystem exists, arms it between setup and race, disarms it after, and puts its
// report in the case's record. Nothing here throws for a kernel that lacks a technique: it is reported
// as unavailable with the reason.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/campaign.h"
#include "probes/catalog.h"
#include "widening/dm.h"
#include "widening/techniques.h"

namespace fsrace::widening {

struct Inode {
  uint64_t dev = 0, ino = 0;
};

// What the techniques act on during the race.
struct RaceTarget {
  std::vector<Inode> inodes;  // the test files
  int filter_fd = -1;         // the probe session's inode filter map (-1: no probe session)
};

// What arming asks of the workload.
struct WorkloadHooks {
  std::function<void()> on_worker_start;  // every racing thread calls it first (error injection enlists it)
  int tolerated_errno = 0;                // an injected errno the workload must tolerate (ENOMEM)
  std::vector<std::string> notes;         // for the case summary
};

class Technique {
 public:
  virtual ~Technique() = default;
  virtual std::string name() const = 0;
  // After the scenario's setup, right before the race.
  virtual void arm(const RaceTarget&, WorkloadHooks&) {}
  // Right after the race (before verification).
  virtual void disarm() {}
  // Adds what it did to the case record: kernel_widening[<name>] and, for the delays, kernel_delays.
  virtual void report(nlohmann::json& info) const = 0;
};

class WideningPlan {
 public:
  // `kernel` may be null (no kernel facts: nothing kernel-side is planned).
  WideningPlan(const ScenarioConfig& sc, const std::string& fs, const probes::KernelInfo* kernel);
  ~WideningPlan();
  WideningPlan(const WideningPlan&) = delete;
  WideningPlan& operator=(const WideningPlan&) = delete;

  // The device-mapper layer the testbed stacks under the filesystem for the whole case: a delay target
  // (dm-delay), or linear (dm-flakey alone, so the power cut can swap the table); none otherwise.
  std::optional<DeviceLayer> device_layer() const { return layer_; }
  // The testbed is up: its device (dm-<minor> when the layer was made), the layer or why it could not
  // be made, and the mount (xfs-errortag prepares one-block free extents there before setup).
  void on_testbed(DmDevice* layer, const std::string& layer_error, const std::string& dev_name, const std::string& mnt_dir);

  void arm(const RaceTarget& t, WorkloadHooks& hooks);
  void disarm();
  void report(nlohmann::json& info) const;

  // dm-flakey: the race ends in a power cut (available and its layer made).
  bool power_cut() const { return flakey_ && dm_; }
  // Swaps in a flakey table that drops every write, without freezing the filesystem (nothing flushed).
  // Returns "" or why it could not (the device is then unchanged).
  std::string cut_power();
  // Puts the normal table back. Throws Fatal when it cannot: every write would still be dropped.
  void restore_power();
  DmDevice* layer() { return dm_; }
  // kernel_widening["dm-flakey"], which the runner's power cut fills in.
  nlohmann::json& flakey_record() { return widening_["dm-flakey"]; }

 private:
  const ScenarioConfig& sc_;
  std::string fs_;
  const probes::KernelInfo* kernel_;
  std::map<std::string, TechniqueStatus> detected_;
  std::optional<DeviceLayer> layer_;
  bool flakey_ = false;
  DmDevice* dm_ = nullptr;
  std::vector<std::unique_ptr<Technique>> techniques_;
  nlohmann::json widening_ = nlohmann::json::object();  // kernel_widening, as detected and as it ran
};

// XFS's bmap_alloc_minlen_extent error tag allocates only from free extents exactly one block long
// (without one the allocation fails and writeback discards the data), so before arming it the free space
// gets this many of them, as fstests fragments free space first.
inline constexpr uint64_t kOneBlockHoles = 4096;

}  // namespace fsrace::widening
