#include "harness/ceph_cluster.h"

#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <fmt/core.h>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "core/util.h"
#include "harness/host.h"

namespace fsrace {
extern const char* const kCephBootstrapSh;

namespace {
const char* const kDaemons[] = {"mon.a", "mgr.x", "osd.0", "mds.a"};

long pid_of(const std::string& dir, const std::string& daemon) {
  std::ifstream in(dir + "/run/" + daemon + ".pid");
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  return pid;
}

bool alive(long pid) {
  if (pid <= 0 || kill(pid_t(pid), 0) != 0) return false;
  std::ifstream st(fmt::format("/proc/{}/stat", pid));
  std::string s;
  std::getline(st, s);
  auto rp = s.rfind(')');
  return !(rp != std::string::npos && rp + 2 < s.size() && s[rp + 2] == 'Z');
}

std::string tail_lines(const std::string& path, size_t n) {
  std::ifstream in(path);
  std::deque<std::string> q;
  std::string line;
  while (std::getline(in, line)) {
    q.push_back(line);
    if (q.size() > n) q.pop_front();
  }
  std::string out;
  for (const auto& l : q) out += l + "\n";
  return out;
}
}  // namespace

std::string ensure_loopback_up() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return fmt::format("socket(AF_INET): {} (the kernel needs CONFIG_INET)", strerror(errno));
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "lo");
  std::string err;
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) err = fmt::format("SIOCGIFFLAGS lo: {}", strerror(errno));
  else if (!(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) err = fmt::format("SIOCSIFFLAGS lo up: {}", strerror(errno));
  }
  close(s);
  return err;
}

CephCluster::CephCluster(const CephClusterSpec& spec) : spec_(spec) {
  if (spec.objectstore != "memstore" && spec.objectstore != "bluestore")
    throw Fatal(fmt::format("ceph objectstore '{}' is not one fsrace bootstraps: use memstore or bluestore", spec.objectstore));
  if (std::string e = ensure_loopback_up(); !e.empty())
    throw Fatal(fmt::format("cannot start the ceph cluster: the loopback interface is down and {}", e));
  std::string tmpl = spec.workdir + "/fsrace-ceph.XXXXXX";
  std::vector<char> b(tmpl.begin(), tmpl.end());
  b.push_back(0);
  if (!mkdtemp(b.data())) throw Fatal(fmt::format("cannot create the ceph cluster directory in {}: {}", spec.workdir, strerror(errno)));
  dir_ = b.data();
  write_file_atomic(dir_ + "/bootstrap.sh", kCephBootstrapSh);
  uint64_t t0 = now_ns();
  // timeout(1): a mon that never forms a quorum would leave the ceph CLI waiting
  CommandResult r = run_command({"timeout", "600", "sh", dir_ + "/bootstrap.sh", dir_, spec.objectstore});
  start_s_ = double(now_ns() - t0) / 1e9;
  std::string last_step = "start", secret;
  std::istringstream out(r.output);
  for (std::string line; std::getline(out, line);) {
    if (line.rfind("step: ", 0) == 0) last_step = line.substr(6);
    if (line.rfind("ready: ", 0) == 0) secret = line.substr(7);
  }
  write_file_atomic(dir_ + "/log/bootstrap.out", r.output);
  if (r.status != 0 || secret.empty()) {
    std::string why = r.output;
    while (!why.empty() && why.back() == '\n') why.pop_back();
    if (auto nl = why.rfind('\n'); nl != std::string::npos) why = why.substr(nl + 1);
    stop();
    keep_logs();
    std::string dirs = spec_.log_dir.empty() ? dir_ : "ceph-logs/ of the run directory (" + spec_.log_dir + "/ceph-logs here)";
    run_command({"rm", "-rf", "--one-file-system", dir_});
    throw Fatal(fmt::format("the ceph cluster did not come up (step '{}', exit {}{}{}): an environment error, not a finding; "
                            "the daemons' logs are in {}",
                            last_step, r.status, r.status == 124 ? ", timed out after 600 s" : "", why.empty() ? "" : ": " + why,
                            dirs));
  }
  secret_ = secret;
}

CephCluster::~CephCluster() {
  size_t running = 0;
  for (const char* d : kDaemons) running += alive(pid_of(dir_, d));
  stop();
  std::vector<std::string> left;
  for (const char* d : kDaemons)
    if (alive(pid_of(dir_, d))) left.push_back(d);
  if (left.empty()) std::cerr << fmt::format("fsrace: ceph cluster stopped ({} daemons were running, none left)\n", running);
  else std::cerr << fmt::format("fsrace: ceph cluster: {} daemons still running after SIGKILL\n", left.size());
  try {
    keep_logs();
  } catch (...) {
  }
  run_command({"rm", "-rf", "--one-file-system", dir_});
}

void CephCluster::stop() {
  std::vector<long> pids;
  for (const char* d : kDaemons)
    if (long p = pid_of(dir_, d); alive(p)) pids.push_back(p);
  for (long p : pids) kill(pid_t(p), SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (long p : pids) {
    while (alive(p) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (alive(p)) kill(pid_t(p), SIGKILL);
  }
  for (long p : pids)
    for (int i = 0; i < 100 && alive(p); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

void CephCluster::keep_logs() {
  if (logs_kept_ || spec_.log_dir.empty()) return;
  logs_kept_ = true;
  run_command({"mkdir", "-p", spec_.log_dir + "/ceph-logs"});
  run_command({"sh", "-c", "cp \"$0\"/log/* \"$0\"/ceph.conf \"$1\"/ceph-logs/ 2>/dev/null; true", dir_, spec_.log_dir});
}

std::vector<std::pair<std::string, long>> CephCluster::daemon_rss_kib() const {
  std::vector<std::pair<std::string, long>> out;
  for (const char* d : kDaemons) {
    long p = pid_of(dir_, d);
    if (!alive(p)) continue;
    std::ifstream st(fmt::format("/proc/{}/status", p));
    for (std::string line; std::getline(st, line);)
      if (line.rfind("VmRSS:", 0) == 0) out.emplace_back(d, std::atol(line.c_str() + 6));
  }
  return out;
}

std::vector<std::string> CephCluster::dead_daemons() const {
  std::vector<std::string> out;
  for (const char* d : kDaemons)
    if (!alive(pid_of(dir_, d))) out.push_back(d);
  return out;
}

std::string CephCluster::log_tail(size_t n) const {
  std::string out;
  for (const char* d : kDaemons) out += fmt::format("==== {} ====\n", d) + tail_lines(fmt::format("{}/log/{}.log", dir_, d), n);
  return out;
}

}  // namespace fsrace
