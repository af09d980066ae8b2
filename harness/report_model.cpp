#include "harness/report_model.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "core/oplog.h"
#include "core/util.h"
#include "harness/kernel_events.h"
#include "harness/results.h"
#include "probes/events.h"

namespace fsrace {

using nlohmann::json;

namespace {

json load_doc(const std::string& dir) {
  std::string path = dir + "/findings.json";
  if (!path_exists(path))
    throw Fatal(fmt::format("{} is not an fsrace run directory (no findings.json): pass results/<campaign>/<run-id>", dir));
  json doc = json::parse(read_file(path), nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || doc.value("schema", "") != kFindingsSchema || !doc.contains("run") ||
      !doc["run"].is_object() || !doc.value("cases", json()).is_array() || !doc.value("findings", json()).is_array())
    throw Fatal(fmt::format("{} is not a readable fsrace findings file (schema {}): rerun or re-analyse the run", path, kFindingsSchema));
  return doc;
}

int status_rank(const std::string& s) {
  if (s == "complete") return 0;
  if (s == "interrupted") return 1;
  if (s == "running") return 2;
  return 3;  // error, anything unknown
}

uint64_t num(const json& j, const char* key, uint64_t dflt = 0) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return dflt;
  return j[key].get<uint64_t>();
}

// ---- windows ---------------------------------------------------------------------------------------

using CaseFiles = CaseData;

std::string us_text(double us) { return report_span(us); }

std::string thread_label(uint32_t t, const CaseFiles& cf) {
  auto it = cf.thread_roles.find(t);
  std::string roles = it == cf.thread_roles.end() ? "" : it->second;
  if (t == 0) return "T0 setup / verify";
  return roles.empty() ? fmt::format("T{}", t) : fmt::format("T{} {}", t, roles);
}

std::string blocks_text(uint64_t off, uint64_t len) {
  if (len == 0) return fmt::format("at block {}", off / 4096);
  uint64_t b0 = off / 4096, b1 = (off + len - 1) / 4096;
  return b0 == b1 ? fmt::format("block {}", b0) : fmt::format("blocks {}..{}", b0, b1);
}

std::string op_desc(const OpRecord& o, uint64_t origin) {
  return fmt::format("{} ({}, {} → {})", op_ref(o), blocks_text(o.offset, o.length), us_text((double(int64_t(o.start_ns - origin))) / 1e3),
                     us_text((double(int64_t(o.end_ns - origin))) / 1e3));
}

// The event lanes, in drawing order.
enum Lane { kLockX, kLockS, kContention, kInvalidation, kPageCache, kDax, kIomap, kExt4, kLaneCount };
const char* kLaneNames[kLaneCount] = {"invalidate_lock exclusive", "invalidate_lock shared", "lock contention",
                                      "invalidations (punch / truncate / fallocate)", "page cache (affected range)",
                                      "DAX faults / flushes (affected range)", "iomap / DIO", "ext4 reservations"};

int lane_of(uint16_t kind) {
  switch (kind) {
    case FSR_EV_CONTENTION_BEGIN:
    case FSR_EV_CONTENTION_END: return kContention;
    case FSR_EV_PC_ADD:
    case FSR_EV_PC_DELETE:
    case FSR_EV_FAULT: return kPageCache;
    case FSR_EV_TRUNC_PC_ENTER:
    case FSR_EV_TRUNC_PC_EXIT:
    case FSR_EV_INVAL2_ENTER:
    case FSR_EV_INVAL2_EXIT:
    case FSR_EV_EXT4_PUNCH:
    case FSR_EV_EXT4_ZERO:
    case FSR_EV_EXT4_COLLAPSE:
    case FSR_EV_EXT4_INSERT:
    case FSR_EV_EXT4_FALLOC_ENTER:
    case FSR_EV_EXT4_FALLOC_EXIT:
    case FSR_EV_FN_ENTER:
    case FSR_EV_FN_EXIT: return kInvalidation;
    case FSR_EV_IOMAP_STALE:
    case FSR_EV_XFS_IOMAP_INVALID:
    case FSR_EV_XFS_WB_INVALID:
    case FSR_EV_XFS_IOMAP_VALID_RET:
    case FSR_EV_DIO_INVALIDATE_FAIL: return kIomap;
    case FSR_EV_EXT4_DA_RESERVE:
    case FSR_EV_EXT4_DA_RELEASE:
    case FSR_EV_EXT4_DA_UPDATE:
    case FSR_EV_EXT4_ES_DELAYED:
    case FSR_EV_EXT4_SYNC_EXIT:
    case FSR_EV_EXT4_EVICT:
    case FSR_EV_EXT4_RESV_SUMMARY: return kExt4;
    case FSR_EV_DAX_WRITEBACK:
    case FSR_EV_DAX_FAULT_BEGIN:
    case FSR_EV_DAX_FAULT: return kDax;
    default: return -1;
  }
}

// CSS class of an event marker: page-cache events carry the invalidate_lock state they saw.
std::string event_class(const fsr_event& e) {
  std::string c = std::string("ev-") + probes::event_kind_name(e.kind);
  if (e.kind == FSR_EV_PC_ADD || e.kind == FSR_EV_FAULT) {
    if (!(e.flags & FSR_F_LOCK_VALID)) c += " lk-unknown";
    else {
      std::string s = probes::lock_state(e);
      if (s.find("exclusive by another") != std::string::npos) c += " lk-x-other";
      else if (s.find("exclusive") != std::string::npos) c += " lk-x";
      else if (s.find("shared") != std::string::npos) c += " lk-s";
      else c += " lk-free";
    }
  }
  return c;
}

// Events that open an interval closed by a later event of the same task.
std::optional<uint16_t> closer_of(uint16_t kind) {
  switch (kind) {
    case FSR_EV_RWSEM_ACQUIRED: return FSR_EV_RWSEM_RELEASE;
    case FSR_EV_CONTENTION_BEGIN: return FSR_EV_CONTENTION_END;
    case FSR_EV_TRUNC_PC_ENTER: return FSR_EV_TRUNC_PC_EXIT;
    case FSR_EV_INVAL2_ENTER: return FSR_EV_INVAL2_EXIT;
    case FSR_EV_FN_ENTER: return FSR_EV_FN_EXIT;
    case FSR_EV_EXT4_FALLOC_ENTER: return FSR_EV_EXT4_FALLOC_EXIT;
    default: return std::nullopt;
  }
}

std::string comm(const fsr_event& e) { return std::string(e.comm, strnlen(e.comm, FSR_COMM_LEN)); }

json window_of(const json& f, size_t findex, const CaseFiles& cf, const ReportLimits& lim) {
  json w = {{"finding", findex}, {"lanes", json::array()}, {"items", json::array()}, {"flows", json::array()},
            {"explain", json::array()}, {"notes", json::array()}};
  if (!cf.note.empty()) w["notes"].push_back(cf.note);
  if (!cf.ops) return w;
  const OpLogData& d = *cf.ops;
  // The deciding ops, by id: the read, the ops the oracle allowed, the op whose data came back.
  std::set<uint64_t> expected_ids;
  static const std::regex op_re("op=([0-9]+)");
  for (const auto& e : f.value("expected", json::array()))
    if (e.is_string()) {
      std::string s = e.get<std::string>();
      for (std::sregex_iterator it(s.begin(), s.end(), op_re), end; it != end; ++it)
        expected_ids.insert(std::stoull((*it)[1].str()));
    }
  uint64_t got_id = 0;
  if (f.contains("got_value") && f["got_value"].is_object()) got_id = num(f["got_value"], "op");
  std::set<uint64_t> key_ids;
  for (const auto& o : f.value("ops", json::array())) key_ids.insert(num(o, "id"));
  std::map<uint64_t, size_t> by_id;  // the deciding ops only (a 60 s case has millions)
  {
    std::set<uint64_t> want = key_ids;
    want.insert(expected_ids.begin(), expected_ids.end());
    if (got_id) want.insert(got_id);
    for (size_t i = 0; i < d.ops.size(); ++i)
      if (want.count(d.ops[i].id)) by_id[d.ops[i].id] = i;
  }
  const OpRecord* read = nullptr;
  for (uint64_t id : key_ids) {
    auto it = by_id.find(id);
    if (it == by_id.end()) continue;
    const OpRecord& o = d.ops[it->second];
    if (op_kind_is_read(OpKind(o.kind)) && (!read || o.start_ns > read->start_ns)) read = &o;
  }
  // The sync that promised durability (after a power cut, or a DAX sync that did not flush): drawn as
  // "the sync that made it durable" so the lanes show which return the kernel broke its word on.
  uint64_t sync_id = 0;
  if (f.value("phase", "") == "after-power-cut" || f.value("class", "") == "dax-unflushed")
    for (uint64_t id : key_ids)
      if (auto it = by_id.find(id); it != by_id.end()) {
        OpKind k = OpKind(d.ops[it->second].kind);
        if ((k == OpKind::kFsync || k == OpKind::kMsync || k == OpKind::kSyncRange) && d.ops[it->second].result == 0) sync_id = id;
      }
  uint64_t origin = read ? read->start_ns : num(f, "time_ns");
  if (!origin) {
    w["notes"].push_back("no time for this finding: no timeline");
    return w;
  }
  w["origin_ns"] = origin;
  if (!read) {  // time 0 is the finding's own instant (a sync that did not flush, a reservation left over, ...)
    const OpRecord* at = nullptr;
    bool at_end = false;
    for (uint64_t id : key_ids)
      if (auto it = by_id.find(id); it != by_id.end() && (d.ops[it->second].start_ns == origin || d.ops[it->second].end_ns == origin)) {
        at = &d.ops[it->second];
        at_end = at->start_ns != origin;
      }
    std::string what = at ? op_kind_name(OpKind(at->kind)) : "";
    w["origin_label"] = at ? what + (at_end ? " returns" : " starts") : "finding";
    w["origin_what"] = at ? (at_end ? "the " + what + "'s return" : "start of the " + what) : "the finding's time";
  }
  // Window: the deciding ops (and expected / got) within the lookback, plus slack.
  uint64_t lo = origin, hi = read ? read->end_ns : origin;
  std::vector<std::string> outside;
  auto consider = [&](uint64_t id, const char* what) {
    auto it = by_id.find(id);
    if (it == by_id.end()) return;
    const OpRecord& o = d.ops[it->second];
    if (o.end_ns + lim.max_lookback_ns < origin) {
      outside.push_back(fmt::format("{} {} ended {} before the read: outside the window", what, op_desc(o, origin),
                                    us_text(double(origin - o.end_ns) / 1e3)));
      return;
    }
    lo = std::min(lo, o.start_ns);
    hi = std::max(hi, o.end_ns);
  };
  for (uint64_t id : key_ids) consider(id, "op");
  for (uint64_t id : expected_ids) consider(id, "the allowed op");
  if (got_id) consider(got_id, "the op whose data came back,");
  for (auto& s : outside) w["notes"].push_back(s);
  uint64_t t0 = lo > lim.slack_ns ? lo - lim.slack_ns : 0, t1 = hi + lim.slack_ns;
  auto rel = [&](uint64_t t) { return std::round(double(int64_t(t - origin)) / 100.0) / 10.0; };  // µs, 0.1 resolution
  w["range_us"] = {rel(t0), rel(t1)};

  // File and blocks the finding is about.
  int fidx = -1;
  std::string file = f.value("file", "");
  const auto& files = d.meta.value("files", json::array());
  for (size_t i = 0; i < files.size(); ++i)
    if (files[i].value("name", "") == file) fidx = int(i);
  uint64_t b0 = 0, b1 = UINT64_MAX;
  if (f.contains("block") && f["block"].is_number_unsigned()) {
    b0 = b1 = f["block"].get<uint64_t>();
    if (f.contains("blocks") && f["blocks"].is_number_unsigned() && f["blocks"].get<uint64_t>() > 1)
      b1 = b0 + std::min<uint64_t>(f["blocks"].get<uint64_t>(), 1 << 24) - 1;
  }
  else if (read) b0 = read->offset / 4096, b1 = (read->offset + std::max<uint64_t>(read->length, 1) - 1) / 4096;
  w["file"] = file;
  w["blocks"] = {b0, b1 == UINT64_MAX ? json(nullptr) : json(b1)};

  // Ops in the window on the file; bounded, the deciding ones and those on the blocks first.
  struct Pick {
    size_t i;
    int prio;
    uint64_t dist;
  };
  std::vector<Pick> picks;
  size_t candidates = 0;
  for (size_t i = 0; i < d.ops.size(); ++i) {
    const OpRecord& o = d.ops[i];
    if (o.end_ns < t0 || o.start_ns > t1) continue;
    if (fidx >= 0 && o.file != fidx && !key_ids.count(o.id)) continue;
    if (OpKind(o.kind) == OpKind::kTestCorrupt && !key_ids.count(o.id)) continue;
    ++candidates;
    bool key = key_ids.count(o.id) || expected_ids.count(o.id) || o.id == got_id;
    uint64_t ob0 = o.offset / 4096, ob1 = (o.offset + std::max<uint64_t>(o.length, 1) - 1) / 4096;
    bool on_blocks = ob1 >= b0 && ob0 <= b1;
    uint64_t mid = o.start_ns / 2 + o.end_ns / 2;
    picks.push_back({i, key ? 0 : on_blocks ? 1 : 2, mid > origin ? mid - origin : origin - mid});
  }
  std::sort(picks.begin(), picks.end(), [](const Pick& a, const Pick& b) { return a.prio != b.prio ? a.prio < b.prio : a.dist < b.dist; });
  if (picks.size() > lim.ops_per_window) {
    w["notes"].push_back(fmt::format("{} ops of the window drawn, {} left out (the deciding ops and those on the affected blocks first)",
                                     lim.ops_per_window, picks.size() - lim.ops_per_window));
    picks.resize(lim.ops_per_window);
  }
  std::map<uint32_t, size_t> thread_lane;
  std::set<uint32_t> threads;
  for (const auto& p : picks) threads.insert(d.ops[p.i].thread);
  for (uint32_t t : threads) {
    thread_lane[t] = w["lanes"].size();
    w["lanes"].push_back({{"label", thread_label(t, cf)}, {"group", "thread"}, {"thread", t}});
  }
  std::map<uint64_t, size_t> item_of_op;
  std::sort(picks.begin(), picks.end(), [&](const Pick& a, const Pick& b) { return d.ops[a.i].start_ns < d.ops[b.i].start_ns; });
  for (const auto& p : picks) {
    const OpRecord& o = d.ops[p.i];
    std::string role = (read && o.id == read->id) ? "read"
                       : expected_ids.count(o.id)  ? "expected"
                       : o.id == got_id            ? "got"
                       : o.id == sync_id           ? "durable"
                                                   : "";
    std::string tip = fmt::format("{}\nop id {}  result {}{}", op_desc(o, origin), o.id, o.result,
                                  role == "read" ? "\nthe read that saw the wrong data"
                                  : role == "expected" ? "\nthe op whose data the read should have seen"
                                  : role == "got" ? "\nthe op whose data the read got"
                                  : role == "durable" ? "\nthe sync that returned 0: what it covered had to be durable" : "");
    item_of_op[o.id] = w["items"].size();
    w["items"].push_back({thread_lane[o.thread], rel(o.start_ns), std::max(0.1, rel(o.end_ns) - rel(o.start_ns)),
                          std::string("op op-") + op_kind_name(OpKind(o.kind)), op_kind_name(OpKind(o.kind)), tip, role});
  }
  if (read)
    for (uint64_t id : expected_ids)
      if (item_of_op.count(id) && item_of_op.count(read->id))
        w["flows"].push_back({item_of_op[id], item_of_op[read->id]});

  // Kernel lanes.
  size_t lane_base = w["lanes"].size();
  std::vector<int> lane_used(kLaneCount, 0);
  json ev_items = json::array();
  size_t ev_total = 0;
  if (cf.events) {
    auto inodes = inodes_of_file(*cf.events, file);
    std::map<std::pair<uint32_t, uint16_t>, const fsr_event*> open;  // (tid, closer kind) -> opener
    struct EvPick {
      int lane;
      double t, dur;
      std::string cls, label, tip;
      uint64_t dist;
      bool in_range;
    };
    std::vector<EvPick> evs;
    auto add = [&](int lane, const fsr_event& a, const fsr_event* b, bool in_range) {
      double t = rel(std::max<uint64_t>(a.ts_ns, t0));
      double te = b ? rel(std::min<uint64_t>(b->ts_ns, t1)) : t;
      std::string tip = fmt::format("{}{}\n{}", probes::describe_event(a, origin), b ? "\n" + probes::describe_event(*b, origin) : "",
                                    event_actor(a));
      std::string label = probes::event_kind_name(a.kind);
      if (a.kind == FSR_EV_PC_ADD || a.kind == FSR_EV_PC_DELETE || a.kind == FSR_EV_FAULT) label += fmt::format(" {}", a.a[0]);
      if (a.kind == FSR_EV_RWSEM_ACQUIRED) label = comm(a);
      uint64_t dist = a.ts_ns > origin ? a.ts_ns - origin : origin - a.ts_ns;
      evs.push_back({lane, t, std::max(0.0, te - t), event_class(a), label, tip, dist, in_range});
    };
    // from 1 s before the window: holds and contention that began earlier are drawn from its start
    uint64_t from = t0 > 1000000000ull ? t0 - 1000000000ull : 0;
    const auto& evv = cf.events->events;
    auto first = std::lower_bound(evv.begin(), evv.end(), from, [](const fsr_event& e, uint64_t t) { return e.ts_ns < t; });
    for (auto eit = first; eit != evv.end(); ++eit) {
      const fsr_event& e = *eit;
      if (e.ts_ns > t1) break;  // decode_events sorts by time
      if (!inodes.empty() && !inodes.count({e.dev, e.ino})) continue;
      // Interval events: remember openers (also before the window), draw on the close.
      if (auto c = closer_of(e.kind)) {
        open[{e.tid, *c}] = &e;
        continue;
      }
      bool closes = false;
      for (auto it = open.begin(); it != open.end(); ++it)
        if (it->first.first == e.tid && it->first.second == e.kind) {
          const fsr_event* a = it->second;
          open.erase(it);
          closes = true;
          if (e.ts_ns < t0) break;
          int lane = a->kind == FSR_EV_RWSEM_ACQUIRED ? (a->a[0] ? kLockX : kLockS) : lane_of(a->kind);
          auto r = event_page_range(*a);
          bool in_range = !r || (r->second >= b0 && r->first <= b1);
          if (lane >= 0) ++ev_total, add(lane, *a, &e, in_range);
          break;
        }
      if (closes || e.ts_ns < t0) continue;
      if (e.kind == FSR_EV_RWSEM_ACQUIRE || e.kind == FSR_EV_RWSEM_RELEASE || e.kind == FSR_EV_CONTENTION_END) continue;
      int lane = lane_of(e.kind);
      if (lane < 0) continue;
      auto r = event_page_range(e);
      bool in_range = !r || (r->second >= b0 && r->first <= b1);
      if ((lane == kPageCache || lane == kDax) && !in_range) continue;  // these lanes are about the affected range only
      ++ev_total;
      add(lane, e, nullptr, in_range);
    }
    for (const auto& [k, a] : open) {  // still open at the window's end: held / contended past it
      if (a->ts_ns > t1) continue;
      int lane = a->kind == FSR_EV_RWSEM_ACQUIRED ? (a->a[0] ? kLockX : kLockS) : lane_of(a->kind);
      if (lane < 0) continue;
      ++ev_total;
      double t = rel(std::max<uint64_t>(a->ts_ns, t0));
      evs.push_back({lane, t, rel(t1) - t, event_class(*a) + " open", a->kind == FSR_EV_RWSEM_ACQUIRED ? comm(*a) : probes::event_kind_name(a->kind),
                     probes::describe_event(*a, origin) + "\n(not released within the window)\n" + event_actor(*a),
                     a->ts_ns > origin ? a->ts_ns - origin : origin - a->ts_ns, true});
    }
    std::sort(evs.begin(), evs.end(), [](const EvPick& a, const EvPick& b) {
      return a.in_range != b.in_range ? a.in_range : a.dist < b.dist;
    });
    if (evs.size() > lim.events_per_window) {
      w["notes"].push_back(fmt::format("{} kernel events of the window drawn, {} left out (those on the affected range and nearest "
                                       "the read first)", lim.events_per_window, evs.size() - lim.events_per_window));
      evs.resize(lim.events_per_window);
    }
    std::sort(evs.begin(), evs.end(), [](const EvPick& a, const EvPick& b) { return a.t < b.t; });
    for (const auto& e : evs) lane_used[e.lane] = 1;
    std::vector<size_t> lane_index(kLaneCount, 0);
    for (int l = 0; l < kLaneCount; ++l)
      if (lane_used[l] || l == kPageCache || l == kLockX) {
        lane_index[l] = w["lanes"].size();
        w["lanes"].push_back({{"label", kLaneNames[l]}, {"group", "kernel"}});
      }
    for (const auto& e : evs) w["items"].push_back({lane_index[e.lane], e.t, e.dur, e.cls, e.label, e.tip, ""});
    uint64_t dropped = cf.events->trailer.is_object() ? cf.events->trailer.value("dropped", uint64_t(0)) : 0;
    if (dropped) w["notes"].push_back(fmt::format("{} probe events were dropped in this case (ring buffer full): kernel lanes may miss some", dropped));
    bool have_holds = false;
    for (const auto& e : cf.events->events)
      if (e.kind == FSR_EV_RWSEM_ACQUIRED) {
        have_holds = true;
        break;
      }
    if (!have_holds)
      w["notes"].push_back("invalidate_lock holds: not traced on this kernel (down_* / up_* need fentry or kprobes); the page-cache "
                           "markers show the lock state each event saw");
  } else {
    w["notes"].push_back("no probe events for this case (events.bin missing: probes off, or the run stopped early): thread lanes only");
  }
  (void)lane_base;
  w["kernel_events_in_window"] = ev_total;
  w["ops_in_window"] = candidates;

  // Plain-language explanation: what the read saw against what it should have, then the kernel's side.
  if (read) {
    std::string got = f.value("got", "");
    std::string line = fmt::format("{} read {} of {}: {}", op_desc(*read, origin), f.contains("block") ? finding_blocks_text(f) : "",
                                   file, got);
    w["explain"].push_back(line);
    for (uint64_t id : expected_ids)
      if (by_id.count(id)) {
        const OpRecord& o = d.ops[by_id[id]];
        w["explain"].push_back(fmt::format("it should have seen the data of {}, which ended {} {} the read started", op_desc(o, origin),
                                           us_text(std::fabs(double(int64_t(origin - o.end_ns))) / 1e3),
                                           o.end_ns <= origin ? "before" : "after"));
      }
    if (got_id && by_id.count(got_id))
      w["explain"].push_back(fmt::format("the data it got is from {}", op_desc(d.ops[by_id[got_id]], origin)));
    if (f.value("phase", "") == "after-power-cut") {
      // A durability failure: the ops that decide it are the cut and the fsync that returned 0 before it.
      const OpRecord *cut = nullptr, *sync = nullptr;
      for (uint64_t id : key_ids) {
        auto it = by_id.find(id);
        if (it == by_id.end()) continue;
        const OpRecord& o = d.ops[it->second];
        if (OpKind(o.kind) == OpKind::kPowerCut) cut = &o;
        if (OpKind(o.kind) == OpKind::kFsync) sync = &o;
      }
      // The reads after a [vm] power_cut are the next boot's (op-log thread 999, harness/verify.h kAfterCutThread).
      bool vm_cut = read && read->thread == 999;
      if (cut)
        w["explain"].push_back(
            fmt::format("the power cut at {} ", us_text(double(int64_t(cut->start_ns - origin)) / 1e3)) +
            (vm_cut ? "([vm] power_cut: QEMU killed, the VM booted again on the same media): what the kernel had not written "
                      "by then was lost; the filesystem was mounted again and replayed its journal before this read"
                    : "(kwiden dm-flakey): writes after it never reached the disk; the filesystem was mounted again and "
                      "replayed its journal before this read"));
      if (sync && cut)
        w["explain"].push_back(fmt::format("{} returned 0 {} before the cut, after the op it should have seen ended: the kernel "
                                           "had reported that op durable, and after the replay it was not there",
                                           op_desc(*sync, origin), us_text(double(cut->start_ns - sync->end_ns) / 1e3)));
      w["explain"].push_back("a durability failure (what the disk kept), not a page-cache race: the page-cache events of the race "
                             "(in the kernel-event list) do not explain it");
    }
  }
  for (const auto& l : f.value("kernel_events", json::array()))
    if (l.is_string() && l.get<std::string>().rfind("+", 0) != 0 && l.get<std::string>().rfind("...", 0) != 0)
      w["explain"].push_back(l);
  return w;
}

void load_case(CaseFiles& cf, const std::string& dir) {
  try {
    if (path_exists(dir + "/ops.bin")) cf.ops = load_oplog(dir + "/ops.bin");
    else cf.note = fmt::format("{}/ops.bin is missing (op logging off, or the case did not finish): no op lanes", dir);
  } catch (const std::exception& e) {
    cf.note = fmt::format("ops.bin unreadable: {}", e.what());
  }
  try {
    if (path_exists(dir + "/events.bin")) cf.events = probes::load_events(dir + "/events.bin");  // in time order
  } catch (const std::exception& e) {
    cf.note += (cf.note.empty() ? "" : "; ") + fmt::format("events.bin unreadable: {}", e.what());
  }
  if (cf.ops) {
    std::map<uint32_t, std::map<std::string, uint64_t>> kinds;
    for (const auto& o : cf.ops->ops)
      if (!op_kind_quiescent(OpKind(o.kind)) && OpKind(o.kind) != OpKind::kInit) ++kinds[o.thread][op_kind_name(OpKind(o.kind))];
    for (auto& [t, m] : kinds) {
      std::vector<std::pair<uint64_t, std::string>> v;
      for (auto& [k, n] : m) v.push_back({n, k});
      std::sort(v.rbegin(), v.rend());
      std::string s;
      for (size_t i = 0; i < v.size() && i < 3; ++i) s += (s.empty() ? "" : ", ") + v[i].second;
      cf.thread_roles[t] = s;
    }
  }
}

}  // namespace

Interval wilson95(uint64_t k, uint64_t n) {
  if (n == 0) return {0, 1};
  const double z = 1.959963984540054, p = double(k) / double(n), nn = double(n);
  double den = 1 + z * z / nn, centre = (p + z * z / (2 * nn)) / den;
  double half = z * std::sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / den;
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

json merge_docs(const std::vector<json>& docs) {
  if (docs.size() == 1) {
    json d = docs[0];
    for (auto& c : d["cases"]) c["run_index"] = 0;
    for (size_t i = 0; i < d["findings"].size(); ++i) d["findings"][i]["run_index"] = 0, d["findings"][i]["index"] = i;
    const json& r = d["run"];
    if (r.contains("shard") && r["shard"].is_object()) {  // one shard alone: the others are missing
      json missing = json::array();
      for (uint64_t i = 1; i <= num(r["shard"], "total"); ++i)
        if (i != num(r["shard"], "index")) missing.push_back(fmt::format("{} shard {}/{}", r.value("campaign", ""), i, num(r["shard"], "total")));
      if (!missing.empty()) d["run"]["shards_missing"] = missing;
    }
    return d;
  }
  json run = docs[0]["run"];
  json from = json::array();
  std::string status = "complete";
  std::map<std::string, uint64_t> by_class, informational;
  uint64_t suppressed = 0;
  json cases = json::array(), findings = json::array();
  std::set<std::string> campaigns;
  std::map<std::string, std::set<uint64_t>> shards;  // campaign -> shard indexes seen
  std::map<std::string, uint64_t> shard_total;
  for (size_t r = 0; r < docs.size(); ++r) {
    const json& d = docs[r];
    const json& rr = d["run"];
    from.push_back({{"id", rr.value("id", "")}, {"campaign", rr.value("campaign", "")}, {"kernel", rr.value("kernel", "")},
                    {"status", d.value("status", "")}, {"shard", rr.value("shard", json(nullptr))}});
    campaigns.insert(rr.value("campaign", ""));
    if (rr.contains("shard") && rr["shard"].is_object()) {
      shards[rr.value("campaign", "")].insert(num(rr["shard"], "index"));
      shard_total[rr.value("campaign", "")] = num(rr["shard"], "total");
    }
    if (status_rank(d.value("status", "error")) > status_rank(status)) status = d.value("status", "error");
    for (auto c : d["cases"]) {
      c["run_index"] = r;
      cases.push_back(c);
    }
    for (size_t i = 0; i < d["findings"].size(); ++i) {
      json f = d["findings"][i];
      f["run_index"] = r, f["index"] = i;
      findings.push_back(f);
    }
    for (const auto* key : {"findings_by_class", "informational_by_class"}) {
      auto& to = std::string(key) == "findings_by_class" ? by_class : informational;
      const json& m = d.value(key, json::object());
      if (m.is_object())
        for (auto it = m.begin(); it != m.end(); ++it)
          if (it.value().is_number_unsigned()) to[it.key()] += it.value().get<uint64_t>();
    }
    if (d.value("suppressed", json(0)).is_number_unsigned()) suppressed += d["suppressed"].get<uint64_t>();
  }
  run["id"] = "merged";
  run["merged_from"] = from;
  if (campaigns.size() > 1) {
    std::string names;
    for (const auto& c : campaigns) names += (names.empty() ? "" : "+") + c;
    run["campaign"] = names;
  }
  run.erase("shard");
  json missing = json::array();
  for (const auto& [c, seen] : shards)
    for (uint64_t i = 1; i <= shard_total[c]; ++i)
      if (!seen.count(i)) missing.push_back(fmt::format("{} shard {}/{}", c, i, shard_total[c]));
  if (!missing.empty()) run["shards_missing"] = missing;
  json doc;
  doc["schema"] = kFindingsSchema;
  doc["run"] = run;
  doc["status"] = status;
  doc["cases"] = cases;
  doc["findings_by_class"] = by_class;
  doc["informational_by_class"] = informational;
  doc["suppressed"] = suppressed;
  doc["findings"] = findings;
  return doc;
}

json repro_stats(const json& doc, const std::vector<ReportRun>& runs) {
  struct Acc {
    uint64_t runs = 0, hit = 0, not_run = 0;
    std::vector<double> first_s;
    std::set<std::string> classes;
  };
  std::map<std::pair<std::string, std::string>, Acc> acc;
  // first finding time per (run, case)
  std::map<std::pair<uint64_t, std::string>, uint64_t> first_ns;
  for (const auto& f : doc["findings"]) {
    if (f.value("informational", false)) continue;
    uint64_t t = num(f, "time_ns");
    if (!t) continue;
    auto key = std::make_pair(num(f, "run_index"), f.value("case", ""));
    auto it = first_ns.find(key);
    if (it == first_ns.end() || t < it->second) first_ns[key] = t;
  }
  std::map<std::pair<uint64_t, std::string>, std::set<std::string>> case_classes;
  for (const auto& f : doc["findings"])
    if (!f.value("informational", false)) case_classes[{num(f, "run_index"), f.value("case", "")}].insert(f.value("class", ""));
  for (const auto& c : doc["cases"]) {
    auto& a = acc[{c.value("scenario", "?"), c.value("fs", "?")}];
    std::string st = c.value("status", "");
    if (st != "complete" && st != "interrupted") {
      ++a.not_run;
      continue;
    }
    ++a.runs;
    uint64_t ri = num(c, "run_index");
    std::string name = c.value("case", "");
    bool hit = num(c, "findings") > 0 || case_classes.count({ri, name});
    if (!hit) continue;
    ++a.hit;
    for (const auto& k : case_classes[{ri, name}]) a.classes.insert(k);
    auto it = first_ns.find({ri, name});
    if (it == first_ns.end() || ri >= runs.size()) continue;
    // the race's start: race.json's race_end_ns minus the race's length
    json race = json::parse(path_exists(runs[ri].dir + "/" + name + "/race.json") ? read_file(runs[ri].dir + "/" + name + "/race.json") : "",
                            nullptr, false);
    if (!race.is_object()) continue;
    uint64_t end = num(race.value("inputs", json::object()), "race_end_ns");
    double race_s = c.value("timing", json::object()).value("race_s", 0.0);
    if (!end || race_s <= 0) continue;
    double start = double(end) - race_s * 1e9;
    a.first_s.push_back(std::max(0.0, (double(it->second) - start) / 1e9));
  }
  json out = json::array();
  for (auto& [k, a] : acc) {
    Interval ci = wilson95(a.hit, a.runs);
    json row = {{"scenario", k.first}, {"fs", k.second}, {"runs", a.runs}, {"runs_with_finding", a.hit},
                {"rate", a.runs ? double(a.hit) / double(a.runs) : 0.0}, {"ci95", {ci.lo, ci.hi}}, {"not_run", a.not_run},
                {"classes", a.classes}};
    if (!a.first_s.empty()) {
      std::sort(a.first_s.begin(), a.first_s.end());
      size_t n = a.first_s.size();
      row["median_first_finding_s"] = n % 2 ? a.first_s[n / 2] : (a.first_s[n / 2 - 1] + a.first_s[n / 2]) / 2;
    } else {
      row["median_first_finding_s"] = nullptr;
    }
    out.push_back(row);
  }
  return out;
}

json kernel_config_highlights(const std::string& text) {
  static const char* kKeys[] = {"LOCKDEP", "PROVE_LOCKING", "KASAN", "KCSAN", "KFENCE", "XFS_DEBUG", "XFS_ONLINE_SCRUB", "EXT4_DEBUG",
                                "DEBUG_INFO_BTF", "KPROBES", "FUNCTION_ERROR_INJECTION", "BPF_KPROBE_OVERRIDE", "FS_DAX", "PREEMPT"};
  json out = json::object();
  if (text.empty()) return out;
  for (const char* k : kKeys) {
    std::string key = fmt::format("CONFIG_{}=", k), unset = fmt::format("# CONFIG_{} is not set", k);
    std::string v = "n";
    size_t p = 0;
    while ((p = text.find(key, p)) != std::string::npos) {
      if (p == 0 || text[p - 1] == '\n') {
        size_t e = text.find('\n', p);
        v = text.substr(p + key.size(), e == std::string::npos ? std::string::npos : e - p - key.size());
        break;
      }
      p += key.size();
    }
    out[k] = v;
  }
  return out;
}

std::string replay_command(const std::string& run_dir, size_t finding_index) {
  return fmt::format("fsrace replay {} --finding {} --repeat 20", run_dir, finding_index);
}

ReportModel load_report(const std::vector<std::string>& dirs, const ReportLimits& lim, bool with_windows) {
  if (dirs.empty()) throw Fatal("no run directory given: pass results/<campaign>/<run-id> (one or more)");
  ReportModel m;
  std::set<std::string> seen;
  std::vector<json> docs;
  for (const auto& d : dirs) {
    std::string dir = d;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    if (!seen.insert(dir).second) throw Fatal(fmt::format("run directory {} is given twice: pass each run once", dir));
    json doc = load_doc(dir);
    m.runs.push_back({dir, doc});
    docs.push_back(doc);
  }
  try {
    m.doc = merge_docs(docs);
    m.stats = repro_stats(m.doc, m.runs);
    for (const auto& r : m.runs)
      if (r.doc["run"].contains("kernel_config")) {
        m.config = r.doc["run"]["kernel_config"];
        break;
      }
    // Itemise a bounded, varied set: round-robin over (case, class) so one noisy case does not hide others.
    const json& fs = m.doc["findings"];
    std::map<std::tuple<uint64_t, std::string, std::string>, std::vector<size_t>> groups;
    for (size_t i = 0; i < fs.size(); ++i) groups[{num(fs[i], "run_index"), fs[i].value("case", ""), fs[i].value("class", "")}].push_back(i);
    std::vector<size_t> order;
    for (size_t round = 0; order.size() < std::min(lim.itemised, fs.size()); ++round) {
      bool any = false;
      for (auto& [k, v] : groups)
        if (round < v.size() && order.size() < lim.itemised) order.push_back(v[round]), any = true;
      if (!any) break;
    }
    std::sort(order.begin(), order.end());
    m.left_out = fs.size() - order.size() + num(m.doc, "suppressed");
    for (size_t i : order) {
      const json& f = fs[i];
      uint64_t ri = num(f, "run_index");
      std::string case_dir = m.runs[ri].dir + "/" + f.value("case", "");
      static const CaseData kNone;
      const CaseData* cf = &kNone;
      if (with_windows) {
        auto& slot = m.loaded[case_dir];
        if (!slot) {
          auto c = std::make_shared<CaseData>();
          load_case(*c, case_dir);
          slot = c;
        }
        cf = slot.get();
      }
      json w = window_of(f, i, *cf, lim);
      w["replay"] = replay_command(m.runs[ri].dir, num(f, "index"));
      m.windows.push_back(std::move(w));
    }
  } catch (const json::exception& e) {
    throw Fatal(fmt::format("a findings.json among {} is malformed ({}): rerun or re-analyse the run", dirs[0], e.what()));
  }
  return m;
}

}  // namespace fsrace
