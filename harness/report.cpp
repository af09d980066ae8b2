#include "harness/report.h"
#include "harness/results.h"

#include <fmt/core.h>
#include <iostream>
#include <map>

#include "core/util.h"

namespace fsrace {

namespace {
std::string case_block(nlohmann::json c) {  // by value: operator[] on a missing key inserts null (no UB)
  std::string s;
  s += fmt::format("case {}  [{}]  status: {}\n", c.value("case", "?"), c.value("fs", "?"), c.value("status", "?"));
  if (c.contains("ops")) {
    auto& o = c["ops"];
    std::string kinds;
    for (auto it = o["by_kind"].begin(); it != o["by_kind"].end(); ++it)
      kinds += fmt::format("{}{} {}", kinds.empty() ? "" : ", ", it.key(), it.value().get<uint64_t>());
    double secs = o.value("seconds", 0.0);
    uint64_t total = o.value("total", uint64_t(0));
    s += fmt::format("  race: {} ops in {:.2f} s ({:.0f} ops/s): {}\n", total, secs, secs > 0 ? double(total) / secs : 0.0, kinds);
    if (o.contains("errors") && !o["errors"].empty()) s += fmt::format("  failed syscalls: {}\n", o["errors"].dump());
    if (o.contains("overlap"))
      s += fmt::format("  overlap: {} of {} modifying ops ({:.1f} %) overlapped a read of the same blocks by another thread\n",
                       o["overlap"].value("overlapped", 0), o["overlap"].value("attempts", 0),
                       100.0 * o["overlap"].value("share", 0.0));
  }
  if (c.contains("widening"))
    for (auto it = c["widening"].begin(); it != c["widening"].end(); ++it)
      s += fmt::format("  widening: {}: {}\n", it.key(), it.value().get<std::string>());
  if (c.contains("kernel_delays")) {  // BPF busy-waits at kernel points (widening/delay.h)
    auto& d = c["kernel_delays"];
    for (auto it = d["points"].begin(); it != d["points"].end(); ++it) {
      auto& p = it.value();
      std::string hooks;
      for (const auto& h : p.value("hooks", nlohmann::json::array()))
        if (h.value("attach", "") != "unavailable") hooks += fmt::format("{}{} {}", hooks.empty() ? "" : ", ", h.value("name", ""), h.value("attach", ""));
      if (!p.value("ran", false))
        s += fmt::format("  kernel delay: {} unavailable: {}\n", it.key(), p.value("unavailable", d.value("error", "")));
      else
        s += fmt::format("  kernel delay: {} [{}]: {} hits, {} delayed ({:g} us at {:g} % of hits), {:.1f} ms in total, longest {:.0f} us\n",
                         it.key(), hooks, p.value("hits", 0), p.value("delayed", 0), d.value("delay_us", 0.0),
                         100 * d.value("ratio", 0.0), p.value("delayed_ns", 0) / 1e6, p.value("max_ns", 0) / 1e3);
    }
  }
  if (c.contains("kernel_widening"))
    for (auto it = c["kernel_widening"].begin(); it != c["kernel_widening"].end(); ++it) {
      auto& w = it.value();
      std::string what;
      if (w.value("ran", false) && w.contains("errortags")) {
        std::string tags;
        for (auto t = w["errortags"].begin(); t != w["errortags"].end(); ++t)
          tags += fmt::format("{}{} = {}", tags.empty() ? "" : ", ", t.key(), t.value().dump());
        what = fmt::format("ran: {} in {} during the race", tags, w.value("dir", ""));
      } else if (w.value("ran", false) && w.contains("table_at_cut")) {
        nlohmann::json f = w.contains("fsck") ? w["fsck"] : nlohmann::json::object();
        std::string rec = w.value("journal_recovery", std::string());
        what = fmt::format("ran: power cut after the race on {} ({}); {} ops not made durable by fsync, {} reads after the "
                           "cut judged by what fsync guaranteed{}; mount after it: {}; {}: {}",
                           w.value("device", ""), w.value("table_at_cut", ""), w.value("non_durable_ops", uint64_t(0)),
                           w.value("reads_after_cut", uint64_t(0)),
                           w.value("unjudged_reads_after_cut", uint64_t(0))
                               ? fmt::format(" ({} not judged: files a shift changed)", w.value("unjudged_reads_after_cut", uint64_t(0)))
                               : "",
                           rec.empty() ? "no journal recovery logged" : "journal replayed",
                           f.value("command", std::string("fsck")), f.value("clean", false) ? "clean" : fmt::format("exit {}", f.value("exit", -1)));
        if (!w.value("fsynced_before_cut", std::string()).empty()) what += "; fsync'ed before the cut: " + w.value("fsynced_before_cut", std::string());
        if (w.contains("selfcheck")) what += "; SELF-CHECK: " + w.value("selfcheck", std::string());
      } else if (w.value("ran", false) && w.contains("how")) {  // [vm] power_cut
        nlohmann::json f = w.contains("fsck") ? w["fsck"] : nlohmann::json::object();
        what = fmt::format("ran: power cut after the race (QEMU killed, VM booted again on the same media); {} ops not made "
                           "durable by fsync, {} reads after the cut judged by what fsync guaranteed; mount after it {:.2f} s, {}; "
                           "verify {:.2f} s; {}: {}",
                           w.value("non_durable_ops", uint64_t(0)), w.value("reads_after_cut", uint64_t(0)), w.value("mount_s", 0.0),
                           w.value("journal_recovery", std::string()).empty() ? "no journal recovery logged" : "journal replayed",
                           w.value("verify_s", 0.0), f.value("command", std::string("fsck")),
                           f.value("clean", false) ? "clean" : fmt::format("exit {}", f.value("exit", -1)));
        if (!w.value("fsynced_before_cut", std::string()).empty()) what += "; fsync'ed before the cut: " + w.value("fsynced_before_cut", std::string());
        if (w.contains("selfcheck")) what += "; SELF-CHECK: " + w.value("selfcheck", std::string());
      } else if (w.value("ran", false) && w.contains("table")) {
        what = fmt::format("ran: filesystem on {} ({})", w.value("device", ""), w.value("table", ""));
      } else if (w.value("ran", false) && w.contains("injection")) {
        auto& j = w["injection"];
        what = fmt::format("ran: {} failed with {} on {:.2g} % of the racing threads' calls for the test files", j.value("function", ""),
                           j.value("errno", ""), 100 * j.value("ratio", 0.0));
        if (j.contains("hits") && j["hits"].is_number())
          what += fmt::format(" ({} of {} calls failed)", j.value("injected", uint64_t(0)), j.value("hits", uint64_t(0)));
        else
          what += " (fail_function keeps no count)";
      } else if (w.contains("error")) {
        what = "available, but it did not run: " + w.value("error", std::string());
      } else if (w.value("available", false)) {
        what = "available on this kernel, detected only (fsrace does not drive it): " + w.value("detail", std::string());
      } else {
        what = "unavailable: " + w.value("detail", std::string());
      }
      s += fmt::format("  kernel widening: {} {}\n", it.key(), what);
    }
  if (c.contains("oracle")) {
    auto& o = c["oracle"];
    s += fmt::format("  oracle: {} reads, {} blocks checked ({} torn while racing: legal)", o.value("reads_checked", 0),
                     o.value("blocks_checked", 0), o.value("torn_legal", 0));
    if (uint64_t n = o.value("shifts", uint64_t(0)))
      s += fmt::format("; {} collapse / insert range / truncate modelled", n);
    if (uint64_t n = o.value("shift_races", uint64_t(0)))
      s += fmt::format(", {} modifying ops racing them", n);
    if (uint64_t n = o.value("shift_conflicts", uint64_t(0)))
      s += fmt::format("; WARNING: {} pairs of shifts overlapped (model assumed their end order)", n);
    s += "\n";
  }
  if (c.contains("kernel_log")) {
    auto& k = c["kernel_log"];
    s += fmt::format("  kernel log: {} lines captured{}", k.value("lines", 0),
                     k.value("captured", true) ? "" : fmt::format(" (not captured: {})", k.value("error", "")));
    s += "\n";
    std::map<std::string, std::pair<int, bool>> by_rule;
    for (const auto& n : k.value("notices", nlohmann::json::array())) {
      auto& e = by_rule[n.value("rule", "")];
      ++e.first;
      e.second = n.value("escalated", false);
    }
    for (const auto& [rule, e] : by_rule)
      s += fmt::format("  kernel notice: {} x{} ({})\n", rule, e.first,
                       e.second ? "escalated: the oracle rejected data in this case" : "not a finding by itself: all data verified");
  }
  if (c.contains("extents") && !c["extents"].empty()) {
    std::string e;
    for (auto it = c["extents"].begin(); it != c["extents"].end(); ++it) e += fmt::format("{}{} {}", e.empty() ? "" : ", ", it.key(), it.value().dump());
    s += fmt::format("  extents after the race: {}\n", e);
  }
  if (c.contains("space")) {
    auto& sp = c["space"];
    s += fmt::format("  space: free blocks baseline {}, with files {} (files allocate {}), after delete {}, after remount {}\n",
                     sp.value("baseline_free", 0), sp.value("free_with_files", 0), sp["allocated"].dump(),
                     sp.value("free_after_delete", 0), sp.value("free_after_remount", 0));
  }
  if (c.contains("probes")) {  // issue 3
    auto& p = c["probes"];
    s += fmt::format("  probes: {}/{} attached", p.value("attached", 0), p.value("total", 0));
    if (p.contains("events")) s += fmt::format(", {} events, {} dropped{}", p.value("events", 0), p.value("dropped", 0),
                                               p.value("dropped", 0) ? " (ring buffer full: raise [probes] ringbuf_mib)" : "");
    if (p.value("bpf_misses", uint64_t(0)))
      s += fmt::format(", {} program runs skipped by the kernel (BPF recursion protection: their events are missing)",
                       p.value("bpf_misses", uint64_t(0)));
    if (p.contains("cpu") && p["cpu"].value("bpf_stats", false) && p["cpu"].value("process_ns", uint64_t(0)))
      s += fmt::format(", CPU {:.1f} % of fsrace's over the first {:.2g} s of the race (BPF {:.1f} ms in {} runs, reader {:.1f} ms)",
                       100 * p["cpu"].value("share", 0.0), p["cpu"].value("window_s", 0.0), p["cpu"].value("bpf_ns", uint64_t(0)) / 1e6,
                       p["cpu"].value("bpf_runs", uint64_t(0)), p["cpu"].value("reader_ns", uint64_t(0)) / 1e6);
    if (p.contains("analysis") && p["analysis"].value("stale_iomap_seen", 0))
      s += fmt::format(", stale iomaps seen {}", p["analysis"].value("stale_iomap_seen", 0));
    if (p.contains("error")) s += fmt::format(" (error: {})", p.value("error", ""));
    s += "\n";
    if (p.contains("toggle")) {
      auto& t = p["toggle"];
      s += fmt::format("  probe toggle (benchmark, every {} ms): attached {:.0f} ops/s, detached {:.0f} ops/s; per attached "
                       "stretch vs its detached neighbours, median {:.1f} % of the ops/s and {:.1f} % of the ops per "
                       "CPU-second ({} stretches){}\n",
                       t.value("period_ms", 0), t["attached"].value("ops_per_s", 0.0), t["detached"].value("ops_per_s", 0.0),
                       100 * t.value("median_ratio_ops", 0.0), 100 * t.value("median_ratio_ops_per_cpu", 0.0),
                       t.value("pair_ratios_ops", nlohmann::json::array()).size(),
                       t.contains("error") ? fmt::format(" (error: {})", t.value("error", "")) : "");
    }
  }
  for (const auto& n : c.value("notes", nlohmann::json::array())) s += fmt::format("  note: {}\n", n.get<std::string>());
  if (c.contains("timing")) {
    auto& t = c["timing"];
    s += fmt::format("  timing: setup {:.2f} s, race {:.2f} s, verify {:.2f} s, analysis {:.2f} s\n", t.value("setup_s", 0.0),
                     t.value("race_s", 0.0), t.value("verify_s", 0.0), t.value("analysis_s", 0.0));
  }
  return s;
}
}  // namespace

std::string render_summary(const nlohmann::json& doc_in) {
  nlohmann::json doc = doc_in;  // a copy: operator[] on a missing key of a malformed file inserts null, never UB
  std::string s;
  auto& run = doc["run"];
  s += fmt::format("fsrace run {}  campaign {}  kernel {}  mode {}\n", run.value("id", "?"), run.value("campaign", "?"),
                   run.value("kernel", "?"), run.value("mode", "?"));
  s += fmt::format("seed {}  duration {} s per case  started {}\n", run.value("seed", 0), run.value("duration_s", 0.0),
                   run.value("started", ""));
  if (run.contains("vm")) {  // VM mode: how the guest ran
    auto& v = run["vm"];
    std::string boots;
    for (const auto& b : v.value("boot_to_agent_s", nlohmann::json::array())) boots += fmt::format("{}{:.2f} s", boots.empty() ? "" : ", ", b.get<double>());
    const auto& k = v.value("kernel", nlohmann::json::object());
    s += fmt::format("vm: accel {}  {} vCPU(s), {} MiB, {} VM(s)  kernel {} ({})  QEMU start -> agent start: {}\n",
                     v.value("accel", "?"), v.value("cpus", 0), v.value("memory_mib", 0), v.value("jobs", 1),
                     k.value("image", "?"), k.value("boot", "?"), boots.empty() ? "agent never started" : boots);
  }
  const auto& by = doc.value("findings_by_class", nlohmann::json::object());
  uint64_t total = 0;
  std::string classes;
  for (auto it = by.begin(); it != by.end(); ++it) {
    total += it.value().get<uint64_t>();
    classes += fmt::format("{}{} {}", classes.empty() ? "" : ", ", it.key(), it.value().get<uint64_t>());
  }
  std::string status = doc.value("status", "complete");
  s += fmt::format("result: {}{}{}\n", total ? fmt::format("{} finding(s): {}", total, classes) : "no finding",
                   status == "complete" ? "" : fmt::format("  [{}]", status),
                   doc.value("suppressed", 0) ? fmt::format("  ({} more not itemised)", doc.value("suppressed", 0)) : "");
  // Known kernel mechanisms the analysis matched to itemised findings (still failures).
  std::map<std::string, uint64_t> expl;
  uint64_t itemised = 0;
  if (doc.contains("findings") && doc["findings"].is_array())
    for (const auto& f : doc["findings"]) {
      if (!f.is_object() || f.value("informational", false)) continue;
      ++itemised;
      if (f.contains("explained_by") && f["explained_by"].is_string()) ++expl[f["explained_by"].get<std::string>()];
    }
  if (!expl.empty()) {
    std::string e;
    for (const auto& [k, n] : expl) e += fmt::format("{}{} {}", e.empty() ? "" : ", ", k, n);
    s += fmt::format("explained (of {} itemised): {}; see each finding's detail\n", itemised, e);
  }
  if (doc.contains("informational_by_class") && !doc["informational_by_class"].empty()) {
    std::string inf;
    for (auto it = doc["informational_by_class"].begin(); it != doc["informational_by_class"].end(); ++it)
      inf += fmt::format("{}{} {}", inf.empty() ? "" : ", ", it.key(), it.value().get<uint64_t>());
    s += fmt::format("informational (not failures): {}\n", inf);
  }
  s += "\n";
  for (const auto& c : doc.value("cases", nlohmann::json::array())) s += case_block(c) + "\n";
  size_t shown = 0;
  for (auto f : doc.value("findings", nlohmann::json::array())) {
    if (shown++ == 20) {
      s += "  ... (all findings in findings.json)\n";
      break;
    }
    std::string where = f.contains("block") ? fmt::format(" {} {}", f.value("file", ""), finding_blocks_text(f))
                                            : (f.contains("file") ? " " + f.value("file", "") : "");
    s += fmt::format("finding: {} [{} {}]{}: {}\n", f.value("class", ""), f.value("case", ""), f.value("phase", ""), where,
                     f.value("detail", f.value("got", "")));
    if (f.contains("got") && f.contains("block")) s += fmt::format("    got {}\n", f.value("got", ""));
    if (f.contains("kernel_events")) {
      size_t k = 0;
      for (const auto& l : f["kernel_events"]) {
        if (k++ == 6) {
          s += "    kernel: ... (all in findings.json)\n";
          break;
        }
        s += fmt::format("    kernel: {}\n", l.get<std::string>());
      }
    }
    if (f.contains("expected")) {
      std::string e;
      for (const auto& x : f["expected"]) e += (e.empty() ? "" : " | ") + x.get<std::string>();
      s += fmt::format("    allowed {}\n", e);
    }
  }
  return s;
}

int report_dir(const std::string& dir, bool json) {
  std::string path = dir + "/findings.json";
  if (!path_exists(path))
    throw Fatal(fmt::format("{} is not an fsrace run directory (no findings.json): pass results/<campaign>/<run-id>", dir));
  auto doc = nlohmann::json::parse(read_file(path), nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || doc.value("schema", "") != kFindingsSchema)
    throw Fatal(fmt::format("{} is not a readable fsrace findings file (schema {})", path, kFindingsSchema));
  int code = 2;
  try {
    std::string text = json ? doc.dump(2) + "\n" : render_summary(doc);
    code = exit_code_of(doc);
    std::cout << text;
  } catch (const nlohmann::json::exception& e) {
    throw Fatal(fmt::format("{} is malformed ({}): not written by this fsrace, or damaged; rerun or re-analyse the run", path, e.what()));
  }
  std::string status = doc.value("status", "");
  if (code == 2) std::cerr << fmt::format("fsrace: the run did not complete (status: {}): its findings are not a verdict\n", status);
  else if (code == kExitInterrupted) std::cerr << "fsrace: the run was interrupted: its findings cover only the cases it finished\n";
  return code;
}

}  // namespace fsrace
