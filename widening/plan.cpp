#include "widening/plan.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/core.h>

#include "core/oplog.h"
#include "core/util.h"
#include "widening/delay.h"
#include "widening/inject.h"

namespace fsrace::widening {
namespace {

// A file of 2n blocks allocated in one go, every other block punched out. Returns how many holes it made.
uint64_t make_one_block_holes(const std::string& path, uint64_t n, std::string* err) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    *err = fmt::format("cannot create {}: {}", path, strerror(errno));
    return 0;
  }
  uint64_t holes = 0;
  if (fallocate(fd, 0, 0, off_t(2 * n * kBlockSize)) != 0) {
    *err = fmt::format("fallocate of {} blocks in {}: {}", 2 * n, path, strerror(errno));
  } else {
    for (; holes < n; ++holes)
      if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t((2 * holes + 1) * kBlockSize), off_t(kBlockSize)) != 0) {
        *err = fmt::format("punching block {} of {}: {}", 2 * holes + 1, path, strerror(errno));
        break;
      }
  }
  close(fd);
  return holes;
}

// kdelay: BPF busy-waits at the scenario's delay points, for the race only.
class DelayTechnique : public Technique {
 public:
  DelayTechnique(const ScenarioConfig& sc, std::string fs, const probes::KernelInfo& k) : sc_(sc), fs_(std::move(fs)), k_(k) {}
  std::string name() const override { return "kdelay"; }
  void arm(const RaceTarget& t, WorkloadHooks& hooks) override {
    DelayOptions d{sc_.kdelay, fs_, sc_.d("kdelay_us"), sc_.d("kdelay_ratio"), t.filter_fd};
    s_ = std::make_unique<DelaySession>(k_, d);
    for (const auto& i : t.inodes) s_->add_inode(i.dev, i.ino);
    if (s_->attached() && sysconf(_SC_NPROCESSORS_ONLN) < 2)
      hooks.notes.push_back("kernel delays on a single CPU: the waiting task holds the only CPU, the racing thread cannot "
                            "run inside the widened window");
  }
  void disarm() override {
    if (!s_) return;
    s_->stop();
    report_ = s_->report();
    s_.reset();
  }
  void report(nlohmann::json& info) const override {
    if (!report_.is_null()) info["kernel_delays"] = report_;
  }

 private:
  const ScenarioConfig& sc_;
  std::string fs_;
  const probes::KernelInfo& k_;
  std::unique_ptr<DelaySession> s_;
  nlohmann::json report_;
};

// override-return / fail-function: page-cache insertions fail for the racing threads, for the race only.
class InjectTechnique : public Technique {
 public:
  InjectTechnique(const ScenarioConfig& sc, const probes::KernelInfo& k, nlohmann::json& rec) : sc_(sc), k_(k), rec_(rec) {}
  std::string name() const override { return sc_.injection(); }
  void arm(const RaceTarget& t, WorkloadHooks& hooks) override {
    InjectOptions io{sc_.injection(), int(sc_.i("kinject_errno")), sc_.d("kinject_ratio"), t.filter_fd};
    s_ = std::make_unique<InjectSession>(k_, io);
    if (t.filter_fd < 0)
      for (const auto& i : t.inodes) s_->add_inode(i.dev, i.ino);
    if (s_->armed()) {
      hooks.on_worker_start = [p = s_.get()] { p->enlist_current_thread(); };
      if (io.err == ENOMEM) hooks.tolerated_errno = ENOMEM;
    }
  }
  void disarm() override {
    if (!s_) return;
    s_->stop();
    rec_["ran"] = s_->armed();
    rec_["injection"] = s_->report();
    if (!s_->armed() && rec_.value("available", false)) rec_["error"] = s_->error();
    s_.reset();
  }
  void report(nlohmann::json&) const override {}  // written into the plan's kernel_widening record

 private:
  const ScenarioConfig& sc_;
  const probes::KernelInfo& k_;
  nlohmann::json& rec_;
  std::unique_ptr<InjectSession> s_;
};

// xfs-errortag: bmap_alloc_minlen_extent during the race, after one-block free extents were made.
class ErrortagTechnique : public Technique {
 public:
  ErrortagTechnique(const ScenarioConfig& sc, nlohmann::json& rec) : sc_(sc), rec_(rec) {}
  std::string name() const override { return "xfs-errortag"; }
  void prepare(const std::string& dev_name, const std::string& mnt_dir) {
    dev_name_ = dev_name;
    if (path_exists(fmt::format("/sys/fs/xfs/{}/errortag/bmap_alloc_minlen_extent", dev_name)))
      holes_ = make_one_block_holes(mnt_dir + "/.fsrace-one-block-holes", kOneBlockHoles, &holes_error_);
  }
  void arm(const RaceTarget&, WorkloadHooks&) override {
    if (!rec_.value("available", false)) return;
    if (holes_ < kOneBlockHoles) {
      rec_["error"] = fmt::format("could not prepare {} one-block free extents for bmap_alloc_minlen_extent ({} made): {}",
                                  kOneBlockHoles, holes_, holes_error_);
      return;
    }
    try {
      tags_.emplace(fmt::format("/sys/fs/xfs/{}/errortag", dev_name_),
                    std::map<std::string, int>{{"bmap_alloc_minlen_extent", int(sc_.i("xfs_minlen_alloc"))}});
      rec_.update({{"ran", true}, {"dir", tags_->dir()}, {"errortags", tags_->tags()}, {"one_block_free_extents", holes_}});
    } catch (const WideningError& e) {
      rec_["error"] = e.what();
    }
  }
  void disarm() override { tags_.reset(); }
  void report(nlohmann::json&) const override {}

 private:
  const ScenarioConfig& sc_;
  nlohmann::json& rec_;
  std::string dev_name_, holes_error_;
  uint64_t holes_ = 0;
  std::optional<XfsErrortags> tags_;
};

}  // namespace

WideningPlan::WideningPlan(const ScenarioConfig& sc, const std::string& fs, const probes::KernelInfo* kernel)
    : sc_(sc), fs_(fs), kernel_(kernel) {
  if (!kernel_) return;
  if (sc_.widens("dm-delay")) {
    auto& t = detected_["dm-delay"] = detect_technique("dm-delay", *kernel_);
    if (t.available) layer_ = DeviceLayer{"delay", fmt::format("{{dev}} 0 {}", sc_.i("dm_delay_ms"))};
  }
  if (sc_.widens("dm-flakey")) {
    auto& t = detected_["dm-flakey"] = detect_technique("dm-flakey", *kernel_);
    flakey_ = t.available;
    if (flakey_ && !layer_) layer_ = DeviceLayer{"linear", "{dev} 0"};
  }
}

WideningPlan::~WideningPlan() { disarm(); }

void WideningPlan::on_testbed(DmDevice* layer, const std::string& layer_error, const std::string& dev_name,
                              const std::string& mnt_dir) {
  dm_ = layer;
  if (!kernel_) return;
  // Every kwiden technique as detected on this kernel (XFS error tags: on this filesystem's device).
  for (const auto& name : sc_.kwiden) {
    TechniqueStatus t{name, false, fmt::format("XFS only (this case runs {})", fs_)};
    if (name != "xfs-errortag" || fs_ == "xfs") {
      auto it = detected_.find(name);
      t = it != detected_.end() ? it->second : detect_technique(name, *kernel_, fs_ == "xfs" ? dev_name : "");
    }
    widening_[name] = {{"available", t.available}, {"detail", t.detail}, {"ran", false}};
  }
  if (sc_.widens("dm-delay")) {
    auto& w = widening_["dm-delay"];
    if (dm_ && layer_ && layer_->target == "delay")
      w.update({{"ran", true}, {"device", dm_->dev()}, {"table", dm_->table()}, {"delay_ms", sc_.i("dm_delay_ms")}});
    else if (!layer_error.empty()) w["error"] = layer_error;
  }
  if (sc_.widens("dm-flakey") && !layer_error.empty()) widening_["dm-flakey"]["error"] = layer_error;
  if (!sc_.kdelay.empty()) techniques_.push_back(std::make_unique<DelayTechnique>(sc_, fs_, *kernel_));
  if (!sc_.injection().empty()) techniques_.push_back(std::make_unique<InjectTechnique>(sc_, *kernel_, widening_[sc_.injection()]));
  if (sc_.widens("xfs-errortag") && fs_ == "xfs") {
    auto t = std::make_unique<ErrortagTechnique>(sc_, widening_["xfs-errortag"]);
    t->prepare(dev_name, mnt_dir);
    techniques_.push_back(std::move(t));
  }
}

void WideningPlan::arm(const RaceTarget& t, WorkloadHooks& hooks) {
  for (auto& tech : techniques_) tech->arm(t, hooks);
}

void WideningPlan::disarm() {
  for (auto it = techniques_.rbegin(); it != techniques_.rend(); ++it) (*it)->disarm();
}

void WideningPlan::report(nlohmann::json& info) const {
  if (kernel_ && !sc_.kwiden.empty()) info["kernel_widening"] = widening_;
  for (const auto& tech : techniques_) tech->report(info);
}

std::string WideningPlan::cut_power() {
  try {
    dm_->reload("flakey", "{dev} 0 0 180 1 drop_writes", true);
    return "";
  } catch (const DmError& e) {
    return e.what();
  }
}

void WideningPlan::restore_power() {
  try {
    dm_->reload(layer_->target, layer_->args, false);
  } catch (const DmError& e) {
    throw Fatal(fmt::format("the power cut could not restore the device's table: {}; the case stops here", e.what()));
  }
}

}  // namespace fsrace::widening
