#include "workloads/engine.h"

#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <csetjmp>
#include <csignal>
#include <cstring>
#include <fmt/core.h>
#include <mutex>
#include <pthread.h>
#include <sched.h>
#include <thread>

namespace fsrace {

void FileHandles::open_all(const std::vector<TestFile>& files) {
  for (const auto& f : files) {
    int fd = open(f.path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) throw Fatal(fmt::format("cannot open test file {}: {}", f.path, strerror(errno)));
    // 2 MiB-aligned addresses for files of 2 MiB or more, so a DAX file can be mapped by PMD faults
    // (and a page-cache file by large folios): reserve, trim, map over the aligned part.
    size_t len = f.blocks * kBlockSize, huge = size_t(2) << 20;
    void* at = nullptr;
    if (len >= huge) {
      void* r = mmap(nullptr, len + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (r != MAP_FAILED) {
        uintptr_t a = (uintptr_t(r) + huge - 1) & ~uintptr_t(huge - 1);
        if (a > uintptr_t(r)) munmap(r, a - uintptr_t(r));
        if (uintptr_t(r) + len + huge > a + len) munmap(reinterpret_cast<void*>(a + len), uintptr_t(r) + len + huge - (a + len));
        at = reinterpret_cast<void*>(a);
      }
    }
    void* m = mmap(at, len, PROT_READ | PROT_WRITE, MAP_SHARED | (at ? MAP_FIXED : 0), fd, 0);
    if (m == MAP_FAILED) throw Fatal(fmt::format("cannot mmap test file {}: {}", f.path, strerror(errno)));
    this->fd.push_back(fd);
    order_lock.push_back(std::make_unique<std::shared_mutex>());
    shift_lock.push_back(std::make_unique<std::mutex>());
    dfd.push_back(open(f.path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC));
    map.push_back(static_cast<char*>(m));
  }
}

void FileHandles::close_all(const std::vector<TestFile>& files) {
  for (size_t i = 0; i < fd.size(); ++i) {
    munmap(map[i], files[i].blocks * kBlockSize);
    if (dfd[i] >= 0) close(dfd[i]);
    close(fd[i]);
  }
  fd.clear();
  dfd.clear();
  map.clear();
  order_lock.clear();
  shift_lock.clear();
}

namespace {
// Large ops (params large_op_ratio, large_range_blocks): 0 blocks when off or the scenario has no such params.
uint64_t large_blocks_of(const ScenarioEnv& env) {
  const ScenarioConfig* c = env.cfg;
  if (!c || !c->params.count("large_op_ratio") || !c->params.count("large_range_blocks") || c->d("large_op_ratio") <= 0) return 0;
  return uint64_t(c->i("large_range_blocks"));
}
}  // namespace

OpCtx::OpCtx(ScenarioEnv& env, const std::vector<TestFile>& files, FileHandles& h, uint32_t tid, uint64_t max_blocks)
    : rng(env.seed * 0x9e3779b97f4a7c15ull + tid), env_(env), files_(files), h_(h), tl_(env.log->thread(tid)),
      buf_(std::max(max_blocks, large_blocks_of(env)) * kBlockSize), tid_(tid), max_blocks_(std::max(max_blocks, large_blocks_of(env))),
      large_blocks_(large_blocks_of(env)), large_ratio_(large_blocks_ ? env.cfg->d("large_op_ratio") : 0) {}

Range OpCtx::pick(uint64_t max_blocks) {
  Range r;
  r.file = uint16_t(rng.below(files_.size()));
  uint64_t nb = files_[r.file].blocks;
  r.n = 1 + rng.below(std::min(max_blocks, nb));
  // a large op: more than max_blocks, up to large_range_blocks (one multi-MiB extent / hundreds of folios)
  if (large_ratio_ > 0 && rng.unit() < large_ratio_) {
    uint64_t lo = max_blocks + 1, hi = std::min(large_blocks_, nb);
    if (hi >= lo) r.n = lo + rng.below(hi - lo + 1);
  }
  r.b0 = rng.below(nb - r.n + 1);
  return r;
}

bool OpCtx::has_direct() const {
  for (int d : h_.dfd)
    if (d < 0) return false;
  return true;
}

void OpCtx::fail(const std::string& what, int64_t res) {
  ++stats.errors_by_kind[what];
  if (int e = env_.tolerated_errno; e && (res == -e || res >= 0)) {  // injected: -errno, or a short transfer
    ++stats.injected_failures;
    return;
  }
  if (stats.fatal_errors.size() < 20)
    stats.fatal_errors.push_back({what, res, fmt::format("{}: {}", what, res < 0 ? strerror(int(-res)) : "short transfer")});
}

template <class F>
void OpCtx::simple(OpKind k, const Range& r, const char* name, F&& call, bool zero_ok) {
  uint64_t id = tl_.new_id(), t0 = now_ns();
  int64_t res = call();
  tl_.op(id, k, r.file, r.off(), r.len(), t0, now_ns(), res, flags_);
  ++stats.ops_by_kind[name];
  if (res < 0 || (!zero_ok && res == 0)) fail(name, res);
}

namespace {
int64_t neg_errno(long r) { return r < 0 ? -int64_t(errno) : int64_t(r); }
}  // namespace

std::shared_lock<std::shared_mutex> OpCtx::mod_guard(uint16_t file) {
  if (!h_.shifting || exclusive_) return {};
  return std::shared_lock<std::shared_mutex>(*h_.order_lock[file]);
}

void OpCtx::write(const Range& r) {
  auto g = mod_guard(r.file);
  uint64_t id = tl_.new_id();
  for (uint64_t i = 0; i < r.n; ++i) stamp_encode(buf_.c() + i * kBlockSize, files_[r.file].file_id, r.b0 + i, id);
  uint64_t t0 = now_ns();
  int64_t res = neg_errno(pwrite(h_.fd[r.file], buf_.p, r.len(), off_t(r.off())));
  tl_.op(id, OpKind::kWrite, r.file, r.off(), r.len(), t0, now_ns(), res, flags_);
  ++stats.ops_by_kind["write"];
  if (res != int64_t(r.len())) fail("write", res);
}

void OpCtx::dio_write(const Range& r) {
  auto g = mod_guard(r.file);
  uint64_t id = tl_.new_id();
  for (uint64_t i = 0; i < r.n; ++i) stamp_encode(buf_.c() + i * kBlockSize, files_[r.file].file_id, r.b0 + i, id);
  uint64_t t0 = now_ns();
  int64_t res = neg_errno(pwrite(h_.dfd[r.file], buf_.p, r.len(), off_t(r.off())));
  tl_.op(id, OpKind::kDioWrite, r.file, r.off(), r.len(), t0, now_ns(), res, flags_);
  ++stats.ops_by_kind["dio-write"];
  if (res != int64_t(r.len())) fail("dio-write", res);
}

void OpCtx::mmap_write(const Range& r) {
  auto g = mod_guard(r.file);
  uint64_t id = tl_.new_id();
  for (uint64_t i = 0; i < r.n; ++i) stamp_encode(buf_.c() + i * kBlockSize, files_[r.file].file_id, r.b0 + i, id);
  uint64_t t0 = now_ns();
  std::memcpy(h_.map[r.file] + r.off(), buf_.p, r.len());
  fence_stores_before_timestamp();
  tl_.op(id, OpKind::kMmapWrite, r.file, r.off(), r.len(), t0, now_ns(), int64_t(r.len()), flags_);
  ++stats.ops_by_kind["mmap-write"];
}

void OpCtx::punch(const Range& r) {
  auto g = mod_guard(r.file);
  simple(OpKind::kPunch, r, "punch", [&] {
    return neg_errno(fallocate(h_.fd[r.file], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(r.off()), off_t(r.len())));
  });
}

void OpCtx::zero_range(const Range& r) {
  if (env_.op_unsupported("zero-range")) {
    ++stats.ops_by_kind["zero-range-skipped-unsupported"];
    return;
  }
  auto g = mod_guard(r.file);
  simple(OpKind::kZeroRange, r, "zero-range", [&] {
    return neg_errno(fallocate(h_.fd[r.file], FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off_t(r.off()), off_t(r.len())));
  });
}

void OpCtx::falloc(const Range& r) {
  if (env_.op_unsupported("falloc")) {
    ++stats.ops_by_kind["falloc-skipped-unsupported"];
    return;
  }
  auto g = mod_guard(r.file);
  simple(OpKind::kFalloc, r, "falloc", [&] {
    return neg_errno(fallocate(h_.fd[r.file], FALLOC_FL_KEEP_SIZE, off_t(r.off()), off_t(r.len())));
  });
}

bool OpCtx::shift(OpKind k, const Range& r) {
  std::lock_guard<std::mutex> sg(*h_.shift_lock[r.file]);  // one shift at a time per file
  std::unique_lock<std::shared_mutex> g(*h_.order_lock[r.file], std::defer_lock);
  if (!h_.race_shifts) g.lock();  // barrier mode: wait for every modifying op on the file
  int mode = k == OpKind::kCollapse ? FALLOC_FL_COLLAPSE_RANGE : FALLOC_FL_INSERT_RANGE;
  const char* name = op_kind_name(k);
  uint64_t id = tl_.new_id(), t0 = now_ns();
  int64_t res = neg_errno(fallocate(h_.fd[r.file], mode, off_t(r.off()), off_t(r.len())));
  tl_.op(id, k, r.file, r.off(), r.len(), t0, now_ns(), res, flags_);
  ++stats.ops_by_kind[name];
  if (res == -EOPNOTSUPP || res == -EINVAL) {
    if (!shifts_refused_) fail(name, res);  // once: the filesystem (or its options) refuses shifts
    shifts_refused_ = true;
    return false;
  }
  if (res < 0) fail(name, res);
  return res == 0;
}

void OpCtx::truncate(uint16_t file, uint64_t blocks) {
  uint64_t id = tl_.new_id(), t0 = now_ns();
  int64_t res = neg_errno(ftruncate(h_.fd[file], off_t(blocks * kBlockSize)));
  tl_.op(id, OpKind::kTruncate, file, blocks * kBlockSize, 0, t0, now_ns(), res, flags_);
  ++stats.ops_by_kind["truncate"];
  if (res < 0) fail("truncate", res);
}

void OpCtx::dio_write_past_eof(uint64_t max_blocks) {
  uint16_t file = uint16_t(rng.below(files_.size()));
  uint64_t nb = files_[file].blocks;
  uint64_t tail = std::min(max_blocks, nb);
  uint64_t b0 = nb - 1 - rng.below(tail);  // the new EOF: one of the last `tail` blocks
  uint64_t n = 1 + rng.below(nb - b0);
  std::lock_guard<std::mutex> sg(*h_.shift_lock[file]);          // no shift during the sequence
  std::unique_lock<std::shared_mutex> g(*h_.order_lock[file]);  // nor any other modifying op
  exclusive_ = true;
  truncate(file, b0);
  dio_write(Range{file, b0, n});  // starts at EOF: extends the file
  truncate(file, nb);
  exclusive_ = false;
}

bool OpCtx::insert_collapse(uint64_t max_blocks) {
  if (env_.op_unsupported("shift")) {
    ++stats.ops_by_kind["insert-collapse-skipped-unsupported"];
    return false;
  }
  if (shifts_refused_) return false;
  uint16_t file = uint16_t(rng.below(files_.size()));
  uint64_t nb = files_[file].blocks;
  if (nb < 2) return false;  // a collapse must end before EOF
  uint64_t n = 1 + rng.below(std::min(max_blocks, nb - 1));
  Range ins{file, rng.below(nb), n}, col{file, rng.below(nb), n};  // offsets < size, collapse ends < size
  if (!shift(OpKind::kInsert, ins)) return false;
  return shift(OpKind::kCollapse, col);
}

void OpCtx::evict(const Range& r) {
  simple(OpKind::kEvict, r, "evict", [&] {
    return -int64_t(posix_fadvise(h_.fd[r.file], off_t(r.off()), off_t(r.len()), POSIX_FADV_DONTNEED));
  });
}

void OpCtx::readahead(const Range& r) {
  simple(OpKind::kReadahead, r, "readahead", [&] { return neg_errno(::readahead(h_.fd[r.file], off_t(r.off()), r.len())); });
}

void OpCtx::fadvise_willneed(const Range& r) {
  simple(OpKind::kFadvWillneed, r, "fadvise-willneed", [&] {
    return -int64_t(posix_fadvise(h_.fd[r.file], off_t(r.off()), off_t(r.len()), POSIX_FADV_WILLNEED));
  });
}

void OpCtx::madvise_willneed(const Range& r) {
  simple(OpKind::kMadvWillneed, r, "madvise-willneed",
         [&] { return neg_errno(madvise(h_.map[r.file] + r.off(), r.len(), MADV_WILLNEED)); });
}

void OpCtx::pageout(const Range& r) {
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
  simple(OpKind::kPageout, r, "pageout", [&] {
    int64_t res = neg_errno(madvise(h_.map[r.file] + r.off(), r.len(), MADV_PAGEOUT));
    return res == -EINVAL ? 0 : res;  // kernels before 5.4 lack MADV_PAGEOUT: a no-op there
  });
}

void OpCtx::sync_range(const Range& r) {
  simple(OpKind::kSyncRange, r, "sync-file-range", [&] {
    return neg_errno(sync_file_range(h_.fd[r.file], off_t(r.off()), off_t(r.len()),
                                     SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER));
  });
}

void OpCtx::msync(const Range& r) {
  simple(OpKind::kMsync, r, "msync", [&] {
    return neg_errno(::msync(h_.map[r.file] + r.off(), r.len(), MS_SYNC));
  });
}

void OpCtx::msync_not_made(const Range& r) {
  simple(OpKind::kMsync, r, "msync", [&] { return 0; });
}

void OpCtx::fsync(uint16_t file) {
  Range r{file, 0, files_[file].blocks};
  // datasync = 1: fdatasync(2), which must make the same data durable (punched ranges included: fstests
  // generic/392); logged as an fsync op either way.
  bool data_only = env_.cfg && env_.cfg->i("datasync") != 0;
  simple(OpKind::kFsync, r, "fsync", [&] { return neg_errno(data_only ? ::fdatasync(h_.fd[file]) : ::fsync(h_.fd[file])); });
}

void OpCtx::read(const Range& r) {
  uint64_t id = tl_.new_id(), t0 = now_ns();
  int64_t res = neg_errno(pread(h_.fd[r.file], buf_.p, r.len(), off_t(r.off())));
  tl_.op(id, OpKind::kRead, r.file, r.off(), r.len(), t0, now_ns(), res, flags_);
  if (res > 0) record_blocks(tl_, buf_.p, r.b0, uint64_t(res) / kBlockSize);
  ++stats.ops_by_kind["read"];
  if (res < 0 || (res != int64_t(r.len()) && !h_.shifting)) fail("read", res);  // short at EOF: the oracle judges
}

OpCtx::~OpCtx() {
  if (aio_ctx_) syscall(SYS_io_destroy, aio_ctx_);
  if (staging_fd_ >= 0) close(staging_fd_);
}

bool OpCtx::staging_ready() {
  if (staging_fd_ == -2) {
    staging_fd_ = env_.staging_dev.empty() ? -1 : open(env_.staging_dev.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
    aio_context_t ctx = 0;
    if (staging_fd_ >= 0 && syscall(SYS_io_setup, 1, &ctx) == 0) aio_ctx_ = ctx;
  }
  return staging_fd_ >= 0;
}

uint64_t OpCtx::staging_offset() const {  // this thread's own region, as large as its buffer
  uint64_t regions = std::max<uint64_t>(1, env_.staging_bytes / buf_.size);
  return (tid_ % regions) * buf_.size;
}

void OpCtx::pin_write(const Range& r) {
  if (!staging_ready()) {
    ++stats.ops_by_kind["pin-write-skipped-no-staging"];
    return;
  }
  auto g = mod_guard(r.file);
  uint64_t id = tl_.new_id(), so = staging_offset();
  for (uint64_t i = 0; i < r.n; ++i) stamp_encode(buf_.c() + i * kBlockSize, files_[r.file].file_id, r.b0 + i, id);
  int64_t w = neg_errno(pwrite(staging_fd_, buf_.p, r.len(), off_t(so)));
  if (w != int64_t(r.len())) {
    fail("staging-write", w);
    return;
  }
  uint64_t t0 = now_ns();
  // The buffer is the file's own mapping: the read pins those pages and the device copies into them.
  int64_t res = neg_errno(pread(staging_fd_, h_.map[r.file] + r.off(), r.len(), off_t(so)));
  fence_stores_before_timestamp();
  tl_.op(id, OpKind::kPinWrite, r.file, r.off(), r.len(), t0, now_ns(), res, flags_);
  ++stats.ops_by_kind["pin-write"];
  if (res != int64_t(r.len())) fail("pin-write", res);
}

void OpCtx::pin_victim(bool evict, uint64_t blocks) {
  const char* kind = evict ? "pin-evict" : "pin-truncate";
  if (!staging_ready() || !aio_ctx_) {
    ++stats.ops_by_kind[fmt::format("{}-skipped-no-staging", kind)];
    return;
  }
  blocks = std::clamp<uint64_t>(blocks, 1, buf_.size / kBlockSize);
  uint64_t len = blocks * kBlockSize, so = staging_offset();
  uint32_t seq = victim_seq_++;
  uint64_t vid = (env_.run_nonce << 32) | kVictimFileBit | (uint64_t(tid_ & 0x3ff) << 20) | (seq & 0xfffff);
  std::string path = fmt::format("{}/pv{}.{}", env_.dir, tid_, seq);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return fail(kind, -int64_t(errno));
  uint64_t gen = tl_.new_id();  // the victim's own blocks, allocated by this pwrite (marked: kVictimOwnBit)
  for (uint64_t i = 0; i < blocks; ++i) stamp_encode(buf_.c() + i * kBlockSize, vid | kVictimOwnBit, i, gen);
  int64_t res = neg_errno(pwrite(fd, buf_.p, len, 0));
  void* m = res == int64_t(len) ? mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  if (m == MAP_FAILED) {
    fail(kind, res == int64_t(len) ? -int64_t(errno) : res);
    close(fd);
    unlink(path.c_str());
    return;
  }
  gen = tl_.new_id();  // what the pinned read writes: this generation, found anywhere else = a write after free
  for (uint64_t i = 0; i < blocks; ++i) stamp_encode(buf_.c() + i * kBlockSize, vid, i, gen);
  res = neg_errno(pwrite(staging_fd_, buf_.p, len, off_t(so)));
  bool mapped = true, open_ = true;
  if (res == int64_t(len)) {
    iocb cb{};
    cb.aio_fildes = uint32_t(staging_fd_);
    cb.aio_lio_opcode = IOCB_CMD_PREAD;
    cb.aio_buf = uint64_t(uintptr_t(m));
    cb.aio_nbytes = len;
    cb.aio_offset = int64_t(so);
    iocb* cbs[1] = {&cb};
    if (syscall(SYS_io_submit, aio_ctx_, 1, cbs) == 1) {
      // The read is in flight with the victim's pages pinned.
      if (evict) {
        munmap(m, len);
        close(fd);
        unlink(path.c_str());  // the last reference: the inode is evicted and its blocks freed
        mapped = open_ = false;
      } else if (ftruncate(fd, 0) != 0) {  // the filesystem must wait for the pin (break layouts) first
        fail(kind, -int64_t(errno));
      }
      io_event ev{};
      long got;
      do got = syscall(SYS_io_getevents, aio_ctx_, 1, 1, &ev, nullptr);
      while (got < 0 && errno == EINTR);
      res = got == 1 ? int64_t(ev.res) : -int64_t(errno);
      // A truncated victim's read may fault past EOF; only a failed submission or wait is an error here.
      if (got != 1) fail(kind, res);
    } else {
      fail(kind, -int64_t(errno));
    }
  } else {
    fail("staging-write", res);
  }
  if (mapped) munmap(m, len);
  if (open_) {
    close(fd);
    unlink(path.c_str());
  }
  ++stats.ops_by_kind[kind];
}

std::string OpCtx::probe_uring_fixed_buffers() {
  io_uring_params p{};
  int ufd = int(syscall(SYS_io_uring_setup, 1, &p));
  if (ufd < 0) return fmt::format("not run: io_uring_setup failed ({}): this kernel has no io_uring or it is disabled", strerror(errno));
  iovec iov{h_.map[0], std::min<uint64_t>(files_[0].blocks, 16) * kBlockSize};
  long r = syscall(SYS_io_uring_register, ufd, IORING_REGISTER_BUFFERS, &iov, 1);
  int e = errno;
  close(ufd);
  if (r == 0)
    return "registered: the kernel took a long-term pin (FOLL_LONGTERM) of a DAX mapping's pages, which fsdax is meant "
           "to refuse (a truncate or eviction cannot wait for such a pin)";
  return fmt::format("refused by the kernel ({}): long-term pins of fsdax pages are not allowed, so fixed buffers cannot "
                     "pin DAX pages; the O_DIRECT pins are the ones raced", strerror(e));
}

void OpCtx::dio_read(const Range& r) {
  uint64_t id = tl_.new_id(), t0 = now_ns();
  int64_t res = neg_errno(pread(h_.dfd[r.file], buf_.p, r.len(), off_t(r.off())));
  tl_.op(id, OpKind::kDioRead, r.file, r.off(), r.len(), t0, now_ns(), res, flags_);
  if (res > 0) record_blocks(tl_, buf_.p, r.b0, uint64_t(res) / kBlockSize);
  ++stats.ops_by_kind["dio-read"];
  if (res < 0 || (res != int64_t(r.len()) && !h_.shifting)) fail("dio-read", res);
}

namespace {
// SIGBUS from an mmap load past EOF (files whose size drops below the mapping): jump back into the
// mmap read that faulted. Other SIGBUS are fatal as usual.
thread_local sigjmp_buf* t_sigbus_jmp = nullptr;
void on_sigbus(int sig, siginfo_t*, void*) {
  if (t_sigbus_jmp) siglongjmp(*t_sigbus_jmp, 1);
  signal(sig, SIG_DFL);
  raise(sig);
}
void install_sigbus_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, nullptr);
  });
}
}  // namespace

void OpCtx::mmap_read(const Range& r) {
  uint64_t id = tl_.new_id(), t0 = now_ns();
  fence_loads_after_timestamp();
  uint64_t copied = r.n;
  if (!h_.shifting) {
    std::memcpy(buf_.p, h_.map[r.file] + r.off(), r.len());
  } else {
    // Block by block, so a SIGBUS past EOF tells how many blocks were loaded.
    install_sigbus_handler();
    volatile uint64_t done = 0;
    sigjmp_buf jb;
    if (sigsetjmp(jb, 1) == 0) {
      t_sigbus_jmp = &jb;
      for (uint64_t i = done; i < r.n; i = done) {
        std::memcpy(buf_.c() + i * kBlockSize, h_.map[r.file] + r.off() + i * kBlockSize, kBlockSize);
        done = i + 1;
      }
    }
    t_sigbus_jmp = nullptr;
    copied = done;
  }
  tl_.op(id, OpKind::kMmapRead, r.file, r.off(), r.len(), t0, now_ns(), int64_t(copied * kBlockSize), flags_);
  if (copied) record_blocks(tl_, buf_.p, r.b0, copied);
  ++stats.ops_by_kind["mmap-read"];
}

// Longest a parked I/O waits for its racing op (which may itself wait for a lock the I/O holds).
constexpr double kMaxPauseMs = 5;

bool OpCtx::uffd_ready() {
  if (uffd_) return true;
  if (uffd_failed_) return false;
  try {
    uffd_ = std::make_unique<UffdBuffer>(max_blocks_ * kBlockSize);
    return true;
  } catch (const Fatal& e) {
    uffd_failed_ = true;
    stats.widening["userfaultfd"] = std::string("unavailable: ") + e.what();
    return false;
  }
}

OpCtx& OpCtx::handler_ctx() {
  if (!handler_) {
    handler_ = std::make_unique<OpCtx>(env_, files_, h_, tid_ + 1000, max_blocks_);
    handler_->flags_ = kFlagDuringPause;
  }
  return *handler_;
}

void OpCtx::paused_read(const Range& r, const std::function<void(OpCtx&)>& during) {
  if (!uffd_ready()) return read(r);
  OpCtx& hc = handler_ctx();
  uffd_->arm(nullptr, r.len(), [&] { during(hc); }, kMaxPauseMs);
  uint64_t id = tl_.new_id(), t0 = now_ns();
  int64_t res = neg_errno(pread(h_.fd[r.file], uffd_->data(), r.len(), off_t(r.off())));
  uint64_t t1 = now_ns();
  bool inside = uffd_->finish();
  ++stats.widening_counts[inside ? "uffd-race-inside-pause" : "uffd-race-blocked-by-io"];
  uint32_t f = flags_ | (uffd_->fired() ? kFlagPaused : 0);
  tl_.op(id, OpKind::kRead, r.file, r.off(), r.len(), t0, t1, res, f);
  if (res > 0) record_blocks(tl_, uffd_->data(), r.b0, uint64_t(res) / kBlockSize);
  ++stats.ops_by_kind["read"];
  ++stats.widening_counts["uffd-paused"];
  if (res != int64_t(r.len())) fail("read", res);
}

void OpCtx::paused_dio_write(const Range& r, const std::function<void(OpCtx&)>& during) {
  if (!uffd_ready()) return dio_write(r);
  paused_pwrite(r, during, true);
}

void OpCtx::paused_write(const Range& r, const std::function<void(OpCtx&)>& during) {
  if (!uffd_ready()) return write(r);
  paused_pwrite(r, during, false);
}

void OpCtx::paused_pwrite(const Range& r, const std::function<void(OpCtx&)>& during, bool direct) {
  auto g = mod_guard(r.file);  // like any write: collapse / insert range wait for it
  OpCtx& hc = handler_ctx();
  uint64_t id = tl_.new_id();
  for (uint64_t i = 0; i < r.n; ++i) stamp_encode(buf_.c() + i * kBlockSize, files_[r.file].file_id, r.b0 + i, id);
  uffd_->arm(buf_.p, r.len(), [&] { during(hc); }, kMaxPauseMs);
  uint64_t t0 = now_ns();
  int64_t res = neg_errno(pwrite(direct ? h_.dfd[r.file] : h_.fd[r.file], uffd_->data(), r.len(), off_t(r.off())));
  uint64_t t1 = now_ns();
  bool inside = uffd_->finish();
  ++stats.widening_counts[inside ? "uffd-race-inside-pause" : "uffd-race-blocked-by-io"];
  uint32_t f = flags_ | (uffd_->fired() ? kFlagPaused : 0);
  const char* name = direct ? "dio-write" : "write";
  tl_.op(id, direct ? OpKind::kDioWrite : OpKind::kWrite, r.file, r.off(), r.len(), t0, t1, res, f);
  ++stats.ops_by_kind[name];
  ++stats.widening_counts["uffd-paused"];
  if (res != int64_t(r.len())) fail(name, res);
}

void merge_stats(RaceStats& into, const RaceStats& from) {
  for (auto& [k, v] : from.ops_by_kind) into.ops_by_kind[k] += v;
  for (auto& [k, v] : from.errors_by_kind) into.errors_by_kind[k] += v;
  into.injected_failures += from.injected_failures;
  for (auto& e : from.fatal_errors)
    if (into.fatal_errors.size() < 20) into.fatal_errors.push_back(e);
  for (auto& [k, v] : from.widening) into.widening[k] = v;
  for (auto& [k, v] : from.widening_counts) into.widening_counts[k] += v;
}

RaceStats run_roles(ScenarioEnv& env, const std::vector<TestFile>& files, const std::vector<Role>& roles,
                    uint64_t iterations, uint64_t max_blocks) {
  FileHandles h;
  h.open_all(files);
  int nthreads = 0;
  for (const auto& r : roles) {
    nthreads += r.count;
    h.shifting |= r.shifts;
  }
  h.race_shifts = !env.cfg->params.count("shift_race") || env.cfg->i("shift_race") != 0;
  uint64_t deadline = now_ns() + uint64_t(env.duration_s * 1e9);
  bool quiesce = env.quiesce && env.quiesce_ms > 0;
  bool pin = env.cfg->params.count("pin_cpus") && env.cfg->i("pin_cpus") != 0;
  // jitter_us > 0: fixed; -1: calibrated on this kernel from the ops' own latency (below); 0: off.
  double jitter_param = env.cfg->params.count("jitter_us") ? env.cfg->d("jitter_us") : 0;
  bool jitter_auto = jitter_param < 0;
  std::atomic<uint64_t> jitter_a{jitter_auto ? 0 : uint64_t(jitter_param * 1000)};
  constexpr uint64_t kCalibNs = 300000000;  // calibration window at the start of the race
  std::vector<std::atomic<uint64_t>> mean_step(size_t(nthreads) + 1);
  unsigned ncpus = std::max(1u, std::thread::hardware_concurrency());

  RaceStats stats;
  std::mutex mu;
  std::atomic<bool> go{false}, pause{false};
  std::atomic<int> live{nthreads};
  // Quiescent points: workers and the coordinator meet twice (stop, then resume).
  std::barrier sync(nthreads + 1);
  auto running = [&](uint64_t done) {
    if (env.stop && env.stop->load(std::memory_order_relaxed)) return false;
    if (iterations) return done < iterations;
    return now_ns() < deadline;
  };

  std::vector<std::thread> threads;
  uint32_t tid = 1;
  for (const auto& role : roles) {
    for (int i = 0; i < role.count; ++i, ++tid) {
      threads.emplace_back([&, tid, step = role.step, tag = role.tag.empty() ? role.name : role.tag] {
        // "fsr-<tag><tid>" (15 chars at most): probe events name the thread that did it.
        pthread_setname_np(pthread_self(), fmt::format("fsr-{}{}", tag.substr(0, 8), tid % 1000).c_str());
        OpCtx ctx(env, files, h, tid, max_blocks);
        if (env.on_worker_start) env.on_worker_start();
        if (pin) {  // racing threads on different CPUs: the window is real parallelism, not preemption
          cpu_set_t set;
          CPU_ZERO(&set);
          CPU_SET((tid - 1) % ncpus, &set);
          pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        }
        while (!go.load()) std::this_thread::yield();
        Rng jrng(env.seed ^ (uint64_t(tid) << 32) ^ 0x6a17);  // own stream: jitter never shifts the op sequence
        uint64_t t_go = now_ns(), calib_sum = 0, calib_n = 0;
        bool calibrating = jitter_auto;
        for (uint64_t done = 0; running(done); ++done) {
          if (uint64_t j = jitter_a.load(std::memory_order_relaxed)) {
            // spin, not sleep: a sleep's wakeup latency dwarfs the windows we aim at
            uint64_t until = now_ns() + jrng.below(j);
            while (now_ns() < until) {
            }
          }
          if (pause.load(std::memory_order_acquire)) {
            sync.arrive_and_wait();  // stopped: the coordinator checks
            sync.arrive_and_wait();  // resumed
          }
          uint64_t s0 = calibrating ? now_ns() : 0;
          step(ctx);
          if (calibrating) {
            uint64_t s1 = now_ns();
            calib_sum += s1 - s0;
            ++calib_n;
            if (s1 - t_go > kCalibNs) {
              mean_step[tid].store(calib_sum / calib_n);
              calibrating = false;
            }
          }
        }
        sync.arrive_and_drop();
        live.fetch_sub(1);
        std::lock_guard<std::mutex> g(mu);
        merge_stats(stats, ctx.stats);
        if (ctx.handler()) merge_stats(stats, ctx.handler()->stats);
      });
    }
  }
  uint64_t t0 = now_ns();
  go = true;
  uint32_t round = 100;  // verification rounds 1 and 2 belong to the post-race checks
  std::string jitter_note;
  if (jitter_auto) {
    // Calibration: spread each thread's op starts over about twice the typical op latency of this kernel
    // and filesystem, so the racing ops' windows land on each other instead of in lockstep.
    while (now_ns() - t0 < kCalibNs + 20000000 && live.load() == nthreads) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::vector<uint64_t> means;
    for (auto& m : mean_step)
      if (uint64_t v = m.load()) means.push_back(v);
    if (!means.empty()) {
      std::sort(means.begin(), means.end());
      uint64_t med = means[means.size() / 2];
      jitter_a = std::max<uint64_t>(2 * med, 1000);
      jitter_note = fmt::format("calibrated: median op latency {:.1f} us -> 0..{:.1f} us spin before each op", med / 1e3,
                                jitter_a.load() / 1e3);
    } else {
      jitter_note = "calibration did not finish (race shorter than 0.3 s): no jitter";
    }
  }
  if (quiesce) {
    while (live.load() == nthreads) {
      uint64_t next = now_ns() + uint64_t(env.quiesce_ms * 1e6);
      while (now_ns() < next && live.load() == nthreads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (live.load() != nthreads) break;
      pause.store(true, std::memory_order_release);
      sync.arrive_and_wait();  // every live worker has stopped (exiting ones dropped out)
      pause.store(false, std::memory_order_release);
      env.quiesce(round++);
      sync.arrive_and_wait();
    }
  }
  sync.arrive_and_drop();
  for (auto& t : threads) t.join();
  stats.seconds = double(now_ns() - t0) / 1e9;
  stats.quiescent_rounds = round - 100;
  if (pin) stats.widening["pin_cpus"] = fmt::format("threads pinned round-robin to {} CPUs", ncpus);
  if (jitter_auto) stats.widening["jitter"] = jitter_note;
  else if (uint64_t j = jitter_a.load()) stats.widening["jitter"] = fmt::format("0..{} us spin before each op", j / 1000);
  if (uint64_t n = stats.widening_counts["uffd-paused"]) {
    uint64_t inside = stats.widening_counts["uffd-race-inside-pause"];
    stats.widening["userfaultfd"] =
        fmt::format("{} ops parked at their buffer fault; the racing op completed inside the pause {} times, "
                    "was blocked by the parked I/O's locks {} times",
                    n, inside, n - inside);
  }
  h.close_all(files);
  return stats;
}

}  // namespace fsrace
