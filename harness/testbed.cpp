#include "harness/testbed.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#include <linux/stat.h>

#include <fstream>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fmt/core.h>
#include <atomic>
#include <thread>

#include "core/util.h"
#include "harness/ceph_cluster.h"
#include "widening/dm.h"

namespace fsrace {

LoopDevice::LoopDevice(const std::string& image, uint64_t size_mib) : image_(image) {
  int ifd = open(image.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (ifd < 0) throw Fatal(fmt::format("cannot create image {}: {}", image, strerror(errno)));
  if (ftruncate(ifd, off_t(size_mib) << 20) != 0) {
    int e = errno;
    close(ifd);
    throw Fatal(fmt::format("cannot size image {}: {}", image, strerror(e)));
  }
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0) {
    close(ifd);
    throw Fatal(fmt::format("cannot open /dev/loop-control: {}; load it with 'modprobe loop'", strerror(errno)));
  }
  std::string err;
  for (int attempt = 0; attempt < 20 && fd_ < 0; ++attempt) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0) {
      err = fmt::format("LOOP_CTL_GET_FREE: {}", strerror(errno));
      break;
    }
    std::string dev = fmt::format("/dev/loop{}", n);
    int lfd = -1;
    for (int w = 0; w < 50 && lfd < 0; ++w) {  // udev may still be creating the node
      lfd = open(dev.c_str(), O_RDWR | O_CLOEXEC);
      if (lfd < 0 && errno == ENOENT) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      else break;
    }
    if (lfd < 0) {
      err = fmt::format("{}: {}", dev, strerror(errno));
      continue;
    }
    loop_config cfg{};
    cfg.fd = uint32_t(ifd);
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    std::snprintf(reinterpret_cast<char*>(cfg.info.lo_file_name), LO_NAME_SIZE, "%s", image.c_str());
    int r = ioctl(lfd, LOOP_CONFIGURE, &cfg);
    if (r != 0 && (errno == EINVAL || errno == ENOTTY)) {  // kernels before 5.8
      r = ioctl(lfd, LOOP_SET_FD, ifd);
      if (r == 0) {
        loop_info64 info{};
        info.lo_flags = LO_FLAGS_AUTOCLEAR;
        std::snprintf(reinterpret_cast<char*>(info.lo_file_name), LO_NAME_SIZE, "%s", image.c_str());
        ioctl(lfd, LOOP_SET_STATUS64, &info);
      }
    }
    if (r != 0) {
      err = fmt::format("{}: {}", dev, strerror(errno));
      close(lfd);
      continue;  // EBUSY: someone else took it; try the next free one
    }
    fd_ = lfd;
    dev_ = dev;
  }
  close(ctl);
  close(ifd);
  if (fd_ < 0) {
    unlink(image.c_str());
    throw Fatal(fmt::format("cannot attach a loop device for {}: {}", image, err));
  }
}

LoopDevice::~LoopDevice() {
  if (fd_ >= 0) {
    ioctl(fd_, LOOP_CLR_FD, 0);
    close(fd_);
  }
  unlink(image_.c_str());
}

std::string LoopDevice::name() const { return dev_.substr(dev_.rfind('/') + 1); }

Staging::Staging(const ScenarioSpec& spec, const ScenarioConfig& sc, const std::string& work_dir, const std::string& dm_name) {
  if (!spec.staging_mib) return;
  wanted_ = true;
  delay_ms_ = sc.params.count("pin_delay_ms") ? uint64_t(sc.i("pin_delay_ms")) : 0;
  try {
    loop_.emplace(work_dir + "/staging.img", spec.staging_mib);
  } catch (const Fatal& e) {
    error_ = fmt::format("no staging device: {}", e.what());
    return;
  }
  dev_ = loop_->dev();
  bytes_ = spec.staging_mib << 20;
  if (!delay_ms_) return;
  try {  // reads delayed, writes not: "<dev> 0 <read ms> <dev> 0 0"
    dm_ = std::make_unique<widening::DmDevice>(dm_name, dev_, "delay", fmt::format("{{dev}} 0 {} {{dev}} 0 0", delay_ms_), work_dir);
    dev_ = dm_->dev();
  } catch (const widening::DmError& e) {
    error_ = fmt::format("staging reads not delayed (pins held only as long as the copy): {}", e.what());
  }
}

Staging::~Staging() {
  dm_.reset();  // before the loop device under it
  loop_.reset();
}

nlohmann::json Staging::record() const {
  if (!wanted_) return nullptr;
  return {{"device", dev_}, {"bytes", bytes_}, {"read_delay_ms", dm_ ? delay_ms_ : 0}, {"error", error_}};
}

void make_filesystem(const FsConfig& fs, const std::string& dev) {
  const FilesystemInfo* fi = find_filesystem(fs.type);
  if (!fi) throw Fatal(fmt::format("unknown filesystem '{}'", fs.type));
  std::vector<std::string> argv = {fi->mkfs};
  argv.insert(argv.end(), fs.mkfs_options.begin(), fs.mkfs_options.end());
  argv.push_back(dev);
  CommandResult r = run_command(argv);
  if (r.status != 0 && stop_requested().load()) throw Fatal(fmt::format("interrupted while '{}' ran", argv[0]), kExitInterrupted);
  if (r.status != 0) {
    // mkfs tools print usage text and prompts around the reason: keep the lines that carry it.
    std::string last, fallback;
    size_t pos = 0;
    while (pos < r.output.size()) {
      size_t nl = r.output.find('\n', pos);
      std::string line = r.output.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? r.output.size() : nl + 1;
      while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
      if (line.empty()) continue;
      fallback = line;
      static const char* kKeys[] = {"nvalid", "rror", "too big", "too small", "not usable", "annot", "nknown", "illegal"};
      bool key = false;
      for (const char* k : kKeys) key |= line.find(k) != std::string::npos;
      if (key && std::count(last.begin(), last.end(), ';') < 2) last += (last.empty() ? "" : "; ") + line;
    }
    if (last.empty()) last = fallback;
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    throw Fatal(fmt::format("'{}' failed (exit {}): {}; check mkfs_options in [fs.{}]", cmd, r.status, last, fs.type));
  }
}

FsckResult check_filesystem(const std::string& fs_type, const std::string& dev) {
  FsckResult r;
  const FilesystemInfo* fi = find_filesystem(fs_type);
  if (!fi || fi->fsck.empty()) {
    r.command = "(no read-only fsck for " + fs_type + ")";
    r.clean = true;
    return r;
  }
  std::vector<std::string> argv = fi->fsck;
  argv.push_back(dev);
  for (const auto& a : argv) r.command += (r.command.empty() ? "" : " ") + a;
  CommandResult c = run_command(argv);
  r.status = c.status;
  r.clean = c.status == 0;
  // The report: the lines past the tool's phase banners, at most 20.
  size_t pos = 0, kept = 0;
  while (pos < c.output.size() && kept < 20) {
    size_t nl = c.output.find('\n', pos);
    std::string line = c.output.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? c.output.size() : nl + 1;
    if (line.empty() || line.rfind("Pass ", 0) == 0 || line.rfind("Phase ", 0) == 0 || line.rfind("        - ", 0) == 0) continue;
    r.excerpt += line + "\n";
    ++kept;
  }
  if (c.status < 0) r.excerpt = fmt::format("{} could not run (install {})", argv[0], fi->package);
  return r;
}

Mount::Mount(const std::string& dev, const std::string& dir, const FsConfig& fs, const std::string& hidden_options)
    : dev_(dev), dir_(dir), type_(kernel_fs_type(fs.type)) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw Fatal(fmt::format("cannot create mount point {}: {}", dir, strerror(errno)));
  std::string data = hidden_options;
  if (!fs.mount_options.empty()) data += (data.empty() ? "" : ",") + fs.mount_options;
  if (mount(dev.c_str(), dir.c_str(), type_.c_str(), 0, data.empty() ? nullptr : data.c_str()) != 0)
    throw Fatal(fmt::format("mount -t {} {} {} (options '{}') failed: {}; check mount_options in [fs.{}] and dmesg",
                                 type_, dev, dir, fs.mount_options, strerror(errno), fs.type));
  mounted_ = true;
}

void Mount::unmount() {
  if (!mounted_) return;
  for (int i = 0; i < 100; ++i) {
    if (umount2(dir_.c_str(), 0) == 0) {
      mounted_ = false;
      return;
    }
    if (errno != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int e = errno;
  throw Fatal(fmt::format("cannot unmount {}: {}", dir_, strerror(e)));
}

Mount::~Mount() {
  if (!mounted_) return;
  try {
    unmount();
  } catch (...) {
    umount2(dir_.c_str(), MNT_DETACH);  // last resort: lazy unmount so nothing stays visible
  }
}

Testbed::Testbed(const TestbedSpec& spec)
    : spec_(spec), info_(find_filesystem(spec.fs.type)), work_(spec.workdir, fmt::format("{}{}.", kWorkPrefix, getpid())) {
  if (!info_) throw Fatal(fmt::format("unknown filesystem '{}'", spec.fs.type));
  if (info_->backing == FsBacking::kCluster) {
    // No device and no mkfs: the cluster runs for the whole run; the case gets its own fresh tree.
    if (!spec.cluster) throw Fatal(fmt::format("{} needs a running cluster and none was started (internal error)", info_->name));
    if (spec.layer) layer_error_ = fmt::format("device-mapper layers need a block device under the filesystem; {} has none "
                                               "(a cluster filesystem): kernel-side widening by a device layer is not run",
                                               info_->name);
    dev_ = spec.cluster->mount_source();
    dev_name_ = "ceph";
    mnt_dir_ = work_.path() + "/mnt";
    mount();
    static std::atomic<unsigned> tree{0};
    test_dir_ = fmt::format("{}/fsrace.{}.{}.{:x}", mnt_dir_, getpid(), tree++, now_ns() & 0xffffff);
    if (mkdir(test_dir_.c_str(), 0755) != 0) throw Fatal(fmt::format("cannot create {}: {}", test_dir_, strerror(errno)));
    return;
  }
  if (info_->backing == FsBacking::kPmem) {
    if (spec.device.empty())
      throw Fatal(fmt::format("{} needs a persistent-memory device (fsdax /dev/pmemN): run it in VM mode (--kernel K), "
                              "where the guest gets an emulated NVDIMM", info_->name));
    pmem_ = ensure_fsdax(spec.device);
    if (!pmem_->error.empty()) throw Fatal(fmt::format("{}: {}", info_->name, pmem_->error));
    if (spec.layer) {
      // dm-flakey / dm-delay do not pass DAX through: the filesystem would silently stop being DAX.
      layer_error_ = fmt::format("device-mapper layer {} not stacked: {} needs the pmem device itself (dm-{} has no DAX "
                                 "support)", spec.layer->target, info_->name, spec.layer->target);
      spec_.layer.reset();
    }
  }
  if (!spec.device.empty()) {
    dev_ = spec.device;
    dev_name_ = dev_.substr(dev_.rfind('/') + 1);
  } else {
    loop_.emplace(work_.path() + "/disk.img", spec.fs.device_size_mib);
    dev_ = loop_->dev();
    dev_name_ = loop_->name();
  }
  devices_.insert(dev_name_);
  if (spec_.layer) {
    try {
      dm_ = std::make_unique<widening::DmDevice>(spec.layer_name, dev_, spec.layer->target, spec.layer->args, work_.path());
      dev_ = dm_->dev();
      dev_name_ = dm_->kernel_name();
      devices_.insert(dev_name_);
    } catch (const widening::DmError& e) {
      layer_error_ = e.what();
    }
  }
  if (!spec.reuse) make_filesystem(spec.fs, dev_);
  mnt_dir_ = work_.path() + "/mnt";
  mount();
  test_dir_ = mnt_dir_ + "/fsrace";
  if (mkdir(test_dir_.c_str(), 0755) != 0 && !(spec.reuse && errno == EEXIST)) throw Fatal(fmt::format("cannot create {}: {}", test_dir_, strerror(errno)));
  if (pmem_) {
    // A filesystem that cannot do DAX on this device mounts anyway and says so only in the kernel log
    // ("DAX unsupported by block device. Turning off DAX."): check a file, never assume.
    std::string probe = test_dir_ + "/.dax-check";
    int fd = open(probe.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) throw Fatal(fmt::format("cannot create {}: {}", probe, strerror(errno)));
    close(fd);
    int d = statx_dax(probe);
    unlink(probe.c_str());
    if (d != 1)
      throw Fatal(fmt::format("{} on {} mounted with '{}' but its files are not DAX ({}): the kernel lacks CONFIG_FS_DAX or "
                              "the filesystem refused DAX on this device (see the kernel log); use a kernel with FS_DAX",
                              info_->name, dev_, spec_.fs.mount_options,
                              d < 0 ? "statx does not report STATX_ATTR_DAX: kernel before 5.8" : "statx: no STATX_ATTR_DAX"));
  }
}

int statx_dax(const std::string& path) {
  struct statx sx{};
  if (statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) != 0) return -1;
  if (!(sx.stx_attributes_mask & STATX_ATTR_DAX)) return -1;
  return (sx.stx_attributes & STATX_ATTR_DAX) ? 1 : 0;
}

namespace {
std::string sys_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}
// The nd device under /sys/block/<name>/device: namespaceX.Y (raw), pfnX.Y (fsdax), bttX.Y (sector).
std::string nd_device_of(const std::string& name) {
  char buf[512];
  ssize_t n = readlink(fmt::format("/sys/block/{}/device", name).c_str(), buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = 0;
  std::string t = buf;
  return t.substr(t.rfind('/') + 1);
}
std::string mode_of(const std::string& nd) {
  if (nd.rfind("pfn", 0) == 0) return "fsdax";
  if (nd.rfind("btt", 0) == 0) return "sector";
  if (nd.rfind("namespace", 0) == 0) return "raw";
  return "unknown";
}
}  // namespace

PmemInfo ensure_fsdax(const std::string& dev) {
  PmemInfo p;
  p.dev = dev;
  std::string name = dev.substr(dev.rfind('/') + 1);
  struct stat st;
  if (stat(dev.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) {
    p.error = fmt::format("{} is not a block device: the guest has no persistent memory (the kernel needs ACPI_NFIT, LIBNVDIMM "
                          "and BLK_DEV_PMEM; see console.log for the module load)", dev);
    return p;
  }
  auto refresh = [&] {
    std::string nd = nd_device_of(name);
    p.mode = mode_of(nd);
    p.dax_capable = sys_line(fmt::format("/sys/block/{}/queue/dax", name)) == "1";
    p.size_bytes = uint64_t(std::strtoull(sys_line(fmt::format("/sys/block/{}/size", name)).c_str(), nullptr, 10)) * 512;
    if (p.mode == "raw") p.namespace_ = nd;
    else if (!nd.empty()) {
      std::string ns = sys_line(fmt::format("/sys/block/{}/device/namespace", name));
      p.namespace_ = ns.empty() ? nd : ns;
    }
  };
  refresh();
  if (p.mode == "fsdax" && p.dax_capable) return p;
  if (p.mode != "raw" || p.namespace_.empty()) {
    p.error = fmt::format("{} is a {} pmem device without DAX support (queue/dax = {}); reconfigure it as fsdax with "
                          "'ndctl create-namespace -f -e <namespace> -m fsdax'", dev, p.mode, p.dax_capable ? 1 : 0);
    return p;
  }
  if (!find_in_path("ndctl")) {
    p.error = fmt::format("{} is a raw pmem namespace and ndctl is missing to make it fsdax: run 'make deps' (installs ndctl)", dev);
    return p;
  }
  uint64_t t0 = now_ns();
  CommandResult r = run_command({"ndctl", "create-namespace", "-f", "-e", p.namespace_, "-m", "fsdax"});
  p.convert_s = double(now_ns() - t0) / 1e9;
  p.converted = true;
  if (r.status != 0) {
    std::string last = r.output;
    while (!last.empty() && (last.back() == '\n' || last.back() == ' ')) last.pop_back();
    if (auto nl = last.rfind('\n'); nl != std::string::npos) last = last.substr(nl + 1);
    p.error = fmt::format("'ndctl create-namespace -f -e {} -m fsdax' failed (exit {}): {}", p.namespace_, r.status, last);
    return p;
  }
  // The block device is re-created under the pfn device; udev-less guests get the node from devtmpfs.
  for (int i = 0; i < 100; ++i) {
    refresh();
    if (p.mode == "fsdax" && p.dax_capable && stat(dev.c_str(), &st) == 0) return p;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  p.error = fmt::format("{} is still not fsdax after ndctl (mode {}, queue/dax {})", dev, p.mode, p.dax_capable ? 1 : 0);
  return p;
}

Testbed::~Testbed() {
  // A cluster outlives the case: its tree goes (files the verification did not unlink, the directory).
  if (info_ && info_->backing == FsBacking::kCluster && !test_dir_.empty()) {
    try {
      mount();
      run_command({"rm", "-rf", "--one-file-system", test_dir_});
      unmount();
    } catch (...) {
    }
  }
}

namespace {
// Is `pid` a running fsrace? (A dead pid, or one reused by another program, owns nothing any more.)
bool fsrace_alive(long pid) {
  std::ifstream in(fmt::format("/proc/{}/comm", pid));
  std::string comm;
  return std::getline(in, comm) && comm.rfind("fsrace", 0) == 0;
}
}  // namespace

std::vector<std::string> recover_leftovers(const std::string& workdir) {
  std::vector<std::string> done;
  DIR* d = opendir(workdir.c_str());
  if (!d) return done;
  std::vector<std::pair<long, std::string>> dead;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind(kWorkPrefix, 0) != 0) continue;
    char* end = nullptr;
    long pid = std::strtol(n.c_str() + std::strlen(kWorkPrefix), &end, 10);
    if (pid <= 0 || !end || *end != '.' || pid == getpid() || fsrace_alive(pid)) continue;
    dead.emplace_back(pid, workdir + "/" + n);
  }
  closedir(d);
  for (const auto& [pid, dir] : dead) {
    std::vector<std::string> what;
    // Mounts below the work directory, deepest first.
    std::vector<std::string> mounts;
    std::ifstream mi("/proc/self/mounts");
    std::string dev, mp, rest;
    while (mi >> dev >> mp && std::getline(mi, rest))
      if (mp.rfind(dir + "/", 0) == 0) mounts.push_back(mp);
    std::sort(mounts.rbegin(), mounts.rend());
    for (const auto& m : mounts) {
      if (umount2(m.c_str(), 0) != 0) umount2(m.c_str(), MNT_DETACH);
      what.push_back("mount " + m);
    }
    for (const auto& n : widening::dm_device_names(fmt::format("fsrace-{}-", pid)))
      if (widening::remove_dm_device(n)) what.push_back("dm device " + n);
    // Loop devices whose image is in the work directory (autoclear detaches most once unmounted).
    if (DIR* sb = opendir("/sys/block")) {
      while (dirent* e = readdir(sb)) {
        if (std::strncmp(e->d_name, "loop", 4) != 0) continue;
        std::ifstream bf(fmt::format("/sys/block/{}/loop/backing_file", e->d_name));
        std::string backing;
        if (!std::getline(bf, backing) || backing.rfind(dir + "/", 0) != 0) continue;
        int fd = open(fmt::format("/dev/{}", e->d_name).c_str(), O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
          ioctl(fd, LOOP_CLR_FD, 0);
          close(fd);
        }
        what.push_back(fmt::format("loop device /dev/{}", e->d_name));
      }
      closedir(sb);
    }
    run_command({"rm", "-rf", "--one-file-system", dir});
    what.push_back(path_exists(dir) ? "(could not remove " + dir + ": remove it by hand)" : "work directory " + dir);
    std::string line;
    for (const auto& w : what) line += (line.empty() ? "" : ", ") + w;
    done.push_back(fmt::format("removed what a killed fsrace (pid {}) left behind: {}", pid, line));
  }
  return done;
}  // members unwind in reverse: mount, dm layer, loop device, work dir

void Testbed::mount() {
  if (mnt_) return;
  if (spec_.cluster && info_->backing == FsBacking::kCluster) mnt_.emplace(dev_, mnt_dir_, spec_.fs, spec_.cluster->auth_options());
  else mnt_.emplace(dev_, mnt_dir_, spec_.fs);
}

void Testbed::unmount() {
  if (!mnt_) return;
  mnt_->unmount();
  mnt_.reset();
}

FsckResult Testbed::fsck() {
  unmount();
  if (!info_->fsck_not_applicable.empty()) {
    FsckResult r;
    r.command = "(not applicable)";
    r.status = -1;
    r.clean = true;
    r.excerpt = info_->fsck_not_applicable;
    return r;
  }
  return check_filesystem(spec_.fs.type, dev_);
}

}  // namespace fsrace
