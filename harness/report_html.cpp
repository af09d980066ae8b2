// report.html: summary, repro statistics, cases, and every itemised finding with its timeline. The page
// is static HTML (readable without scripts) plus report_assets/report.js, which draws the timelines
// from the embedded model; CSS and JS are inlined, and a Content-Security-Policy forbids any fetch.
#include <fmt/core.h>

#include <algorithm>
#include <map>
#include <set>
#include <toml++/toml.h>

#include "core/findings.h"
#include "core/oplog.h"
#include "core/util.h"
#include "harness/report_formats.h"

namespace fsrace {

extern const char* const kReportCss;
extern const char* const kReportJs;

using nlohmann::json;

namespace {

std::string esc(const std::string& s) {
  std::string o;
  o.reserve(s.size() + 16);
  for (char c : s) switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  return o;
}

std::string str(const json& j, const char* k, const std::string& d = "") {
  return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : d;
}
uint64_t u64(const json& j, const char* k) { return j.is_object() && j.contains(k) && j[k].is_number() ? j[k].get<uint64_t>() : 0; }
double dbl(const json& j, const char* k) { return j.is_object() && j.contains(k) && j[k].is_number() ? j[k].get<double>() : 0.0; }

// "op 1099511627873 = T0 #97": the op id's thread and sequence (core/oplog.h kOpIdThreadShift).
std::string decode_op(uint64_t id) {
  if (!id) return "op 0 (the file's initial contents)";
  uint64_t t = (id >> kOpIdThreadShift) - 1, seq = id & ((1ull << kOpIdThreadShift) - 1);
  return fmt::format("op {} (T{} #{})", id, t, seq);
}

std::string decode_value(const json& v) {
  if (!v.is_object()) return "";
  std::string cls = str(v, "class");
  if (cls == "data" || cls == "mixed")
    return fmt::format("{} stamp: file 0x{:x}, block {}, written by {}", cls, u64(v, "file_id"), u64(v, "block"), decode_op(u64(v, "op")));
  return cls;
}

std::string decode_expected(const std::string& e) {
  auto p = e.find("op=");
  if (p == std::string::npos) return e;
  uint64_t id = std::strtoull(e.c_str() + p + 3, nullptr, 10);
  return e.substr(0, p) + decode_op(id);
}

struct FsOptions {
  std::string mkfs, mount;
};
std::map<std::string, FsOptions> campaign_fs_options(const std::string& run_dir) {
  std::map<std::string, FsOptions> out;
  std::string path = run_dir + "/campaign.toml";
  if (!path_exists(path)) return out;
  try {
    toml::table t = toml::parse_file(path);
    if (auto* fs = t["fs"].as_table())
      for (auto&& [name, v] : *fs) {
        FsOptions o;
        if (auto* tb = v.as_table()) {
          if (auto* a = (*tb)["mkfs_options"].as_array())
            for (auto&& x : *a) o.mkfs += (o.mkfs.empty() ? "" : " ") + x.value_or(std::string());
          o.mount = (*tb)["mount_options"].value_or(std::string());
        }
        out[std::string(name.str())] = o;
      }
  } catch (const std::exception&) {
  }
  return out;
}

std::string verdict_of(const json& doc, const char** cls) {
  std::string status = str(doc, "status", "complete");
  uint64_t total = 0;
  for (auto it = doc["findings_by_class"].begin(); it != doc["findings_by_class"].end(); ++it) total += it.value().get<uint64_t>();
  if (status != "complete" && status != "interrupted") {
    *cls = "err";
    return fmt::format("run {}: not a verdict{}", status, total ? fmt::format(" ({} finding(s) so far)", total) : "");
  }
  *cls = total ? "bad" : "ok";
  std::string s = total ? fmt::format("{} finding(s): the kernel was wrong", total) : "no finding";
  if (status == "interrupted") s += " — interrupted: covers only the cases that finished";
  return s;
}

void summary_section(std::string& h, const ReportModel& m) {
  const json& doc = m.doc;
  const json& run = doc["run"];
  h += "<h2>Summary</h2><dl class='kv'>";
  auto row = [&](const std::string& k, const std::string& v) { h += "<dt>" + esc(k) + "</dt><dd>" + v + "</dd>"; };
  row("kernel", esc(str(run, "kernel", "?")));
  if (m.config.is_object() && !m.config.empty()) {
    std::string c;
    for (auto it = m.config.begin(); it != m.config.end(); ++it)
      c += fmt::format("{}<code>{}</code> {}", c.empty() ? "" : " · ", esc(it.key()), esc(it.value().is_string() ? it.value().get<std::string>() : it.value().dump()));
    row("kernel config", c);
  } else {
    row("kernel config", "<span class='unavail'>not known for this run (no /proc/config.gz or /boot/config-&lt;release&gt;)</span>");
  }
  std::string mode = str(run, "mode", "?");
  if (run.contains("vm") && run["vm"].is_object())
    mode += fmt::format(" — QEMU, accel {}, {} vCPU(s), {} MiB, {} VM(s)", esc(str(run["vm"], "accel", "?")), u64(run["vm"], "cpus"),
                        u64(run["vm"], "memory_mib"), u64(run["vm"], "jobs"));
  row("mode", esc(mode));
  if (run.contains("merged_from")) {
    std::string r;
    for (const auto& x : run["merged_from"])
      r += fmt::format("{}<code>{}</code> ({}{})", r.empty() ? "" : ", ", esc(str(x, "id")), esc(str(x, "status")),
                       x.contains("shard") && x["shard"].is_object() ? fmt::format(", shard {}/{}", u64(x["shard"], "index"), u64(x["shard"], "total")) : "");
    row("merged runs", r);
  } else {
    row("run", fmt::format("<code>{}</code> started {}{}", esc(str(run, "id")), esc(str(run, "started")),
                           run.contains("shard") && run["shard"].is_object()
                               ? fmt::format(", shard {}/{} of the case matrix", u64(run["shard"], "index"), u64(run["shard"], "total"))
                               : ""));
  }
  if (run.contains("shards_missing") && run["shards_missing"].is_array()) {
    std::string s;
    for (const auto& x : run["shards_missing"]) s += (s.empty() ? "" : ", ") + esc(x.is_string() ? x.get<std::string>() : x.dump());
    row("shards missing", "<b>" + s + "</b> — the statistics below cover only the shards given");
  }
  row("campaign", fmt::format("{} (seed {}, {:g} s of racing per case)", esc(str(run, "campaign", "?")), u64(run, "seed"), dbl(run, "duration_s")));
  // filesystems with options, scenarios, repetitions
  std::map<std::string, FsOptions> fsopt;
  for (const auto& r : m.runs)
    for (auto& [k, v] : campaign_fs_options(r.dir)) fsopt.emplace(k, v);
  std::set<std::string> fss, scs;
  uint64_t reps = 0;
  double race_s = 0;
  for (const auto& c : doc["cases"]) {
    fss.insert(str(c, "fs", "?"));
    scs.insert(str(c, "scenario", "?"));
    reps = std::max(reps, u64(c, "repetition") + 1);
    if (c.contains("timing")) race_s += dbl(c["timing"], "race_s");
  }
  std::string f;
  for (const auto& x : fss) {
    auto it = fsopt.find(x);
    f += fmt::format("{}<b>{}</b>{}", f.empty() ? "" : "<br>", esc(x),
                     it == fsopt.end() ? "" : fmt::format(" mkfs <code>{}</code> mount <code>{}</code>", esc(it->second.mkfs),
                                                          esc(it->second.mount.empty() ? "(defaults)" : it->second.mount)));
  }
  row("filesystems", f);
  std::string s;
  for (const auto& x : scs) s += (s.empty() ? "" : ", ") + esc(x);
  row("scenarios", s);
  // A matrix (fs x scenario x repetitions) says so; other runs (fsrace explore's rounds) are just counted.
  bool matrix = doc["cases"].size() == fss.size() * scs.size() * reps;
  row("cases", matrix ? fmt::format("{} ({} repetition(s) of each), {:.1f} s of racing in total", doc["cases"].size(), reps, race_s)
                      : fmt::format("{} ({} scenario x filesystem pairs, not a full matrix: e.g. fsrace explore's rounds), "
                                    "{:.1f} s of racing in total", doc["cases"].size(), fss.size() * scs.size(), race_s));
  // widening: what ran, what was unavailable
  std::map<std::string, std::set<std::string>> wid;
  std::map<std::string, size_t> wid_cases;                     // technique -> cases it ran in
  std::map<std::string, std::pair<size_t, uint64_t>> delays;  // kdelay point -> cases it ran in, hits delayed
  for (const auto& c : doc["cases"]) {
    if (c.contains("widening") && c["widening"].is_object())
      for (auto it = c["widening"].begin(); it != c["widening"].end(); ++it) {
        wid[it.key()].insert(it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
        ++wid_cases[it.key()];
      }
    if (c.contains("kernel_delays") && c["kernel_delays"].is_object() && c["kernel_delays"].contains("points"))
      for (auto it = c["kernel_delays"]["points"].begin(); it != c["kernel_delays"]["points"].end(); ++it) {
        if (it.value().value("ran", false)) {
          auto& d = delays["kdelay " + it.key()];
          ++d.first;
          d.second += u64(it.value(), "delayed");
          wid["kdelay " + it.key()];
        } else {
          wid["kdelay " + it.key()].insert("unavailable: " + str(it.value(), "unavailable", str(c["kernel_delays"], "error")));
        }
      }
    if (c.contains("kernel_widening") && c["kernel_widening"].is_object())
      for (auto it = c["kernel_widening"].begin(); it != c["kernel_widening"].end(); ++it)
        wid[it.key() == "vm-power-cut" ? std::string("[vm] power_cut") : "kwiden " + it.key()].insert(it.value().value("ran", false) ? "ran" : "unavailable: " + str(it.value(), "reason", str(it.value(), "error", "?")));
  }
  std::string wd;
  for (const auto& [k, vs] : wid) {
    std::string v;
    if (auto d = delays.find(k); d != delays.end())
      v = fmt::format("ran in {} case(s), {} hits delayed in total", d->second.first, d->second.second);
    // Many cases with their own figures (explore's rounds): the count and one example, not every line.
    if (vs.size() > 3) {
      v += fmt::format("{}in {} case(s), e.g. {} (every case's in its race.json)", v.empty() ? "" : "; ",
                       wid_cases.count(k) ? wid_cases[k] : vs.size(), *vs.begin());
    } else {
      for (const auto& x : vs) v += (v.empty() ? "" : "; ") + x;
    }
    wd += fmt::format("{}<b>{}</b>: {}", wd.empty() ? "" : "<br>", esc(k), esc(v));
  }
  row("widening", wd.empty() ? "<span class='muted'>none (the campaign asked for none)</span>" : wd);
  // probes
  uint64_t attached = 0, dropped = 0, events = 0, kmsg_lost = 0;
  std::map<std::string, std::string> unavailable;
  bool any_probes = false;
  for (const auto& c : doc["cases"]) {
    if (c.contains("probes") && c["probes"].is_object()) {
      any_probes = true;
      attached = std::max(attached, u64(c["probes"], "attached"));
      dropped += u64(c["probes"], "dropped");
      events += u64(c["probes"], "events");
      if (c["probes"].contains("unavailable") && c["probes"]["unavailable"].is_object())
        for (auto it = c["probes"]["unavailable"].begin(); it != c["probes"]["unavailable"].end(); ++it)
          unavailable.emplace(it.key(), it.value().is_string() ? it.value().get<std::string>() : "");
    }
    if (c.contains("kernel_log") && c["kernel_log"].is_object()) kmsg_lost += u64(c["kernel_log"], "lost");
  }
  if (any_probes) {
    std::string u;
    for (const auto& [k, why] : unavailable) u += fmt::format("<li><code>{}</code>: {}</li>", esc(k), esc(why));
    row("probes", fmt::format("{} attached, {} events recorded, <b>{}</b> lost (ring buffer full){}", attached, events, dropped,
                              u.empty() ? "" : fmt::format("<details><summary>{} unavailable on this kernel</summary><ul class='notes'>{}</ul></details>",
                                                           unavailable.size(), u)));
  } else {
    row("probes", "<span class='muted'>off (no probe records in this run)</span>");
  }
  row("kernel log", kmsg_lost ? fmt::format("<b>{} message(s) lost</b> (/dev/kmsg overrun)", kmsg_lost) : "captured, none lost");
  std::string by;
  for (auto it = doc["findings_by_class"].begin(); it != doc["findings_by_class"].end(); ++it)
    by += fmt::format("{}<span class='cls'>{}</span> {}", by.empty() ? "" : " ", esc(it.key()), it.value().get<uint64_t>());
  row("findings by class", by.empty() ? "none" : by);
  std::string inf;
  for (auto it = doc["informational_by_class"].begin(); it != doc["informational_by_class"].end(); ++it)
    inf += fmt::format("{}{} {}", inf.empty() ? "" : ", ", esc(it.key()), it.value().get<uint64_t>());
  if (!inf.empty()) row("informational (not failures)", inf);
  h += "</dl>";
}

void stats_section(std::string& h, const ReportModel& m) {
  h += "<h2>Reproduction statistics</h2><table class='stats'><tr><th>scenario</th><th>fs</th><th>runs</th><th>with a finding</th>"
       "<th>rate</th><th>95 % interval (Wilson)</th><th>median time to first finding</th><th>classes</th></tr>";
  for (const auto& r : m.stats) {
    double rate = dbl(r, "rate");
    std::string cls;
    for (const auto& c : r["classes"]) cls += (cls.empty() ? "" : ", ") + esc(c.get<std::string>());
    h += fmt::format("<tr><td>{}</td><td>{}</td><td class='num'>{}{}</td><td class='num'>{}</td><td class='num'>{:.1f} % "
                     "<span class='rate-bar' style='width:{}px'></span></td><td class='num'>{:.1f} – {:.1f} %</td><td class='num'>{}</td><td>{}</td></tr>",
                     esc(str(r, "scenario")), esc(str(r, "fs")), u64(r, "runs"),
                     u64(r, "not_run") ? fmt::format(" (+{} did not run)", u64(r, "not_run")) : "", u64(r, "runs_with_finding"), 100 * rate,
                     int(60 * rate), 100 * r["ci95"][0].get<double>(), 100 * r["ci95"][1].get<double>(),
                     r["median_first_finding_s"].is_number() ? fmt::format("{:.2f} s", r["median_first_finding_s"].get<double>()) : "—", cls);
  }
  h += "</table>";
}

void cases_section(std::string& h, const ReportModel& m) {
  h += "<h2>Cases</h2><table class='cases'><tr><th>case</th><th>fs</th><th>scenario</th><th>status</th><th>ops</th><th>ops/s</th>"
       "<th>overlapped</th><th>race s</th><th>findings</th></tr>";
  size_t shown = 0;
  for (const auto& c : m.doc["cases"]) {
    if (shown++ == 500) {
      h += fmt::format("<tr><td colspan='9' class='muted'>{} more cases in findings.json</td></tr>", m.doc["cases"].size() - 500);
      break;
    }
    json ops = c.value("ops", json::object());
    double secs = dbl(ops, "seconds");
    json ov = ops.value("overlap", json::object());
    h += fmt::format("<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td><td class='num'>{}</td><td class='num'>{:.0f}</td>"
                     "<td class='num'>{:.1f} %</td><td class='num'>{:.2f}</td><td class='num'>{}</td></tr>",
                     esc(str(c, "case")), m.runs.size() > 1 ? fmt::format(" <span class='muted'>run {}</span>", u64(c, "run_index")) : "",
                     esc(str(c, "fs")), esc(str(c, "scenario")), esc(str(c, "status")), u64(ops, "total"),
                     secs > 0 ? double(u64(ops, "total")) / secs : 0.0, 100 * dbl(ov, "share"), dbl(c.value("timing", json::object()), "race_s"),
                     u64(c, "findings"));
  }
  h += "</table>";
}

void finding_card(std::string& h, const json& f, const json& w, size_t widx) {
  bool info = f.value("informational", false);
  std::string where = str(f, "file");
  if (auto b = finding_blocks_text(f); !b.empty()) where += " " + b;
  h += fmt::format("<section class='finding{}' id='finding-{}'><h3><span class='cls'>{}</span> {} <span class='muted'>· {} · {}</span></h3>",
                   info ? " informational" : "", widx, esc(str(f, "class")), esc(where), esc(str(f, "case")), esc(str(f, "phase")));
  h += "<dl class='kv'>";
  if (f.contains("got")) {
    // The decoded stamp only when it says more than the raw value ("zeroes" needs no "zero" under it).
    std::string dec = f.contains("got_value") ? decode_value(f["got_value"]) : "";
    std::string got = str(f, "got");
    bool adds = !dec.empty() && got.rfind(dec, 0) != 0;
    h += fmt::format("<dt>got</dt><dd><code>{}</code>{}</dd>", esc(got), adds ? "<br><span class='muted'>" + esc(dec) + "</span>" : "");
  }
  if (f.contains("expected") && f["expected"].is_array() && !f["expected"].empty()) {
    std::string e;
    for (const auto& x : f["expected"]) e += (e.empty() ? "" : "<br>") + esc(decode_expected(x.is_string() ? x.get<std::string>() : x.dump()));
    h += "<dt>allowed</dt><dd>" + e + "</dd>";
  }
  if (f.contains("detail")) h += "<dt>detail</dt><dd>" + esc(str(f, "detail")) + "</dd>";
  if (f.contains("explained_by")) h += "<dt>explained by</dt><dd>" + esc(str(f, "explained_by")) + "</dd>";
  h += "</dl>";
  if (w.contains("explain") && !w["explain"].empty()) {
    h += "<p><b>What happened</b></p><ul class='explain'>";
    for (const auto& l : w["explain"]) h += "<li>" + esc(l.get<std::string>()) + "</li>";
    h += "</ul>";
  }
  h += fmt::format("<div class='timeline' data-window='{}'></div>", widx);
  h += "<div class='legend'><span><i style='background:#2e7d32'></i>write</span><span><i style='background:#c62828'></i>punch / zero / "
       "shift</span><span><i style='background:#1565c0'></i>read</span><span><i style='background:#00838f'></i>verify read</span>"
       "<span><i style='border:3px solid #ff6f00'></i>the read that saw wrong data</span><span><i style='border:3px dashed #00c853'></i>"
       "the op it should have seen</span><span><i style='border:3px solid #aa00ff'></i>the op whose data it got</span>"
       "<span><i style='border:3px dotted #000'></i>the sync that promised durability</span>"
       "<span><i style='background:#ad1457'></i>invalidate_lock held</span><span><i style='background:#ef6c00'></i>contention</span>"
       "<span><i style='background:#1565c0'></i>folio added (lock held)</span><span><i style='background:#f9a825'></i>folio added, lock "
       "not held</span><span><i style='background:#ff1744'></i>added while another task held it exclusive</span>"
       "<span><i style='background:#c62828'></i>folio removed</span></div>";
  if (w.contains("notes") && !w["notes"].empty()) {
    h += "<ul class='notes'>";
    for (const auto& n : w["notes"]) h += "<li>" + esc(n.get<std::string>()) + "</li>";
    h += "</ul>";
  }
  if (f.contains("kernel_log") && f["kernel_log"].is_array() && !f["kernel_log"].empty()) {
    std::string l;
    for (const auto& x : f["kernel_log"]) l += esc(x.is_string() ? x.get<std::string>() : x.dump()) + "\n";
    h += "<p><b>Kernel log</b></p><pre>" + l + "</pre>";
  }
  if (f.contains("kernel_events") && f["kernel_events"].is_array() && !f["kernel_events"].empty()) {
    std::string l;
    for (const auto& x : f["kernel_events"]) l += esc(x.get<std::string>()) + "\n";
    h += "<details><summary>kernel events on the range (text)</summary><pre>" + l + "</pre></details>";
  }
  if (w.contains("replay")) h += "<p><b>Reproduce</b>: <code>" + esc(w["replay"].get<std::string>()) + "</code></p>";
  h += "</section>";
}

}  // namespace

std::string render_html(const ReportModel& m) {
  const json& doc = m.doc;
  const char* vcls = "ok";
  std::string verdict = verdict_of(doc, &vcls);
  std::string h;
  h.reserve(1 << 20);
  h += "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
       "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
       "<meta name='viewport' content='width=device-width, initial-scale=1'>";
  h += fmt::format("<title>fsrace {} — {}</title><style>{}</style></head><body>", esc(str(doc["run"], "campaign", "run")), esc(verdict), kReportCss);
  h += fmt::format("<header><h1>fsrace — campaign {} on {}</h1><div class='verdict {}'>{}</div></header><main>",
                   esc(str(doc["run"], "campaign", "?")), esc(str(doc["run"], "kernel", "?")), vcls, esc(verdict));
  summary_section(h, m);
  stats_section(h, m);
  h += fmt::format("<h2>Findings</h2>");
  if (doc["findings"].empty()) h += "<p>No finding: every read returned data the oracle allows, and the kernel log is clean.</p>";
  else if (m.left_out)
    h += fmt::format("<p class='muted'>{} finding(s) itemised below; {} more are counted above and listed in findings.json.</p>",
                     m.windows.size(), m.left_out);
  for (size_t i = 0; i < m.windows.size(); ++i) finding_card(h, doc["findings"][m.windows[i]["finding"].get<size_t>()], m.windows[i], i);
  cases_section(h, m);
  h += fmt::format("<p class='muted'>Written by <code>fsrace report</code> at {}. findings.json is the machine-readable source of truth; "
                   "trace.json opens in ui.perfetto.dev or chrome://tracing.</p></main>",
                   esc(timestamp_id()));
  json data = {{"windows", m.windows}};
  std::string blob = data.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string safe;
  safe.reserve(blob.size() + 64);
  for (size_t i = 0; i < blob.size(); ++i) {  // "</" would end the script element: JSON allows "<\/"
    if (blob[i] == '<' && i + 1 < blob.size() && blob[i + 1] == '/') safe += "<\\";
    else safe += blob[i];
  }
  h += "<script type='application/json' id='fsrace-data'>" + safe + "</script>";
  h += std::string("<script>") + kReportJs + "</script></body></html>\n";
  return h;
}

}  // namespace fsrace
