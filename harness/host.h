// The running kernel as a test bed: preflight checks, sparse images on loop devices, mkfs, mounts.
// Every resource is an RAII object, so success, failure, exceptions and SIGINT/SIGTERM (which only set
// a flag; the runner then unwinds) all leave no mount, loop device or temp file behind.
#pragma once
#include <atomic>
#include <string>
#include <vector>

#include "harness/campaign.h"

namespace fsrace {

// Set by SIGINT / SIGTERM once install_stop_handlers() ran.
std::atomic<bool>& stop_requested();
void install_stop_handlers();

struct CommandResult {
  int status = -1;  // exit code, or -1 if it could not run / died of a signal
  std::string output;
};
CommandResult run_command(const std::vector<std::string>& argv);
bool find_in_path(const std::string& prog);
// Is `type` listed in /proc/filesystems (built in or its module loaded)?
bool fs_registered(const std::string& type);

// Host-mode preconditions for these filesystems; throws UsageError with the fix.
// need_loop = false when the block devices are given (VM guest: virtio disks).
void preflight_host(const std::vector<FsConfig>& filesystems, bool need_loop = true);

class TempDir {
 public:
  explicit TempDir(const std::string& parent, const std::string& prefix);
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class LoopDevice {
 public:
  // Creates a sparse image of `size_mib` at `image` and attaches it (autoclear).
  LoopDevice(const std::string& image, uint64_t size_mib);
  ~LoopDevice();
  const std::string& dev() const { return dev_; }
  std::string name() const;  // "loop3"

 private:
  std::string image_, dev_;
  int fd_ = -1;
};

void make_filesystem(const FsConfig& fs, const std::string& dev);

// Read-only consistency check of an unmounted filesystem: e2fsck -fn (ext4) or xfs_repair -n (XFS).
struct FsckResult {
  std::string command;
  int status = -1;     // the tool's exit code
  bool clean = false;  // ext4: 0; XFS: 0
  std::string excerpt; // the tool's report, first lines (what it found)
};
FsckResult check_filesystem(const std::string& fs_type, const std::string& dev);

class Mount {
 public:
  Mount(const std::string& dev, const std::string& dir, const FsConfig& fs);
  ~Mount();
  void unmount();  // throws UsageError if the filesystem stays busy
  const std::string& dir() const { return dir_; }

 private:
  std::string dev_, dir_, type_;
  bool mounted_ = false;
};

struct FsSpace {
  uint64_t block_size = 0, blocks = 0, free = 0;
};
FsSpace fs_space(const std::string& dir);

}  // namespace fsrace
