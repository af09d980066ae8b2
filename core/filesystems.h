// The filesystem table: everything fsrace knows about a filesystem type, as data (no I/O). Adding a
// filesystem = a row here plus, where it needs a device other than a block device, a testbed kind
// (harness/testbed.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fsrace {

// What a filesystem needs underneath it; the testbed builds that.
enum class FsBacking {
  kBlockDevice,  // a loop device (host) or a virtio disk (VM), mkfs per case
  kPmem,         // a persistent-memory device (fsdax), mkfs per case, mounted with dax
  kCluster,      // a running cluster (ceph): no mkfs, a fresh directory tree per case
};
const char* fs_backing_name(FsBacking b);

// Space accounting slack (harness/verify.cpp check_space): metadata a file may count in st_blocks is
// meta_base + blocks / meta_per_blocks; free space may differ from the model by free_slack blocks.
struct FsSpaceSlack {
  uint64_t meta_base = 2;
  uint64_t meta_per_blocks = 256;
  uint64_t free_slack = 1;
  // Unlinked inodes are freed in the background (XFS inactivation): only the free space after a
  // remount is checked, not right after the unlink.
  bool frees_lazily = false;
};

struct FilesystemInfo {
  std::string name;                       // campaign and case name: "ext4", "ext4-dax"
  std::string fstype;                     // the kernel's filesystem type for mount(2): "" = name
  std::string mkfs;                       // program: "mkfs.ext4"
  std::vector<std::string> mkfs_defaults; // default [fs.<name>] mkfs_options (before the device)
  std::string mount_defaults;             // default mount_options ("" = none)
  std::vector<std::string> fsck;          // read-only check, the device appended: {"e2fsck", "-fn"}
  std::string package;                    // Debian package with mkfs and fsck
  std::string kernel_module;              // module name (the VM initramfs loads it when not built in)
  uint64_t min_size_mib = 16;             // smallest device_size_mib mkfs accepts
  uint64_t default_size_mib = 256;
  FsSpaceSlack slack;
  FsBacking backing = FsBacking::kBlockDevice;
  // Kernel-log lines that say the mount replayed a journal / log (the dm-flakey power cut records them).
  std::vector<std::string> recovery_markers;
  // In a campaign that names no filesystems. Rows that need a device a plain machine lacks (pmem) or a
  // cluster are only run when named.
  bool in_default_campaign = true;
  // The kernel's filesystem type ("ext4" for ext4-dax): what mount(2), /proc/filesystems, modprobe and
  // the filesystem-specific widening and probes go by.
  const std::string& kernel_type() const { return fstype.empty() ? name : fstype; }
  // ---- cluster filesystems (backing kCluster) ----
  std::vector<std::string> cluster_tools;     // programs the cluster bootstrap runs (preflight checks them)
  std::string fsck_not_applicable;            // why no fsck runs ("" = the fsck above applies)
  std::string space_not_applicable;           // why the space-leak check does not apply ("" = it does)
  // Workload ops the filesystem refuses (EOPNOTSUPP): "zero-range", "falloc", "shift" (collapse / insert
  // range). The engine skips and counts them (ScenarioEnv::unsupported_ops); unsupported_reason says why.
  std::vector<std::string> unsupported_ops;
  std::string unsupported_reason;
};

const std::vector<FilesystemInfo>& filesystem_table();
// nullptr when unknown.
const FilesystemInfo* find_filesystem(const std::string& name);
std::vector<std::string> filesystem_names();
// The kernel filesystem type of a table row by name ("xfs" for "xfs-dax"); the name itself if unknown.
std::string kernel_fs_type(const std::string& name);

}  // namespace fsrace
