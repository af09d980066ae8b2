#include "widening/dm.h"

#include <fcntl.h>
#include <dirent.h>
#include <fstream>
#include <fmt/core.h>
#include <linux/dm-ioctl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace fsrace::widening {

namespace {

constexpr const char* kControl = "/dev/mapper/control";

// An ioctl buffer: struct dm_ioctl followed by `extra` payload bytes (data_start = sizeof(dm_ioctl)).
struct DmBuf {
  std::vector<char> b;
  explicit DmBuf(size_t extra, const std::string& name = "") : b(sizeof(dm_ioctl) + extra, 0) {
    dm_ioctl* io = hdr();
    io->version[0] = DM_VERSION_MAJOR;
    io->version[1] = 0;
    io->version[2] = 0;
    io->data_size = uint32_t(b.size());
    io->data_start = sizeof(dm_ioctl);
    snprintf(io->name, sizeof io->name, "%s", name.c_str());
  }
  dm_ioctl* hdr() { return reinterpret_cast<dm_ioctl*>(b.data()); }
  char* payload() { return b.data() + sizeof(dm_ioctl); }
};

struct Control {
  int fd = -1;
  Control() {
    fd = open(kControl, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      // devtmpfs creates the node once dm-mod is loaded; a modular kernel loads it on demand
      if (system("modprobe -q dm-mod >/dev/null 2>&1") == 0) fd = open(kControl, O_RDWR | O_CLOEXEC);
    }
    if (fd < 0)
      throw DmError(errno == ENOENT
                        ? fmt::format("no {}: this kernel has no device-mapper (CONFIG_BLK_DEV_DM); use a kernel with it or drop dm-* from kwiden", kControl)
                        : fmt::format("cannot open {}: {} (device-mapper needs root)", kControl, strerror(errno)));
  }
  ~Control() { close(fd); }
  int call(unsigned long req, DmBuf& buf) { return ioctl(fd, req, buf.b.data()); }
};

}  // namespace

std::vector<std::pair<std::string, std::string>> dm_targets() {
  Control c;
  for (size_t extra = 4096;; extra *= 4) {
    DmBuf buf(extra);
    if (c.call(DM_LIST_VERSIONS, buf) != 0) throw DmError(fmt::format("DM_LIST_VERSIONS on {} failed: {}", kControl, strerror(errno)));
    if ((buf.hdr()->flags & DM_BUFFER_FULL_FLAG) && extra < (1u << 22)) continue;
    std::vector<std::pair<std::string, std::string>> out;
    size_t off = buf.hdr()->data_start;
    while (off + sizeof(dm_target_versions) < buf.b.size()) {
      const auto* v = reinterpret_cast<const dm_target_versions*>(buf.b.data() + off);
      out.emplace_back(std::string(v->name, strnlen(v->name, buf.b.size() - off - sizeof(*v))),
                       fmt::format("v{}.{}.{}", v->version[0], v->version[1], v->version[2]));
      if (!v->next) break;
      off += v->next;
    }
    return out;
  }
}

DmDevice::DmDevice(const std::string& name, const std::string& base, const std::string& target, const std::string& args,
                   const std::string& node_dir)
    : name_(name) {
  struct stat st;
  if (stat(base.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) throw DmError(fmt::format("{} is not a block device", base));
  int bfd = open(base.c_str(), O_RDONLY | O_CLOEXEC);
  uint64_t bytes = 0;
  if (bfd < 0 || ioctl(bfd, BLKGETSIZE64, &bytes) != 0) {
    int e = errno;
    if (bfd >= 0) close(bfd);
    throw DmError(fmt::format("cannot read the size of {}: {}", base, strerror(e)));
  }
  close(bfd);
  base_rdev_ = fmt::format("{}:{}", major(st.st_rdev), minor(st.st_rdev));
  sectors_ = bytes / 512;

  Control c;
  DmBuf create(0, name_);
  if (c.call(DM_DEV_CREATE, create) != 0) throw DmError(fmt::format("cannot create device-mapper device {}: {}", name_, strerror(errno)));
  dev_t d = dev_t(create.hdr()->dev);
  minor_ = minor(d);
  auto undo = [&](const std::string& what, int e) {
    DmBuf rm(0, name_);
    c.call(DM_DEV_REMOVE, rm);
    throw DmError(fmt::format("device-mapper device {} ({}): {}: {}", name_, table_, what, strerror(e)));
  };
  try {
    load_table(target, args);
  } catch (const DmError& e) {
    DmBuf rm(0, name_);
    c.call(DM_DEV_REMOVE, rm);
    throw;
  }
  DmBuf resume(0, name_);  // DM_DEV_SUSPEND without DM_SUSPEND_FLAG: resume, making the loaded table live
  if (c.call(DM_DEV_SUSPEND, resume) != 0) undo("resume failed", errno);

  dev_ = fmt::format("/dev/dm-{}", minor_);
  for (int i = 0; i < 200; ++i) {  // devtmpfs adds the node asynchronously
    struct stat ds;
    if (stat(dev_.c_str(), &ds) == 0 && S_ISBLK(ds.st_mode) && ds.st_rdev == d) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  made_node_ = node_dir + "/" + kernel_name();
  unlink(made_node_.c_str());
  if (mknod(made_node_.c_str(), S_IFBLK | 0600, d) != 0) undo(fmt::format("no /dev/dm-{} and mknod {} failed", minor_, made_node_), errno);
  dev_ = made_node_;
}

std::string DmDevice::kernel_name() const { return fmt::format("dm-{}", minor_); }

// Loads "0 <sectors> <target> <args>" as the device's inactive table.
void DmDevice::load_table(const std::string& target, const std::string& args) {
  std::string a = args;
  for (size_t p; (p = a.find("{dev}")) != std::string::npos;) a.replace(p, 5, base_rdev_);
  std::string table = fmt::format("0 {} {} {}", sectors_, target, a);
  Control c;
  DmBuf load(sizeof(dm_target_spec) + a.size() + 8, name_);
  load.hdr()->target_count = 1;
  auto* spec = reinterpret_cast<dm_target_spec*>(load.payload());
  spec->sector_start = 0;
  spec->length = sectors_;
  snprintf(spec->target_type, sizeof spec->target_type, "%s", target.c_str());
  memcpy(load.payload() + sizeof(dm_target_spec), a.c_str(), a.size() + 1);
  if (c.call(DM_TABLE_LOAD, load) != 0)
    throw DmError(fmt::format("device-mapper device {} ({}): loading the table failed (target '{}' missing or arguments "
                              "refused; see dmesg): {}",
                              name_, table, target, strerror(errno)));
  table_ = table;
}

void DmDevice::reload(const std::string& target, const std::string& args, bool skip_lockfs) {
  load_table(target, args);
  Control c;
  // Resuming a device that has an inactive table suspends it (freezing the filesystem on top unless
  // DM_SKIP_LOCKFS_FLAG), swaps the tables and resumes.
  DmBuf resume(0, name_);
  if (skip_lockfs) resume.hdr()->flags |= DM_SKIP_LOCKFS_FLAG;
  if (c.call(DM_DEV_SUSPEND, resume) != 0)
    throw DmError(fmt::format("device-mapper device {}: switching to table '{}' failed: {}", name_, table_, strerror(errno)));
}

bool remove_dm_device(const std::string& name) {
  try {
    Control c;
    for (int i = 0; i < 100; ++i) {  // EBUSY while the last close / umount is still draining
      DmBuf rm(0, name);
      if (c.call(DM_DEV_REMOVE, rm) == 0) return true;
      if (errno != EBUSY) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } catch (const DmError&) {
  }
  return false;
}

std::vector<std::string> dm_device_names(const std::string& prefix) {
  std::vector<std::string> out;
  DIR* d = opendir("/sys/block");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (std::strncmp(e->d_name, "dm-", 3) != 0) continue;
    std::ifstream in(fmt::format("/sys/block/{}/dm/name", e->d_name));
    std::string n;
    if (std::getline(in, n) && n.rfind(prefix, 0) == 0) out.push_back(n);
  }
  closedir(d);
  return out;
}

DmDevice::~DmDevice() {
  remove_dm_device(name_);
  if (!made_node_.empty()) unlink(made_node_.c_str());
}

}  // namespace fsrace::widening
