// punch-vs-fault: hole punch and rewrite racing page-cache fills from mmap read faults and read(2).
//
// Target interleaving (seed 001, Jan Kara's invalidate_lock series): a punch removes the range from the
// page cache (truncate_pagecache_range) and then frees the blocks; a read fault or read(2) that
// runs in between — on kernels or filesystems that do not hold mapping->invalidate_lock shared while
// filling the cache — instantiates a folio from the old block contents after the invalidation, so the
// cache keeps stale data for a range that is now a hole (or whose blocks were reused: a data exposure).
// Kernel paths: ext4_punch_hole / xfs_file_fallocate -> truncate_pagecache_range; filemap_fault
// (read-around) / filemap_read -> filemap_create_folio / page_cache_ra_unbounded.
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/core.h>
#include <mutex>
#include <thread>

#include "harness/util.h"
#include "workloads/scenario.h"

namespace fsrace {
namespace {

class PunchVsFault : public Scenario {
 public:
  PunchVsFault() {
    using T = ParamSpec::Type;
    spec_.name = "punch-vs-fault";
    spec_.summary = "hole punch + rewrite vs mmap read faults and read(2) on the same blocks";
    spec_.params = {
        {"files", T::kInt, 1, 1, 64, "test files (threads pick one per op)"},
        {"file_blocks", T::kInt, 64, 1, 1 << 20, "4 KiB blocks per file"},
        {"punch_threads", T::kInt, 1, 1, 64, "threads that punch holes and rewrite ranges"},
        {"mmap_readers", T::kInt, 1, 0, 64, "threads reading through a shared mapping (page faults)"},
        {"read_readers", T::kInt, 1, 0, 64, "threads reading with pread(2)"},
        {"max_range_blocks", T::kInt, 8, 1, 4096, "largest punch / write / read range in blocks"},
        {"punch_ratio", T::kDouble, 0.5, 0, 1, "share of punches among the punch threads' ops (rest: rewrites)"},
        {"evict_ratio", T::kDouble, 0.05, 0, 1, "share of reader ops preceded by fadvise(DONTNEED) of the range"},
        {"iterations", T::kInt, 0, 0, 1e12, "ops per thread (0: until the duration ends)"},
    };
  }
  const ScenarioSpec& spec() const override { return spec_; }
  std::string description() const override {
    return "Punch threads punch holes (fallocate PUNCH_HOLE|KEEP_SIZE) and rewrite ranges (pwrite of\n"
           "stamped blocks) while readers fill the page cache from the same blocks through mmap read\n"
           "faults (with read-around) and pread(2). Targets the hole-punch vs page-cache-fill race that\n"
           "mapping->invalidate_lock closes (seed 001): a folio instantiated after\n"
           "truncate_pagecache_range but before the blocks are freed keeps stale data in a hole.\n"
           "Kernel paths: fallocate -> truncate_pagecache_range, filemap_fault, filemap_read, readahead.";
  }
  std::vector<std::string> finding_classes() const override {
    return {"stale-after-punch", "stale", "lost-write", "foreign", "torn", "cache-incoherent", "space-leak"};
  }

  std::vector<TestFile> plan_files(const ScenarioEnv& env) const override {
    std::vector<TestFile> files;
    uint64_t nb = uint64_t(env.cfg->i("file_blocks"));
    for (int64_t i = 0; i < env.cfg->i("files"); ++i)
      files.push_back({fmt::format("f{}", i), fmt::format("{}/f{}", env.dir, i), (env.run_nonce << 32) | uint64_t(i), nb});
    return files;
  }

  void setup(ScenarioEnv& env, const std::vector<TestFile>& files) override {
    ThreadLog& tl = env.log->thread(0);
    uint64_t nb = uint64_t(env.cfg->i("file_blocks"));
    AlignedBuf buf(nb * kBlockSize);
    for (size_t i = 0; i < files.size(); ++i) {
      const TestFile& f = files[i];
      int fd = open(f.path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) throw UsageError(fmt::format("cannot create test file {}: {}", f.path, strerror(errno)));
      uint64_t id = tl.new_id();
      uint64_t t0 = now_ns();
      int64_t r = write_stamped(fd, f, 0, nb, id, buf.p);
      uint64_t t1 = now_ns();
      tl.op(id, OpKind::kInit, uint16_t(i), 0, nb * kBlockSize, t0, t1, r);
      if (r != int64_t(nb * kBlockSize)) {
        close(fd);
        throw UsageError(fmt::format("cannot initialise test file {}: {}", f.path, r < 0 ? strerror(int(-r)) : "short write"));
      }
      fsync(fd);
      if (env.on_file) env.on_file(f, fd);
      close(fd);
    }
  }

  RaceStats race(ScenarioEnv& env, const std::vector<TestFile>& files) override {
    const auto& c = *env.cfg;
    int np = int(c.i("punch_threads")), nm = int(c.i("mmap_readers")), nr = int(c.i("read_readers"));
    uint64_t maxr = uint64_t(c.i("max_range_blocks"));
    uint64_t iters = uint64_t(c.i("iterations"));
    double punch_ratio = c.d("punch_ratio"), evict_ratio = c.d("evict_ratio");
    uint64_t deadline = now_ns() + uint64_t(env.duration_s * 1e9);

    struct Fds {
      std::vector<int> fd;
      std::vector<char*> map;
    } fds;
    for (const auto& f : files) {
      int fd = open(f.path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) throw UsageError(fmt::format("cannot open test file {}: {}", f.path, strerror(errno)));
      void* m = mmap(nullptr, f.blocks * kBlockSize, PROT_READ, MAP_SHARED, fd, 0);
      if (m == MAP_FAILED) throw UsageError(fmt::format("cannot mmap test file {}: {}", f.path, strerror(errno)));
      fds.fd.push_back(fd);
      fds.map.push_back(static_cast<char*>(m));
    }

    RaceStats stats;
    std::mutex mu;
    std::atomic<bool> go{false};
    auto merge = [&](RaceStats& local) {
      std::lock_guard<std::mutex> g(mu);
      for (auto& [k, v] : local.ops_by_kind) stats.ops_by_kind[k] += v;
      for (auto& [k, v] : local.errors_by_kind) stats.errors_by_kind[k] += v;
      for (auto& e : local.fatal_errors)
        if (stats.fatal_errors.size() < 20) stats.fatal_errors.push_back(e);
    };
    auto pick = [&](Rng& rng, uint16_t& fi, uint64_t& b0, uint64_t& n) {
      fi = uint16_t(rng.below(files.size()));
      uint64_t nb = files[fi].blocks;
      n = 1 + rng.below(std::min(maxr, nb));
      b0 = rng.below(nb - n + 1);
    };
    auto running = [&](uint64_t done) {
      if (env.stop && env.stop->load(std::memory_order_relaxed)) return false;
      if (iters) return done < iters;
      return now_ns() < deadline;
    };

    std::vector<std::thread> threads;
    uint32_t tid = 1;
    for (int i = 0; i < np; ++i, ++tid) {
      threads.emplace_back([&, tid] {
        pthread_setname_np(pthread_self(), fmt::format("fsr-punch{}", tid).c_str());  // names probe events
        ThreadLog& tl = env.log->thread(tid);
        Rng rng(env.seed * 0x9e3779b97f4a7c15ull + tid);
        AlignedBuf buf(maxr * kBlockSize);
        RaceStats local;
        while (!go.load()) std::this_thread::yield();
        for (uint64_t done = 0; running(done); ++done) {
          uint16_t fi;
          uint64_t b0, n;
          pick(rng, fi, b0, n);
          uint64_t id = tl.new_id();
          if (rng.unit() < punch_ratio) {
            uint64_t t0 = now_ns();
            int r = fallocate(fds.fd[fi], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(b0 * kBlockSize),
                              off_t(n * kBlockSize));
            int64_t res = r < 0 ? -errno : 0;
            uint64_t t1 = now_ns();
            tl.op(id, OpKind::kPunch, fi, b0 * kBlockSize, n * kBlockSize, t0, t1, res);
            ++local.ops_by_kind["punch"];
            if (res < 0) {
              ++local.errors_by_kind["punch"];
              local.fatal_errors.push_back(fmt::format("fallocate(PUNCH_HOLE) on {}: {}", files[fi].name, strerror(int(-res))));
            }
          } else {
            for (uint64_t k = 0; k < n; ++k)
              stamp_encode(buf.c() + k * kBlockSize, files[fi].file_id, b0 + k, id);
            uint64_t t0 = now_ns();
            ssize_t r = pwrite(fds.fd[fi], buf.p, n * kBlockSize, off_t(b0 * kBlockSize));
            int64_t res = r < 0 ? -errno : r;
            uint64_t t1 = now_ns();
            tl.op(id, OpKind::kWrite, fi, b0 * kBlockSize, n * kBlockSize, t0, t1, res);
            ++local.ops_by_kind["write"];
            if (res != int64_t(n * kBlockSize)) {
              ++local.errors_by_kind["write"];
              local.fatal_errors.push_back(fmt::format("pwrite on {}: {}", files[fi].name, res < 0 ? strerror(int(-res)) : "short write"));
            }
          }
        }
        merge(local);
      });
    }
    for (int i = 0; i < nm + nr; ++i, ++tid) {
      bool use_mmap = i < nm;
      threads.emplace_back([&, tid, use_mmap] {
        pthread_setname_np(pthread_self(), fmt::format("{}{}", use_mmap ? "fsr-mmap" : "fsr-read", tid).c_str());
        ThreadLog& tl = env.log->thread(tid);
        Rng rng(env.seed * 0x9e3779b97f4a7c15ull + tid);
        AlignedBuf buf(maxr * kBlockSize);
        RaceStats local;
        while (!go.load()) std::this_thread::yield();
        for (uint64_t done = 0; running(done); ++done) {
          uint16_t fi;
          uint64_t b0, n;
          pick(rng, fi, b0, n);
          if (rng.unit() < evict_ratio) {
            uint64_t id = tl.new_id();
            uint64_t t0 = now_ns();
            int r = posix_fadvise(fds.fd[fi], off_t(b0 * kBlockSize), off_t(n * kBlockSize), POSIX_FADV_DONTNEED);
            tl.op(id, OpKind::kEvict, fi, b0 * kBlockSize, n * kBlockSize, t0, now_ns(), -r);
            ++local.ops_by_kind["evict"];
          }
          uint64_t id = tl.new_id();
          if (use_mmap) {
            uint64_t t0 = now_ns();
            std::memcpy(buf.p, fds.map[fi] + b0 * kBlockSize, n * kBlockSize);
            uint64_t t1 = now_ns();
            tl.op(id, OpKind::kMmapRead, fi, b0 * kBlockSize, n * kBlockSize, t0, t1, int64_t(n * kBlockSize));
            record_blocks(tl, buf.p, b0, n);
            ++local.ops_by_kind["mmap-read"];
          } else {
            uint64_t t0 = now_ns();
            ssize_t r = pread(fds.fd[fi], buf.p, n * kBlockSize, off_t(b0 * kBlockSize));
            uint64_t t1 = now_ns();
            int64_t res = r < 0 ? -errno : r;
            tl.op(id, OpKind::kRead, fi, b0 * kBlockSize, n * kBlockSize, t0, t1, res);
            if (res > 0) record_blocks(tl, buf.p, b0, uint64_t(res) / kBlockSize);
            ++local.ops_by_kind["read"];
            if (res != int64_t(n * kBlockSize)) {
              ++local.errors_by_kind["read"];
              local.fatal_errors.push_back(fmt::format("pread on {}: {}", files[fi].name, res < 0 ? strerror(int(-res)) : "short read"));
            }
          }
        }
        merge(local);
      });
    }
    uint64_t t0 = now_ns();
    go = true;
    for (auto& t : threads) t.join();
    stats.seconds = double(now_ns() - t0) / 1e9;
    for (size_t i = 0; i < files.size(); ++i) {
      munmap(fds.map[i], files[i].blocks * kBlockSize);
      close(fds.fd[i]);
    }
    return stats;
  }

 private:
  ScenarioSpec spec_;
};

}  // namespace

std::unique_ptr<Scenario> make_punch_vs_fault() { return std::make_unique<PunchVsFault>(); }

}  // namespace fsrace
