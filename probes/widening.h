// Kernel-side widening techniques besides the BPF delays (delay.h): error injection through
// bpf_override_return or fail_function, device-mapper delay / flakey targets under the filesystem, XFS
// errortags. Each is detected on the running kernel and reported as available or unavailable with the
// reason. The runner drives override-return / fail-function (probes/inject.h) and dm-delay (probes/dm.h)
// when available; dm-flakey and xfs-errortag are detected and reported only (a run says "ran": false).
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "probes/catalog.h"

namespace fsrace::probes {

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

}  // namespace fsrace::probes
