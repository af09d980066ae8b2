#include <fmt/core.h>

#include "core/util.h"
#include "harness/report_formats.h"

namespace fsrace {

std::vector<std::string> write_reports(const ReportModel& m, const std::string& out, const ReportFormats& f) {
  make_dirs(out);
  std::vector<std::string> written;
  auto put = [&](const std::string& name, const std::string& text) {
    write_file_atomic(out + "/" + name, text);
    written.push_back(out + "/" + name);
  };
  if (f.html) put("report.html", render_html(m));
  if (f.perfetto) put("trace.json", chrome_trace(m).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  if (f.junit) put("junit.xml", render_junit(m));
  if (f.json) {
    // several runs: the merged document; one run: a copy of its own (never rewritten in place)
    if (m.runs.size() > 1) put("findings.json", m.doc.dump(2) + "\n");
    else if (out != m.runs[0].dir) put("findings.json", m.runs[0].doc.dump(2) + "\n");
  }
  return written;
}

std::string write_run_reports(const std::string& run_dir) {
  try {
    ReportModel m = load_report({run_dir});
    write_reports(m, run_dir, {true, true, true, false});
    return fmt::format("report: {}/report.html (timelines), trace.json (ui.perfetto.dev), junit.xml", run_dir);
  } catch (const std::exception& e) {
    return fmt::format("report: not written ({}); the findings above are complete: 'fsrace report {} --html' retries", e.what(), run_dir);
  }
}

}  // namespace fsrace
