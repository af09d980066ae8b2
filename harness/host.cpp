#include "harness/host.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/core.h>
#include <algorithm>
#include <fstream>
#include <thread>

#include "harness/util.h"

extern char** environ;

namespace fsrace {

std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

namespace {
void on_signal(int) { stop_requested().store(true); }
}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
}

CommandResult run_command(const std::vector<std::string>& argv) {
  CommandResult res;
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return res;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  // The child must not inherit our SIGINT handling: a terminal ^C reaches it directly.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGINT);
  sigaddset(&def, SIGTERM);
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    res.output = strerror(rc);
    return res;
  }
  char buf[4096];
  for (;;) {
    ssize_t n = read(pipefd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    res.output.append(buf, size_t(n));
  }
  close(pipefd[0]);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  res.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return res;
}

bool find_in_path(const std::string& prog) {
  const char* p = getenv("PATH");
  std::string path = p ? p : "/usr/sbin:/usr/bin:/sbin:/bin";
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t c = path.find(':', pos);
    std::string dir = path.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
    if (!dir.empty() && access((dir + "/" + prog).c_str(), X_OK) == 0) return true;
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  return false;
}

bool fs_registered(const std::string& type) {
  std::ifstream in("/proc/filesystems");
  std::string line;
  while (std::getline(in, line)) {
    auto tab = line.rfind('\t');
    if ((tab == std::string::npos ? line : line.substr(tab + 1)) == type) return true;
  }
  return false;
}

void preflight_host(const std::vector<FsConfig>& filesystems, bool need_loop) {
  if (geteuid() != 0)
    throw UsageError("host mode needs root (loop devices, mkfs, mount, /dev/kmsg): run it as root or with sudo");
  struct stat st;
  if (need_loop && stat("/dev/loop-control", &st) != 0)
    throw UsageError(fmt::format("no loop device support: /dev/loop-control: {}; load it with 'modprobe loop'", strerror(errno)));
  if (need_loop && !S_ISCHR(st.st_mode))
    throw UsageError("no loop device support: /dev/loop-control is not a character device; load the loop module with 'modprobe loop'");
  for (const auto& fs : filesystems) {
    std::string mkfs = "mkfs." + fs.type;
    if (!find_in_path(mkfs))
      throw UsageError(fmt::format("{} not found: run 'make deps' (installs {})", mkfs, fs.type == "xfs" ? "xfsprogs" : "e2fsprogs"));
    if (!fs_registered(fs.type)) {
      run_command({"modprobe", fs.type});
      if (!fs_registered(fs.type))
        throw UsageError(fmt::format("the running kernel does not support {} (not in /proc/filesystems, 'modprobe {}' failed): "
                                     "use a kernel with {} or drop it from the campaign (--fs)", fs.type, fs.type, fs.type));
    }
  }
}

TempDir::TempDir(const std::string& parent, const std::string& prefix) {
  std::string tmpl = parent + "/" + prefix + "XXXXXX";
  std::vector<char> b(tmpl.begin(), tmpl.end());
  b.push_back(0);
  if (!mkdtemp(b.data())) throw UsageError(fmt::format("cannot create a work directory in {}: {}", parent, strerror(errno)));
  path_ = b.data();
}

TempDir::~TempDir() { run_command({"rm", "-rf", "--one-file-system", path_}); }

LoopDevice::LoopDevice(const std::string& image, uint64_t size_mib) : image_(image) {
  int ifd = open(image.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (ifd < 0) throw UsageError(fmt::format("cannot create image {}: {}", image, strerror(errno)));
  if (ftruncate(ifd, off_t(size_mib) << 20) != 0) {
    int e = errno;
    close(ifd);
    throw UsageError(fmt::format("cannot size image {}: {}", image, strerror(e)));
  }
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0) {
    close(ifd);
    throw UsageError(fmt::format("cannot open /dev/loop-control: {}; load it with 'modprobe loop'", strerror(errno)));
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
    throw UsageError(fmt::format("cannot attach a loop device for {}: {}", image, err));
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

void make_filesystem(const FsConfig& fs, const std::string& dev) {
  std::vector<std::string> argv = {"mkfs." + fs.type};
  argv.insert(argv.end(), fs.mkfs_options.begin(), fs.mkfs_options.end());
  argv.push_back(dev);
  CommandResult r = run_command(argv);
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
    throw UsageError(fmt::format("'{}' failed (exit {}): {}; check mkfs_options in [fs.{}]", cmd, r.status, last, fs.type));
  }
}

FsckResult check_filesystem(const std::string& fs_type, const std::string& dev) {
  FsckResult r;
  std::vector<std::string> argv;
  if (fs_type == "ext4") argv = {"e2fsck", "-fn", dev};
  else if (fs_type == "xfs") argv = {"xfs_repair", "-n", dev};
  else {
    r.command = "(no read-only fsck for " + fs_type + ")";
    r.clean = true;
    return r;
  }
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
  if (c.status < 0) r.excerpt = fmt::format("{} could not run (install e2fsprogs / xfsprogs)", argv[0]);
  return r;
}

Mount::Mount(const std::string& dev, const std::string& dir, const FsConfig& fs) : dev_(dev), dir_(dir), type_(fs.type) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw UsageError(fmt::format("cannot create mount point {}: {}", dir, strerror(errno)));
  if (mount(dev.c_str(), dir.c_str(), fs.type.c_str(), 0, fs.mount_options.empty() ? nullptr : fs.mount_options.c_str()) != 0)
    throw UsageError(fmt::format("mount -t {} {} {} (options '{}') failed: {}; check mount_options in [fs.{}] and dmesg",
                                 fs.type, dev, dir, fs.mount_options, strerror(errno), fs.type));
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
  throw UsageError(fmt::format("cannot unmount {}: {}", dir_, strerror(e)));
}

Mount::~Mount() {
  if (!mounted_) return;
  try {
    unmount();
  } catch (...) {
    umount2(dir_.c_str(), MNT_DETACH);  // last resort: lazy unmount so nothing stays visible
  }
}

FsSpace fs_space(const std::string& dir) {
  struct statfs s;
  if (statfs(dir.c_str(), &s) != 0) throw UsageError(fmt::format("statfs {}: {}", dir, strerror(errno)));
  return FsSpace{uint64_t(s.f_bsize), uint64_t(s.f_blocks), uint64_t(s.f_bfree)};
}

}  // namespace fsrace
