// Report writers: summary.txt and findings.json of a case and of a run, and `fsrace report DIR`.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace fsrace {

// Renders the human summary from a findings.json document (run level or case level).
std::string render_summary(const nlohmann::json& doc);

// `fsrace report DIR`: prints the summary of a run (or case) directory; returns the exit code the run
// had (0 no finding, 1 findings). Throws Fatal for a directory that is not a run.
int report_dir(const std::string& dir, bool json);

}  // namespace fsrace
