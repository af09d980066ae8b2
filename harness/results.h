// The results writer: the one place that builds findings.json documents and writes a directory's
// findings.json / summary.txt / kmsg.log, and that creates run directories. Host mode, the VM merge
// and `fsrace analyze` all write through it.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/findings.h"

namespace fsrace {

inline constexpr const char* kFindingsSchema = "fsrace-findings/1";

// A findings.json document: run record, status, case records and the findings with their counts.
nlohmann::json findings_doc(const nlohmann::json& run, const std::vector<nlohmann::json>& cases, const FindingSet& fs,
                            const std::string& status);

// Builds a run's document out of case documents (findings_doc of one case each) and findings that
// belong to no case document (a VM console's kernel-crash, a hang).
class RunDoc {
 public:
  explicit RunDoc(nlohmann::json run) : run_(std::move(run)) {}
  void add_case(const nlohmann::json& case_doc);     // its cases, findings and counts
  void add_case_record(const nlohmann::json& info);  // a case that left no document (not finished)
  void add_finding(const Finding& f);
  nlohmann::json& run() { return run_; }
  uint64_t total() const;
  const std::map<std::string, uint64_t>& by_class() const { return by_class_; }
  nlohmann::json doc(const std::string& status) const;

 private:
  nlohmann::json run_;
  std::vector<nlohmann::json> cases_;
  nlohmann::json findings_ = nlohmann::json::array();
  std::map<std::string, uint64_t> by_class_, informational_;
  uint64_t suppressed_ = 0;
};

// findings.json (the document), summary.txt (rendered from it) and, when given, kmsg.log — each
// written atomically into `dir`.
void write_results(const std::string& dir, const nlohmann::json& doc, const std::string* kmsg_text);

// A new run directory: `explicit_dir`, or <results_root>/<campaign>/<timestamp>-<nonce>. Refuses a
// directory that already holds a run. Writes nothing but the directory; returns it and its id.
struct RunDir {
  std::string dir, id;
};
RunDir create_run_dir(const std::string& results_root, const std::string& campaign, const std::string& explicit_dir,
                      uint64_t nonce);

// The exit code a run document stands for: 0 no finding, 1 findings, 2 an error or a run that never
// finished, 130 interrupted.
int exit_code_of(const nlohmann::json& doc);

}  // namespace fsrace
