#include "probes/events.h"

#include <fmt/core.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "probes/catalog.h"

namespace fsrace::probes {

namespace {
void put_u32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
}  // namespace

std::string encode_events_header(const nlohmann::json& header) {
  std::string j = header.dump();
  std::string s(kEventsMagic, 8);
  put_u32(s, kEventsVersion);
  put_u32(s, uint32_t(j.size()));
  s += j;
  return s;
}

std::string encode_events_chunk(const fsr_event* ev, size_t n) {
  std::string s;
  put_u32(s, kChunkTag);
  put_u32(s, uint32_t(n));
  s.append(reinterpret_cast<const char*>(ev), n * sizeof(fsr_event));
  return s;
}

std::string encode_events_trailer(const nlohmann::json& trailer) {
  std::string j = trailer.dump();
  std::string s;
  put_u32(s, kTrailerTag);
  put_u32(s, uint32_t(j.size()));
  s += j;
  return s;
}

namespace {

// Where decode reads its bytes from: an image in memory (the fuzzed entry point) or a file, read with
// pread(2) straight into the event vector (a 220 MB events.bin then costs 220 MB, not the 4-5x of a
// string copy, a growing vector and a merge buffer: the guest agent analysing in 1 GiB was OOM-killed).
struct MemSource {
  const std::string& b;
  size_t size() const { return b.size(); }
  void read(size_t off, size_t n, void* dst) const { std::memcpy(dst, b.data() + off, n); }
};
struct FdSource {
  int fd;
  size_t len;
  const std::string& path;
  size_t size() const { return len; }
  void read(size_t off, size_t n, void* dst) const {
    auto* p = static_cast<char*>(dst);
    while (n) {
      ssize_t r = pread(fd, p, n, off_t(off));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw std::runtime_error(fmt::format("cannot read {}: {}", path, r < 0 ? strerror(errno) : "file shrank while read"));
      p += r;
      off += size_t(r);
      n -= size_t(r);
    }
  }
};

// The file holds events in transport order: tracepoint programs send them per CPU in batches
// (fsr_stage), runs when they end, the rest as they happen. Consumers get them in time order, ties in
// file order. Sorting (time, index) keys and applying the permutation in place costs 16 bytes an event
// where std::stable_sort's buffer costs a whole second copy.
void sort_by_time(std::vector<fsr_event>& ev) {
  auto earlier = [](const fsr_event& x, const fsr_event& y) { return x.ts_ns < y.ts_ns; };
  if (std::is_sorted(ev.begin(), ev.end(), earlier)) return;
  std::vector<std::pair<uint64_t, uint64_t>> key(ev.size());
  for (size_t i = 0; i < ev.size(); ++i) key[i] = {ev[i].ts_ns, i};
  std::sort(key.begin(), key.end());
  // Position i must receive ev[key[i].second]: follow each cycle once, marking done slots with
  // key[i].second = i.
  for (size_t i = 0; i < ev.size(); ++i) {
    if (key[i].second == i) continue;
    fsr_event tmp = ev[i];
    size_t j = i;
    for (;;) {
      size_t from = key[j].second;
      key[j].second = j;
      if (from == i) {
        ev[j] = tmp;
        break;
      }
      ev[j] = ev[from];
      j = from;
    }
  }
}

template <class Src>
EventsData decode_from(const Src& src, const std::string& what) {
  const size_t size = src.size();
  auto fail = [&](size_t off, const std::string& msg) -> void {
    throw std::runtime_error(fmt::format("{}: byte {}: {}", what, off, msg));
  };
  auto u32 = [&](size_t off) {
    uint32_t v;
    src.read(off, 4, &v);
    return v;
  };
  auto text = [&](size_t off, size_t n) {
    std::string t(n, '\0');
    if (n) src.read(off, n, t.data());
    return t;
  };
  EventsData d;
  if (size < 16) fail(0, "too short for an events.bin header");
  if (text(0, 8) != std::string(kEventsMagic, 8)) fail(0, "not an events.bin file (bad magic)");
  uint32_t ver = u32(8);
  if (ver != kEventsVersion) fail(8, fmt::format("unsupported version {} (this fsrace reads {})", ver, kEventsVersion));
  uint32_t hl = u32(12);
  if (hl > kMaxHeaderLen || hl > size - 16) fail(12, fmt::format("header length {} runs past the end", hl));
  d.header = nlohmann::json::parse(text(16, hl), nullptr, false);
  if (d.header.is_discarded() || !d.header.is_object()) fail(16, "header is not a JSON object");
  auto rs = d.header.find("record_size");
  if (rs == d.header.end() || !rs->is_number_unsigned() || rs->get<uint64_t>() != sizeof(fsr_event))
    fail(16, fmt::format("header record_size must be {}", sizeof(fsr_event)));
  size_t off = 16 + size_t(hl);
  d.events.reserve((size - off) / sizeof(fsr_event));  // an upper bound: chunk headers and the trailer take the rest
  while (off < size) {
    if (size - off < 8) fail(off, "truncated chunk header");
    uint32_t tag = u32(off), n = u32(off + 4);
    if (tag == kChunkTag) {
      uint64_t bytes = uint64_t(n) * sizeof(fsr_event);
      if (bytes > size - off - 8) fail(off, fmt::format("chunk of {} events runs past the end (file truncated?)", n));
      size_t old = d.events.size();
      d.events.resize(old + n);
      if (n) src.read(off + 8, bytes, d.events.data() + old);
      off += 8 + bytes;
    } else if (tag == kTrailerTag) {
      if (n > size - off - 8) fail(off, "trailer runs past the end");
      d.trailer = nlohmann::json::parse(text(off + 8, n), nullptr, false);
      if (d.trailer.is_discarded() || !d.trailer.is_object()) fail(off + 8, "trailer is not a JSON object");
      off += 8 + n;
      if (off != size) fail(off, "data after the trailer");
    } else {
      fail(off, fmt::format("unknown chunk tag 0x{:08x}", tag));
    }
  }
  if (d.trailer.is_null()) fail(size, "no trailer: the file is truncated (run killed before the probes stopped)");
  for (size_t i = 0; i < d.events.size(); ++i)
    if (d.events[i].kind == 0 || d.events[i].kind >= FSR_EV_KIND_MAX || d.events[i].probe >= FSR_P_COUNT)
      fail(16 + hl, fmt::format("event {} has kind {} / probe {} outside the known range", i, d.events[i].kind, d.events[i].probe));
  sort_by_time(d.events);
  return d;
}

}  // namespace

EventsData decode_events(const std::string& b, const std::string& what) { return decode_from(MemSource{b}, what); }

EventsData load_events(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot read {}: {}", path, strerror(errno)));
  struct stat st {};
  int bad = fstat(fd, &st) != 0 ? errno : 0;
  if (bad || !S_ISREG(st.st_mode)) {
    int e = bad;
    close(fd);
    throw std::runtime_error(fmt::format("cannot read {}: {}", path, e ? strerror(e) : "not a regular file"));
  }
  try {
    EventsData d = decode_from(FdSource{fd, size_t(st.st_size), path}, path);
    close(fd);
    return d;
  } catch (...) {
    close(fd);
    throw;
  }
}

const char* event_kind_name(uint16_t k) {
  switch (k) {
    case FSR_EV_PC_ADD: return "pc-add";
    case FSR_EV_PC_DELETE: return "pc-delete";
    case FSR_EV_FAULT: return "fault";
    case FSR_EV_TRUNC_PC_ENTER: return "truncate_pagecache_range";
    case FSR_EV_TRUNC_PC_EXIT: return "truncate_pagecache_range-done";
    case FSR_EV_INVAL2_ENTER: return "invalidate_inode_pages2_range";
    case FSR_EV_INVAL2_EXIT: return "invalidate_inode_pages2_range-done";
    case FSR_EV_RWSEM_ACQUIRE: return "invalidate_lock-acquire";
    case FSR_EV_RWSEM_ACQUIRED: return "invalidate_lock-acquired";
    case FSR_EV_RWSEM_RELEASE: return "invalidate_lock-release";
    case FSR_EV_CONTENTION_BEGIN: return "invalidate_lock-contended";
    case FSR_EV_CONTENTION_END: return "invalidate_lock-contention-end";
    case FSR_EV_IOMAP_STALE: return "iomap-stale";
    case FSR_EV_XFS_IOMAP_INVALID: return "xfs-iomap-invalid";
    case FSR_EV_XFS_WB_INVALID: return "xfs-wb-iomap-invalid";
    case FSR_EV_XFS_IOMAP_VALID_RET: return "xfs_iomap_valid-false";
    case FSR_EV_DIO_INVALIDATE_FAIL: return "dio-invalidate-fail";
    case FSR_EV_EXT4_DA_RESERVE: return "ext4-da-reserve";
    case FSR_EV_EXT4_DA_RELEASE: return "ext4-da-release";
    case FSR_EV_EXT4_DA_UPDATE: return "ext4-da-update";
    case FSR_EV_EXT4_ES_DELAYED: return "ext4-es-delayed";
    case FSR_EV_EXT4_PUNCH: return "ext4-punch-hole";
    case FSR_EV_EXT4_ZERO: return "ext4-zero-range";
    case FSR_EV_EXT4_COLLAPSE: return "ext4-collapse-range";
    case FSR_EV_EXT4_INSERT: return "ext4-insert-range";
    case FSR_EV_EXT4_FALLOC_ENTER: return "ext4-fallocate";
    case FSR_EV_EXT4_FALLOC_EXIT: return "ext4-fallocate-done";
    case FSR_EV_EXT4_SYNC_EXIT: return "ext4-fsync-done";
    case FSR_EV_EXT4_EVICT: return "ext4-evict";
    case FSR_EV_EXT4_RESV_SUMMARY: return "ext4-reservation-totals";
    case FSR_EV_DAX_WRITEBACK: return "dax-writeback";
    case FSR_EV_DAX_FAULT: return "dax-fault";
    case FSR_EV_DAX_FAULT_BEGIN: return "dax-fault-begin";
    case FSR_EV_FN_ENTER: return "enter";
    case FSR_EV_FN_EXIT: return "return";
  }
  return "unknown";
}

uint32_t kernel_dev(uint64_t st_dev) {
  // glibc: major = bits 8-19 and 32-43, minor = bits 0-7 and 20-31
  uint32_t major = uint32_t(((st_dev >> 8) & 0xfff) | ((st_dev >> 32) & ~0xfffull));
  uint32_t minor = uint32_t((st_dev & 0xff) | ((st_dev >> 12) & ~0xffull));
  return (major << 20) | (minor & 0xfffff);
}

std::string probe_name(uint16_t probe) {
  const auto& c = probe_catalog();
  return probe < c.size() ? c[probe].name : fmt::format("probe#{}", probe);
}

std::string lock_state(const fsr_event& e) {
  if (!(e.flags & FSR_F_LOCK_VALID)) return "";
  uint64_t readers = e.lock_count >> FSR_RWSEM_READER_SHIFT;
  if (e.lock_count & FSR_RWSEM_WRITER_LOCKED)
    return (e.flags & FSR_F_LOCK_SELF) ? "held exclusive by this task" : "held exclusive by another task";
  if (readers) return fmt::format("held shared ({} reader{})", readers, readers == 1 ? "" : "s");
  return "not held";
}

std::string describe_event(const fsr_event& e, uint64_t t0) {
  std::string when = t0 ? fmt::format("{:+.3f} ms", (double(int64_t(e.ts_ns - t0))) / 1e6) : fmt::format("t={}", e.ts_ns);
  std::string comm(e.comm, strnlen(e.comm, FSR_COMM_LEN));
  std::string what = event_kind_name(e.kind);
  auto sa = [](uint64_t v) { return int64_t(v); };
  switch (e.kind) {
    case FSR_EV_PC_ADD:
    case FSR_EV_PC_DELETE:
      what += fmt::format(" index {}{}", e.a[0], e.a[1] > 1 ? fmt::format("-{}", e.a[0] + e.a[1] - 1) : "");
      break;
    case FSR_EV_FAULT: what += fmt::format(" index {}", e.a[0]); break;
    case FSR_EV_TRUNC_PC_ENTER:
    case FSR_EV_TRUNC_PC_EXIT:
      what += fmt::format(" bytes {}..{} (pages {}..{})", sa(e.a[0]), sa(e.a[1]), e.a[0] / 4096, uint64_t(sa(e.a[1])) / 4096);
      break;
    case FSR_EV_INVAL2_ENTER: what += fmt::format(" pages {}..{}", e.a[0], e.a[1]); break;
    case FSR_EV_INVAL2_EXIT: what += fmt::format(" pages {}..{} ret {}", e.a[0], e.a[1], e.ret); break;
    case FSR_EV_RWSEM_ACQUIRE:
    case FSR_EV_RWSEM_ACQUIRED:
    case FSR_EV_RWSEM_RELEASE: what += e.a[0] ? " (exclusive)" : " (shared)"; break;
    case FSR_EV_CONTENTION_BEGIN: what += fmt::format(" flags 0x{:x}", e.a[0]); break;
    case FSR_EV_IOMAP_STALE: what += fmt::format(" pos {} len {} (stale map {}+{})", sa(e.a[0]), e.a[1], sa(e.a[2]), e.a[3]); break;
    case FSR_EV_XFS_IOMAP_INVALID:
    case FSR_EV_XFS_WB_INVALID:
    case FSR_EV_XFS_IOMAP_VALID_RET:
    case FSR_EV_DIO_INVALIDATE_FAIL: what += fmt::format(" offset {} length {}", sa(e.a[0]), e.a[1]); break;
    case FSR_EV_EXT4_DA_RESERVE: what += fmt::format(" reserved now {}", sa(e.a[0])); break;
    case FSR_EV_EXT4_DA_RELEASE: what += fmt::format(" freed {} (reserved before {})", sa(e.a[1]), sa(e.a[0])); break;
    case FSR_EV_EXT4_DA_UPDATE: what += fmt::format(" used {} (reserved before {})", sa(e.a[1]), sa(e.a[0])); break;
    case FSR_EV_EXT4_ES_DELAYED: what += fmt::format(" lblk {} len {} allocated {}", e.a[0], e.a[1], e.a[2]); break;
    case FSR_EV_EXT4_PUNCH:
    case FSR_EV_EXT4_ZERO:
    case FSR_EV_EXT4_COLLAPSE:
    case FSR_EV_EXT4_INSERT:
    case FSR_EV_EXT4_FALLOC_ENTER: what += fmt::format(" offset {} len {} mode 0x{:x}", sa(e.a[0]), sa(e.a[1]), e.a[2]); break;
    case FSR_EV_EXT4_FALLOC_EXIT: what += fmt::format(" offset {} blocks {} ret {}", sa(e.a[0]), e.a[1], e.ret); break;
    case FSR_EV_EXT4_SYNC_EXIT: what += fmt::format(" ret {} reserved {}", e.ret, sa(e.a[0])); break;
    case FSR_EV_EXT4_EVICT: what += fmt::format(" reserved {} nlink {}", sa(e.a[0]), e.a[1]); break;
    case FSR_EV_DAX_WRITEBACK: what += fmt::format(" pages {}..{}", e.a[0], e.a[0] + e.a[1] - 1); break;
    case FSR_EV_DAX_FAULT:
      what += fmt::format(" {} {} fault at page {} result {:#x}", e.a[1] ? "PMD" : "PTE", e.a[2] ? "write" : "read", e.a[0],
                          uint64_t(e.ret));
      break;
    case FSR_EV_DAX_FAULT_BEGIN: what += fmt::format(" {} {} fault at page {}", e.a[1] ? "PMD" : "PTE", e.a[2] ? "write" : "read", e.a[0]); break;
    case FSR_EV_EXT4_RESV_SUMMARY:
      what += fmt::format(" {} reserve events, {} blocks released, {} converted, reserved now {}", e.a[0], e.a[1], e.a[2], sa(e.a[3]));
      break;
    case FSR_EV_FN_ENTER: what = fmt::format("{} enter offset {} len {}", probe_name(e.probe), sa(e.a[0]), sa(e.a[1])); break;
    case FSR_EV_FN_EXIT: what = fmt::format("{} returned {}", probe_name(e.probe), e.ret); break;
    default: break;
  }
  std::string lock = lock_state(e);
  return fmt::format("{} {} by {}[{}]{}", when, what, comm, e.tid, lock.empty() ? "" : ", invalidate_lock " + lock);
}

}  // namespace fsrace::probes
