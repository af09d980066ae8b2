#include "harness/kernel_events.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "core/filesystems.h"
#include "probes/fsrace_events.h"

namespace fsrace {

using probes::EventsData;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kUnknown = ~0ull;

struct InodeId {
  uint32_t dev;
  uint64_t ino;
  bool operator<(const InodeId& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};

std::map<InodeId, std::string> inode_names(const EventsData& ev) {
  std::map<InodeId, std::string> m;
  if (ev.trailer.is_object() && ev.trailer.contains("inodes") && ev.trailer["inodes"].is_array())
    for (const auto& i : ev.trailer["inodes"])
      if (i.is_object()) m[{i.value("dev", 0u), i.value("ino", uint64_t(0))}] = i.value("name", "");
  return m;
}

std::string comm_of(const fsr_event& e) { return std::string(e.comm, strnlen(e.comm, FSR_COMM_LEN)); }

// Who did it, in the workload's words (workload threads are named fsr-<role><n>, see workloads/engine.cpp).
std::string actor(const fsr_event& e) {
  std::string c = comm_of(e);
  std::string role;
  auto is = [&](const char* p) { return c.rfind(p, 0) == 0; };
  if (is("fsr-mkw")) role = "the write-fault path (mmap writer)";
  else if (is("fsr-mmap")) role = "the fault path (mmap reader)";
  else if (is("fsr-read") || is("fsr-fill")) role = "read(2)";
  else if (is("fsr-punch") || is("fsr-hole")) role = "the punch/write thread";
  else if (is("fsr-dio")) role = "the O_DIRECT thread";
  else if (is("fsr-alloc") || is("fsr-conv")) role = "the fallocate thread";
  else if (is("fsr-uffd-racer")) role = "the racing op of a parked I/O";
  else if (is("fsr-")) role = "a workload thread";
  else if (is("kworker")) role = "a kernel worker";
  return role.empty() ? fmt::format("{}[{}]", c, e.tid) : fmt::format("{} ({}[{}])", role, c, e.tid);
}

// Page range [first, last] an event is about; nullopt for events without a file range.
std::optional<std::pair<uint64_t, uint64_t>> page_range(const fsr_event& e) {
  auto bytes = [](uint64_t off, uint64_t len) -> std::optional<std::pair<uint64_t, uint64_t>> {
    if (int64_t(off) < 0) return std::nullopt;
    if (len == 0) return std::make_pair(off / kPage, off / kPage);
    return std::make_pair(off / kPage, (off + len - 1) / kPage);
  };
  switch (e.kind) {
    case FSR_EV_PC_ADD:
    case FSR_EV_PC_DELETE: return std::make_pair(e.a[0], e.a[0] + std::max<uint64_t>(e.a[1], 1) - 1);
    case FSR_EV_FAULT: return std::make_pair(e.a[0], e.a[0]);
    case FSR_EV_TRUNC_PC_ENTER:
    case FSR_EV_TRUNC_PC_EXIT:
      if (int64_t(e.a[1]) < 0) return std::make_pair(e.a[0] / kPage, kUnknown);
      return std::make_pair(e.a[0] / kPage, e.a[1] / kPage);
    case FSR_EV_INVAL2_ENTER:
    case FSR_EV_INVAL2_EXIT: return std::make_pair(e.a[0], e.a[1]);
    case FSR_EV_EXT4_PUNCH:
    case FSR_EV_EXT4_ZERO:
    case FSR_EV_EXT4_COLLAPSE:
    case FSR_EV_EXT4_INSERT:
    case FSR_EV_EXT4_FALLOC_ENTER:
    case FSR_EV_XFS_IOMAP_INVALID:
    case FSR_EV_XFS_WB_INVALID:
    case FSR_EV_XFS_IOMAP_VALID_RET:
    case FSR_EV_DIO_INVALIDATE_FAIL: return bytes(e.a[0], e.a[1]);
    case FSR_EV_IOMAP_STALE: return bytes(e.a[2], e.a[3]);
    case FSR_EV_EXT4_ES_DELAYED: return std::make_pair(e.a[0], e.a[0] + std::max<uint64_t>(e.a[1], 1) - 1);
    case FSR_EV_DAX_WRITEBACK: return std::make_pair(e.a[0], e.a[0] + std::max<uint64_t>(e.a[1], 1) - 1);
    case FSR_EV_DAX_FAULT_BEGIN:
    case FSR_EV_DAX_FAULT:  // a PMD fault maps the 2 MiB-aligned 512 pages around its pgoff
      return e.a[1] == 1 ? std::make_pair(e.a[0] & ~uint64_t(511), (e.a[0] & ~uint64_t(511)) + 511) : std::make_pair(e.a[0], e.a[0]);
    case FSR_EV_FN_ENTER:
    case FSR_EV_FN_EXIT:
      switch (e.probe) {
        case FSR_P_FN_FILEMAP_FAULT:
        case FSR_P_FN_EXT4_PAGE_MKWRITE:
        case FSR_P_FN_XFS_PAGE_MKWRITE: return std::make_pair(e.a[0], e.a[0]);
        case FSR_P_FN_EXT4_WRITEPAGES:
        case FSR_P_FN_XFS_WRITEPAGES:
          return std::make_pair(e.a[0] / kPage, int64_t(e.a[1]) < 0 ? kUnknown : e.a[1] / kPage);
        default: return bytes(e.a[0], e.a[1]);
      }
    default: return std::nullopt;  // lock and reservation events: no file range
  }
}

bool overlaps(const std::pair<uint64_t, uint64_t>& r, uint64_t b0, uint64_t n) { return r.first < b0 + n && r.second >= b0; }

bool is_invalidation(const fsr_event& e) {
  return e.kind == FSR_EV_TRUNC_PC_ENTER || e.kind == FSR_EV_EXT4_PUNCH || e.kind == FSR_EV_EXT4_ZERO ||
         e.kind == FSR_EV_PC_DELETE || e.kind == FSR_EV_INVAL2_ENTER ||
         (e.kind == FSR_EV_FN_ENTER && (e.probe == FSR_P_FN_EXT4_FALLOCATE || e.probe == FSR_P_FN_XFS_FALLOCATE));
}

std::string invalidation_name(const fsr_event& e) {
  switch (e.kind) {
    case FSR_EV_TRUNC_PC_ENTER: return fmt::format("truncate_pagecache_range (pages {}..{})", e.a[0] / kPage, int64_t(e.a[1]) / int64_t(kPage));
    case FSR_EV_EXT4_PUNCH: return fmt::format("ext4_punch_hole (bytes {}+{})", e.a[0], e.a[1]);
    case FSR_EV_EXT4_ZERO: return fmt::format("ext4_zero_range (bytes {}+{})", e.a[0], e.a[1]);
    case FSR_EV_PC_DELETE: return fmt::format("the removal of folio {} from the page cache", e.a[0]);
    case FSR_EV_INVAL2_ENTER: return fmt::format("invalidate_inode_pages2_range (pages {}..{})", e.a[0], e.a[1]);
    default: return fmt::format("{} (bytes {}+{})", probes::probe_name(e.probe), e.a[0], e.a[1]);
  }
}

std::string us(uint64_t ns) { return ns >= 10000000 ? fmt::format("{:.1f} ms", double(ns) / 1e6) : fmt::format("{:.0f} µs", double(ns) / 1e3); }

std::string lock_words(const fsr_event& e) {
  if (!(e.flags & FSR_F_LOCK_VALID))
    return "invalidate_lock state not recorded (a probe without the inode pointer, a kernel without "
           "mapping->invalidate_lock, or [probes] lock_snapshot = false)";
  std::string s = probes::lock_state(e);
  if (s == "not held") return "while invalidate_lock was not held";
  if (s == "held exclusive by another task")
    return "while another task held invalidate_lock exclusive — a page-cache fill inside an invalidation (the race invalidate_lock exists to close)";
  return "while invalidate_lock was " + s;
}

}  // namespace

std::set<std::pair<uint32_t, uint64_t>> inodes_of_file(const EventsData& ev, const std::string& file) {
  std::set<std::pair<uint32_t, uint64_t>> ids;
  for (const auto& [id, name] : inode_names(ev))
    if (name == file) ids.insert({id.dev, id.ino});
  return ids;
}
std::optional<std::pair<uint64_t, uint64_t>> event_page_range(const fsr_event& e) { return page_range(e); }
std::string event_actor(const fsr_event& e) { return actor(e); }

std::vector<std::string> explain_range(const EventsData& ev, const std::string& file, uint64_t b0, uint64_t n, uint64_t t0, uint64_t t1) {
  std::set<InodeId> ids;
  for (const auto& [id, name] : inode_names(ev))
    if (name == file) ids.insert(id);
  std::vector<const fsr_event*> sel;
  for (const auto& e : ev.events) {
    if (e.ts_ns < t0 || e.ts_ns > t1 || !ids.count({e.dev, e.ino})) continue;
    auto r = page_range(e);
    if (r ? overlaps(*r, b0, n) : (e.kind >= FSR_EV_RWSEM_ACQUIRE && e.kind <= FSR_EV_CONTENTION_END)) sel.push_back(&e);
  }
  std::vector<std::string> out;
  if (sel.empty()) return out;
  std::sort(sel.begin(), sel.end(), [](auto* a, auto* b) { return a->ts_ns < b->ts_ns; });
  // Explanations: each folio insertion over the range, relative to the invalidation before it.
  size_t explained = 0;
  for (size_t i = 0; i < sel.size() && explained < 8; ++i) {
    const fsr_event& e = *sel[i];
    if (e.kind != FSR_EV_PC_ADD) continue;
    const fsr_event* inv = nullptr;
    for (size_t j = i; j-- > 0;) {
      auto r = page_range(*sel[j]);
      if (is_invalidation(*sel[j]) && r && overlaps(*r, e.a[0], std::max<uint64_t>(e.a[1], 1))) {
        inv = sel[j];
        break;
      }
    }
    std::string idx = e.a[1] > 1 ? fmt::format("{}-{}", e.a[0], e.a[0] + e.a[1] - 1) : fmt::format("{}", e.a[0]);
    // The other half of the exclusion: a removal made inside truncate_pagecache_range() (hole punch, zero
    // range, collapse, truncate) must run under invalidate_lock held exclusive by that task, or the shared
    // side of the fill paths excludes nothing.
    std::string inv_unlocked;
    if (inv && (inv->flags & FSR_F_LOCK_VALID) && probes::lock_state(*inv) != "held exclusive by this task") {
      bool in_truncate = inv->kind == FSR_EV_TRUNC_PC_ENTER;
      for (size_t j = i; !in_truncate && j-- > 0;) {
        const fsr_event& x = *sel[j];
        if (x.tid != inv->tid || x.ts_ns > inv->ts_ns) continue;
        if (x.kind == FSR_EV_TRUNC_PC_EXIT) break;
        if (x.kind == FSR_EV_TRUNC_PC_ENTER) in_truncate = true;
      }
      if (in_truncate)
        inv_unlocked = fmt::format("; that removal ran inside truncate_pagecache_range while invalidate_lock was {} — the "
                                   "invalidating thread did not hold it exclusive, so nothing kept the fill out (the "
                                   "filesystem's punch / truncate path must take it)",
                                   probes::lock_state(*inv));
    }
    out.push_back(fmt::format("folio index {} added by {} {}, {}{}", idx, actor(e),
                              inv ? fmt::format("{} after {} by {}", us(e.ts_ns - inv->ts_ns), invalidation_name(*inv), actor(*inv))
                                  : "with no invalidation of it earlier in the window",
                              lock_words(e), inv_unlocked));
    ++explained;
  }
  // The raw events, relative to the window start.
  size_t shown = 0;
  for (const auto* e : sel) {
    if (shown++ == 40) {
      out.push_back(fmt::format("... {} more events in events.bin", sel.size() - 40));
      break;
    }
    out.push_back(probes::describe_event(*e, t0));
  }
  return out;
}

void attach_kernel_events(std::vector<Finding>& findings, const EventsData& ev, uint64_t slack) {
  uint64_t dropped = ev.trailer.is_object() ? ev.trailer.value("dropped", uint64_t(0)) : 0;
  for (auto& f : findings) {
    if (f.file.empty()) continue;
    uint64_t t0 = UINT64_MAX, t1 = 0;
    for (const auto& o : f.ops) {
      t0 = std::min(t0, o.start_ns);
      t1 = std::max(t1, o.end_ns);
    }
    if (t0 == UINT64_MAX && f.time_ns) t0 = t1 = f.time_ns;
    if (t0 == UINT64_MAX) continue;
    t0 = t0 > slack ? t0 - slack : 0;
    t1 += slack;
    uint64_t b0 = f.block ? *f.block : 0, n = f.block ? f.blocks : UINT64_MAX / 2;
    auto lines = explain_range(ev, f.file, b0, n, t0, t1);
    if (f.phase == "after-power-cut") {
      // What the disk kept after a cut is not about the page cache during the race: the folio insertions
      // would read as the cause ("added while invalidate_lock was held shared") and mislead. Raw events stay.
      lines.erase(std::remove_if(lines.begin(), lines.end(), [](const std::string& l) { return l.rfind("folio index ", 0) == 0; }),
                  lines.end());
    }
    if (lines.empty()) continue;
    if (dropped) lines.push_back(fmt::format("note: {} probe events were dropped in this case (ring buffer full): this list may be incomplete", dropped));
    f.kernel_events = std::move(lines);
  }
}

size_t explain_dio_refills(std::vector<Finding>& findings, const EventsData& ev, const OpLogData& data) {
  if (ev.trailer.is_object() && ev.trailer.value("dropped", uint64_t(0)) > 0) return 0;  // "nothing removed it" unprovable
  auto is_dio = [](const fsr_event& e) { return comm_of(e).rfind("fsr-dio", 0) == 0; };
  size_t explained = 0;
  for (auto& f : findings) {
    if (!f.block || f.ops.empty() || f.file.empty() || !f.explained_by.empty()) continue;
    const OpRecord& rd = f.ops[0];  // the read that saw the wrong data
    OpKind rk = OpKind(rd.kind);
    if (rk != OpKind::kRead && rk != OpKind::kMmapRead && rk != OpKind::kVerifyCached && rk != OpKind::kVerifyMmap) continue;
    const uint64_t p = *f.block, at = p * kBlockSize;
    // The last O_DIRECT write of the block that completed before the read started.
    const OpRecord* w = nullptr;
    for (const auto& o : data.ops)
      if (OpKind(o.kind) == OpKind::kDioWrite && o.result > 0 && o.file == rd.file && o.offset <= at &&
          at < o.offset + uint64_t(o.result) && o.end_ns <= rd.start_ns && (!w || o.end_ns > w->end_ns))
        w = &o;
    if (!w) continue;
    std::set<std::pair<uint32_t, uint64_t>> ids = inodes_of_file(ev, f.file);
    std::vector<const fsr_event*> seq;  // the page's insertions and removals before the read
    for (const auto& e : ev.events) {
      if (!ids.count({e.dev, e.ino}) || (e.kind != FSR_EV_PC_ADD && e.kind != FSR_EV_PC_DELETE) || e.ts_ns >= rd.start_ns) continue;
      if (auto r = page_range(e); r && overlaps(*r, p, 1)) seq.push_back(&e);
    }
    std::stable_sort(seq.begin(), seq.end(), [](auto* x, auto* y) { return x->ts_ns < y->ts_ns; });
    // The page's last change before the read is an insertion by another path inside the write.
    if (seq.empty()) continue;
    const fsr_event* added = seq.back();
    if (added->kind != FSR_EV_PC_ADD || is_dio(*added) || added->ts_ns <= w->start_ns || added->ts_ns >= w->end_ns) continue;
    // What the write did to the cache before it (for the sentence): the latest removal of the page, or
    // invalidation over it, by the O_DIRECT thread inside the write.
    const fsr_event* inval = nullptr;
    for (const auto& e : ev.events) {
      if (!ids.count({e.dev, e.ino}) || !is_dio(e) || e.ts_ns < w->start_ns || e.ts_ns > added->ts_ns) continue;
      if (e.kind != FSR_EV_PC_DELETE && e.kind != FSR_EV_INVAL2_ENTER && e.kind != FSR_EV_TRUNC_PC_ENTER) continue;
      if (auto r = page_range(e); r && overlaps(*r, p, 1) && (!inval || e.ts_ns > inval->ts_ns)) inval = &e;
    }
    std::string before = inval ? fmt::format("{} after the O_DIRECT write ({}, bytes {}+{}) {}", us(added->ts_ns - inval->ts_ns),
                                             op_ref(*w), w->offset, w->result,
                                             inval->kind == FSR_EV_PC_DELETE ? "dropped it" : "invalidated it (" + invalidation_name(*inval) + ")")
                               : fmt::format("{} after the O_DIRECT write ({}, bytes {}+{}) started", us(added->ts_ns - w->start_ns),
                                             op_ref(*w), w->offset, w->result);
    bool listed = std::any_of(f.ops.begin(), f.ops.end(), [&](const OpRecord& o) { return o.id == w->id; });
    if (!listed) f.ops.push_back(*w);
    f.explained_by = "dio-refill";
    f.detail += fmt::format("{}{} put page {} into the page cache {} and {} before that write completed, and nothing removed it "
                            "after the write: the read {} later was served the copy from before the write (the filesystem does "
                            "not invalidate the page cache again once an O_DIRECT write is done, as iomap and the generic DIO "
                            "path do)",
                            f.detail.empty() ? "" : "; ", actor(*added), p, before, us(w->end_ns - added->ts_ns),
                            us(rd.start_ns - w->end_ns));
    ++explained;
  }
  return explained;
}

EventAnalysis analyze_events(const EventsData& ev, const EventContext& ctx) {
  EventAnalysis a;
  // On a DAX mapping there is no cached copy: invalidate_inode_pages2_range() returns -EBUSY for DAX
  // entries still mapped by a process (dax_invalidate_mapping_entry_sync), which is no stale data.
  const FilesystemInfo* fsi = find_filesystem(ctx.fs);
  bool dax = fsi && fsi->backing == FsBacking::kPmem;
  uint64_t dax_inval_busy = 0;
  auto names = inode_names(ev);
  auto name_of = [&](uint32_t dev, uint64_t ino) {
    auto it = names.find({dev, ino});
    return it != names.end() ? it->second : fmt::format("inode {}", ino);
  };
  auto base = [&](const char* cls, const fsr_event& e) {
    Finding f = make_finding(cls, ctx.fs, ctx.scenario, ctx.case_name, "kernel-events");
    f.file = name_of(e.dev, e.ino);
    f.time_ns = e.ts_ns;
    return f;
  };
  std::map<std::string, uint64_t> by_kind;
  struct Resv {
    uint64_t reserve_events = 0, released = 0, used = 0;  // from individual events (older streams, negative balances)
    uint64_t sum_reserve = 0, sum_released = 0, sum_used = 0;  // latest BPF-side totals (FSR_EV_EXT4_RESV_SUMMARY)
    int64_t last = -1;          // i_reserved_data_blocks after the last event that showed it
    const fsr_event* sync_after_race = nullptr;  // first fsync exit after the race with blocks still reserved
    const fsr_event* evict = nullptr;
    bool ext4 = false;
  };
  std::map<InodeId, Resv> resv;
  uint64_t stale = 0;
  std::map<std::string, uint64_t> stale_by;
  const fsr_event* first_stale = nullptr;
  for (const auto& e : ev.events) {
    ++by_kind[probes::event_kind_name(e.kind)];
    auto sv = [](uint64_t v) { return int64_t(v); };
    Resv* r = nullptr;
    if ((e.kind >= FSR_EV_EXT4_DA_RESERVE && e.kind <= FSR_EV_EXT4_EVICT) || e.kind == FSR_EV_EXT4_RESV_SUMMARY) {
      r = &resv[{e.dev, e.ino}];
      r->ext4 = true;
    }
    switch (e.kind) {
      case FSR_EV_EXT4_DA_RESERVE:
        ++r->reserve_events;
        if (e.a[0] != kUnknown) r->last = sv(e.a[0]);
        break;
      case FSR_EV_EXT4_DA_RELEASE:
        r->released += e.a[1];
        if (e.a[0] != kUnknown) r->last = sv(e.a[0]) - sv(e.a[1]);
        break;
      case FSR_EV_EXT4_DA_UPDATE:
        r->used += e.a[1];
        if (e.a[0] != kUnknown) r->last = sv(e.a[0]) - sv(e.a[1]);
        break;
      case FSR_EV_EXT4_SYNC_EXIT:
        if (e.a[0] != kUnknown) {
          r->last = sv(e.a[0]);
          if (r->last > 0 && ctx.race_end_ns && e.ts_ns > ctx.race_end_ns && !r->sync_after_race) r->sync_after_race = &e;
        }
        break;
      case FSR_EV_EXT4_RESV_SUMMARY:  // cumulative since the probes attached: the latest one wins
        r->sum_reserve = e.a[0];
        r->sum_released = e.a[1];
        r->sum_used = e.a[2];
        if (e.a[3] != kUnknown) r->last = sv(e.a[3]);
        break;
      case FSR_EV_EXT4_EVICT:
        if (e.a[0] != kUnknown) r->last = sv(e.a[0]);
        r->evict = &e;
        break;
      case FSR_EV_IOMAP_STALE:
      case FSR_EV_XFS_IOMAP_INVALID:
      case FSR_EV_XFS_WB_INVALID:
      case FSR_EV_XFS_IOMAP_VALID_RET:
        ++stale;
        ++stale_by[probes::event_kind_name(e.kind)];
        if (!first_stale) first_stale = &e;
        break;
      case FSR_EV_DIO_INVALIDATE_FAIL: {
        Finding f = base("dio-invalidate-failed", e);
        f.block = e.a[0] / kPage;
        f.detail = fmt::format("direct I/O by {} could not invalidate the page cache over bytes {}+{}: cached pages there may now "
                               "be stale (iomap_dio_invalidate_fail)", actor(e), int64_t(e.a[0]), e.a[1]);
        f.kernel_events = {probes::describe_event(e)};
        a.findings.push_back(f);
        break;
      }
      case FSR_EV_INVAL2_EXIT:
        if (dax && int64_t(e.ret) < 0) {
          ++dax_inval_busy;
        } else if (int64_t(e.ret) < 0) {
          Finding f = base("dio-invalidate-failed", e);
          f.block = e.a[0];
          f.detail = fmt::format("invalidate_inode_pages2_range(pages {}..{}) returned {}{} for {}: the range keeps cached pages",
                                 e.a[0], e.a[1], e.ret, e.ret == -16 ? " (-EBUSY)" : "", actor(e));
          f.kernel_events = {probes::describe_event(e)};
          a.findings.push_back(f);
        }
        break;
      default: break;
    }
  }
  nlohmann::json rj = nlohmann::json::array();
  for (auto& [id, r] : resv) {
    r.reserve_events = std::max(r.reserve_events, r.sum_reserve);
    r.released = std::max(r.released, r.sum_released);
    r.used = std::max(r.used, r.sum_used);
    std::string file = name_of(id.dev, id.ino);
    nlohmann::json j = {{"file", file}, {"ino", id.ino}, {"reserve_events", r.reserve_events}, {"released_blocks", r.released},
                        {"used_blocks", r.used}, {"last_reserved", r.last}};
    if (r.evict) j["reserved_at_evict"] = int64_t(r.evict->a[0]);
    rj.push_back(j);
    const fsr_event* at = r.sync_after_race ? r.sync_after_race : (r.evict && r.evict->a[0] != kUnknown && int64_t(r.evict->a[0]) > 0 ? r.evict : nullptr);
    if (!at) continue;
    Finding f = base("reservation-leak", *at);
    f.detail = fmt::format("ext4 {} (inode {}): i_reserved_data_blocks = {} {} (reservation events: {} reserve, {} blocks released, "
                           "{} blocks converted at allocation){}",
                           file, id.ino, int64_t(at->kind == FSR_EV_EXT4_EVICT ? at->a[0] : at->a[0]),
                           at->kind == FSR_EV_EXT4_EVICT ? "at eviction" : "after fsync following the race (nothing can be dirty)",
                           r.reserve_events, r.released, r.used,
                           r.evict && at != r.evict ? fmt::format("; at eviction: {}", int64_t(r.evict->a[0])) : "");
    f.kernel_events = {probes::describe_event(*at)};
    a.findings.push_back(f);
  }
  if (stale) {
    Finding f = base("stale-iomap-seen", *first_stale);
    f.informational = true;
    std::string kinds;
    for (const auto& [k, n] : stale_by) kinds += fmt::format("{}{} {}", kinds.empty() ? "" : ", ", k, n);
    f.detail = fmt::format("the kernel detected and handled {} stale cached mapping(s) in this case ({}): informational", stale, kinds);
    f.kernel_events = {probes::describe_event(*first_stale)};
    a.findings.push_back(f);
  }
  a.summary = {{"events", ev.events.size()},
               {"dropped", ev.trailer.is_object() ? ev.trailer.value("dropped", uint64_t(0)) : 0},
               {"by_kind", by_kind},
               {"stale_iomap_seen", stale},
               {"reservations", rj}};
  if (dax) a.summary["dax_invalidate_busy"] = dax_inval_busy;
  return a;
}

}  // namespace fsrace
