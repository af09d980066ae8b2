#include "harness/analyze.h"

#include <malloc.h>

#include <algorithm>
#include <fmt/core.h>
#include <fmt/format.h>
#include <set>

#include "core/filesystems.h"
#include "core/util.h"
#include "harness/dax_check.h"
#include "harness/dax_pin.h"
#include "harness/kernel_events.h"
#include "probes/fsrace_events.h"
#include "harness/oracle.h"
#include "harness/overlap.h"
#include "harness/space.h"
#include "probes/events.h"

namespace fsrace {
namespace {

using json = nlohmann::json;

uint64_t count_of(const json& by_kind, const char* k) {
  return by_kind.is_object() && by_kind.contains(k) ? by_kind[k].get<uint64_t>() : 0;
}

json load_race_json(const std::string& dir) {
  std::string p = dir + "/race.json";
  if (!path_exists(p)) {
    if (path_exists(dir + "/ops.bin"))
      throw Fatal(fmt::format("{} has no race.json (written by an fsrace older than 'fsrace analyze'): rerun the case to analyse it", dir));
    throw Fatal(fmt::format("{} is not a case directory (no race.json): pass results/<campaign>/<run-id> or one of its case directories", dir));
  }
  auto j = json::parse(read_file(p), nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("schema", "") != kRaceSchema || !j.contains("case") || !j["case"].is_object() ||
      !j.contains("inputs") || !j["inputs"].is_object())
    throw Fatal(fmt::format("{} is not a readable race record (schema {}): the case directory is damaged; rerun the case", p, kRaceSchema));
  return j;
}

// The probes' side of a case: kernel_events on the findings, the event-only findings, the summary.
void analyze_probe_events(const std::string& dir, const json& inputs, json& probes, FindingSet& findings, const std::string& fs,
                          const std::string& scenario, const std::string& case_name, std::vector<std::string>& notes,
                          const OpLogData* ops) {
  if (!probes.contains("events")) return;  // the session never stopped cleanly: nothing was written
  std::string path = dir + "/events.bin";
  if (!path_exists(path)) {
    probes["error"] = "events.bin is missing: findings are not explained by kernel events";
    notes.push_back(fmt::format("{}: {}", dir, probes["error"].get<std::string>()));
    return;
  }
  try {
    probes::EventsData ev = probes::load_events(path);
    attach_kernel_events(findings.kept, ev);
    size_t refills = ops ? explain_dio_refills(findings.kept, ev, *ops) : 0;
    EventContext ctx{fs, scenario, case_name, inputs.value("race_end_ns", uint64_t(0))};
    EventAnalysis an = analyze_events(ev, ctx);
    // A failed DIO invalidation is the event form of the kernel's "Page cache invalidation failure on
    // direct I/O" notice: like it, a failure only together with data the oracle rejected (see
    // kNoticeRules in kmsg_scan.cpp); otherwise counted and listed as informational.
    bool data = false;
    for (const auto& f : findings.kept) data |= is_data_finding_class(f.cls);
    for (const auto& [c, n] : findings.suppressed_by_class) data |= n > 0 && is_data_finding_class(c);
    for (auto& f : an.findings) {
      if (f.cls == "dio-invalidate-failed" && !data) {
        f.informational = true;
        f.detail += " (no data went wrong in this case: informational)";
      }
      findings.add(std::move(f));
    }
    probes["analysis"] = an.summary;
    if (refills) probes["analysis"]["dio_refill_explained"] = refills;
    const FilesystemInfo* fsi = find_filesystem(fs);
    if (ops && fsi && fsi->backing == FsBacking::kPmem) {
      bool attached = probes.contains("modes") && probes["modes"].is_object() && probes["modes"].contains("fs_dax:dax_writeback_one");
      DaxFlushStats ds;
      for (auto& f : check_dax_flushes(*ops, ev, attached, fs, scenario, case_name, &ds)) findings.add(std::move(f));
      json& dj = probes["analysis"]["dax_flush"];
      dj = {{"stores_judged", ds.stores_judged}, {"pages_judged", ds.pages_judged}, {"flush_events", ds.flush_events},
            {"pages_unflushed", ds.pages_unflushed}};
      if (!ds.skipped.empty()) dj["skipped"] = ds.skipped;
      uint64_t pte = 0, pmd = 0, pmd_fallback = 0;
      for (const auto& e : ev.events)
        if (e.kind == FSR_EV_DAX_FAULT) {
          (e.a[1] ? pmd : pte) += 1;
          pmd_fallback += e.a[1] && (e.ret & 0x800);  // VM_FAULT_FALLBACK
        }
      probes["analysis"]["dax_faults"] = {{"pte", pte}, {"pmd", pmd}, {"pmd_fallback", pmd_fallback}};
    }
  } catch (const Fatal&) {
    throw;
  } catch (const std::exception& e) {
    // Damaged (not missing): the event-only checks (DAX flushes, reservations, DIO invalidation) cannot
    // be judged, so a verdict without them would be a silent "clean". One line, exit 2.
    throw Fatal(fmt::format("{}/events.bin is damaged ({}): the case cannot be judged from it; restore the file, or delete it to "
                            "judge the case without kernel events", dir, e.what()));
  }
}

}  // namespace

std::string revalidation_note(const json& info) {
  // Scenarios whose stock XFS cases revalidate with the delays armed (measured: Debian 6.1 guest, all-scenarios
  // with widening = "auto", 3 s: writeback-vs-write 5; the other XFS scenarios 0 or 1, so silence there
  // says nothing).
  static const std::vector<std::string> revalidating = {"writeback-vs-write"};
  if (info.value("fs", "") != "xfs" || !info.contains("probes") || !info.contains("kernel_delays")) return "";
  if (std::find(revalidating.begin(), revalidating.end(), info.value("scenario", "")) == revalidating.end()) return "";
  const json& pr = info["probes"];
  if (!pr.contains("analysis") || !pr["analysis"].is_object() || pr["analysis"].value("stale_iomap_seen", uint64_t(0)) > 0) return "";
  std::vector<std::string> probes;
  for (const char* p : {"xfs:xfs_iomap_invalid", "xfs:xfs_wb_data_iomap_invalid", "iomap:iomap_iter", "xfs_iomap_valid()"})
    if (pr.contains("modes") && pr["modes"].is_object() && pr["modes"].contains(p)) probes.push_back(p);
  if (probes.empty()) return "";
  const json& kd = info["kernel_delays"];
  uint64_t delayed = 0;
  std::vector<std::string> points;
  for (const char* p : {"xfs-write-mapped", "xfs-wb-mapped"})
    if (kd.contains("points") && kd["points"].contains(p) && kd["points"][p].value("delayed", uint64_t(0)) > 0) {
      delayed += kd["points"][p].value("delayed", uint64_t(0));
      points.push_back(p);
    }
  if (points.empty()) return "";
  return fmt::format("no stale-iomap revalidation seen on XFS although {} delayed {} time(s) with {} attached: a kernel whose "
                     "xfs_iomap_valid / writeback revalidation is broken looks like this (stock XFS usually shows at least one "
                     "per case; a note, not a finding)",
                     fmt::join(points, " and "), delayed, fmt::join(probes, ", "));
}

bool dio_mixed(const json& by_kind) {
  return count_of(by_kind, "dio-write") > 0 &&
         (count_of(by_kind, "write") + count_of(by_kind, "mmap-write") + count_of(by_kind, "mmap-read")) > 0;
}

DataCorroboration corroborate(FindingSet& findings, const OpLogData& data, const DioCollisionShown& dio,
                              const std::vector<InjectedBlock>& injected) {
  // Data findings with an O_DIRECT write among their ops, in a case where the kernel showed a DIO
  // page-cache invalidation failure, are what that failure announces: marked, and they corroborate only
  // the DIO notices.
  DataCorroboration corr;
  std::set<std::string> other_classes;
  for (auto& f : findings.kept) {
    bool injected_block = false;
    for (const auto& ib : injected) injected_block |= f.file == ib.file && f.block && *f.block <= ib.block && ib.block < *f.block + f.blocks;
    if (!is_data_finding_class(f.cls) || injected_block) continue;
    bool dio_op = std::any_of(f.ops.begin(), f.ops.end(), [](const OpRecord& o) { return OpKind(o.kind) == OpKind::kDioWrite; });
    if (dio.any() && !dio_op)
      if (const OpRecord* w = colliding_dio_write(data, f)) {
        f.ops.push_back(*w);  // the report shows it with the finding's other ops
        dio_op = true;
      }
    if (dio.any() && dio_op) {
      f.explained_by = "dio-collision";
      f.detail += "; " + dio.explanation();
      corr.dio = true;
    } else {
      corr.other = true;
      other_classes.insert(f.cls);
    }
  }
  // Findings beyond the kept ones are unexamined: they count as "other" unless every kept one of their
  // class was explained by the collision.
  for (const auto& [cls, n] : findings.suppressed_by_class)
    if (n > 0 && is_data_finding_class(cls)) {
      bool any_kept = std::any_of(findings.kept.begin(), findings.kept.end(), [&](const Finding& f) { return f.cls == cls; });
      corr.other |= other_classes.count(cls) || !any_kept;
    }
  return corr;
}

json read_race_json(const std::string& dir) { return load_race_json(dir); }

CaseAnalysis analyze_case(const std::string& dir) {
  uint64_t t0 = now_ns();
  json race = load_race_json(dir);
  CaseAnalysis out;
  out.run = race.value("run", json::object());
  json& info = out.info = race["case"];
  const json& in = race["inputs"];
  std::string fs = info.value("fs", ""), scenario = info.value("scenario", ""), case_name = info.value("case", "");
  if (!info.contains("notes") || !info["notes"].is_array()) info["notes"] = json::array();
  bool interrupted = in.value("interrupted", false);
  const json by_kind = info.contains("ops") ? info["ops"].value("by_kind", json::object()) : json::object();
  FindingSet& findings = out.findings;

  OracleStats ost;
  OpLogData data;
  if (in.value("op_logging", true)) {
    if (!path_exists(dir + "/ops.bin")) throw Fatal(fmt::format("{}/ops.bin is missing: the case cannot be judged without its op log", dir));
    data = load_oplog(dir + "/ops.bin");
    OracleContext ctx{fs, scenario, case_name};
    ctx.short_reads_legal = in.value("tolerated_errno", 0) != 0;
    findings = run_oracle(data, ctx, &ost);
    malloc_trim(0);  // the oracle's block model is gone: give its pages back before the events load (guest agents have ~1 GiB)
    if (ost.power_cut_ns) {
      bool vm_cut = info.contains("kernel_widening") && info["kernel_widening"].contains("vm-power-cut");
      auto& w = info["kernel_widening"][vm_cut ? "vm-power-cut" : "dm-flakey"];
      w["non_durable_ops"] = ost.non_durable_ops;
      w["reads_after_cut"] = ost.reads_after_cut;
      w["unjudged_reads_after_cut"] = ost.unjudged_after_cut;
    }
    OverlapStats ov = overlap_stats(data);
    info["ops"]["overlap"] = {{"attempts", ov.attempts}, {"overlapped", ov.overlapped}, {"share", ov.share()}};
    if (!interrupted && in.contains("space") && in["space"].is_object())
      for (auto& f : check_space(data, space_from_json(in["space"]), scenario, case_name)) findings.add(std::move(f));
  }

  out.kmsg_text = path_exists(dir + "/kmsg.log") ? read_file(dir + "/kmsg.log") : "";
  std::vector<KmsgLine> klines = parse_log_text(out.kmsg_text);
  KmsgScanOptions kopt;
  for (const auto& d : in.value("test_devices", json::array())) kopt.devices.insert(d.get<std::string>());
  kopt.fs = fs;
  kopt.scenario = scenario;
  kopt.case_name = case_name;
  KmsgScanResult ks = scan_kmsg(klines, kopt);

  std::vector<FailedSyscall> failed;
  for (const auto& e : in.value("fatal_errors", json::array())) failed.push_back({e.value("kind", ""), e.value("result", int64_t(0))});
  bool mixed = dio_mixed(by_kind);
  DioCollisionShown dio_shown = dio_collision_shown(ks, failed, mixed);
  std::vector<InjectedBlock> injected;
  for (const auto& i : info.value("injected", json::array())) injected.push_back({i.value("file", ""), i.value("block", uint64_t(0))});
  DataCorroboration corr = corroborate(findings, data, dio_shown, injected);

  // dax-pin-vs-truncate (harness/dax_pin.h): a victim's stamp in a test file, the WARN of a DAX entry deleted
  // while its page was pinned.
  uint64_t nonce = 0;
  if (data.meta.contains("files") && data.meta["files"].is_array() && !data.meta["files"].empty())
    nonce = data.meta["files"][0].value("file_id", uint64_t(0)) >> 32;
  for (auto& f : findings.kept) explain_victim_stamp(f, nonce);
  for (auto& f : ks.findings) {
    explain_dax_pin_warning(f);
    findings.add(std::move(f));
  }
  for (const auto& fr : in.value("fsck", json::array())) {
    if (fr.value("clean", true)) continue;
    Finding f = make_finding("fsck-error", fs, scenario, case_name, "after-power-cut");
    f.detail = fmt::format("'{}' exited {} after the power cut and journal replay: {}", fr.value("command", ""), fr.value("exit", -1),
                           fr.value("output", ""));
    findings.add(std::move(f));
  }
  for (auto& f : escalate_notices(ks.notices, corr, kopt)) findings.add(std::move(f));
  json notices = json::array();
  for (const auto& n : ks.notices)
    notices.push_back({{"rule", n.rule}, {"lines", n.lines}, {"escalated", is_dio_notice(n.rule) ? corr.dio : corr.other}});
  uint64_t expected_eio = 0;
  for (const auto& e : in.value("fatal_errors", json::array())) {
    if (eio_expected_after_dio_collision(e.value("kind", ""), e.value("result", int64_t(0)), ks, mixed)) {
      ++expected_eio;
      continue;
    }
    Finding f = make_finding("workload-error", fs, scenario, case_name, "race");
    f.detail = e.value("message", "");
    findings.add(std::move(f));
  }
  if (expected_eio)
    info["notes"].push_back(fmt::format("{} EIO result(s) from fsync / sync_file_range / O_DIRECT after the kernel's "
                                        "'Page cache invalidation failure on direct I/O' (it sets the mapping's "
                                        "writeback error on purpose): not findings by themselves",
                                        expected_eio));
  if (info.contains("kernel_widening") && info["kernel_widening"].contains("dm-flakey") &&
      info["kernel_widening"]["dm-flakey"].value("ran", false)) {
    // Did the mount after the cut replay a journal / log? (It must have had something to replay.)
    std::string recovery, dev = in.value("device_name", "");
    const FilesystemInfo* fi = find_filesystem(fs);
    for (const auto& l : klines) {
      bool marker = false;
      for (const auto& m : fi ? fi->recovery_markers : std::vector<std::string>{}) marker |= l.text.find(m) != std::string::npos;
      if (marker && l.text.find(dev) != std::string::npos) recovery += (recovery.empty() ? "" : " | ") + l.text;
    }
    info["kernel_widening"]["dm-flakey"]["journal_recovery"] = recovery;
  }
  if (info.contains("probes")) analyze_probe_events(dir, in, info["probes"], findings, fs, scenario, case_name, out.notes,
                                                     in.value("op_logging", true) ? &data : nullptr);
  if (std::string n = revalidation_note(info); !n.empty()) {
    info["notes"].push_back(n);
    out.notes.push_back(fmt::format("{}: {}", case_name, n));
  }

  const json& km = in.value("kmsg", json::object());
  info["oracle"] = {{"reads_checked", ost.reads_checked}, {"blocks_checked", ost.blocks_checked}, {"torn_legal", ost.torn_legal},
                    {"modifying_ops", ost.modifying_ops}, {"shifts", ost.shifts}, {"shift_conflicts", ost.shift_conflicts}, {"shift_races", ost.shift_races},
                    {"shift_races_by_kind", ost.shift_races_by_kind}};
  info["kernel_log"] = {{"captured", km.value("captured", false)}, {"error", km.value("error", "")}, {"lines", klines.size()},
                        {"lost", km.value("lost", uint64_t(0))}, {"dio_invalidate_failures", ks.dio_invalidate_failures},
                        {"notices", notices}};
  info["timing"]["analysis_s"] = double(now_ns() - t0) / 1e9;
  info["findings"] = findings.total();
  return out;
}

}  // namespace fsrace

// ---- fsrace analyze ---------------------------------------------------------------------------------
#include <dirent.h>

#include <algorithm>

#include "harness/results.h"
#include "harness/vm_report.h"

namespace fsrace {

AnalyzeResult analyze_path(const std::string& dir_in, const std::string& out_in, bool in_place) {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (!path_exists(dir)) throw Fatal(fmt::format("{} does not exist: pass a run directory (results/<campaign>/<run-id>) or a case directory", dir));
  AnalyzeResult r;
  r.out = in_place ? dir : out_in.empty() ? dir + "/reanalysis" : out_in;
  auto judge = [&](const std::string& case_dir, const std::string& to) {
    CaseAnalysis ca = analyze_case(case_dir);
    for (auto& n : ca.notes) r.notes.push_back(n);
    nlohmann::json doc = findings_doc(ca.run, {ca.info}, ca.findings, ca.info.value("status", "complete"));
    make_dirs(to);
    write_results(to, doc, nullptr);
    return std::make_pair(doc, ca.kmsg_text);
  };
  if (path_exists(dir + "/race.json")) {
    r.doc = judge(dir, r.out).first;
    r.exit_code = exit_code_of(r.doc);
    return r;
  }
  std::string stored = dir + "/findings.json";
  if (!path_exists(stored) && !path_exists(dir + "/vm.json"))
    throw Fatal(fmt::format("{} is not an fsrace run or case directory (no findings.json, vm.json or race.json): pass "
                            "results/<campaign>/<run-id> or one of its case directories", dir));
  auto sdoc = path_exists(stored) ? nlohmann::json::parse(read_file(stored), nullptr, false) : nlohmann::json();
  if (path_exists(stored) && (sdoc.is_discarded() || !sdoc.is_object() || sdoc.value("schema", "") != kFindingsSchema))
    throw Fatal(fmt::format("{} is not a readable fsrace findings file (schema {})", stored, kFindingsSchema));
  // The cases: in the order the run listed them, then any other case directory it left (a killed run).
  std::vector<std::string> names;
  if (sdoc.is_object())
    for (const auto& c : sdoc.value("cases", nlohmann::json::array()))
      if (c.is_object() && path_exists(dir + "/" + c.value("case", "") + "/race.json")) names.push_back(c.value("case", ""));
  std::vector<std::string> rest;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n[0] != '.' && path_exists(dir + "/" + n + "/race.json") && std::find(names.begin(), names.end(), n) == names.end())
        rest.push_back(n);
    }
    closedir(d);
  }
  std::sort(rest.begin(), rest.end());
  names.insert(names.end(), rest.begin(), rest.end());
  std::map<std::string, nlohmann::json> docs;
  std::string kmsg_all;
  for (const auto& n : names) {
    auto [doc, kmsg] = judge(dir + "/" + n, r.out + "/" + n);
    docs[n] = doc;
    kmsg_all += fmt::format("==== case {} ====\n", n) + kmsg;
  }
  make_dirs(r.out);
  if (path_exists(dir + "/vm.json")) {
    VmReportResult vr = vm_merge(dir, docs, r.out);
    r.doc = nlohmann::json::parse(read_file(r.out + "/findings.json"));
    r.exit_code = vr.exit_code;
    return r;
  }
  if (names.empty()) throw Fatal(fmt::format("{} holds no case directory with a race.json: nothing to analyse", dir));
  RunDoc all(sdoc.value("run", nlohmann::json::object()));
  for (const auto& n : names) all.add_case(docs[n]);
  r.doc = all.doc(sdoc.value("status", "complete"));
  write_results(r.out, r.doc, &kmsg_all);
  r.exit_code = exit_code_of(r.doc);
  return r;
}

}  // namespace fsrace
