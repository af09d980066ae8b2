// Trace reports, the model: one or more run directories (a run, or the shards of one campaign) read into
// one merged findings document, the repro statistics of every scenario x filesystem, and for each
// itemised finding the window of the race around it (ops per workload thread, invalidate_lock holds and
// contention, page-cache / iomap / DIO / ext4 events on the affected range) cut from the case's ops.bin
// and events.bin. The writers (report_html, report_trace, report_junit) only format this model.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/oplog.h"
#include "probes/events.h"

namespace fsrace {

struct ReportLimits {
  size_t itemised = 50;        // findings shown in full (the rest are counted)
  size_t ops_per_window = 500;  // ops drawn around one finding (the deciding ops always)
  size_t events_per_window = 400;
  uint64_t slack_ns = 2000000;        // window margin around the deciding ops
  uint64_t max_lookback_ns = 250000000;  // a window reaches at most this far back from the read
};

// A case directory's ops.bin / events.bin as loaded for the windows (kept for the trace writer).
struct CaseData {
  std::optional<OpLogData> ops;
  std::optional<probes::EventsData> events;  // in time order (decode_events sorts)
  std::string note;                          // what could not be loaded
  std::map<uint32_t, std::string> thread_roles;  // op-log thread -> its most frequent op kinds
};

struct ReportRun {
  std::string dir;
  nlohmann::json doc;  // its findings.json
};

struct ReportModel {
  std::vector<ReportRun> runs;
  nlohmann::json doc;    // the merged findings document (one run: its own); every finding and case has "run_index"
  nlohmann::json stats;  // repro_stats(doc)
  std::vector<nlohmann::json> windows;  // one per itemised finding (window_of), in doc["findings"] order
  size_t left_out = 0;   // findings in the doc not itemised
  nlohmann::json config; // kernel config highlights known for the run(s) (run.kernel_config)
  std::map<std::string, std::shared_ptr<const CaseData>> loaded;  // case dir -> its files (cases with itemised findings)
  // Case files that could not be decoded while writing (ops.bin / events.bin damaged): what was left out.
  // Mutable: the writers take the model const and add what they met (the trace writer reads ops.bin of
  // cases without itemised findings).
  mutable std::vector<std::string> damaged;
};

// Reads the run directories (each must hold a findings.json of this fsrace; Fatal otherwise, naming it)
// and merges them. Shards of one campaign merge into the statistics of the whole matrix; the same case
// name in two runs counts as two runs of it.
// windows = false: no case files are read (junit.xml and findings.json need only the documents).
ReportModel load_report(const std::vector<std::string>& dirs, const ReportLimits& lim = {}, bool windows = true);

// The merged findings document of several run documents (exposed for tests).
nlohmann::json merge_docs(const std::vector<nlohmann::json>& docs);

// Wilson score interval (95 %) for k successes in n trials.
struct Interval {
  double lo = 0, hi = 0;
};
Interval wilson95(uint64_t k, uint64_t n);

// Per scenario x fs: runs, runs with a finding, rate + Wilson interval, median time to the first
// finding (s from the race's start), classes seen.
nlohmann::json repro_stats(const nlohmann::json& doc, const std::vector<ReportRun>& runs);

// The options a report names from a kernel .config text: LOCKDEP / PROVE_LOCKING, KASAN, KCSAN, KFENCE,
// XFS_DEBUG, XFS_ONLINE_SCRUB, EXT4_DEBUG, DEBUG_INFO_BTF, KPROBES, FUNCTION_ERROR_INJECTION, FS_DAX,
// BPF_KPROBE_OVERRIDE, PREEMPT: "y" / "m" / "n" (not set). An empty object for an empty text.
nlohmann::json kernel_config_highlights(const std::string& config_text);

// The replay command of finding `index` of a run directory.
std::string replay_command(const std::string& run_dir, size_t finding_index);

}  // namespace fsrace
