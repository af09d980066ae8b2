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

}  // namespace fsrace
