// Trace report writers: report.html (one self-contained page), trace.json (Chrome trace-event format,
// for the Perfetto UI / chrome://tracing) and junit.xml (the shape of fstests' `-R xunit`), all from a
// ReportModel; and `fsrace report` itself.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "harness/report_model.h"

namespace fsrace {

std::string render_html(const ReportModel& m);
// Full detail in each itemised finding's window plus a sampled overview of every case, bounded by
// `max_events` trace events in total.
nlohmann::json chrome_trace(const ReportModel& m, size_t max_events = 200000);
std::string render_junit(const ReportModel& m);

struct ReportFormats {
  bool html = false, perfetto = false, junit = false, json = false;
  bool any() const { return html || perfetto || junit || json; }
};

// Writes the selected files into `out` (atomically; findings.json only for a merge of several runs,
// a single run's own stays the source of truth). Returns the paths written.
std::vector<std::string> write_reports(const ReportModel& m, const std::string& out, const ReportFormats& f);

// After a run: report.html, trace.json and junit.xml into the run directory. Never throws (the run's
// findings.json is written already and stays the verdict): returns the line to print, the report's
// path or why it could not be written.
std::string write_run_reports(const std::string& run_dir);

}  // namespace fsrace
