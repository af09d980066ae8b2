// Device-mapper devices stacked under the filesystem for race widening (kwiden dm-delay): created,
// loaded and removed with the device-mapper ioctls on /dev/mapper/control (no dmsetup / udev needed).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fsrace::widening {


struct DmError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A table over a whole base device, "{dev}" standing for it: {"delay", "{dev} 0 2"}.
struct DeviceLayer {
  std::string target, args;
};

// The device-mapper targets the kernel has registered now, with their versions ("delay v1.2.1"), from
// DM_LIST_VERSIONS. Throws DmError (one line: what failed and what to do) without device-mapper.
std::vector<std::pair<std::string, std::string>> dm_targets();

// Removes the mapped device `name` (retrying while busy); false if it could not be removed.
bool remove_dm_device(const std::string& name);
// Names of the mapped devices whose name starts with `prefix` (from /sys/block/dm-*/dm/name).
std::vector<std::string> dm_device_names(const std::string& prefix);

// One mapped device covering the whole of `base` with a single target line
// "0 <sectors of base> <target> <args>", where "{dev}" in `args` stands for base's major:minor. The
// device node is /dev/dm-<minor> (devtmpfs), or a node made in `node_dir` when devtmpfs has none.
// The destructor removes the mapping (retrying while the device is still busy).
class DmDevice {
 public:
  DmDevice(const std::string& name, const std::string& base, const std::string& target, const std::string& args,
           const std::string& node_dir);
  ~DmDevice();
  DmDevice(const DmDevice&) = delete;
  DmDevice& operator=(const DmDevice&) = delete;
  const std::string& dev() const { return dev_; }          // block device node to mkfs / mount
  std::string kernel_name() const;                          // "dm-<minor>" (the name in /sys/fs/xfs, /proc/partitions)
  const std::string& table() const { return table_; }      // the loaded table line
  // Replaces the live table with "0 <sectors> <target> <args>" ("{dev}" as above): loads it as the
  // inactive table, suspends (with skip_lockfs the filesystem on top is not frozen first: nothing is
  // flushed, which is what a power cut needs) and resumes with the new table. Throws DmError.
  void reload(const std::string& target, const std::string& args, bool skip_lockfs);

 private:
  std::string name_, dev_, table_, made_node_;
  std::string base_rdev_;  // "major:minor" of the base device
  uint64_t sectors_ = 0;
  unsigned minor_ = 0;
  void load_table(const std::string& target, const std::string& args);
};

}  // namespace fsrace::widening
