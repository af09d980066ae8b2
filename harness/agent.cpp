#include "harness/agent.h"
#include "core/filesystems.h"
#include "harness/host.h"
#include "harness/cli_explore.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <fmt/core.h>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/filesystems.h"
#include "core/util.h"

namespace fsrace {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

double uptime_s() {
  double up = 0;
  std::ifstream in("/proc/uptime");
  in >> up;
  return up;
}

bool fs_listed(const std::string& type) { return fs_registered(type); }

// Every thread of this process: name, scheduler state, wait channel and current syscall (number and
// arguments, from /proc/self/task/<tid>/syscall): what was in flight when the guest stopped.
nlohmann::json thread_states() {
  nlohmann::json out = nlohmann::json::array();
  DIR* d = opendir("/proc/self/task");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string base = fmt::format("/proc/self/task/{}", e->d_name);
    std::string stat = slurp(base + "/stat");
    auto rp = stat.rfind(')');
    std::string state = rp != std::string::npos && rp + 2 < stat.size() ? stat.substr(rp + 2, 1) : "?";
    out.push_back({{"tid", std::atoi(e->d_name)}, {"comm", slurp(base + "/comm")}, {"state", state},
                   {"wchan", slurp(base + "/wchan")}, {"syscall", slurp(base + "/syscall")}});
  }
  closedir(d);
  return out;
}

class Agent {
 public:
  Agent(const RunOptions& ropt, const AgentOptions& a) : ropt_(ropt), a_(a) {}

  int run() {
    started_uptime_ = uptime_s();
    std::cerr << fmt::format("fsrace-agent: started (uptime {:.2f} s)\n", started_uptime_) << std::flush;
    int code = 2;
    try {
      check_guest();
      heartbeat_ = std::thread([this] { heartbeat_loop(); });
      RunOptions o = ropt_;
      o.on_phase = [this](const std::string& c, const std::string& p, const std::string& dir) { on_phase(c, p, dir); };
      RunOutcome out;
      if (a_.explore.empty()) {
        out = run_host(o);
      } else {  // fsrace explore --kernel K: the same rounds as on a host, in this guest
        ExploreOptions eo;
        eo.run = o;
        parse_explore_spec(a_.explore, eo);
        std::string table;
        out = explore_rounds(eo, &table);
        std::cerr << "fsrace-agent: explore allocation by time:\n" << table;
      }
      code = out.interrupted ? 130 : out.findings ? 1 : 0;
    } catch (const Fatal& e) {
      std::cerr << "fsrace: " << e.what() << "\n";
      write_best_effort("agent-error", std::string(e.what()) + "\n");
    } catch (const std::exception& e) {
      std::cerr << "fsrace: internal error: " << e.what() << "\n";
      write_best_effort("agent-error", fmt::format("internal error: {}\n", e.what()));
    }
    stop();
    write_best_effort("agent-exit", fmt::format("{}\n", code));
    return code;
  }

 private:
  // The share may be what failed (a full results filesystem): the agent's own "fsrace: " line and the
  // init's "agent exit N" on the console tell the host the same.
  void write_best_effort(const std::string& name, const std::string& text) {
    try {
      write_file_atomic(a_.out_dir + "/" + name, text);
    } catch (const std::exception& e) {
      std::cerr << fmt::format("fsrace-agent: cannot write {}: {}\n", name, e.what());
    }
  }

  void check_guest() {
    // Test hooks crash or freeze the kernel: make sure this is an fsrace guest, not the host.
    if (slurp("/proc/cmdline").find("fsrace.guest=1") == std::string::npos)
      throw Fatal("'fsrace agent' runs only inside an fsrace VM guest (no fsrace.guest=1 on the kernel command line): "
                       "use './fsrace run --kernel K'");
    // The oracle orders ops by CLOCK_MONOTONIC: a jiffies clocksource (4 ms steps, what a guest without
    // a usable TSC/HPET falls back to) makes it flag legal reads as foreign/stale.
    std::string cs = slurp("/sys/devices/system/clocksource/clocksource0/current_clocksource");
    if (cs.find("jiffies") != std::string::npos)
      throw Fatal(fmt::format("the guest's clocksource is '{}' (coarse ticks): the oracle needs a fine monotonic clock; "
                                   "boot with ACPI/HPET or a TSC the guest trusts", cs));
    ropt_.run_extra["guest_clocksource"] = cs;
    // Give up well before the host's hang watch does: a device or module that never comes is an environment
    // error with its one line, never a `hang` finding (seen: a misaligned memmap= region, 120 s = the watch).
    double wait_s = std::min(a_.fs_wait_s, ropt_.campaign.vm.hang_timeout_s / 2);
    auto deadline = now_ns() + uint64_t(wait_s * 1e9);
    for (const auto& [fs, dev] : ropt_.devices) {
      struct stat st;
      // NVDIMM regions are probed asynchronously after the nfit / nd_pmem modules load: wait for the node.
      bool pmem = dev.rfind("/dev/pmem", 0) == 0;
      auto ok = [&] { return stat(dev.c_str(), &st) == 0 && S_ISBLK(st.st_mode); };
      while (pmem && !ok() && now_ns() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (!ok())
        throw Fatal(pmem ? fmt::format("the guest has no persistent-memory device {} for {} after {} s: the kernel lacks "
                                       "ACPI_NFIT (NVDIMMs) or X86_PMEM_LEGACY (memmap=), LIBNVDIMM or BLK_DEV_PMEM (see console.log for the "
                                       "module load)",
                                       dev, fs, wait_s)
                         : fmt::format("the guest has no block device {} for {}: the kernel lacks virtio-blk (CONFIG_VIRTIO_BLK) "
                                       "or the disk was not attached", dev, fs));
    }
    for (const auto& f : ropt_.campaign.filesystems) {
      std::string kt = kernel_fs_type(f.type);
      while (!fs_listed(kt) && now_ns() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (!fs_listed(kt))
        throw Fatal(fmt::format("the guest kernel does not support {} (not in /proc/filesystems after {} s; see console.log "
                                     "for the module load): build it with CONFIG_{}_FS", kt, wait_s,
                                     kt == "xfs" ? "XFS" : kt == "ceph" ? "CEPH" : "EXT4"));
    }
  }

  // Test hook "isolation": what a hostile guest would try on the host through its 9p shares, each
  // attempt's errno (0 = it worked) in isolation-probe.json of the result share. vm.isolation checks
  // the host-side result: no host secret read, no device node, no setuid-root file.
  void isolation_probe() {
    auto err = [](int rc) { return rc < 0 ? errno : 0; };
    nlohmann::json r;
    int fd = open("/etc/shadow", O_RDONLY | O_CLOEXEC);
    r["read_etc_shadow"] = err(fd);
    if (fd >= 0) close(fd);
    fd = open("/root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    r["open_root_home"] = err(fd);
    if (fd >= 0) close(fd);
    fd = open("/usr/bin/env", O_WRONLY | O_CLOEXEC);
    r["write_host_root"] = err(fd);
    if (fd >= 0) close(fd);
    std::string share = a_.out_dir;
    r["mknod_share"] = err(mknod((share + "/isolation-node").c_str(), S_IFCHR | 0666, makedev(1, 3)));
    std::string f = share + "/isolation-suid";
    fd = open(f.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    r["create_share_file"] = err(fd);
    if (fd >= 0) {
      r["chown_root"] = err(fchown(fd, 0, 0));
      r["chmod_suid"] = err(fchmod(fd, 04755));
      close(fd);
    }
    try {
      write_file_atomic(share + "/isolation-probe.json", r.dump() + "\n");
    } catch (const std::exception&) {
    }
  }

  void on_phase(const std::string& case_name, const std::string& phase, const std::string& dir) {
    {
      std::lock_guard<std::mutex> g(mu_);
      case_ = case_name;
      phase_ = phase;
      phase_since_ = uptime_s();
    }
    const std::string& hook = ropt_.campaign.vm.test_hook;
    if (phase == "race" && !hook.empty() && a_.test_hook && !hook_started_) {
      hook_started_ = true;
      double delay = std::min(1.0, ropt_.campaign.duration_s / 2);
      std::thread([this, hook, dir, delay] {
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        std::cerr << fmt::format("fsrace-agent: TEST HOOK {} (campaign [vm] test_hook)\n", hook) << std::flush;
        if (hook == "panic") {
          int fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
          if (fd >= 0) {
            sync();
            [[maybe_unused]] auto n = write(fd, "c", 1);
            close(fd);
          }
        } else if (hook == "isolation") {
          isolation_probe();
        } else if (hook == "freeze") {
          int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
          if (fd >= 0) ioctl(fd, FIFREEZE, 0);  // writers now block in sb_start_write: no progress
        }
      }).detach();
    }
  }

  void heartbeat_loop() {
    uint64_t seq = 0;
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
      nlohmann::json hb = {{"seq", ++seq}, {"uptime_s", uptime_s()}, {"agent_started_uptime_s", started_uptime_},
                           {"progress", progress_counter().load()}, {"case", case_}, {"phase", phase_},
                           {"phase_since_uptime_s", phase_since_}};
      lk.unlock();
      hb["threads"] = thread_states();
      try {
        write_file_atomic(a_.out_dir + "/heartbeat.json", hb.dump() + "\n");
      } catch (const std::exception&) {
      }
      lk.lock();
      cv_.wait_for(lk, std::chrono::duration<double>(a_.heartbeat_s), [this] { return stop_; });
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
      phase_ = "exit";
    }
    cv_.notify_all();
    if (heartbeat_.joinable()) heartbeat_.join();
  }

  RunOptions ropt_;
  const AgentOptions& a_;
  double started_uptime_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string case_, phase_ = "start";
  double phase_since_ = 0;
  bool hook_started_ = false;
  std::thread heartbeat_;
};

}  // namespace

int run_agent(RunOptions ropt, const AgentOptions& a) {
  // A VM gets disks only for the filesystems of its share of the matrix: the others are not its cases.
  if (!ropt.devices.empty()) {
    auto& fss = ropt.campaign.filesystems;
    std::erase_if(fss, [&](const FsConfig& f) {
      const FilesystemInfo* fi = find_filesystem(f.type);
      return !ropt.devices.count(f.type) && !(fi && fi->backing == FsBacking::kCluster);  // a cluster needs no disk
    });
  }
  ropt.mode = kModeVmGuest;
  ropt.run_dir = a.out_dir;
  return Agent(ropt, a).run();
}

}  // namespace fsrace
