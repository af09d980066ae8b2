// The op log: what every workload thread did, when (CLOCK_MONOTONIC ns), to which range, with what
// result, and for reads what each block held. Recorded in memory per thread, handed to a writer thread
// in chunks (never a syscall on the hot path), and stored as the binary ops.bin described in
// results/README.md.
#pragma once
#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/stamp.h"

namespace fsrace {

enum class OpKind : uint16_t {
  kInit = 1,          // setup write of the whole file (stamps, gen = op id)
  kWrite = 2,         // pwrite of stamped blocks
  kPunch = 3,         // fallocate(PUNCH_HOLE | KEEP_SIZE)
  kRead = 4,          // pread(2) during the race
  kMmapRead = 5,      // loads from a shared mapping during the race (page faults, read-around)
  kFsync = 6,
  kEvict = 7,         // posix_fadvise(DONTNEED) on a range: drops clean cache, data unchanged
  kZeroRange = 8,     // fallocate(ZERO_RANGE | KEEP_SIZE): zeroes, like a punch
  kFalloc = 9,        // fallocate(KEEP_SIZE) preallocation: unwritten extents, data unchanged
  kDioWrite = 10,     // O_DIRECT pwrite of stamped blocks
  kMmapWrite = 11,    // stores of stamped blocks into a shared writable mapping (page_mkwrite)
  kDioRead = 12,      // O_DIRECT pread during the race
  kReadahead = 13,    // readahead(2): fills the page cache, data unchanged
  kFadvWillneed = 14, // posix_fadvise(WILLNEED)
  kMadvWillneed = 15, // madvise(WILLNEED) on the mapping
  kVerifyCached = 16, // after the race, page cache warm: pread
  kVerifyMmap = 17,   // after the race, page cache warm: mmap loads
  kVerifyDirect = 18, // after the race: O_DIRECT read (what the disk holds)
  kVerifyDisk = 19,   // after fsync + unmount + mount: cold read
  kSyncRange = 20,    // sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)
  kPageout = 21,      // madvise(PAGEOUT) on the mapping: reclaim
  kStatBlocks = 22,   // quiescent point: fsync + fstat; result = allocated fs blocks (space check)
  kCollapse = 23,     // fallocate(COLLAPSE_RANGE): blocks [offset, offset+length) removed, the rest shifts down
  kInsert = 24,       // fallocate(INSERT_RANGE): a hole of `length` inserted at offset, the rest shifts up
  kTruncate = 25,     // ftruncate(offset): the new size (blocks past it are gone; growing adds a hole)
  kPowerCut = 26,     // kwiden dm-flakey: from here every write to the device was dropped, then the fs was
                      // unmounted and mounted again (journal replay): reads after it see what survived
  kMsync = 27,        // msync(MS_SYNC) of a range of the shared mapping (DAX: flushes its dirty entries)
  kPinWrite = 28,     // O_DIRECT read from the scenario's staging device into the range's shared mapping: its
                      // pages stay pinned (get_user_pages) until the read completes; the data are stamps of
                      // this range (like an mmap store, not atomic per block)
  kTestCorrupt = 32,  // test-only: the corruption helper overwrote a block on disk (not a model op)
};

const char* op_kind_name(OpKind k);
bool op_kind_is_read(OpKind k);
bool op_kind_modifies(OpKind k);  // init, write, punch, zero-range, dio-write, mmap-write
bool op_kind_zeroes(OpKind k);    // punch, zero-range
// collapse / insert range and truncate: change every block from offset to EOF, and the size. Not counted
// by op_kind_modifies (their effect is not confined to [offset, offset+length)); the oracle models them
// as barriers (see oracle.h).
bool op_kind_shifts(OpKind k);
bool op_kind_quiescent(OpKind k); // verification reads (no race in flight)

// Op ids: (thread + 1) << 40 | sequence; thread 0 is the setup/verify thread. Id 0 is never used.
inline constexpr int kOpIdThreadShift = 40;

#pragma pack(push, 1)
struct OpRecord {
  uint64_t id;
  uint64_t start_ns;
  uint64_t end_ns;
  uint64_t offset;  // bytes
  uint64_t length;  // bytes
  int64_t result;   // syscall result, or -errno
  uint32_t thread;
  uint16_t kind;    // OpKind
  uint16_t file;    // index into the header's file table
  uint32_t nobs;    // ObsRecords (runs) that follow (reads)
  uint32_t flags;   // verify ops: the verification round
};
// A run of `count` consecutive blocks read by one op: block + i held the value
// {cls, stamp_file, stamp_block + i, gen, gen2} (run-length encoded: reads mostly see whole writes).
struct ObsRecord {
  uint64_t gen;
  uint64_t gen2;
  uint64_t stamp_file;
  uint64_t stamp_block;
  uint32_t block;   // first file block of the run
  uint8_t cls;      // BlockClass
  uint8_t pad;
  uint16_t count;   // blocks in the run (>= 1)
};
struct ChunkHeader {
  uint32_t magic;   // kChunkMagic
  uint32_t thread;
  uint32_t nops;
  uint32_t nbytes;  // payload bytes after this header
};
#pragma pack(pop)
static_assert(sizeof(OpRecord) == 64);
static_assert(sizeof(ObsRecord) == 40);
static_assert(sizeof(ChunkHeader) == 16);

inline constexpr char kOpsMagic[8] = {'F', 'S', 'R', 'O', 'P', 'S', '\0', '\0'};
inline constexpr uint32_t kOpsVersion = 2;
inline constexpr uint32_t kChunkMagic = 0x4b4e4843;  // "CHNK"

class OpLog;

// One per workload thread; not thread-safe by design (no locks on the hot path).
class ThreadLog {
 public:
  uint64_t new_id() { return (uint64_t(thread_ + 1) << kOpIdThreadShift) | ++seq_; }
  void op(uint64_t id, OpKind kind, uint16_t file, uint64_t offset, uint64_t length, uint64_t start_ns,
          uint64_t end_ns, int64_t result, uint32_t flags = 0);
  // Appends an observation to the op recorded last.
  void obs(uint32_t block, const BlockValue& v);
  uint32_t thread() const { return thread_; }

 private:
  friend class OpLog;
  ThreadLog(OpLog* log, uint32_t thread, bool enabled);
  void ensure(size_t bytes);
  void flush();

  OpLog* log_;
  uint32_t thread_;
  bool enabled_;
  uint64_t seq_ = 0;
  uint64_t progress_local_ = 0;
  std::vector<uint8_t> buf_;
  size_t used_ = 0;
  uint32_t nops_ = 0;
  size_t last_op_ = SIZE_MAX;
};

class OpLog {
 public:
  // Opens `path` (.tmp while running, renamed on close) and writes the header with `meta`.
  // With enabled = false nothing is recorded (benchmark baseline); the file is not created.
  OpLog(std::string path, const nlohmann::json& meta, bool enabled = true);
  // Appends chunks to an existing op log (no header; close() fsyncs, no rename): the boot after a VM
  // power cut adds its reads to the crashed boot's ops.bin. Every op's times get `clock_offset_ns` added,
  // so a new boot's CLOCK_MONOTONIC continues the old boot's timeline.
  struct Append {
    int64_t clock_offset_ns = 0;
  };
  OpLog(std::string path, Append a);
  ~OpLog();
  OpLog(const OpLog&) = delete;
  OpLog& operator=(const OpLog&) = delete;

  ThreadLog& thread(uint32_t tid);
  // Flushes every thread buffer, stops the writer, fsyncs and renames into place.
  // Threads must no longer record.
  void close();
  bool enabled() const { return enabled_; }
  uint64_t bytes_written() const { return bytes_; }

 private:
  friend class ThreadLog;
  void submit(std::vector<uint8_t>&& chunk);
  std::vector<uint8_t> take_buffer();
  void writer_main();

  std::string path_;
  std::string tmp_;
  bool enabled_;
  int fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<uint8_t>> queue_;
  std::vector<std::vector<uint8_t>> pool_;  // written chunk buffers, reused by the threads
  bool stop_ = false;
  std::thread writer_;
  std::vector<std::unique_ptr<ThreadLog>> threads_;
  std::atomic<uint64_t> bytes_{0};
  int write_errno_ = 0;
  bool closed_ = false;
  bool append_ = false;
  int64_t clock_offset_ = 0;
};

// Decoded ops.bin.
struct OpLogData {
  nlohmann::json meta;
  std::vector<OpRecord> ops;
  std::vector<ObsRecord> obs;
  std::vector<uint64_t> obs_begin;  // per op: index of its first ObsRecord
};

// An op as findings and reports name it: "T3 punch #206669" (thread, kind, its sequence number in the thread).
std::string op_ref(const OpRecord& o);
// A signed time span given in µs, as findings and reports write it: "-1.314 ms", "35.2 µs", "20.157 s".
std::string report_span(double us);

// Parses an ops.bin image; on malformed input throws Fatal naming `what` and the byte offset.
OpLogData decode_oplog(const std::string& bytes, const std::string& what);
OpLogData load_oplog(const std::string& path);

// The value of block o.block + i of a run.
BlockValue obs_value(const ObsRecord& o, uint32_t i = 0);

}  // namespace fsrace
