// Checks one case directory of a host-mode punch-vs-fault run made with probes (used by
// tests/integration/probes.sh): prints what it checked and exits 1 on the first violated expectation.
//  - page-cache add/delete events for the test inode, and no event for any other inode
//  - punch-path deletions lie inside the punched range, with invalidate_lock held exclusive by the
//    punching task (the lock snapshot; plus down_write events when function probes attached)
//  - fault events of an mmap reader lie inside the range it was reading at that instant
//  - event timestamps interleave with ops.bin (same CLOCK_MONOTONIC): most race-phase events fall
//    inside an op of the thread that caused them
#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <map>

#include "core/oplog.h"
#include "core/util.h"
#include "probes/events.h"

using namespace fsrace;
using namespace fsrace::probes;

namespace {
int failures = 0;
void check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok    " : "FAIL  ") << what << "\n";
  if (!ok) ++failures;
}
// "fsr-mmap3" -> 3 (the op-log thread id), -1 if not a workload thread
int thread_of(const fsr_event& e, const char* role) {
  std::string c(e.comm, strnlen(e.comm, FSR_COMM_LEN));
  std::string p = std::string("fsr-") + role;
  if (c.rfind(p, 0) != 0) return -1;
  return std::atoi(c.c_str() + p.size());
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: probe_check CASE_DIR\n";
    return 2;
  }
  std::string dir = argv[1];
  EventsData ev = load_events(dir + "/events.bin");
  OpLogData ops = load_oplog(dir + "/ops.bin");
  check(ev.trailer.value("dropped", 1) == 0, fmt::format("no events dropped (dropped = {})", ev.trailer.value("dropped", -1)));
  check(ev.trailer["inodes"].size() == 1, "one test inode registered");
  // Transport: every event a probe counted as emitted reached events.bin (tracepoint programs stage
  // them per CPU and send 16 at a time; the loader drains the stages after detaching), none twice.
  uint64_t emitted = 0;
  for (const auto& [name, pp] : ev.trailer["per_probe"].items()) emitted += pp.value("emitted", uint64_t(0));
  check(emitted == ev.events.size() && ev.trailer.value("events", uint64_t(0)) == ev.events.size(),
        fmt::format("events in the file ({}) = emitted by the probes ({}) = trailer count ({})", ev.events.size(), emitted,
                    ev.trailer.value("events", uint64_t(0))));
  check(ev.trailer.value("short_records", uint64_t(1)) == 0, "no malformed ring records");
  check(std::is_sorted(ev.events.begin(), ev.events.end(), [](const fsr_event& a, const fsr_event& b) { return a.ts_ns < b.ts_ns; }),
        "events decode in time order");
  uint64_t ino = ev.trailer["inodes"][0].value("ino", uint64_t(0));
  uint32_t dev = ev.trailer["inodes"][0].value("dev", 0u);
  size_t other = 0, adds = 0, dels = 0;
  for (const auto& e : ev.events) {
    other += e.ino != ino || e.dev != dev;
    adds += e.kind == FSR_EV_PC_ADD;
    dels += e.kind == FSR_EV_PC_DELETE;
  }
  check(other == 0, fmt::format("no events for other inodes ({} of {})", other, ev.events.size()));
  size_t owners = 0, pointers = 0;
  for (const auto& e : ev.events) {
    owners += e.lock_owner != 0;
    pointers += (e.lock_owner >> 32) != 0;
  }
  check(pointers == 0, fmt::format("no kernel pointer in events.bin: invalidate_lock owners numbered per run ({} of {} owner "
                                   "fields look like addresses)", pointers, owners));
  check(adds > 100 && dels > 100, fmt::format("page-cache add/delete events for the test inode ({} adds, {} deletes)", adds, dels));

  std::map<uint32_t, std::vector<const OpRecord*>> by_thread;
  uint64_t race_t0 = UINT64_MAX, race_t1 = 0;
  for (const auto& o : ops.ops) {
    OpKind k = OpKind(o.kind);
    if (k == OpKind::kInit || uint16_t(k) >= uint16_t(OpKind::kVerifyCached)) continue;
    by_thread[o.thread].push_back(&o);
    race_t0 = std::min(race_t0, o.start_ns);
    race_t1 = std::max(race_t1, o.end_ns);
  }
  for (auto& [t, v] : by_thread)
    std::sort(v.begin(), v.end(), [](const OpRecord* a, const OpRecord* b) { return a->start_ns < b->start_ns; });
  // a thread's ops do not overlap: the op containing ts is the last one starting at or before ts
  auto op_at = [&](int thread, uint64_t ts) -> const OpRecord* {
    auto it = by_thread.find(uint32_t(thread));
    if (it == by_thread.end()) return nullptr;
    const auto& v = it->second;
    auto p = std::upper_bound(v.begin(), v.end(), ts, [](uint64_t t, const OpRecord* o) { return t < o->start_ns; });
    if (p == v.begin()) return nullptr;
    const OpRecord* o = *(p - 1);
    return ts <= o->end_ns ? o : nullptr;
  };
  size_t punch_dels = 0, punch_bad_range = 0, punch_unlocked = 0, race_events = 0, inside_own_op = 0, faults = 0, fault_bad = 0,
         down_write = 0;
  for (const auto& e : ev.events) {
    if (e.ts_ns < race_t0 || e.ts_ns > race_t1) continue;
    int pt = thread_of(e, "punch"), mt = thread_of(e, "mmap"), rt = thread_of(e, "read");
    int t = pt >= 0 ? pt : mt >= 0 ? mt : rt;
    // Events of workload threads only: the quiescent checks (main thread) also run inside this window.
    if (t >= 0) ++race_events;
    const OpRecord* o = t >= 0 ? op_at(t, e.ts_ns) : nullptr;
    inside_own_op += o != nullptr;
    if (e.kind == FSR_EV_PC_DELETE && o && OpKind(o->kind) == OpKind::kPunch) {
      ++punch_dels;
      uint64_t first = o->offset / 4096, last = (o->offset + o->length) / 4096 - 1;
      if (e.a[0] > last || e.a[0] + std::max<uint64_t>(e.a[1], 1) - 1 < first) ++punch_bad_range;
      if (lock_state(e) != "held exclusive by this task") ++punch_unlocked;
    }
    if (e.kind == FSR_EV_FAULT && mt >= 0 && o && OpKind(o->kind) == OpKind::kMmapRead) {
      ++faults;
      if (e.a[0] < o->offset / 4096 || e.a[0] >= (o->offset + o->length + 4095) / 4096) ++fault_bad;
    }
    if (e.kind == FSR_EV_RWSEM_ACQUIRED && e.a[0] == 1 && pt >= 0) ++down_write;
  }
  check(punch_dels > 20, fmt::format("punch-path page-cache deletions inside punch ops ({})", punch_dels));
  check(punch_bad_range == 0, fmt::format("every punch-path deletion lies in the punched range ({} outside)", punch_bad_range));
  check(punch_unlocked == 0,
        fmt::format("invalidate_lock held exclusive by the punching task at every punch-path deletion ({} not)", punch_unlocked));
  bool fault_tp = false, lock_fn = false;
  for (const auto& p : ev.header["probes"]) {
    if (p.value("name", "") == "filemap:mm_filemap_fault") fault_tp = p.value("attach", "") != "unavailable";
    if (p.value("name", "") == "down_write()") lock_fn = p.value("attach", "") != "unavailable";
  }
  if (fault_tp) {
    check(faults > 5, fmt::format("fault events of mmap readers inside their read ops ({})", faults));
    check(fault_bad == 0, fmt::format("every fault index lies in the range being read ({} outside)", fault_bad));
  } else {
    std::cout << "skip  fault-index check: filemap:mm_filemap_fault unavailable on this kernel\n";
  }
  if (lock_fn) check(down_write > 0, fmt::format("down_write of invalidate_lock by the punch thread ({})", down_write));
  else std::cout << "skip  down_write() events: function probes unavailable on this kernel (lock snapshot checked instead)\n";
  double frac = race_events ? double(inside_own_op) / double(race_events) : 0;
  check(frac > 0.5, fmt::format("event timestamps interleave with ops.bin: {:.0f}% of {} race events fall inside an op of their thread",
                                frac * 100, race_events));
  // A run with [probes] toggle_ms: the probes were detached in every other stretch of the race, so no
  // event may carry a time inside a detached stretch, and every stretch did work.
  nlohmann::json cs = nlohmann::json::parse(read_file(dir + "/findings.json"))["cases"][0];
  if (cs.contains("probes") && cs["probes"].contains("toggle")) {
    const auto& t = cs["probes"]["toggle"];
    const auto& segs = t["segments"];
    bool alternate = !segs.empty(), worked = true;
    size_t inside = 0;
    for (size_t i = 0; i < segs.size(); ++i) {
      alternate &= segs[i].value("attached", false) == (i % 2 == 0);
      worked &= segs[i].value("ops", uint64_t(0)) > 0;
      if (segs[i].value("attached", true)) continue;
      uint64_t a = segs[i].value("start_ns", uint64_t(0)), b = a + segs[i].value("ns", uint64_t(0));
      for (const auto& e : ev.events) inside += e.ts_ns > a && e.ts_ns < b;
    }
    check(!t.contains("error"), fmt::format("probes re-attached after every detached stretch ({})", t.value("error", "no error")));
    check(alternate && segs.size() >= 4,
          fmt::format("toggle: {} stretches alternating attached / detached, from attached", segs.size()));
    check(worked, "toggle: the workload made progress in every stretch");
    check(inside == 0, fmt::format("toggle: no event inside a detached stretch ({})", inside));
    check(t["pair_ratios_ops"].size() >= 2, fmt::format("toggle: {} attached stretches compared with their neighbours",
                                                        t["pair_ratios_ops"].size()));
  }
  return failures ? 1 : 0;
}
