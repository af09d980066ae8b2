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
#include "harness/util.h"

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
    if (fd < 0) throw UsageError(fmt::format("cannot open {} for verification: {}", f.path, strerror(errno)));
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
    if (fd < 0) throw UsageError(fmt::format("cannot open {} after remount: {}", f.path, strerror(errno)));
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
    throw UsageError("--inject-corruption needs a first test file of at least 8 blocks (file_blocks >= 8)");
  const TestFile& f = files[0];
  int fd = open(f.path.c_str(), O_RDWR | O_CLOEXEC);
  int dfd = open(f.path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  if (fd < 0 || dfd < 0) throw UsageError(fmt::format("cannot open {} for the corruption helper: {}", f.path, strerror(errno)));
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

std::vector<Finding> check_space(const OpLogData& d, const SpaceMeasure& m, const std::string& scenario,
                                 const std::string& case_name) {
  std::vector<Finding> out;
  BlockModel model(d);
  // After a power cut the final measurements see what survived it: ops no fsync made durable may or may
  // not have happened (a lost punch leaves its blocks allocated).
  const OpRecord* cut = find_power_cut(d);
  std::optional<BlockModel> after;
  if (cut) after.emplace(d, cut->start_ns);
  const BlockModel& final_model = after ? *after : model;
  uint64_t per_fs = std::max<uint64_t>(1, m.fs_block / kBlockSize);
  (void)per_fs;
  // Blocks rewritten behind the model's back by the corruption helper may be allocated either way.
  std::map<uint16_t, uint64_t> corrupted;
  for (const auto& r : d.ops)
    if (OpKind(r.kind) == OpKind::kTestCorrupt) ++corrupted[r.file];
  auto mk = [&](const std::string& file, const std::string& detail) {
    Finding f = make_finding("space-leak", m.fs, scenario, case_name, "space");
    f.file = file;
    f.detail = detail;
    return f;
  };
  // Metadata the filesystems may count in st_blocks / take from free space (extent tree and btree
  // blocks); measured slack, see results/README.md.
  bool xfs = m.fs == "xfs";
  uint64_t total_alloc = 0;
  const auto& files = d.meta.contains("files") ? d.meta["files"] : nlohmann::json::array();
  for (size_t fi = 0; fi < files.size() && fi < m.allocated.size(); ++fi) {
    uint64_t blocks = files[fi].value("blocks", uint64_t(0));
    uint64_t max_data = 0;
    for (uint64_t b = 0; b < blocks; ++b) max_data += final_model.may_be_allocated(uint16_t(fi), b, UINT64_MAX);
    uint64_t alloc = m.allocated[fi];
    total_alloc += alloc;
    uint64_t meta = (xfs ? 4 : 2) + blocks / (xfs ? 128 : 256);
    uint64_t allowed = max_data + meta + corrupted[uint16_t(fi)];
    if (alloc > allowed)
      out.push_back(mk(files[fi].value("name", ""),
                       fmt::format("{} blocks allocated (st_blocks) but at most {} blocks can still be allocated "
                                   "after the last ops (+{} for metadata): punched blocks were not freed",
                                   alloc, max_data, meta)));
  }
  // Measured here: ext4 and XFS account exactly (0 blocks of difference over many runs); a block or
  // two of slack absorbs allocator metadata (XFS free-space btree splits).
  uint64_t slack = xfs ? 8 : 1;
  // Quiescent points during the race: same per-file bound at that instant, and free space.
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> round_alloc;  // stat time (first) -> {sum alloc, free}
  uint64_t last_round = 0;
  for (const auto& r : d.ops) {
    if (OpKind(r.kind) != OpKind::kStatBlocks || r.result < 0) continue;
    uint64_t t = r.start_ns;
    if (t - last_round > 1000000000ull / 2 || round_alloc.empty()) last_round = t;  // files of one round are adjacent
    auto& ra = round_alloc[last_round];
    ra.first += uint64_t(r.result);
    ra.second = r.length;
    uint64_t blocks = r.file < files.size() ? files[r.file].value("blocks", uint64_t(0)) : 0;
    uint64_t max_data = 0;
    for (uint64_t b = 0; b < blocks; ++b) max_data += model.may_be_allocated(r.file, b, t);
    uint64_t meta = (xfs ? 4 : 2) + blocks / (xfs ? 128 : 256);
    if (uint64_t(r.result) > max_data + meta) {
      Finding f = mk(r.file < files.size() ? files[r.file].value("name", "") : "",
                     fmt::format("at a quiescent point during the race (fsync'ed): {} blocks allocated but at most {} "
                                 "can be allocated at that instant (+{} for metadata)",
                                 r.result, max_data, meta));
      f.ops.push_back(r);
      f.time_ns = t;
      out.push_back(std::move(f));
    }
  }
  for (const auto& [t, ra] : round_alloc)
    if (m.baseline_free >= ra.second && m.baseline_free - ra.second > ra.first + slack) {
      Finding f = mk("", fmt::format("at a quiescent point during the race (fsync'ed): free space dropped by {} blocks "
                                     "but the test files hold only {} (slack {}): blocks or reservations leaked",
                                     m.baseline_free - ra.second, ra.first, slack));
      f.time_ns = t;
      out.push_back(std::move(f));
    }
  if (m.baseline_free >= m.free_with_files) {
    uint64_t used = m.baseline_free - m.free_with_files;
    if (used > total_alloc + slack)
      out.push_back(mk("", fmt::format("free space dropped by {} blocks but the test files hold only {} (slack {}): "
                                       "blocks or delalloc reservations leaked",
                                       used, total_alloc, slack)));
  }
  if (m.have_after_delete) {
    // ext4 returns blocks and reservations at unlink; XFS inactivates unlinked inodes in the background,
    // so only the value after remount counts there.
    if (!xfs && m.baseline_free > m.free_after_delete + slack)
      out.push_back(mk("", fmt::format("{} blocks did not come back after the test files were deleted (slack {}): "
                                       "leaked blocks or delalloc reservations",
                                       m.baseline_free - m.free_after_delete, slack)));
    if (m.baseline_free > m.free_after_remount + slack)
      out.push_back(mk("", fmt::format("{} blocks are still in use after deleting the test files and remounting "
                                       "(slack {}): leaked blocks",
                                       m.baseline_free - m.free_after_remount, slack)));
  }
  return out;
}

}  // namespace fsrace
