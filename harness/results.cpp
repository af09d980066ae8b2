#include "harness/results.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/core.h>

#include "core/util.h"
#include "harness/report.h"

namespace fsrace {

nlohmann::json findings_doc(const nlohmann::json& run, const std::vector<nlohmann::json>& cases, const FindingSet& fs,
                            const std::string& status) {
  nlohmann::json doc;
  doc["schema"] = kFindingsSchema;
  doc["run"] = run;
  doc["status"] = status;
  doc["cases"] = cases;
  doc["findings_by_class"] = nlohmann::json::object();
  for (const auto& [c, n] : fs.total_by_class) doc["findings_by_class"][c] = n;
  doc["informational_by_class"] = nlohmann::json::object();
  for (const auto& [c, n] : fs.informational_by_class) doc["informational_by_class"][c] = n;
  uint64_t sup = 0;
  for (const auto& [c, n] : fs.suppressed_by_class) sup += n;
  doc["suppressed"] = sup;
  doc["findings"] = nlohmann::json::array();
  for (const auto& f : fs.kept) doc["findings"].push_back(finding_to_json(f));
  return doc;
}

namespace {
void add_counts(std::map<std::string, uint64_t>& to, const nlohmann::json& from) {
  if (!from.is_object()) return;
  for (auto it = from.begin(); it != from.end(); ++it)
    if (it.value().is_number_unsigned() || it.value().is_number_integer()) to[it.key()] += it.value().get<uint64_t>();
}
}  // namespace

void RunDoc::add_case(const nlohmann::json& d) {
  for (const auto& c : d.value("cases", nlohmann::json::array())) cases_.push_back(c);
  for (const auto& f : d.value("findings", nlohmann::json::array())) findings_.push_back(f);
  add_counts(by_class_, d.value("findings_by_class", nlohmann::json::object()));
  add_counts(informational_, d.value("informational_by_class", nlohmann::json::object()));
  const auto& s = d.value("suppressed", nlohmann::json(0));
  if (s.is_number_unsigned()) suppressed_ += s.get<uint64_t>();
}

void RunDoc::add_case_record(const nlohmann::json& info) { cases_.push_back(info); }

void RunDoc::add_finding(const Finding& f) {
  if (f.informational) ++informational_[f.cls];
  else ++by_class_[f.cls];
  findings_.push_back(finding_to_json(f));
}

uint64_t RunDoc::total() const {
  uint64_t n = 0;
  for (const auto& [c, k] : by_class_) n += k;
  return n;
}

nlohmann::json RunDoc::doc(const std::string& status) const {
  nlohmann::json doc;
  doc["schema"] = kFindingsSchema;
  doc["run"] = run_;
  doc["status"] = status;
  doc["cases"] = cases_;
  doc["findings_by_class"] = by_class_;
  doc["informational_by_class"] = informational_;
  doc["suppressed"] = suppressed_;
  doc["findings"] = findings_;
  return doc;
}

void write_results(const std::string& dir, const nlohmann::json& doc, const std::string* kmsg_text) {
  write_file_atomic(dir + "/findings.json", doc.dump(2) + "\n");
  write_file_atomic(dir + "/summary.txt", render_summary(doc));
  if (kmsg_text) write_file_atomic(dir + "/kmsg.log", *kmsg_text);
}

RunDir create_run_dir(const std::string& results_root, const std::string& campaign, const std::string& explicit_dir,
                      uint64_t nonce) {
  RunDir r;
  r.id = fmt::format("{}-{:04x}", timestamp_id(), nonce & 0xffff);
  r.dir = explicit_dir.empty() ? fmt::format("{}/{}/{}", results_root, campaign, r.id) : explicit_dir;
  make_dirs(r.dir);
  // The directory is this process's for its lifetime (and the VM runner's it execs: no O_CLOEXEC), so two
  // runs can never write into one directory. Filesystems without flock (9p in a guest) are not refused.
  int fd = open(r.dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) throw Fatal(fmt::format("cannot open run directory {}: {}", r.dir, strerror(errno)));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    close(fd);
    throw Fatal(fmt::format("another fsrace run is writing {}: give this run another directory (--run-dir)", r.dir));
  }
  if (path_exists(r.dir + "/findings.json") || path_exists(r.dir + "/vm.json")) {
    close(fd);
    throw Fatal(fmt::format("{} already holds a run: pick another directory (earlier runs are never overwritten)", r.dir));
  }
  return r;  // fd stays open: the lock lasts until the process (or the runner it execs) ends
}

int exit_code_of(const nlohmann::json& doc) {
  std::string status = doc.value("status", "");
  if (status == "interrupted") return kExitInterrupted;
  if (status != "complete") return 2;  // "error: ...", or still "running" (the run was killed)
  uint64_t total = 0;
  const auto& by = doc.value("findings_by_class", nlohmann::json::object());
  for (auto it = by.begin(); it != by.end(); ++it)
    if (it.value().is_number_unsigned()) total += it.value().get<uint64_t>();
  return total ? 1 : 0;
}

}  // namespace fsrace
