// junit.xml in the shape fstests' `-R xunit` writes (Jenkins, GitLab, kdevops read it): <testsuites>
// with one <testsuite> per campaign (properties: kernel, mode, seed, run), one <testcase> per scenario x
// fs x repetition (properties: fs, mkfs / mount options, scenario, seed), findings as <failure>, a case
// that did not finish as <error>, the case's kernel log in <system-err>. Schema: tests/data/junit.xsd.
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <map>
#include <toml++/toml.h>

#include "core/findings.h"
#include "core/util.h"
#include "harness/report_formats.h"

namespace fsrace {

using nlohmann::json;

namespace {

std::string xesc(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = s[i];
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default:
        if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') o += fmt::format("\\x{:02x}", c);  // not allowed in XML 1.0
        else o += char(c);
    }
  }
  return o;
}

// UTF-8 cleaned (kernel logs may hold anything): invalid bytes become '?'.
std::string utf8_clean(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = n && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 2;
    if (!ok) {
      o += '?';
      ++i;
      continue;
    }
    o.append(s, i, n);
    i += n;
  }
  return o;
}

std::string attr(const std::string& s) { return xesc(utf8_clean(s)); }

std::string finding_line(const json& f) {
  std::string where = f.value("file", "");
  if (auto b = finding_blocks_text(f); !b.empty()) where += " " + b;
  return fmt::format("{} [{}]{}: {}", f.value("class", ""), f.value("phase", ""), where.empty() ? "" : " " + where,
                     f.value("detail", f.value("got", "")));
}

std::string tail(const std::string& s, size_t max) { return s.size() <= max ? s : "[... earlier lines cut]\n" + s.substr(s.size() - max); }

}  // namespace

std::string render_junit(const ReportModel& m) {
  const json& doc = m.doc;
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  // one testsuite per campaign
  std::map<std::string, std::vector<const json*>> by_campaign;
  std::map<std::pair<uint64_t, std::string>, std::vector<const json*>> findings;
  for (const auto& f : doc["findings"])
    if (!f.value("informational", false)) findings[{f.value("run_index", uint64_t(0)), f.value("case", "")}].push_back(&f);
  for (const auto& c : doc["cases"]) {
    uint64_t ri = c.value("run_index", uint64_t(0));
    std::string camp = ri < m.runs.size() ? m.runs[ri].doc["run"].value("campaign", "fsrace") : "fsrace";
    by_campaign[camp].push_back(&c);
  }
  uint64_t all_tests = 0, all_fail = 0, all_err = 0;
  double all_time = 0;
  std::string suites;
  for (const auto& [camp, cases] : by_campaign) {
    uint64_t tests = 0, fail = 0, err = 0;
    double time = 0;
    std::string body;
    const json* run0 = nullptr;
    for (const json* cp : cases) {
      const json& c = *cp;
      uint64_t ri = c.value("run_index", uint64_t(0));
      const json& run = ri < m.runs.size() ? m.runs[ri].doc["run"] : doc["run"];
      if (!run0) run0 = &run;
      std::string name = c.value("case", "?"), st = c.value("status", "?");
      json timing = c.value("timing", json::object());
      double t = 0;
      for (const char* k : {"setup_s", "race_s", "verify_s", "analysis_s"}) t += timing.value(k, 0.0);
      ++tests;
      time += t;
      std::string mkfs, mount;
      if (ri < m.runs.size() && path_exists(m.runs[ri].dir + "/campaign.toml")) {
        try {
          toml::table tt = toml::parse_file(m.runs[ri].dir + "/campaign.toml");
          std::string fs = c.value("fs", "");
          if (auto* a = tt["fs"][fs]["mkfs_options"].as_array())
            for (auto&& x : *a) mkfs += (mkfs.empty() ? "" : " ") + x.value_or(std::string());
          mount = tt["fs"][fs]["mount_options"].value_or(std::string());
        } catch (const std::exception&) {
        }
      }
      body += fmt::format("    <testcase classname=\"fsrace.{}.{}\" name=\"{}\" time=\"{:.3f}\">\n", attr(camp), attr(c.value("scenario", "?")), attr(name), t);
      body += "      <properties>\n";
      for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
               {"fs", c.value("fs", "")}, {"scenario", c.value("scenario", "")}, {"repetition", std::to_string(c.value("repetition", 0))},
               {"seed", std::to_string(c.value("seed", uint64_t(0)))}, {"mkfs_options", mkfs}, {"mount_options", mount},
               {"kernel", run.value("kernel", "")}, {"run", run.value("id", "")}})
        body += fmt::format("        <property name=\"{}\" value=\"{}\"/>\n", attr(k), attr(v));
      body += "      </properties>\n";
      auto it = findings.find({ri, name});
      if (it != findings.end() && !it->second.empty()) {
        ++fail;
        std::string text;
        size_t shown = std::min<size_t>(it->second.size(), 50);
        for (size_t k = 0; k < shown; ++k) text += finding_line(*it->second[k]) + "\n";
        uint64_t total = std::max<uint64_t>(c.value("findings", uint64_t(0)), it->second.size());
        uint64_t more = total - shown;
        if (more) text += fmt::format("... {} more not itemised (findings.json)\n", more);
        body += fmt::format("      <failure message=\"{}\" type=\"{}\">{}</failure>\n", attr(finding_line(*it->second[0])),
                            attr(it->second[0]->value("class", "finding")), attr(text));
      } else if (st != "complete" && st != "interrupted") {
        ++err;
        body += fmt::format("      <error message=\"{}\" type=\"{}\"/>\n", attr(fmt::format("case {}: {}", st, c.value("error", c.value("reason", "did not finish")))), attr(st));
      } else if (c.value("findings", uint64_t(0)) > 0) {
        ++fail;
        body += fmt::format("      <failure message=\"{} finding(s), not itemised\" type=\"finding\"/>\n", c.value("findings", uint64_t(0)));
      }
      std::string out = fmt::format("{} ops in {:.2f} s", c.value("ops", json::object()).value("total", uint64_t(0)), timing.value("race_s", 0.0));
      body += fmt::format("      <system-out>{}</system-out>\n", attr(out));
      std::string kmsg_path = ri < m.runs.size() ? m.runs[ri].dir + "/" + name + "/kmsg.log" : "";
      if (!kmsg_path.empty() && path_exists(kmsg_path)) {
        std::string k;
        try {
          k = read_file(kmsg_path);
        } catch (const Fatal&) {
        }
        if (!k.empty()) body += fmt::format("      <system-err>{}</system-err>\n", attr(tail(k, 65536)));
      }
      body += "    </testcase>\n";
    }
    all_tests += tests, all_fail += fail, all_err += err, all_time += time;
    std::string props;
    if (run0)
      for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
               {"kernel", run0->value("kernel", "")}, {"mode", run0->value("mode", "")}, {"seed", std::to_string(run0->value("seed", uint64_t(0)))},
               {"run", run0->value("id", "")}, {"duration_s", fmt::format("{:g}", run0->value("duration_s", 0.0))}})
        props += fmt::format("      <property name=\"{}\" value=\"{}\"/>\n", attr(k), attr(v));
    suites += fmt::format("  <testsuite name=\"fsrace.{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{:.3f}\" hostname=\"{}\" timestamp=\"{}\">\n"
                          "    <properties>\n{}    </properties>\n{}  </testsuite>\n",
                          attr(camp), tests, fail, err, time, attr(host), attr(run0 ? run0->value("started", "") : ""), props, body);
  }
  return fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"fsrace\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3f}\">\n{}</testsuites>\n",
                     all_tests, all_fail, all_err, all_time, suites);
}

}  // namespace fsrace
