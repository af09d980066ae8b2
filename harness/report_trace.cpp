// trace.json: the Chrome trace-event format (JSON object form) that ui.perfetto.dev and chrome://tracing
// open. pid = case, tid = workload thread (op-log thread number; kernel-side tasks get their own tids),
// ops as complete ("X") slices, invalidate_lock holds and lock contention as async ("b"/"e") slices
// (they overlap), kernel events as instants with their record in args, and a flow from the op the read
// should have seen to the read. Full detail inside each itemised finding's window, a sampled overview
// of every case elsewhere: bounded for long cases.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "core/oplog.h"
#include "core/util.h"
#include "harness/kernel_events.h"
#include "harness/report_formats.h"
#include "probes/events.h"

namespace fsrace {

using nlohmann::json;

namespace {

constexpr uint32_t kKernelTidBase = 1000000;  // tids of kernel-side tasks (not workload threads)

// Workload threads are named "fsr-<tag><op-log thread>": the op-log thread of an event's task, or -1.
int64_t workload_thread(const fsr_event& e) {
  std::string c(e.comm, strnlen(e.comm, FSR_COMM_LEN));
  if (c.rfind("fsr-", 0) != 0 || c == "fsr-uffd-racer") return -1;
  size_t i = c.size();
  while (i > 4 && std::isdigit(static_cast<unsigned char>(c[i - 1]))) --i;
  if (i == c.size()) return -1;
  return std::stoll(c.substr(i));
}

struct Emitter {
  json& out;
  size_t budget;
  size_t n = 0;
  bool full() const { return n >= budget; }
  void add(json e) {
    out.push_back(std::move(e));
    ++n;
  }
};

}  // namespace

json chrome_trace(const ReportModel& m, size_t max_events) {
  json events = json::array();
  Emitter em{events, max_events};
  const json& doc = m.doc;
  // Windows per case: (run, case) -> [(t0, t1, finding index)]
  struct Win {
    uint64_t t0, t1, origin;
    size_t widx;
  };
  std::map<std::pair<uint64_t, std::string>, std::vector<Win>> wins;
  for (size_t i = 0; i < m.windows.size(); ++i) {
    const json& w = m.windows[i];
    if (!w.contains("origin_ns") || !w.contains("range_us")) continue;
    const json& f = doc["findings"][w["finding"].get<size_t>()];
    uint64_t o = w["origin_ns"].get<uint64_t>();
    double a = w["range_us"][0].get<double>(), b = w["range_us"][1].get<double>();
    wins[{f.value("run_index", uint64_t(0)), f.value("case", "")}].push_back(
        {uint64_t(int64_t(o) + int64_t(a * 1000)), uint64_t(int64_t(o) + int64_t(b * 1000)), o, i});
  }
  size_t ncases = std::max<size_t>(1, doc["cases"].size());
  uint64_t flow_id = 1, async_id = 1;
  int pid = 0;
  for (const auto& c : doc["cases"]) {
    ++pid;
    uint64_t ri = c.value("run_index", uint64_t(0));
    std::string name = c.value("case", "");
    if (ri >= m.runs.size()) continue;
    std::string dir = m.runs[ri].dir + "/" + name;
    em.add({{"ph", "M"}, {"name", "process_name"}, {"pid", pid}, {"args", {{"name", m.runs.size() > 1 ? fmt::format("{} (run {})", name, ri) : name}}}});
    em.add({{"ph", "M"}, {"name", "process_sort_index"}, {"pid", pid}, {"args", {{"sort_index", pid}}}});
    // the files the model loaded for its windows, else ops.bin alone (the overview needs no events)
    auto cached = m.loaded.find(dir);
    std::shared_ptr<const CaseData> cd = cached == m.loaded.end() ? nullptr : cached->second;
    OpLogData own;
    const OpLogData* dp = cd && cd->ops ? &*cd->ops : nullptr;
    if (!dp) {
      if (!path_exists(dir + "/ops.bin")) continue;
      try {
        own = load_oplog(dir + "/ops.bin");
      } catch (const std::exception& e) {
        m.damaged.push_back(fmt::format("ops.bin unreadable: {}", e.what()));
        continue;
      }
      dp = &own;
    }
    const OpLogData& d = *dp;
    if (d.ops.empty()) continue;
    std::vector<size_t> order(d.ops.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return d.ops[a].start_ns < d.ops[b].start_ns; });
    uint64_t base = d.ops[order[0]].start_ns;
    auto ts = [&](uint64_t t) { return std::round(double(int64_t(t - base)) / 10.0) / 100.0; };  // µs, 10 ns resolution
    const auto& cw = wins[{ri, name}];
    auto in_window = [&](uint64_t a, uint64_t b) {
      for (const auto& w : cw)
        if (b >= w.t0 && a <= w.t1) return true;
      return false;
    };
    std::set<uint32_t> threads;
    for (const auto& o : d.ops) threads.insert(o.thread);
    for (uint32_t t : threads)
      em.add({{"ph", "M"}, {"name", "thread_name"}, {"pid", pid}, {"tid", t}, {"args", {{"name", t == 0 ? std::string("T0 setup / verify") : fmt::format("T{}", t)}}}});
    size_t detail = 0;
    for (const auto& o : d.ops)
      if (in_window(o.start_ns, o.end_ns)) ++detail;
    size_t share = em.budget > em.n ? (em.budget - em.n) / ncases : 0;
    size_t overview_budget = share > detail ? share - detail : share / 4;
    size_t step = std::max<size_t>(1, (d.ops.size() + overview_budget - 1) / std::max<size_t>(1, overview_budget));
    std::map<uint64_t, const OpRecord*> by_id;  // the findings' ops only
    {
      std::set<uint64_t> want;
      for (const auto& w : cw) {
        const json& f = doc["findings"][m.windows[w.widx]["finding"].get<size_t>()];
        for (const auto& o : f.value("ops", json::array())) want.insert(o.value("id", uint64_t(0)));
        for (const auto& e : f.value("expected", json::array())) {
          std::string s = e.is_string() ? e.get<std::string>() : "";
          if (auto p = s.find("op="); p != std::string::npos) want.insert(std::strtoull(s.c_str() + p + 3, nullptr, 10));
        }
      }
      for (const auto& o : d.ops)
        if (want.count(o.id)) by_id[o.id] = &o;
    }
    for (size_t k = 0; k < order.size(); ++k) {
      const OpRecord& o = d.ops[order[k]];
      bool win = in_window(o.start_ns, o.end_ns);
      if (!win && (k % step || em.full())) continue;  // the windows in full always; the overview within budget
      uint64_t b0 = o.offset / 4096, b1 = (o.offset + std::max<uint64_t>(o.length, 1) - 1) / 4096;
      json x = {{"ph", "X"}, {"cat", win ? "op" : "sampled"}, {"name", op_kind_name(OpKind(o.kind))}, {"pid", pid}, {"tid", o.thread},
                {"ts", ts(o.start_ns)}, {"dur", std::max(0.01, ts(o.end_ns) - ts(o.start_ns))}};
      // the overview keeps the range only; inside a window every field of the record
      if (win) x["args"] = {{"id", o.id}, {"file", o.file}, {"blocks", fmt::format("{}..{}", b0, b1)}, {"result", o.result}};
      else x["args"] = {{"blocks", fmt::format("{}..{}", b0, b1)}};
      em.add(std::move(x));
    }
    // Findings as process-scoped instants; flows from the allowed op to the read.
    for (const auto& w : cw) {
      const json& f = doc["findings"][m.windows[w.widx]["finding"].get<size_t>()];
      em.add({{"ph", "i"}, {"s", "p"}, {"cat", "finding"}, {"name", f.value("class", "finding")}, {"pid", pid}, {"tid", 0}, {"ts", ts(w.origin)},
              {"args", {{"file", f.value("file", "")}, {"block", f.value("block", json(nullptr))}, {"got", f.value("got", "")}, {"detail", f.value("detail", "")}}}});
      const OpRecord* read = nullptr;
      for (const auto& o : f.value("ops", json::array())) {
        auto it = by_id.find(o.value("id", uint64_t(0)));
        if (it != by_id.end() && op_kind_is_read(OpKind(it->second->kind)) && (!read || it->second->start_ns > read->start_ns)) read = it->second;
      }
      if (!read) continue;
      for (const auto& e : f.value("expected", json::array())) {
        std::string s = e.is_string() ? e.get<std::string>() : "";
        auto p = s.find("op=");
        if (p == std::string::npos) continue;
        auto it = by_id.find(std::strtoull(s.c_str() + p + 3, nullptr, 10));
        if (it == by_id.end() || !in_window(it->second->start_ns, it->second->end_ns)) continue;
        const OpRecord& wop = *it->second;
        uint64_t id = flow_id++;
        em.add({{"ph", "s"}, {"cat", "should-see"}, {"name", "write → read that should see it"}, {"id", id}, {"pid", pid}, {"tid", wop.thread},
                {"ts", ts(wop.start_ns / 2 + wop.end_ns / 2)}});
        em.add({{"ph", "f"}, {"bp", "e"}, {"cat", "should-see"}, {"name", "write → read that should see it"}, {"id", id}, {"pid", pid},
                {"tid", read->thread}, {"ts", ts(read->start_ns / 2 + read->end_ns / 2)}});
      }
    }
    // Kernel events inside the windows, on the finding's file.
    if (cw.empty()) continue;
    probes::EventsData own_ev;
    const probes::EventsData* evp = cd && cd->events ? &*cd->events : nullptr;
    if (!evp) {
      if (!path_exists(dir + "/events.bin")) continue;
      try {
        own_ev = probes::load_events(dir + "/events.bin");  // in time order
      } catch (const std::exception&) {
        continue;
      }
      evp = &own_ev;
    }
    const probes::EventsData& ev = *evp;
    std::set<std::pair<uint32_t, uint64_t>> inodes;
    for (const auto& w : cw)
      for (const auto& id : inodes_of_file(ev, doc["findings"][m.windows[w.widx]["finding"].get<size_t>()].value("file", ""))) inodes.insert(id);
    std::set<uint32_t> kernel_tids;
    std::map<std::pair<uint32_t, uint16_t>, std::pair<const fsr_event*, uint64_t>> open;  // (task, opener kind) -> (opener, async id)
    auto tid_of = [&](const fsr_event& e) -> uint32_t {
      int64_t t = workload_thread(e);
      if (t >= 0) return uint32_t(t);
      if (kernel_tids.insert(e.tid).second)
        em.add({{"ph", "M"}, {"name", "thread_name"}, {"pid", pid}, {"tid", kKernelTidBase + e.tid},
                {"args", {{"name", fmt::format("{}[{}] (kernel side)", std::string(e.comm, strnlen(e.comm, FSR_COMM_LEN)), e.tid)}}}});
      return kKernelTidBase + e.tid;
    };
    auto async_name = [](const fsr_event& e) -> std::string {
      if (e.kind == FSR_EV_RWSEM_ACQUIRED) return e.a[0] ? "invalidate_lock exclusive" : "invalidate_lock shared";
      return "invalidate_lock contention";
    };
    uint64_t win_lo = UINT64_MAX, win_hi = 0;
    for (const auto& w : cw) win_lo = std::min(win_lo, w.t0), win_hi = std::max(win_hi, w.t1);
    auto first = std::lower_bound(ev.events.begin(), ev.events.end(), win_lo, [](const fsr_event& e, uint64_t t) { return e.ts_ns < t; });
    for (auto it = first; it != ev.events.end() && it->ts_ns <= win_hi; ++it) {
      const fsr_event& e = *it;
      if (!inodes.empty() && !inodes.count({e.dev, e.ino})) continue;
      bool win = in_window(e.ts_ns, e.ts_ns);
      if (e.kind == FSR_EV_RWSEM_ACQUIRED || e.kind == FSR_EV_CONTENTION_BEGIN) {
        if (!win) continue;
        uint64_t id = async_id++;
        open[{e.tid, e.kind}] = {&e, id};
        em.add({{"ph", "b"}, {"cat", "lock"}, {"name", async_name(e)}, {"id", fmt::format("0x{:x}", id)}, {"pid", pid}, {"tid", tid_of(e)},
                {"ts", ts(e.ts_ns)}, {"args", {{"holder", probes::describe_event(e, e.ts_ns)}}}});
        continue;
      }
      if (e.kind == FSR_EV_RWSEM_RELEASE || e.kind == FSR_EV_CONTENTION_END) {
        uint16_t opener = e.kind == FSR_EV_RWSEM_RELEASE ? FSR_EV_RWSEM_ACQUIRED : FSR_EV_CONTENTION_BEGIN;
        auto it = open.find({e.tid, opener});
        if (it == open.end()) continue;
        em.add({{"ph", "e"}, {"cat", "lock"}, {"name", async_name(*it->second.first)}, {"id", fmt::format("0x{:x}", it->second.second)},
                {"pid", pid}, {"tid", tid_of(*it->second.first)}, {"ts", ts(e.ts_ns)}});
        open.erase(it);
        continue;
      }
      if (!win || e.kind == FSR_EV_RWSEM_ACQUIRE) continue;
      em.add({{"ph", "i"}, {"s", "t"}, {"cat", "kernel"}, {"name", probes::event_kind_name(e.kind)}, {"pid", pid}, {"tid", tid_of(e)},
              {"ts", ts(e.ts_ns)}, {"args", {{"event", probes::describe_event(e, e.ts_ns)}, {"lock", probes::lock_state(e)}, {"by", event_actor(e)}}}});
    }
    for (const auto& [k, v] : open) {  // held past the window: close at its end so every b has its e
      uint64_t end = v.first->ts_ns;
      for (const auto& w : cw)
        if (v.first->ts_ns >= w.t0 && v.first->ts_ns <= w.t1) end = std::max(end, w.t1);
      events.push_back({{"ph", "e"}, {"cat", "lock"}, {"name", async_name(*v.first)}, {"id", fmt::format("0x{:x}", v.second)}, {"pid", pid},
                        {"tid", tid_of(*v.first)}, {"ts", ts(end)}, {"args", {{"note", "still held at the window's end"}}}});
    }
  }
  json meta = {{"tool", "fsrace"}, {"run", doc["run"].value("id", "")}, {"campaign", doc["run"].value("campaign", "")},
               {"kernel", doc["run"].value("kernel", "")},
               {"time", "µs from each case's first op (CLOCK_MONOTONIC); ops inside finding windows in full, elsewhere sampled"},
               {"events", events.size()}, {"budget", max_events}};
  return {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}, {"metadata", meta}};
}

}  // namespace fsrace
