// The host side of a run: preflight checks, the SIGINT/SIGTERM flag, argv-only command execution, work
// directories and free-space measurement. The device stack itself is harness/testbed.h.
#pragma once
#include <atomic>
#include <string>
#include <vector>

#include "core/campaign.h"

namespace fsrace {

// Set by SIGINT / SIGTERM once install_stop_handlers() ran.
std::atomic<bool>& stop_requested();
void install_stop_handlers();

// The running kernel's .config (/proc/config.gz, else /boot/config-<release>), "" if neither is readable.
std::string running_kernel_config();

struct CommandResult {
  int status = -1;  // exit code, or -1 if it could not run / died of a signal
  std::string output;
};
CommandResult run_command(const std::vector<std::string>& argv);
bool find_in_path(const std::string& prog);
// Is `type` listed in /proc/filesystems (built in or its module loaded)?
bool fs_registered(const std::string& type);

// Host-mode preconditions for these filesystems; throws Fatal with the fix.
// need_loop = false when the block devices are given (VM guest: virtio disks).
void preflight_host(const std::vector<FsConfig>& filesystems, bool need_loop = true);

class TempDir {
 public:
  explicit TempDir(const std::string& parent, const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct FsSpace {
  uint64_t block_size = 0, blocks = 0, free = 0;
};
FsSpace fs_space(const std::string& dir);

}  // namespace fsrace
