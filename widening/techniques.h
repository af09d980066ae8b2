// Kernel-side widening techniques besides the BPF delays (delay.h): error injection through
// bpf_override_return or fail_function, device-mapper delay / flakey targets under the filesystem, XFS
// errortags. Each is detected on the running kernel and reported as available or unavailable with the
// reason. The runner drives override-return / fail-function (widening/inject.h), dm-delay and dm-flakey (the
// power cut; widening/dm.h) and xfs-errortag (XfsErrortags below) when available.
#pragma once
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "probes/catalog.h"

namespace fsrace::widening {
using namespace ::fsrace::probes;  // kernel facts and attach machinery (probes/)


struct TechniqueStatus {
  std::string name;
  bool available = false;
  std::string detail;  // how it was found, or why it is unavailable (with the kernel option it needs)
};

// debugfs at /sys/kernel/debug: true when mounted (mounted here when missing and we are root, like tracefs).
bool debugfs();

// The running kernel's build options (/proc/config.gz, else /boot/config-<release>): CONFIG_X -> "y", "m",
// a value, or "n" for "is not set". Empty when neither is readable.
std::map<std::string, std::string> kernel_config(const std::string& release);

// Detects one technique of kernel_techniques() (catalog.h). `xfs_sysfs_dev`: the test filesystem's name under /sys/fs/xfs (e.g. "loop3")
// when an XFS is mounted; "" = look at any mounted XFS, else decide from the kernel config.
TechniqueStatus detect_technique(const std::string& name, const KernelInfo& k, const std::string& xfs_sysfs_dev = "");


struct WideningError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The runner arms bmap_alloc_minlen_extent, which changes how XFS allocates but not what a syscall
// returns or what the file holds (so the oracle needs no other mode): every data block allocation takes a
// free extent exactly its minimum length (one block) long, so files fragment block by block and writeback
// converts delalloc and revalidates its cached mapping (xfs_iomap_valid, the stale-iomap checks of seed
// 000 / xfs/559) block by block. It fails where no one-block free extent exists: the runner makes them
// first (make_one_block_holes).
//
// Sets error tags of one mounted XFS: <dir>/<tag> = N makes the tagged site take its injected path one
// time in N (dir: /sys/fs/xfs/<dev>/errortag). The previous values come back on restore() or destruction
// (the tags also die with the mount). Throws WideningError naming the file when a tag is missing (another
// kernel version) or cannot be written.
class XfsErrortags {
 public:
  XfsErrortags(const std::string& dir, const std::map<std::string, int>& tags);
  ~XfsErrortags() { restore(); }
  XfsErrortags(const XfsErrortags&) = delete;
  XfsErrortags& operator=(const XfsErrortags&) = delete;
  void restore() noexcept;
  const std::string& dir() const { return dir_; }
  const std::map<std::string, int>& tags() const { return tags_; }

 private:
  std::string dir_;
  std::map<std::string, int> tags_, old_;
};

}  // namespace fsrace::widening
