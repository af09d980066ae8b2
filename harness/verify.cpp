#include "harness/verify.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fmt/core.h>
#include <map>
#include <optional>

#include "harness/oracle.h"
#include "harness/space.h"
#include "harness/testbed.h"
#include "core/util.h"

namespace fsrace {
namespace {
constexpr uint64_t kBatch = 64;  // blocks per verification read
}

std::vector<std::string> verify_cached_round(ThreadLog& tl, const std::vector<TestFile>& files, uint32_t round) {
  std::vector<std::string> notes;
  AlignedBuf buf(kBatch * kBlockSize);
  for (size_t fi = 0; fi < files.size(); ++fi) {
    const TestFile& f = files[fi];
    int fd = open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Fatal(fmt::format("cannot open {} for verification: {}", f.path, strerror(errno)));
    int dfd = open(f.path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (dfd < 0) notes.push_back(fmt::format("O_DIRECT open of {} failed ({}): no cache-coherence check", f.name, strerror(errno)));
    void* m = mmap(nullptr, f.blocks * kBlockSize, PROT_READ, MAP_SHARED, fd, 0);
    for (uint64_t b0 = 0; b0 < f.blocks; b0 += kBatch) {
      uint64_t n = std::min(kBatch, f.blocks - b0);
      off_t off = off_t(b0 * kBlockSize);
      size_t len = n * kBlockSize;
      auto rec = [&](OpKind k, uint64_t t0, int64_t res) {
        uint64_t id = tl.new_id();
        tl.op(id, k, uint16_t(fi), uint64_t(off), len, t0, now_ns(), res, round);
        if (res > 0) record_blocks(tl, buf.p, b0, uint64_t(res) / kBlockSize);
      };
      uint64_t t0 = now_ns();
      ssize_t r = pread(fd, buf.p, len, off);
      rec(OpKind::kVerifyCached, t0, r < 0 ? -errno : r);
      if (m != MAP_FAILED) {
        t0 = now_ns();
        std::memcpy(buf.p, static_cast<char*>(m) + off, len);
        rec(OpKind::kVerifyMmap, t0, int64_t(len));
      }
      if (dfd >= 0) {
        t0 = now_ns();
        r = pread(dfd, buf.p, len, off);
        rec(OpKind::kVerifyDirect, t0, r < 0 ? -errno : r);
      }
    }
    if (m != MAP_FAILED) munmap(m, f.blocks * kBlockSize);
    if (dfd >= 0) close(dfd);
    close(fd);
  }
  return notes;
}

void verify_disk_round(ThreadLog& tl, const std::vector<TestFile>& files, uint32_t round) {
  AlignedBuf buf(kBatch * kBlockSize);
  for (size_t fi = 0; fi < files.size(); ++fi) {
    const TestFile& f = files[fi];
    int fd = open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Fatal(fmt::format("cannot open {} after remount: {}", f.path, strerror(errno)));
    for (uint64_t b0 = 0; b0 < f.blocks; b0 += kBatch) {
      uint64_t n = std::min(kBatch, f.blocks - b0);
      uint64_t id = tl.new_id(), t0 = now_ns();
      ssize_t r = pread(fd, buf.p, n * kBlockSize, off_t(b0 * kBlockSize));
      int64_t res = r < 0 ? -errno : r;
      tl.op(id, OpKind::kVerifyDisk, uint16_t(fi), b0 * kBlockSize, n * kBlockSize, t0, now_ns(), res, round);
      if (res > 0) record_blocks(tl, buf.p, b0, uint64_t(res) / kBlockSize);
    }
    close(fd);
  }
}

void fsync_files(ThreadLog& tl, const std::vector<TestFile>& files) {
  for (size_t fi = 0; fi < files.size(); ++fi) {
    int fd = open(files[fi].path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    uint64_t id = tl.new_id(), t0 = now_ns();
    int r = fsync(fd);
    tl.op(id, OpKind::kFsync, uint16_t(fi), 0, files[fi].blocks * kBlockSize, t0, now_ns(), r < 0 ? -errno : 0);
    close(fd);
  }
}

void fsync_path(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

void record_stat_blocks(ThreadLog& tl, const std::vector<TestFile>& files, const std::string& dir, uint64_t fs_block) {
  struct statfs sf;
  uint64_t free = statfs(dir.c_str(), &sf) == 0 ? uint64_t(sf.f_bfree) : 0;
  for (size_t fi = 0; fi < files.size(); ++fi) {
    struct stat st;
    uint64_t id = tl.new_id(), t0 = now_ns();
    int r = stat(files[fi].path.c_str(), &st);
    int64_t res = r == 0 ? int64_t(uint64_t(st.st_blocks) * 512 / fs_block) : -errno;
    tl.op(id, OpKind::kStatBlocks, uint16_t(fi), 0, free, t0, now_ns(), res);
  }
}

std::vector<std::pair<uint64_t, std::string>> inject_corruption(ThreadLog& tl, const std::vector<TestFile>& files) {
  if (files.empty() || files[0].blocks < 8)
    throw Fatal("--inject-corruption needs a first test file of at least 8 blocks (file_blocks >= 8)");
  const TestFile& f = files[0];
  int fd = open(f.path.c_str(), O_RDWR | O_CLOEXEC);
  int dfd = open(f.path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  if (fd < 0 || dfd < 0) throw Fatal(fmt::format("cannot open {} for the corruption helper: {}", f.path, strerror(errno)));
  AlignedBuf buf(kBlockSize);
  auto logged_write = [&](uint64_t b) {
    uint64_t id = tl.new_id(), t0 = now_ns();
    int64_t r = write_stamped(fd, f, b, 1, id, buf.p);
    tl.op(id, OpKind::kWrite, 0, b * kBlockSize, kBlockSize, t0, now_ns(), r);
    return id;
  };
  auto logged_punch = [&](uint64_t b) {
    uint64_t id = tl.new_id(), t0 = now_ns();
    int r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(b * kBlockSize), kBlockSize);
    tl.op(id, OpKind::kPunch, 0, b * kBlockSize, kBlockSize, t0, now_ns(), r < 0 ? -errno : 0);
  };
  auto corrupt = [&](uint64_t b, uint64_t file_id, uint64_t stamp_block, uint64_t gen, bool zero) {
    fsync(fd);
    if (zero) std::memset(buf.p, 0, kBlockSize);
    else stamp_encode(buf.p, file_id, stamp_block, gen);
    uint64_t id = tl.new_id(), t0 = now_ns();
    ssize_t r = pwrite(dfd, buf.p, kBlockSize, off_t(b * kBlockSize));
    tl.op(id, OpKind::kTestCorrupt, 0, b * kBlockSize, kBlockSize, t0, now_ns(), r < 0 ? -errno : r);
  };
  uint64_t old1 = logged_write(1);
  logged_write(1);
  corrupt(1, f.file_id, 1, old1, false);
  uint64_t old3 = logged_write(3);
  logged_punch(3);
  corrupt(3, f.file_id, 3, old3, false);
  logged_write(5);
  corrupt(5, 0, 0, 0, true);
  logged_write(7);
  corrupt(7, f.file_id ^ 0x5a5a00000000ull, 7, old1, false);
  fsync(fd);
  close(dfd);
  close(fd);
  return {{1, "stale"}, {3, "stale-after-punch"}, {5, "lost-write"}, {7, "foreign"}};
}


void verify_after_race(ThreadLog& tl, const std::vector<TestFile>& files, Testbed& tb, bool inject, SpaceMeasure& space,
                       nlohmann::json& info) {
  const std::string& test_dir = tb.test_dir();
  for (auto& n : verify_cached_round(tl, files, 1)) info["notes"].push_back(n);
  fsync_files(tl, files);
  if (inject) {
    info["injected"] = nlohmann::json::array();
    for (auto& [b, c] : inject_corruption(tl, files)) info["injected"].push_back({{"file", files[0].name}, {"block", b}, {"class", c}});
  }
  sync();
  for (const auto& f : files) {
    struct stat st;
    space.allocated.push_back(stat(f.path.c_str(), &st) == 0 ? uint64_t(st.st_blocks) * 512 / space.fs_block : 0);
  }
  space.free_with_files = fs_space(test_dir).free;
  tb.remount();
  verify_disk_round(tl, files, 2);
  for (const auto& f : files) unlink(f.path.c_str());
  if (int dfd = open(test_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    syncfs(dfd);
    close(dfd);
  }
  space.free_after_delete = fs_space(test_dir).free;
  tb.remount();
  space.free_after_remount = fs_space(test_dir).free;
  space.have_after_delete = true;
}

}  // namespace fsrace
