// Probe event-rate benchmark (issue 3; prints figures, not a timed test): the highest rate of probe
// events a test inode can produce that the ring buffer -> reader thread -> events.bin path sustains with
// zero drops. Load: generator threads write one page of a registered file and punch it out again
// (pwrite + fallocate(PUNCH_HOLE)), all in the page cache and delalloc, no disk I/O: on ext4 six events
// per cycle (page-cache add/delete, da reserve/release, es delayed, punch), paced to a target rate
// that doubles each step, ending with unpaced threads. Each step is its own probe session, so the
// drops counted in BPF are per step. Usage: fsrace_probe_bench [--seconds S] [--ringbuf-kib K] [--dir D]
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fmt/core.h>
#include <string>
#include <thread>
#include <vector>

#include "core/util.h"
#include "probes/kernel_info.h"
#include "probes/loader.h"

using namespace fsrace;

namespace {

struct Step {
  double target;  // events/s, 0 = unpaced
  double per_cycle = 6;  // events per write+punch cycle (measured in a calibration step)
  double rate = 0;
  uint64_t events = 0, dropped = 0;
};

void run_step(const probes::KernelInfo& k, Step& s, const std::string& dir, double secs, uint64_t ringbuf, int threads) {
  std::string file = dir + "/fsrace-bench-file";
  {
    int fd = open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    std::vector<char> page(4096, 'x');
    for (int i = 0; i < 256; ++i)
      if (write(fd, page.data(), page.size()) != 4096) throw std::runtime_error("cannot write bench file");
    fsync(fd);
    close(fd);
  }
  probes::SessionOptions so;
  so.ringbuf_bytes = ringbuf;
  so.events_path = dir + "/fsrace-bench-events.bin";
  probes::ProbeSession session(k, so);
  int fd = open(file.c_str(), O_RDWR | O_CLOEXEC);
  struct stat st;
  fstat(fd, &st);
  session.add_inode(st.st_dev, st.st_ino, "bench");
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  std::atomic<bool> stop{false};
  std::vector<std::thread> gen;
  uint64_t t0 = now_ns();
  for (int t = 0; t < threads; ++t)
    gen.emplace_back([&, t] {
      char buf[4096];
      std::memset(buf, 'y', sizeof buf);
      double per_thread = s.target / threads / s.per_cycle;  // cycles/s
      uint64_t cycles = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        off_t off = off_t(((cycles * threads + t) % 256) * 4096);
        if (pwrite(fd, buf, sizeof buf, off) < 0) break;
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, 4096);
        ++cycles;
        if (per_thread > 0 && (cycles & 63) == 0) {
          double due = double(cycles) / per_thread;
          double now = double(now_ns() - t0) / 1e9;
          if (due > now) std::this_thread::sleep_for(std::chrono::duration<double>(due - now));
        }
      }
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(secs));
  stop = true;
  for (auto& g : gen) g.join();
  double el = double(now_ns() - t0) / 1e9;
  close(fd);
  probes::SessionStats ss = session.stop();
  s.events = ss.events;
  s.dropped = ss.dropped;
  s.rate = double(ss.events + ss.dropped) / el;
  unlink(file.c_str());
  unlink(so.events_path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  double secs = 1.0;
  uint64_t ringbuf = 16ull << 20;
  std::string dir = "/var/tmp";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) secs = std::atof(argv[++i]);
    else if (a == "--ringbuf-kib" && i + 1 < argc) ringbuf = std::strtoull(argv[++i], nullptr, 10) << 10;
    else if (a == "--dir" && i + 1 < argc) dir = argv[++i];
    else {
      std::fprintf(stderr, "usage: fsrace_probe_bench [--seconds S] [--ringbuf-kib K (power of two)] [--dir D]\n");
      return 2;
    }
  }
  auto k = probes::running_kernel();
  if (!k->bpf_unavailable().empty()) {
    std::fprintf(stderr, "fsrace_probe_bench: BPF unavailable: %s\n", k->bpf_unavailable().c_str());
    return 2;
  }
  std::printf("probe event-rate benchmark: kernel %s, ring buffer %llu KiB, %.1f s per step, events = page-cache add + delete\n",
              k->release().c_str(), (unsigned long long)(ringbuf >> 10), secs);
  std::printf("%14s %14s %12s %10s\n", "target ev/s", "produced ev/s", "written", "dropped");
  double best = 0;
  std::vector<double> targets;
  for (double t = 50000; t <= 3.2e6; t *= 2) targets.push_back(t);
  targets.push_back(0);
  for (double t : targets) {
    Step s{t};
    try {
      run_step(*k, s, dir, secs, ringbuf, t > 400000 || t == 0 ? 2 : 1);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fsrace_probe_bench: %s\n", e.what());
      return 2;
    }
    std::printf("%14s %14.0f %12llu %10llu\n", t ? fmt::format("{:.0f}", t).c_str() : "unpaced", s.rate,
                (unsigned long long)s.events, (unsigned long long)s.dropped);
    if (!s.dropped) best = std::max(best, s.rate);
  }
  std::printf("highest event rate sustained with zero drops: %.0f events/s\n", best);
  return 0;
}
