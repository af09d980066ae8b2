#include "core/filesystems.h"

namespace fsrace {

const char* fs_backing_name(FsBacking b) {
  switch (b) {
    case FsBacking::kBlockDevice: return "block-device";
    case FsBacking::kPmem: return "pmem";
    case FsBacking::kCluster: return "cluster";
  }
  return "?";
}

const std::vector<FilesystemInfo>& filesystem_table() {
  static const std::vector<FilesystemInfo> t = {
      {
          .name = "ext4",
          .mkfs = "mkfs.ext4",
          .mkfs_defaults = {"-q", "-F", "-b", "4096"},
          .mount_defaults = "",
          .fsck = {"e2fsck", "-fn"},
          .package = "e2fsprogs",
          .kernel_module = "ext4",
          .min_size_mib = 16,
          .default_size_mib = 256,
          // Measured: ext4 accounts exactly (0 blocks of difference over many runs); one block of slack.
          // Metadata in st_blocks is the extent tree: a 4 KiB leaf holds 340 extents and is at least half
          // full after splits, and a file has at most one extent per block, so leaves <= blocks / 170 + 1,
          // plus index blocks: blocks / 128 bounds both. (256 was too tight: an 8 MiB file initialised
          // every other block — 1024 extents — took 13 blocks where 10 were allowed, stock 6.18.)
          .slack = {.meta_base = 2, .meta_per_blocks = 128, .free_slack = 1, .frees_lazily = false},
          .backing = FsBacking::kBlockDevice,
          .recovery_markers = {"recovery complete"},
      },
      {
          .name = "xfs",
          .mkfs = "mkfs.xfs",
          .mkfs_defaults = {"-q", "-f", "-b", "size=4096"},
          .mount_defaults = "",
          .fsck = {"xfs_repair", "-n"},
          .package = "xfsprogs",
          .kernel_module = "xfs",
          .min_size_mib = 300,  // mkfs.xfs refuses filesystems below 300 MiB
          .default_size_mib = 320,
          // Free-space btree splits take a few blocks; inactivation of unlinked inodes is deferred.
          .slack = {.meta_base = 4, .meta_per_blocks = 128, .free_slack = 8, .frees_lazily = true},
          .backing = FsBacking::kBlockDevice,
          .recovery_markers = {"Starting recovery", "Ending recovery"},
      },
      {
          // The kernel client (fs/ceph, net/ceph) on a single-node cluster the run starts once
          // (harness/ceph_cluster.h): one mon, mgr, OSD and MDS on 127.0.0.1, cephx on, pools of size 1.
          .name = "ceph",
          .mkfs = "",
          .mkfs_defaults = {},
          .mount_defaults = "",
          .fsck = {},
          .package = "ceph-mon ceph-osd ceph-mds ceph-mgr ceph-common",
          .kernel_module = "ceph",
          .min_size_mib = 0,
          .default_size_mib = 0,
          .slack = {},
          .backing = FsBacking::kCluster,
          .recovery_markers = {},
          .in_default_campaign = false,
          .cluster_tools = {"ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds", "ceph", "ceph-authtool", "monmaptool"},
          .fsck_not_applicable = "ceph has no offline read-only fsck of a client's tree (the MDS's scrub is online "
                                 "and cluster-wide): not run",
          .space_not_applicable = "ceph's st_blocks is the file size rounded up (fs/ceph/inode.c), not allocation, "
                                  "and statfs reports the whole cluster's pools, updated asynchronously by the OSDs: "
                                  "the space-leak check does not apply",
          .unsupported_ops = {"zero-range", "falloc", "shift"},
          .unsupported_reason = "ceph_fallocate accepts only PUNCH_HOLE|KEEP_SIZE (EOPNOTSUPP for zero range, "
                                "plain allocation, collapse / insert range): those ops are skipped, counted as "
                                "<op>-skipped-unsupported in ops.by_kind",
      },
  };
  // DAX on persistent memory (QEMU NVDIMM in VM mode, an fsdax namespace): the block-device row on
  // /dev/pmemN instead, mounted dax=always; the testbed confirms with statx(STATX_ATTR_DAX) that the
  // test files are DAX. Only run when a campaign names them.
  auto dax = [](FilesystemInfo f) {
    f.fstype = f.name;
    f.name += "-dax";
    f.mount_defaults = "dax=always";
    f.backing = FsBacking::kPmem;
    f.in_default_campaign = false;
    return f;
  };
  static const std::vector<FilesystemInfo> all = [&] {
    std::vector<FilesystemInfo> v = t;
    FilesystemInfo e = dax(t[0]);
    e.min_size_mib = 64;
    FilesystemInfo x = dax(t[1]);
    // reflink and DAX were mutually exclusive until 6.0 and stay experimental after: off.
    x.mkfs_defaults.insert(x.mkfs_defaults.end(), {"-m", "reflink=0"});
    v.push_back(e);
    v.push_back(x);
    return v;
  }();
  return all;
}

std::string kernel_fs_type(const std::string& name) {
  const FilesystemInfo* f = find_filesystem(name);
  return f ? f->kernel_type() : name;
}

const FilesystemInfo* find_filesystem(const std::string& name) {
  for (const auto& f : filesystem_table())
    if (f.name == name) return &f;
  return nullptr;
}

std::vector<std::string> filesystem_names() {
  std::vector<std::string> v;
  for (const auto& f : filesystem_table()) v.push_back(f.name);
  return v;
}

}  // namespace fsrace
