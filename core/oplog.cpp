#include "core/oplog.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fmt/core.h>

#include "core/util.h"

namespace fsrace {

namespace {
constexpr size_t kChunkBytes = 1 << 20;
constexpr size_t kMaxObsPerOp = 4096;
}  // namespace

const char* op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::kInit: return "init";
    case OpKind::kWrite: return "write";
    case OpKind::kPunch: return "punch";
    case OpKind::kRead: return "read";
    case OpKind::kMmapRead: return "mmap-read";
    case OpKind::kFsync: return "fsync";
    case OpKind::kEvict: return "evict";
    case OpKind::kZeroRange: return "zero-range";
    case OpKind::kFalloc: return "falloc";
    case OpKind::kDioWrite: return "dio-write";
    case OpKind::kMmapWrite: return "mmap-write";
    case OpKind::kDioRead: return "dio-read";
    case OpKind::kReadahead: return "readahead";
    case OpKind::kFadvWillneed: return "fadvise-willneed";
    case OpKind::kMadvWillneed: return "madvise-willneed";
    case OpKind::kSyncRange: return "sync-file-range";
    case OpKind::kPageout: return "pageout";
    case OpKind::kStatBlocks: return "stat-blocks";
    case OpKind::kCollapse: return "collapse-range";
    case OpKind::kInsert: return "insert-range";
    case OpKind::kTruncate: return "truncate";
    case OpKind::kPowerCut: return "power-cut";
    case OpKind::kMsync: return "msync";
    case OpKind::kPinWrite: return "pin-write";
    case OpKind::kVerifyCached: return "verify-cached";
    case OpKind::kVerifyMmap: return "verify-mmap";
    case OpKind::kVerifyDirect: return "verify-direct";
    case OpKind::kVerifyDisk: return "verify-disk";
    case OpKind::kTestCorrupt: return "test-corrupt";
  }
  return "unknown";
}

bool op_kind_is_read(OpKind k) {
  switch (k) {
    case OpKind::kRead:
    case OpKind::kMmapRead:
    case OpKind::kDioRead:
    case OpKind::kVerifyCached:
    case OpKind::kVerifyMmap:
    case OpKind::kVerifyDirect:
    case OpKind::kVerifyDisk: return true;
    default: return false;
  }
}

bool op_kind_modifies(OpKind k) {
  return k == OpKind::kInit || k == OpKind::kWrite || k == OpKind::kPunch || k == OpKind::kZeroRange ||
         k == OpKind::kDioWrite || k == OpKind::kMmapWrite || k == OpKind::kPinWrite;
}

bool op_kind_zeroes(OpKind k) { return k == OpKind::kPunch || k == OpKind::kZeroRange; }

bool op_kind_shifts(OpKind k) { return k == OpKind::kCollapse || k == OpKind::kInsert || k == OpKind::kTruncate; }

bool op_kind_quiescent(OpKind k) {
  return k == OpKind::kVerifyCached || k == OpKind::kVerifyMmap || k == OpKind::kVerifyDirect ||
         k == OpKind::kVerifyDisk;
}

BlockValue obs_value(const ObsRecord& o, uint32_t i) {
  BlockValue v;
  v.cls = BlockClass(o.cls);
  v.gen = o.gen;
  v.gen2 = o.gen2;
  v.file_id = o.stamp_file;
  v.block = o.stamp_block + (v.cls == BlockClass::kZero ? 0 : i);
  return v;
}

ThreadLog::ThreadLog(OpLog* log, uint32_t thread, bool enabled) : log_(log), thread_(thread), enabled_(enabled) {
  if (enabled_) buf_.resize(kChunkBytes);
}

void ThreadLog::ensure(size_t bytes) {
  if (used_ + bytes <= buf_.size()) return;
  flush();
}

void ThreadLog::flush() {
  if (!enabled_ || nops_ == 0) return;
  ChunkHeader h{kChunkMagic, thread_, nops_, uint32_t(used_ - sizeof(ChunkHeader))};
  std::memcpy(buf_.data(), &h, sizeof h);
  buf_.resize(used_);
  log_->submit(std::move(buf_));
  buf_ = log_->take_buffer();
  used_ = 0;
  nops_ = 0;
  last_op_ = SIZE_MAX;
}

void ThreadLog::op(uint64_t id, OpKind kind, uint16_t file, uint64_t offset, uint64_t length,
                   uint64_t start_ns, uint64_t end_ns, int64_t result, uint32_t flags) {
  // Heartbeat progress (VM agent): one shared cache line, so add in batches rather than per op.
  if ((++progress_local_ & 63) == 0) progress_counter().fetch_add(64, std::memory_order_relaxed);
  if (!enabled_) return;
  // Room for the op and its largest observation list, so an op never straddles two chunks.
  ensure(sizeof(OpRecord) + kMaxObsPerOp * sizeof(ObsRecord));
  if (used_ == 0) used_ = sizeof(ChunkHeader);
  start_ns += uint64_t(log_->clock_offset_);
  end_ns += uint64_t(log_->clock_offset_);
  OpRecord r{id, start_ns, end_ns, offset, length, result, thread_, uint16_t(kind), file, 0, flags};
  std::memcpy(buf_.data() + used_, &r, sizeof r);
  last_op_ = used_;
  used_ += sizeof r;
  ++nops_;
}

void ThreadLog::obs(uint32_t block, const BlockValue& v) {
  if (!enabled_ || last_op_ == SIZE_MAX) return;
  OpRecord r;
  std::memcpy(&r, buf_.data() + last_op_, sizeof r);
  if (r.nobs > 0) {  // extend the previous run when this block continues it
    ObsRecord p;
    std::memcpy(&p, buf_.data() + used_ - sizeof p, sizeof p);
    uint64_t step = v.cls == BlockClass::kZero ? 0 : p.count;
    if (p.cls == uint8_t(v.cls) && p.gen == v.gen && p.gen2 == v.gen2 && p.stamp_file == v.file_id &&
        p.block + p.count == block && p.stamp_block + step == v.block && p.count < UINT16_MAX) {
      ++p.count;
      std::memcpy(buf_.data() + used_ - sizeof p, &p, sizeof p);
      return;
    }
  }
  if (r.nobs >= kMaxObsPerOp) return;  // workloads never read more than kMaxObsPerOp runs at once
  ObsRecord o{v.gen, v.gen2, v.file_id, v.block, block, uint8_t(v.cls), 0, 1};
  std::memcpy(buf_.data() + used_, &o, sizeof o);
  used_ += sizeof o;
  ++r.nobs;
  std::memcpy(buf_.data() + last_op_, &r, sizeof r);
}

OpLog::OpLog(std::string path, const nlohmann::json& meta, bool enabled)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), enabled_(enabled) {
  if (!enabled_) return;
  fd_ = open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Fatal(fmt::format("cannot create {}: {}", tmp_, strerror(errno)));
  std::string m = meta.is_object() ? meta.dump() : "{}";
  std::string hdr(kOpsMagic, 8);
  uint32_t ver = kOpsVersion, len = uint32_t(m.size());
  hdr.append(reinterpret_cast<const char*>(&ver), 4);
  hdr.append(reinterpret_cast<const char*>(&len), 4);
  hdr += m;
  if (write(fd_, hdr.data(), hdr.size()) != ssize_t(hdr.size())) {
    int e = errno;
    ::close(fd_);
    unlink(tmp_.c_str());
    throw Fatal(fmt::format("cannot write {}: {}", tmp_, strerror(e)));
  }
  bytes_ = hdr.size();
  writer_ = std::thread([this] { writer_main(); });
}

OpLog::OpLog(std::string path, Append a)
    : path_(std::move(path)), tmp_(path_), enabled_(true), append_(true), clock_offset_(a.clock_offset_ns) {
  fd_ = open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) throw Fatal(fmt::format("cannot append to {}: {}", path_, strerror(errno)));
  struct stat st {};
  if (fstat(fd_, &st) == 0) bytes_ = uint64_t(st.st_size);
  writer_ = std::thread([this] { writer_main(); });
}

OpLog::~OpLog() {
  try {
    close();
  } catch (...) {
  }
}

ThreadLog& OpLog::thread(uint32_t tid) {
  std::lock_guard<std::mutex> g(mu_);
  for (auto& t : threads_)
    if (t->thread_ == tid) return *t;
  threads_.emplace_back(new ThreadLog(this, tid, enabled_));
  return *threads_.back();
}

void OpLog::submit(std::vector<uint8_t>&& chunk) {
  std::lock_guard<std::mutex> g(mu_);
  queue_.push_back(std::move(chunk));
  cv_.notify_one();
}

void OpLog::writer_main() {
  for (;;) {
    std::vector<uint8_t> c;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      c = std::move(queue_.front());
      queue_.pop_front();
    }
    size_t off = 0;
    auto recycle = [&] {  // reuse chunk buffers: a fresh 1 MiB allocation is an mmap/munmap pair, whose
                          // mmap_lock write side stalls the workload's page faults
      c.resize(kChunkBytes);
      std::lock_guard<std::mutex> g(mu_);
      if (pool_.size() < 64) pool_.push_back(std::move(c));
    };
    while (off < c.size()) {
      ssize_t n = write(fd_, c.data() + off, c.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        write_errno_ = errno;
        break;
      }
      off += size_t(n);
    }
    bytes_ += c.size();
    recycle();
  }
}

std::vector<uint8_t> OpLog::take_buffer() {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!pool_.empty()) {
      std::vector<uint8_t> b = std::move(pool_.back());
      pool_.pop_back();
      return b;
    }
  }
  return std::vector<uint8_t>(kChunkBytes);
}

void OpLog::close() {
  if (!enabled_ || closed_) return;
  closed_ = true;
  for (auto& t : threads_) t->flush();
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  writer_.join();
  fsync(fd_);
  ::close(fd_);
  if (append_) {  // never unlink or rename what an earlier boot wrote
    if (write_errno_)
      throw Fatal(fmt::format("cannot append to {}: {}; free space in the results directory", path_, strerror(write_errno_)));
    return;
  }
  if (write_errno_) {
    unlink(tmp_.c_str());  // a full disk must not keep a half-written log (nor its space)
    throw Fatal(fmt::format("cannot write {}: {}; free space in the results directory or pass --results", path_, strerror(write_errno_)));
  }
  if (rename(tmp_.c_str(), path_.c_str()) != 0) {
    int e = errno;
    unlink(tmp_.c_str());
    throw Fatal(fmt::format("cannot rename {} into place: {}", tmp_, strerror(e)));
  }
}

OpLogData decode_oplog(const std::string& b, const std::string& what) {
  auto bad = [&](size_t off, const std::string& why) {
    return Fatal(fmt::format("{}: not a valid fsrace op log at byte {}: {}", what, off, why));
  };
  OpLogData d;
  if (b.size() < 16 || std::memcmp(b.data(), kOpsMagic, 8) != 0) throw bad(0, "bad magic");
  uint32_t ver, len;
  std::memcpy(&ver, b.data() + 8, 4);
  std::memcpy(&len, b.data() + 12, 4);
  if (ver != kOpsVersion) throw bad(8, fmt::format("version {} (this fsrace reads {})", ver, kOpsVersion));
  if (size_t(len) > b.size() - 16) throw bad(12, "header length past end of file");
  d.meta = nlohmann::json::parse(b.begin() + 16, b.begin() + 16 + len, nullptr, false);
  if (d.meta.is_discarded() || !d.meta.is_object()) throw bad(16, "header metadata is not a JSON object");
  // Ops and observations must stay within the test files (inserts may grow them): a range beyond that
  // is damage, and judging it would make the oracle walk billions of blocks.
  // The header's file table is what every reader (oracle, space check, reports) indexes by: check its
  // shape here once, so none of them meets a negative, fractional or absurd number.
  uint64_t max_blocks = 0;
  if (d.meta.contains("files")) {
    const auto& files = d.meta["files"];
    if (!files.is_array() || files.size() > 0xffff) throw bad(16, "header \"files\" is not an array of at most 65535 files");
    for (size_t i = 0; i < files.size(); ++i) {
      const auto& f = files[i];
      auto uint_field = [&](const char* k, uint64_t max) {
        return f.contains(k) && f[k].is_number_unsigned() && f[k].get<uint64_t>() <= max;
      };
      if (!f.is_object() || !uint_field("file_id", UINT64_MAX) || !uint_field("blocks", 1ull << 24) ||
          !f.contains("name") || !f["name"].is_string())
        throw bad(16, fmt::format("header file {} needs a string name, an unsigned file_id and blocks <= 2^24", i));
      max_blocks = std::max(max_blocks, f["blocks"].get<uint64_t>());
    }
  }
  const uint64_t limit = std::max<uint64_t>(4 * std::min<uint64_t>(max_blocks, 1ull << 24), 1ull << 16);
  size_t off = 16 + size_t(len);
  while (off < b.size()) {
    if (b.size() - off < sizeof(ChunkHeader)) throw bad(off, "truncated chunk header");
    ChunkHeader h;
    std::memcpy(&h, b.data() + off, sizeof h);
    if (h.magic != kChunkMagic) throw bad(off, "bad chunk magic");
    size_t p = off + sizeof h;
    if (size_t(h.nbytes) > b.size() - p) throw bad(off, "chunk past end of file");
    size_t end = p + h.nbytes;
    for (uint32_t i = 0; i < h.nops; ++i) {
      if (end - p < sizeof(OpRecord)) throw bad(p, "truncated op record");
      OpRecord r;
      std::memcpy(&r, b.data() + p, sizeof r);
      p += sizeof r;
      if (uint64_t(r.nobs) * sizeof(ObsRecord) > end - p) throw bad(p, "observations past chunk end");
      if (r.end_ns < r.start_ns) throw bad(p - sizeof r, "op ends before it starts");
      if (r.offset / kBlockSize > limit || r.length / kBlockSize > limit)
        throw bad(p - sizeof r, fmt::format("op range (offset {}, length {}) is beyond any test file ({} blocks at most)", r.offset, r.length, limit));
      d.obs_begin.push_back(d.obs.size());
      for (uint32_t k = 0; k < r.nobs; ++k) {
        ObsRecord o;
        std::memcpy(&o, b.data() + p, sizeof o);
        if (o.cls > uint8_t(BlockClass::kGarbage)) throw bad(p, "bad block class");
        if (o.count == 0) throw bad(p, "empty observation run");
        if (o.count > limit || o.block > limit) throw bad(p, fmt::format("observation run beyond any test file ({} blocks at most)", limit));
        d.obs.push_back(o);
        p += sizeof o;
      }
      d.ops.push_back(r);
    }
    if (p != end) throw bad(p, "chunk has bytes after its last op");
    off = end;
  }
  return d;
}

std::string op_ref(const OpRecord& o) {
  return fmt::format("T{} {} #{}", o.thread, op_kind_name(OpKind(o.kind)), o.id & ((1ull << kOpIdThreadShift) - 1));
}

std::string report_span(double us) {
  double a = us < 0 ? -us : us;
  if (a >= 1000000) return fmt::format("{:.3f} s", us / 1e6);
  if (a >= 1000) return fmt::format("{:.3f} ms", us / 1e3);
  return fmt::format("{:.1f} µs", us);
}

OpLogData load_oplog(const std::string& path) { return decode_oplog(read_file(path), path); }

}  // namespace fsrace
