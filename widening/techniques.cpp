#include "widening/techniques.h"

#include "widening/dm.h"

#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace fsrace::widening {

namespace {

bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

// Output (stdout + stderr) of a fixed command line; the exit status in `status`.
std::string shell(const std::string& cmd, int& status) {
  std::string out;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) {
    status = -1;
    return strerror(errno);
  }
  char buf[512];
  while (fgets(buf, sizeof buf, f)) out += buf;
  status = pclose(f);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string config_note(const std::map<std::string, std::string>& cfg, const std::string& opt) {
  if (cfg.empty()) return fmt::format("{}: kernel config not readable", opt);
  auto it = cfg.find(opt);
  return it == cfg.end() || it->second == "n" ? fmt::format("{} not set", opt) : fmt::format("{}={}", opt, it->second);
}

}  // namespace

bool debugfs() {
  if (exists("/sys/kernel/debug/bdi") || exists("/sys/kernel/debug/block")) return true;
  if (geteuid() != 0) return false;
  return mount("debugfs", "/sys/kernel/debug", "debugfs", 0, nullptr) == 0 || errno == EBUSY;
}

namespace {

size_t count_lines(const std::string& path) {
  std::ifstream in(path);
  size_t n = 0;
  std::string l;
  while (std::getline(in, l)) n += !l.empty();
  return n;
}

TechniqueStatus override_return(const KernelInfo& k, const std::map<std::string, std::string>& cfg) {
  TechniqueStatus t{"override-return", false, ""};
  std::string bpf = k.bpf_unavailable();
  if (!bpf.empty()) {
    t.detail = bpf;
    return t;
  }
  std::vector<std::string> missing;
  std::string kp = k.kprobes_unavailable();
  if (!kp.empty()) missing.push_back(kp);
  // The kernel config decides when it is readable: libbpf's helper probe answers "supported" whenever the
  // verifier does not name the helper unknown, which a kernel without kprobes never gets to.
  auto it = cfg.find("CONFIG_BPF_KPROBE_OVERRIDE");
  bool helper = cfg.empty() ? libbpf_probe_bpf_helper(BPF_PROG_TYPE_KPROBE, BPF_FUNC_override_return, nullptr) > 0
                            : it != cfg.end() && it->second == "y";
  if (!helper)
    missing.push_back(fmt::format("bpf_override_return is compiled out ({})", config_note(cfg, "CONFIG_BPF_KPROBE_OVERRIDE")));
  if (!missing.empty()) {
    for (const auto& m : missing) t.detail += (t.detail.empty() ? "" : "; ") + m;
    return t;
  }
  t.available = true;
  std::string list = "/sys/kernel/debug/error_injection/list";
  t.detail = debugfs() && exists(list)
                 ? fmt::format("a kprobe program may call bpf_override_return; {} error-injectable functions ({})", count_lines(list), list)
                 : "a kprobe program may call bpf_override_return (the error-injectable list needs debugfs)";
  return t;
}

TechniqueStatus fail_function(const std::map<std::string, std::string>& cfg) {
  TechniqueStatus t{"fail-function", false, ""};
  if (!debugfs()) {
    t.detail = "debugfs is not mounted and cannot be (needs root: mount -t debugfs none /sys/kernel/debug)";
    return t;
  }
  if (exists("/sys/kernel/debug/fail_function/inject")) {
    t.available = true;
    t.detail = "/sys/kernel/debug/fail_function (inject an errno into an error-injectable function)";
    return t;
  }
  t.detail = fmt::format("no /sys/kernel/debug/fail_function ({})", config_note(cfg, "CONFIG_FAIL_FUNCTION"));
  return t;
}

TechniqueStatus dm_target(const std::string& name, const std::string& target, const std::map<std::string, std::string>& cfg) {
  TechniqueStatus t{name, false, ""};
  auto dm_loaded = [] {
    std::ifstream misc("/proc/misc");
    std::string l;
    while (std::getline(misc, l))
      if (l.find("device-mapper") != std::string::npos) return true;
    return false;
  };
  std::string module = "dm-" + target;
  std::string modprobe = "not tried (needs root)";
  if (geteuid() == 0) {  // loads dm-mod with it; a built-in target or a kernel without modules just fails here
    int st = 0;
    std::string out = shell("modprobe " + module, st);
    modprobe = st == 0 ? "loaded" : out.empty() ? fmt::format("failed (exit {})", WEXITSTATUS(st)) : first_line(out);
  }
  if (!dm_loaded()) {
    t.detail = fmt::format("no device-mapper in this kernel (/proc/misc has no device-mapper; {}; modprobe {}: {})",
                           config_note(cfg, "CONFIG_BLK_DEV_DM"), module, modprobe);
    return t;
  }
  std::vector<std::pair<std::string, std::string>> targets;
  try {
    targets = dm_targets();
  } catch (const DmError& e) {
    t.detail = fmt::format("device-mapper present but its targets cannot be listed: {}", e.what());
    return t;
  }
  for (const auto& [n, v] : targets)
    if (n == target) {
      t.available = true;
      t.detail = fmt::format("device-mapper target {} {} registered", n, v);
      return t;
    }
  t.detail = fmt::format("device-mapper present, target '{}' missing ({}; modprobe {}: {})", target,
                         config_note(cfg, target == "delay" ? "CONFIG_DM_DELAY" : "CONFIG_DM_FLAKEY"), module, modprobe);
  return t;
}

TechniqueStatus xfs_errortag(const std::string& dev, const std::map<std::string, std::string>& cfg) {
  TechniqueStatus t{"xfs-errortag", false, ""};
  std::vector<std::string> devs;
  if (!dev.empty()) {
    devs.push_back(dev);
  } else if (DIR* d = opendir("/sys/fs/xfs")) {
    while (dirent* de = readdir(d)) {
      std::string n = de->d_name;
      if (n != "." && n != ".." && n != "stats") devs.push_back(n);
    }
    closedir(d);
  }
  for (const auto& x : devs) {
    std::string dir = "/sys/fs/xfs/" + x + "/errortag";
    if (!exists(dir)) continue;
    size_t n = 0;
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* de = readdir(d)) n += de->d_name[0] != '.';
      closedir(d);
    }
    t.available = true;
    t.detail = fmt::format("{} error tags in {}", n, dir);
    return t;
  }
  auto it = cfg.find("CONFIG_XFS_DEBUG");
  if (devs.empty() && it != cfg.end() && it->second == "y") {
    t.available = true;
    t.detail = "CONFIG_XFS_DEBUG=y: /sys/fs/xfs/<dev>/errortag appears once an XFS is mounted";
    return t;
  }
  t.detail = devs.empty() ? fmt::format("no XFS mounted to look at, and the kernel lacks XFS debug ({})", config_note(cfg, "CONFIG_XFS_DEBUG"))
                          : fmt::format("no /sys/fs/xfs/{}/errortag: XFS built without CONFIG_XFS_DEBUG ({})", devs.front(),
                                        config_note(cfg, "CONFIG_XFS_DEBUG"));
  return t;
}

}  // namespace

namespace {
int read_int_file(const std::string& path, bool* ok) {
  std::ifstream f(path);
  int v = 0;
  *ok = bool(f >> v);
  return v;
}
bool write_int_file(const std::string& path, int v) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string s = std::to_string(v);
  bool ok = write(fd, s.data(), s.size()) == ssize_t(s.size());
  return close(fd) == 0 && ok;
}
}  // namespace

XfsErrortags::XfsErrortags(const std::string& dir, const std::map<std::string, int>& tags) : dir_(dir) {
  for (const auto& [tag, n] : tags) {
    std::string path = dir_ + "/" + tag;
    bool ok = false;
    int old = read_int_file(path, &ok);
    if (!ok) {
      restore();
      throw WideningError(fmt::format("XFS error tag {} is not readable ({}): this kernel's XFS lacks it or was built "
                                      "without CONFIG_XFS_DEBUG",
                                      path, exists(path) ? strerror(EIO) : strerror(ENOENT)));
    }
    if (!write_int_file(path, n)) {
      int e = errno;
      restore();
      throw WideningError(fmt::format("cannot set XFS error tag {} to {}: {}", path, n, strerror(e)));
    }
    old_[tag] = old;
    tags_[tag] = n;
  }
}

void XfsErrortags::restore() noexcept {
  for (const auto& [tag, v] : old_) write_int_file(dir_ + "/" + tag, v);
  old_.clear();
}

std::map<std::string, std::string> kernel_config(const std::string& release) {
  std::string text;
  if (gzFile g = gzopen("/proc/config.gz", "rb")) {
    char buf[65536];
    int n;
    while ((n = gzread(g, buf, sizeof buf)) > 0) text.append(buf, size_t(n));
    gzclose(g);
  }
  if (text.empty()) {
    std::ifstream in("/boot/config-" + release);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  std::map<std::string, std::string> cfg;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) {
    if (l.rfind("CONFIG_", 0) == 0) {
      size_t eq = l.find('=');
      if (eq != std::string::npos) cfg[l.substr(0, eq)] = l.substr(eq + 1);
    } else if (l.rfind("# CONFIG_", 0) == 0 && l.size() > 13 && l.compare(l.size() - 11, 11, " is not set") == 0) {
      cfg[l.substr(2, l.size() - 13)] = "n";
    }
  }
  return cfg;
}

TechniqueStatus detect_technique(const std::string& name, const KernelInfo& k, const std::string& xfs_sysfs_dev) {
  auto cfg = kernel_config(k.release());
  if (name == "override-return") return override_return(k, cfg);
  if (name == "fail-function") return fail_function(cfg);
  if (name == "dm-delay") return dm_target(name, "delay", cfg);
  if (name == "dm-flakey") return dm_target(name, "flakey", cfg);
  if (name == "xfs-errortag") return xfs_errortag(xfs_sysfs_dev, cfg);
  return {name, false, "unknown technique"};
}

}  // namespace fsrace::widening
