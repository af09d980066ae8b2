#include "harness/dax_check.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "harness/kernel_events.h"
#include "probes/fsrace_events.h"

namespace fsrace {

namespace {
constexpr uint64_t kPageBytes = 4096;

bool removes_data(OpKind k) {
  return k == OpKind::kPunch || k == OpKind::kZeroRange || k == OpKind::kCollapse || k == OpKind::kInsert ||
         k == OpKind::kTruncate || k == OpKind::kWrite || k == OpKind::kDioWrite;
}
}  // namespace

std::vector<Finding> check_dax_flushes(const OpLogData& data, const probes::EventsData& ev, bool flush_probe_attached,
                                       const std::string& fs, const std::string& scenario, const std::string& case_name,
                                       DaxFlushStats* stats) {
  DaxFlushStats st;
  std::vector<Finding> out;
  auto done = [&] {
    if (stats) *stats = st;
    return out;
  };
  if (!flush_probe_attached) {
    st.skipped = "fs_dax:dax_writeback_one was not attached";
    return done();
  }
  uint64_t dropped = ev.trailer.is_object() ? ev.trailer.value("dropped", uint64_t(0)) : 0;
  if (dropped) {
    st.skipped = fmt::format("{} probe events were dropped: a missing flush event proves nothing", dropped);
    return done();
  }
  uint64_t missed = ev.trailer.is_object() ? ev.trailer.value("bpf_misses", uint64_t(0)) : 0;
  if (missed) {
    st.skipped = fmt::format("the kernel skipped {} BPF program run(s) (recursion protection): a missing flush event proves nothing",
                             missed);
    return done();
  }
  // File index (op log) <-> inode (events) by name.
  std::map<std::string, uint16_t> file_of_name;
  if (data.meta.contains("files"))
    for (size_t i = 0; i < data.meta["files"].size(); ++i) file_of_name[data.meta["files"][i].value("name", "")] = uint16_t(i);
  std::map<std::pair<uint32_t, uint64_t>, uint16_t> file_of_inode;
  if (ev.trailer.is_object() && ev.trailer.contains("inodes"))
    for (const auto& i : ev.trailer["inodes"])
      if (auto it = file_of_name.find(i.value("name", "")); it != file_of_name.end())
        file_of_inode[{i.value("dev", 0u), i.value("ino", uint64_t(0))}] = it->second;
  // Flush times per (file, page), sorted.
  std::map<std::pair<uint16_t, uint64_t>, std::vector<uint64_t>> flushes;
  std::map<std::pair<uint16_t, uint64_t>, std::vector<const fsr_event*>> flush_events;  // the same, the events (for the detail)
  for (const auto& e : ev.events) {
    if (e.kind != FSR_EV_DAX_WRITEBACK) continue;
    auto it = file_of_inode.find({e.dev, e.ino});
    if (it == file_of_inode.end()) continue;
    ++st.flush_events;
    for (uint64_t p = e.a[0]; p < e.a[0] + std::min<uint64_t>(e.a[1], 1 << 18); ++p) {
      flushes[{it->second, p}].push_back(e.ts_ns);
      flush_events[{it->second, p}].push_back(&e);
    }
  }
  // DAX faults per file: [begin, done] windows (the fault holds the index's entry locked in between) and
  // the walkers' flushes per file in time order (to place a sync's walk at a page).
  struct FaultWin {
    uint64_t first, last, t0, t1;
    const fsr_event* done;
  };
  std::map<uint16_t, std::vector<FaultWin>> faults;
  std::map<uint16_t, std::vector<const fsr_event*>> file_flushes;
  {
    std::map<std::pair<uint32_t, uint64_t>, std::vector<const fsr_event*>> open_begin;  // (tid, pgoff) -> begin events
    for (const auto& e : ev.events) {
      auto it = file_of_inode.find({e.dev, e.ino});
      if (it == file_of_inode.end()) continue;
      if (e.kind == FSR_EV_DAX_WRITEBACK) file_flushes[it->second].push_back(&e);
      if (e.kind == FSR_EV_DAX_FAULT_BEGIN) open_begin[{e.tid, e.a[0]}].push_back(&e);
      if (e.kind == FSR_EV_DAX_FAULT) {
        auto b = open_begin.find({e.tid, e.a[0]});
        if (b == open_begin.end() || b->second.empty()) continue;  // begin not seen: no window
        const fsr_event* be = b->second.back();
        b->second.pop_back();
        auto r = event_page_range(e);
        if (r) faults[it->second].push_back({r->first, r->second, be->ts_ns, e.ts_ns, &e});
      }
    }
  }
  for (auto& [k, v] : flushes) std::sort(v.begin(), v.end());
  for (auto& [k, v] : flush_events) std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->ts_ns < b->ts_ns; });
  // The page's first flush after t (the sync's return): who flushed it and when. A flush a moment later
  // by another task (a punch's or the flusher's writeback) means that writeback had already taken the
  // entry's TOWRITE mark when this sync tagged and walked the range, and the sync returned without
  // waiting for its flush; none for long means nothing flushed the store at all.
  auto next_flush = [&](uint16_t f, uint64_t p, uint64_t t) -> std::string {
    auto it = flush_events.find({f, p});
    const fsr_event* n = nullptr;
    if (it != flush_events.end())
      for (const fsr_event* e : it->second)
        if (e->ts_ns > t) {
          n = e;
          break;
        }
    if (!n) return "; no dax_writeback_one flushed the page later in the race either";
    return fmt::format("; the page's next flush came {:.3f} ms after the sync returned, from {} (dax_writeback_one index {}+{})",
                       double(n->ts_ns - t) / 1e6, event_actor(*n), n->a[0], n->a[1]);
  };
  auto flushed_in = [&](uint16_t f, uint64_t p, uint64_t t0, uint64_t t1) {
    auto it = flushes.find({f, p});
    if (it == flushes.end()) return false;
    auto lo = std::lower_bound(it->second.begin(), it->second.end(), t0);
    return lo != it->second.end() && *lo <= t1;
  };
  // Successful syncs per file, by start time; ops that remove a store's data, per file.
  std::map<uint16_t, std::vector<const OpRecord*>> syncs, removers;
  std::vector<const OpRecord*> stores;
  for (const auto& o : data.ops) {
    OpKind k = OpKind(o.kind);
    if ((k == OpKind::kMsync || k == OpKind::kFsync) && o.result == 0) syncs[o.file].push_back(&o);
    else if (k == OpKind::kMmapWrite && o.result >= 0) stores.push_back(&o);
    else if (removes_data(k)) removers[o.file].push_back(&o);
  }
  for (auto& [f, v] : syncs) std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->start_ns < b->start_ns; });
  auto removed = [&](uint16_t f, uint64_t p, uint64_t t0, uint64_t t1) {
    for (const OpRecord* r : removers[f]) {
      if (r->end_ns < t0 || r->start_ns > t1) continue;
      if (OpKind(r->kind) == OpKind::kCollapse || OpKind(r->kind) == OpKind::kInsert || OpKind(r->kind) == OpKind::kTruncate)
        return true;  // moves or drops everything past its offset: not judged
      if (p * kPageBytes < r->offset + r->length && r->offset < (p + 1) * kPageBytes) return true;
    }
    return false;
  };
  // Workload ops per op-log thread (sorted by start): which op a workload thread's flush belonged to. The
  // workload names its threads "fsr-<role><n>", n the op log's thread.
  std::map<uint32_t, std::vector<const OpRecord*>> ops_of_thread;
  for (const auto& o : data.ops) ops_of_thread[o.thread % 1000].push_back(&o);
  for (auto& [t, v] : ops_of_thread) std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->start_ns < b->start_ns; });
  auto thread_of = [](const fsr_event& e) -> std::optional<uint32_t> {  // "fsr-<role><n>" -> n
    std::string c(e.comm, strnlen(e.comm, FSR_COMM_LEN));
    size_t i = c.size();
    while (i > 0 && std::isdigit(static_cast<unsigned char>(c[i - 1]))) --i;
    if (c.rfind("fsr-", 0) != 0 || i == c.size() || c.size() - i > 3) return std::nullopt;
    return uint32_t(std::stoul(c.substr(i)));
  };
  // Why page p of a store was not flushed by sync y, when the events show it: (explained_by, sentence).
  // The sync's walk passed p between its thread's last flush of a lower page and its first flush of a
  // higher one (dax_writeback_mapping_range walks in index order); a fault on p whose window overlaps that
  // moment held the entry locked then.
  auto explain_unflushed = [&](uint16_t f, uint64_t p, const OpRecord& y) -> std::pair<std::string, std::string> {
    auto own = [&](const fsr_event* e) { return thread_of(*e) == y.thread % 1000; };
    const fsr_event *before = nullptr, *after = nullptr;
    for (const fsr_event* e : file_flushes[f]) {
      if (e->ts_ns < y.start_ns || e->ts_ns > y.end_ns || !own(e)) continue;
      if (e->a[0] + std::max<uint64_t>(e->a[1], 1) - 1 < p) before = e, after = nullptr;  // a later walk restarts below p
      else if (e->a[0] > p && !after && before) after = e;
    }
    uint64_t lo = before ? before->ts_ns : y.start_ns, hi = after ? after->ts_ns : y.end_ns;
    auto ft = faults.find(f);
    for (const FaultWin& w : ft == faults.end() ? std::vector<FaultWin>{} : ft->second) {
      if (p < w.first || p > w.last || w.t0 > hi || w.t1 < lo) continue;
      std::string where = before && after
                              ? fmt::format("between its flushes of page {} and page {} ({:.3f} ms apart)", before->a[0], after->a[0],
                                            double(after->ts_ns - before->ts_ns) / 1e6)
                              : std::string("during the sync");
      return {"dax-locked-entry-skip", fmt::format(
          ". Explained: the sync's walk passed page {} {} while {}'s {} fault on it held the DAX entry locked (fault from "
          "{:.3f} to {:.3f} ms after the sync began); dax_writeback_one() skips an entry it finds locked instead of waiting "
          "for it (get_unlocked_entry() starts with xas_find_conflict() on the walk's xa_state, which returns NULL for the "
          "entry's own slot, read as \"punched out\"), so the earlier store was never flushed",
          p, where, fmt::format("{}[{}]", std::string(w.done->comm, strnlen(w.done->comm, FSR_COMM_LEN)), w.done->tid),
          w.done->a[2] ? "write" : "read", (double(int64_t(w.t0 - y.start_ns))) / 1e6,
          (double(int64_t(w.t1 - y.start_ns))) / 1e6)};
    }
    // Another writeback had the entry: a workload thread's sync / writeback that began before this walk
    // passed the page flushed it after that moment. Its dax_writeback_one() held the entry locked (the
    // skip above) or had already cleared the entry's TOWRITE mark, so this walk never looked at it;
    // either way this sync did not wait for that flush ("concurrent dax_writeback_one() calls for the same
    // index cannot finish before we actually flush the caches", says the function's comment).
    auto it = flush_events.find({f, p});
    if (it != flush_events.end())
      for (const fsr_event* e : it->second) {
        auto t = thread_of(*e);
        if (e->ts_ns <= lo || !t || *t == y.thread % 1000) continue;
        const OpRecord* w = nullptr;
        for (const OpRecord* o : ops_of_thread[*t])
          if (o->start_ns <= e->ts_ns && e->ts_ns <= o->end_ns && o->file == f) w = o;
        // ... and that writeback's walk was already past the pages below p when this walk passed p: its
        // last flush of a lower page (or its start) came before that moment, its flush of p after it.
        const fsr_event* wprev = nullptr;
        if (w)
          for (const fsr_event* x : file_flushes[f]) {
            if (x->ts_ns < w->start_ns) continue;
            if (x->ts_ns >= e->ts_ns) break;
            if (thread_of(*x) == t && x->a[0] + std::max<uint64_t>(x->a[1], 1) - 1 < p) wprev = x;
          }
        if (!w || (wprev ? wprev->ts_ns : w->start_ns) >= hi) {
          if (e->ts_ns > y.end_ns) break;  // the page's next flush after the sync: not in progress, nothing explains
          continue;
        }
        return {"dax-concurrent-writeback",
                fmt::format(". Explained: {} ({}) was flushing the page when this sync's walk passed it: its walk {} and flushed "
                            "page {} {:.3f} ms after this sync's flush below it. That writeback had the entry (locked, or its TOWRITE "
                            "mark already cleared) and this sync returned without waiting for its flush",
                            op_ref(*w), event_actor(*e),
                            wprev ? fmt::format("flushed page {} {:.3f} ms before that moment", wprev->a[0], double(int64_t(hi - wprev->ts_ns)) / 1e6)
                                  : fmt::format("began {:.3f} ms before that moment", double(int64_t(hi - w->start_ns)) / 1e6),
                            p, double(int64_t(e->ts_ns - lo)) / 1e6)};
      }
    return {"", ""};
  };
  for (const OpRecord* s : stores) {
    auto& sv = syncs[s->file];
    uint64_t p0 = s->offset / kPageBytes, p1 = (s->offset + s->length + kPageBytes - 1) / kPageBytes;
    std::set<uint64_t> open;
    for (uint64_t p = p0; p < p1; ++p) open.insert(p);
    bool judged = false;
    auto it = std::upper_bound(sv.begin(), sv.end(), s->end_ns, [](uint64_t t, const OpRecord* y) { return t < y->start_ns; });
    for (; it != sv.end() && !open.empty(); ++it) {
      const OpRecord* y = *it;
      bool whole = OpKind(y->kind) == OpKind::kFsync;
      for (auto pi = open.begin(); pi != open.end();) {
        uint64_t p = *pi;
        if (!whole && !(p * kPageBytes >= y->offset && (p + 1) * kPageBytes <= y->offset + y->length)) {
          ++pi;
          continue;
        }
        pi = open.erase(pi);
        if (removed(s->file, p, s->start_ns, y->end_ns)) continue;
        judged = true;
        ++st.pages_judged;
        if (flushed_in(s->file, p, s->start_ns, y->end_ns)) continue;
        ++st.pages_unflushed;
        Finding fd = make_finding("dax-unflushed", fs, scenario, case_name, "race");
        std::string fname;
        for (const auto& [n, i] : file_of_name)
          if (i == s->file) fname = n;
        fd.file = fname;
        fd.block = p;
        fd.time_ns = y->end_ns;
        fd.ops = {*s, *y};
        auto [expl, why] = explain_unflushed(s->file, p, *y);
        fd.explained_by = expl;
        fd.detail = fmt::format(
            "the store to page {} of {} through the DAX mapping ({}) ended {:.3f} ms before {} ({}) of that page began, "
            "and no fs_dax:dax_writeback_one flushed the page's entry between the store and the sync's return: on real "
            "persistent memory the store could still sit in the CPU cache after the sync said it was durable{}",
            p, fname, op_ref(*s), double(y->start_ns - s->end_ns) / 1e6, OpKind(y->kind) == OpKind::kMsync ? "msync(MS_SYNC)" : "fsync",
            op_ref(*y), next_flush(s->file, p, y->end_ns)) + why;
        out.push_back(std::move(fd));
      }
    }
    st.stores_judged += judged;
  }
  return done();
}

}  // namespace fsrace
