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

#include "core/filesystems.h"
#include "core/util.h"

extern char** environ;

#include <zlib.h>

namespace fsrace {

std::string running_kernel_config() {
  if (gzFile g = gzopen("/proc/config.gz", "rb")) {
    std::string out;
    char buf[65536];
    int n;
    while ((n = gzread(g, buf, sizeof buf)) > 0 && out.size() < (64u << 20)) out.append(buf, size_t(n));
    gzclose(g);
    if (!out.empty()) return out;
  }
  std::string boot = "/boot/config-" + kernel_release();
  if (path_exists(boot)) {
    try {
      return read_file(boot);
    } catch (const Fatal&) {
    }
  }
  return "";
}


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
    throw Fatal("host mode needs root (loop devices, mkfs, mount, /dev/kmsg): run it as root or with sudo");
  struct stat st;
  if (need_loop && stat("/dev/loop-control", &st) != 0)
    throw Fatal(fmt::format("no loop device support: /dev/loop-control: {}; load it with 'modprobe loop'", strerror(errno)));
  if (need_loop && !S_ISCHR(st.st_mode))
    throw Fatal("no loop device support: /dev/loop-control is not a character device; load the loop module with 'modprobe loop'");
  for (const auto& fs : filesystems) {
    const FilesystemInfo* fi = find_filesystem(fs.type);
    if (!fi) throw Fatal(fmt::format("unknown filesystem '{}'", fs.type));
    if (!fi->mkfs.empty() && !find_in_path(fi->mkfs))
      throw Fatal(fmt::format("{} not found: run 'make deps' (installs {})", fi->mkfs, fi->package));
    for (const auto& t : fi->cluster_tools)
      if (!find_in_path(t))
        throw Fatal(fmt::format("{} not found ({} needs it to start its cluster): run 'make deps' (installs {})", t, fs.type,
                                fi->package));
    const std::string& kt = fi->kernel_type();
    if (!fs_registered(kt)) {
      run_command({"modprobe", fi->kernel_module.empty() ? kt : fi->kernel_module});
      if (!fs_registered(kt))
        throw Fatal(fmt::format("the running kernel does not support {} (not in /proc/filesystems, 'modprobe {}' failed): "
                                     "use a kernel with {} or drop {} from the campaign (--fs)", kt, kt, kt, fs.type));
    }
  }
}

TempDir::TempDir(const std::string& parent, const std::string& prefix) {
  std::string tmpl = parent + "/" + prefix + "XXXXXX";
  std::vector<char> b(tmpl.begin(), tmpl.end());
  b.push_back(0);
  if (!mkdtemp(b.data())) throw Fatal(fmt::format("cannot create a work directory in {}: {}", parent, strerror(errno)));
  path_ = b.data();
}

TempDir::~TempDir() { run_command({"rm", "-rf", "--one-file-system", path_}); }

FsSpace fs_space(const std::string& dir) {
  struct statfs s;
  if (statfs(dir.c_str(), &s) != 0) throw Fatal(fmt::format("statfs {}: {}", dir, strerror(errno)));
  return FsSpace{uint64_t(s.f_bsize), uint64_t(s.f_blocks), uint64_t(s.f_bfree)};
}

}  // namespace fsrace
