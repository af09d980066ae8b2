// The race engine shared by every scenario: per-thread roles that each perform one op per step, the
// op primitives (each one recorded in the op log with its interval and result, reads with what every
// block held), the run loop (deadline, iteration count, SIGINT), and quiescent points where every
// thread waits at a barrier while the runner checks cache coherence and space in the middle of the race.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "core/util.h"
#include "workloads/scenario.h"
#include "workloads/uffd.h"

namespace fsrace {

struct FileHandles {
  std::vector<int> fd;      // O_RDWR
  std::vector<int> dfd;     // O_RDWR | O_DIRECT (-1 if the filesystem refuses O_DIRECT)
  std::vector<char*> map;   // PROT_READ | PROT_WRITE, MAP_SHARED over the whole file
  // Collapse / insert range move every block after their offset. Shifts are ordered against each other
  // and against the truncate sequences (`shift_lock` exclusive: the oracle models one shift at a time). By
  // default (`race_shifts`, scenario parameter shift_race = 1) every other modifying op races them freely:
  // the oracle models an op overlapping a shift as landing before it (then moved) or after it, per block.
  // With shift_race = 0 modifying ops hold `order_lock` shared and shifts hold it exclusive (the old
  // barrier model: only reads race shifts). Truncate sequences always hold `order_lock` exclusive.
  std::vector<std::unique_ptr<std::shared_mutex>> order_lock;
  std::vector<std::unique_ptr<std::mutex>> shift_lock;
  bool shifting = false;  // also: the size may drop below nominal (short reads and SIGBUS are expected)
  bool race_shifts = true;
  void open_all(const std::vector<TestFile>& files);
  void close_all(const std::vector<TestFile>& files);
};

struct Range {
  uint16_t file = 0;
  uint64_t b0 = 0, n = 1;
  uint64_t off() const { return b0 * kBlockSize; }
  uint64_t len() const { return n * kBlockSize; }
};

// One worker thread's view: its log, RNG, buffer and the op primitives.
class OpCtx {
 public:
  OpCtx(ScenarioEnv& env, const std::vector<TestFile>& files, FileHandles& h, uint32_t tid, uint64_t max_blocks);
  Rng rng;
  RaceStats stats;

  // A random range of 1..max blocks inside a random file.
  // A random range of 1..max_blocks blocks in a random file; with large ops on (params large_op_ratio,
  // large_range_blocks), that share of the picks is max_blocks+1..large_range_blocks blocks instead.
  Range pick(uint64_t max_blocks);

  // Modifying ops.
  void write(const Range& r);       // pwrite of stamped blocks (buffered)
  void dio_write(const Range& r);   // O_DIRECT pwrite of stamped blocks
  void mmap_write(const Range& r);  // memcpy of stamped blocks into the shared mapping (page_mkwrite)
  void punch(const Range& r);       // fallocate(PUNCH_HOLE | KEEP_SIZE)
  void zero_range(const Range& r);  // fallocate(ZERO_RANGE | KEEP_SIZE)
  // Shifts (the role must set Role::shifts): fallocate(INSERT_RANGE) of a hole of 1..max blocks at a
  // random block, then fallocate(COLLAPSE_RANGE) of as many blocks at another random block, so the file
  // is never shorter than its nominal size (no read or fault ever lands past EOF) and is back to it after
  // the step. Returns false if the filesystem refuses the shifts (EOPNOTSUPP / EINVAL: reported once).
  bool insert_collapse(uint64_t max_blocks);
  bool shift(OpKind k, const Range& r);  // one insert (kInsert) or collapse (kCollapse), exclusive
  // An O_DIRECT write past EOF (the role must set Role::shifts): with the file's lock exclusive,
  // ftruncate to a random block b in the last max_blocks of the file, O_DIRECT write of 1..N blocks at b
  // (extending the file), ftruncate back to the nominal size. Readers race all three: reads past EOF end
  // short, mmap loads past EOF get SIGBUS (caught: the op records the bytes it copied).
  void dio_write_past_eof(uint64_t max_blocks);
  void truncate(uint16_t file, uint64_t blocks);  // ftruncate, logged (call with the file's lock exclusive)
  // Data-neutral ops.
  void falloc(const Range& r);      // fallocate(KEEP_SIZE): unwritten extents over holes
  void evict(const Range& r);       // fadvise(DONTNEED)
  void readahead(const Range& r);
  void fadvise_willneed(const Range& r);
  void madvise_willneed(const Range& r);
  void pageout(const Range& r);     // madvise(PAGEOUT)
  void sync_range(const Range& r);
  void fsync(uint16_t file);
  void msync(const Range& r);       // msync(MS_SYNC) of the range of the shared mapping
  void msync_not_made(const Range& r);  // self-check only: logs a successful msync without calling it
  // Reads (every block observed).
  void read(const Range& r);
  void dio_read(const Range& r);
  void mmap_read(const Range& r);

  // userfaultfd widening: the I/O's user buffer is parked at its first page fault inside the kernel
  // (copy_to_user of the read / get_user_pages of the O_DIRECT write); `during` runs on the handler
  // thread with its own context (its ops carry kFlagDuringPause); then the I/O resumes. Without
  // userfaultfd the op runs plainly and the reason is kept in stats.widening.
  void paused_read(const Range& r, const std::function<void(OpCtx&)>& during);
  void paused_dio_write(const Range& r, const std::function<void(OpCtx&)>& during);
  // A buffered write whose source buffer is parked at its first page fault: generic_perform_write /
  // iomap_write_iter fault the source in before write_begin, with i_rwsem held and (iomap) the mapping
  // already looked up, so `during` (writeback, reclaim) changes the extent map under a cached iomap.
  void paused_write(const Range& r, const std::function<void(OpCtx&)>& during);

  // Page pins (dax-pin-vs-truncate): the O_DIRECT read's buffer is a shared mapping, so the read pins its
  // pages (get_user_pages) until the staging device (ScenarioEnv::staging_dev, under a read delay) has
  // copied into them. pin_write reads stamps of the range into the mapping of a test file (logged as a
  // pin-write); pin_victim does it to a scratch "victim" file of `blocks` blocks (its own file id, see
  // kVictimFileBit, not a test file) with asynchronous I/O and, while the read is in flight, either
  // unmaps, closes and unlinks it (the inode is evicted with its pages still pinned) or truncates it to 0.
  // Without a staging device both are counted as skipped.
  void pin_write(const Range& r);
  void pin_victim(bool evict, uint64_t blocks);
  // io_uring fixed buffers over a test file's mapping (a long-term pin): what the kernel says to
  // registering them, for the case record (fsdax kernels refuse: EOPNOTSUPP).
  std::string probe_uring_fixed_buffers();

  bool has_direct() const;
  OpCtx* handler() const { return handler_.get(); }
  ~OpCtx();

 private:
  void paused_pwrite(const Range& r, const std::function<void(OpCtx&)>& during, bool direct);
  bool uffd_ready();
  OpCtx& handler_ctx();
  void fail(const std::string& what, int64_t res);
  template <class F>
  void simple(OpKind k, const Range& r, const char* name, F&& call, bool zero_ok = true);
  // Held by every modifying op while a role shifts (see FileHandles::order_lock); unlocked otherwise.
  std::shared_lock<std::shared_mutex> mod_guard(uint16_t file);
  bool shifts_refused_ = false;
  bool exclusive_ = false;  // this thread holds a file's lock exclusive (its own ops skip mod_guard)
  ScenarioEnv& env_;
  const std::vector<TestFile>& files_;
  FileHandles& h_;
  ThreadLog& tl_;
  AlignedBuf buf_;
  uint32_t tid_;
  uint64_t max_blocks_;
  uint64_t large_blocks_ = 0;  // large ops: up to this many blocks on a large_ratio_ share of picks (0: off)
  double large_ratio_ = 0;
  uint32_t flags_ = 0;
  std::unique_ptr<UffdBuffer> uffd_;
  std::unique_ptr<OpCtx> handler_;
  bool uffd_failed_ = false;
  int staging_fd_ = -2;  // -2: not opened yet, -1: unusable
  unsigned long aio_ctx_ = 0;
  uint32_t victim_seq_ = 0;
  bool staging_ready();
  uint64_t staging_offset() const;
};

// Victim files of OpCtx::pin_victim carry file id (run nonce << 32) | kVictimFileBit | (tid & 0x3ff) << 20 | n: their
// stamps in a test file mean a pinned read wrote into blocks the victim no longer owned.
// The victim's own content (its pwrite before the pin) also carries kVictimOwnBit: found in a test file it
// means freed blocks were handed out without zeroing; without the bit, the pinned read wrote after the free.
inline constexpr uint64_t kVictimFileBit = 1ull << 31;
inline constexpr uint64_t kVictimOwnBit = 1ull << 30;

inline constexpr uint32_t kFlagPaused = 1u << 31;       // op whose user buffer was parked by userfaultfd
inline constexpr uint32_t kFlagDuringPause = 1u << 30;  // op run by the handler while another was parked

struct Role {
  std::string name;
  int count = 1;
  std::function<void(OpCtx&)> step;  // one op (or a small fixed sequence) per call
  bool shifts = false;  // the step may collapse / insert ranges or truncate (orders modifying ops per
                        // file; reads may end short at EOF)
  std::string tag;  // thread name "fsr-<tag><tid>" (probe events name the thread); default: name
};

// Runs the roles until the deadline, the iteration count (per thread) or env.stop; every
// env.quiesce_ms the threads pause at a barrier and env.quiesce(round) runs alone.
RaceStats run_roles(ScenarioEnv& env, const std::vector<TestFile>& files, const std::vector<Role>& roles,
                    uint64_t iterations, uint64_t max_blocks);

}  // namespace fsrace
