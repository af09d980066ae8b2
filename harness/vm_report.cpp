#include "harness/vm_report.h"
#include "harness/report_model.h"

#include <dirent.h>
#include <sys/stat.h>

#include <fmt/core.h>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/findings.h"
#include "harness/dax_pin.h"
#include "harness/kmsg_scan.h"
#include "harness/report.h"
#include "harness/results.h"
#include "core/util.h"

namespace fsrace {
namespace {

using json = nlohmann::json;

json load_json(const std::string& path) {
  if (!path_exists(path)) return json();
  auto j = json::parse(read_file(path), nullptr, false);
  return j.is_discarded() ? json() : j;
}

std::string syscall_name(long nr) {
  static const std::map<long, const char*> names = {
      {0, "read"}, {1, "write"}, {3, "close"}, {9, "mmap"}, {11, "munmap"}, {17, "pread64"}, {18, "pwrite64"},
      {26, "msync"}, {35, "nanosleep"}, {74, "fsync"}, {75, "fdatasync"}, {162, "sync"}, {165, "mount"},
      {166, "umount2"}, {202, "futex"}, {221, "fadvise64"}, {230, "clock_nanosleep"}, {257, "openat"},
      {285, "fallocate"}, {306, "syncfs"}, {16, "ioctl"}, {61, "wait4"}, {7, "poll"}, {232, "epoll_wait"}};
  auto it = names.find(nr);
  return it == names.end() ? fmt::format("syscall {}", nr) : it->second;
}

// "tid 231 fsrace [D] fallocate(0x3, 0x3, 0x5000, 0x3000) wchan percpu_rwsem_wait"
std::string describe_thread(const json& t) {
  std::string sc = t.value("syscall", "");
  std::string what;
  if (sc == "running") what = "running in user space";
  else if (sc.rfind("-1", 0) == 0) what = "in the kernel outside a syscall (page fault or exception)";
  else if (!sc.empty()) {
    std::vector<std::string> p;
    size_t pos = 0;
    while (pos < sc.size()) {
      size_t sp = sc.find(' ', pos);
      p.push_back(sc.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos));
      pos = sp == std::string::npos ? sc.size() : sp + 1;
    }
    long nr = std::strtol(p[0].c_str(), nullptr, 10);
    std::string args;
    for (size_t i = 1; i < p.size() && i <= 4; ++i) args += (i > 1 ? ", " : "") + p[i];
    what = fmt::format("{}({})", syscall_name(nr), args);
  }
  std::string w = t.value("wchan", "");
  return fmt::format("tid {} {} [{}] {}{}", t.value("tid", 0), t.value("comm", ""), t.value("state", "?"), what,
                     w.empty() || w == "0" ? "" : " wchan " + w);
}

std::string workload_state(const json& hb, double end_uptime_hint) {
  if (!hb.is_object()) return "no heartbeat from the guest agent (it never reported)";
  std::string s = fmt::format("case {}, phase {}, {} ops/phases completed", hb.value("case", "?").empty() ? "-" : hb.value("case", "?"),
                              hb.value("phase", "?"), hb.value("progress", uint64_t(0)));
  (void)end_uptime_hint;
  s += fmt::format(" (last heartbeat at guest uptime {:.1f} s)", hb.value("uptime_s", 0.0));
  std::string th;
  for (const auto& t : hb.value("threads", json::array())) th += "; " + describe_thread(t);
  if (!th.empty()) s += "; threads:" + th.substr(1);
  return s;
}

std::vector<std::string> tail_lines(const std::string& text, size_t n) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    lines.push_back(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    pos = nl == std::string::npos ? text.size() : nl + 1;
  }
  if (lines.size() > n) lines.erase(lines.begin(), lines.end() - long(n));
  return lines;
}

// The guest agent's own error line on the console ("fsrace: ..."), when the share could not take agent-error.
std::string agent_error_line(const std::string& console) {
  size_t start = console.rfind("fsrace-agent: started");
  std::string found;
  for (const auto& l : tail_lines(console.substr(start == std::string::npos ? 0 : start), 100000))
    if (l.rfind("fsrace: ", 0) == 0) found = l.substr(8);
  return found;
}

// The guest kernel's OOM kill of the agent ("Out of memory: Killed process 65 (fsrace) total-vm:...kB,
// anon-rss:934132kB, ..."), as "the guest's OOM killer killed the agent at 912 MiB resident", or "".
std::string guest_oom_kill(const std::string& console) {
  for (const auto& l : tail_lines(console, 100000)) {
    size_t k = l.find("Out of memory: Killed process ");
    if (k == std::string::npos || l.find("(fsrace)", k) == std::string::npos) continue;
    size_t a = l.find("anon-rss:", k);
    uint64_t kib = a == std::string::npos ? 0 : std::strtoull(l.c_str() + a + 9, nullptr, 10);
    return kib ? fmt::format("the guest's OOM killer killed the agent at {} MiB resident", kib / 1024)
               : std::string("the guest's OOM killer killed the agent");
  }
  return "";
}

}  // namespace

VmReportResult vm_merge(const std::string& run_dir, const std::map<std::string, json>& case_docs, const std::string& out_dir) {
  json vm = load_json(run_dir + "/vm.json");
  if (!vm.is_object()) throw Fatal(fmt::format("{} has no readable vm.json: not a VM-mode run directory", run_dir));
  VmReportResult res;
  json run = vm.value("run", json::object());
  run["mode"] = "vm";
  json vminfo = {{"accel", vm.value("accel", "")}, {"accel_note", vm.value("accel_note", "")},
                 {"kernel", vm.value("kernel", json::object())}, {"cpus", vm.value("cpus", 0)},
                 {"memory_mib", vm.value("memory_mib", 0)}, {"jobs", vm.value("jobs", 1)},
                 {"boot_to_agent_s", json::array()}};
  run["kernel"] = vm["kernel"].value("release", "?");
  {  // the image's .config, when the VM runner found one (kbuild's config, a packaged kernel's /boot/config-*)
    std::string cfg = vm["kernel"].value("config", "");
    if (!cfg.empty() && path_exists(cfg)) {
      try {
        json kc = kernel_config_highlights(read_file(cfg));
        if (!kc.empty()) run["kernel_config"] = kc;
      } catch (const Fatal&) {
      }
    }
  }

  RunDoc all(run);
  std::string kmsg_all, status = vm.value("status", "complete");
  std::vector<std::string> errors;
  auto add_finding = [&](const Finding& f) { all.add_finding(f); };

  // One record per boot of each VM (a hang or a crash restarts the VM for the cases left, each boot with its
  // own share and console); a VM record without "boots" is a single boot.
  struct Boot {
    json rec;
    json specs;  // the VM's case_specs: fs and scenario of each case as the case matrix named them
    int vm;
    size_t boot;
    std::set<std::string> later;  // cases a later boot of the VM ran: not "not finished" in this one
  };
  std::vector<Boot> all_boots;
  for (const auto& vmrec : vm.value("vms", json::array())) {
    json recs = vmrec.contains("boots") && vmrec["boots"].is_array() ? vmrec["boots"] : json::array({vmrec});
    for (size_t b = 0; b < recs.size(); ++b) {
      Boot bt{recs[b], vmrec.value("case_specs", json::object()), vmrec.value("index", 0), b, {}};
      for (size_t k = b + 1; k < recs.size(); ++k)
        for (const auto& cn : recs[k].value("cases", json::array())) bt.later.insert(cn.get<std::string>());
      all_boots.push_back(std::move(bt));
    }
  }

  for (const auto& bt : all_boots) {
    const json& v = bt.rec;
    const int vi = bt.vm;
    const size_t bi = bt.boot;
    std::string label = bi ? fmt::format("vm{} boot {}", vi, bi) : fmt::format("vm{}", vi);
    std::string vdir = run_dir + "/" + v.value("dir", "vm0");
    std::string outcome = v.value("outcome", "");
    json hb = v.contains("last_heartbeat") && v["last_heartbeat"].is_object() ? v["last_heartbeat"] : json();
    if (v.contains("boot_s") && v["boot_s"].is_number()) vminfo["boot_to_agent_s"].push_back(v["boot_s"]);
    // The guest's own run record lists the cases it started; each finished case has its document
    // (the case directory's findings.json, or its re-analysis), the others only the guest's record.
    json g = load_json(vdir + "/findings.json");
    std::set<std::string> seen_cases, guest_keys;
    if (g.is_object())
      for (auto c : g.value("cases", json::array())) {
        std::string name = c.value("case", "");
        seen_cases.insert(name);
        auto it = case_docs.find(name);
        if (it == case_docs.end()) {
          c["vm"] = vi;
          c["boot"] = bi;
          all.add_case_record(c);
          continue;
        }
        json d = it->second;
        for (auto& cc : d["cases"]) {
          cc["vm"] = vi;
          cc["boot"] = bi;
        }
        for (const auto& f : d.value("findings", json::array())) guest_keys.insert(f.value("class", "") + "\x1f" + f.value("got", ""));
        all.add_case(d);
      }
    if (path_exists(vdir + "/kmsg.log")) kmsg_all += fmt::format("==== {} ====\n", label) + read_file(vdir + "/kmsg.log");
    // The case this boot ended in (the runner's, else the last heartbeat's): its hang / crash findings.
    std::string running_case = v.value("case", "");
    if (running_case.empty() && hb.is_object()) running_case = hb.value("case", "");
    // fs and scenario of a case as the case matrix (`fsrace plan`) named them; the VM runner records it.
    const json& specs = bt.specs;
    auto spec_of = [&](const std::string& name, const char* key) {
      return specs.contains(name) && specs[name].is_object() ? specs[name].value(key, std::string()) : std::string();
    };
    for (const auto& cn : v.value("cases", json::array())) {
      std::string name = cn.get<std::string>();
      if (seen_cases.count(name) || bt.later.count(name)) continue;
      bool stopper = outcome == "crashed" || outcome == "hang" || outcome == "died";
      std::string st = stopper && !running_case.empty() && name != running_case
                           ? fmt::format("not run: the VM ended before it ({})", outcome == "died" ? "QEMU died" : outcome)
                       : outcome == "crashed" ? "not finished: the guest kernel crashed"
                       : outcome == "hang"  ? "not finished: the guest hung"
                       : outcome == "died"  ? "not finished: QEMU died (vm-error)"
                       : outcome == "interrupted" ? "interrupted"
                                                  : "not run: " + outcome;
      all.add_case_record({{"case", name}, {"fs", spec_of(name, "fs")}, {"scenario", spec_of(name, "scenario")}, {"status", st},
                           {"vm", vi}, {"boot", bi}});
    }

    // The serial console through the kernel-log analyzer: what the guest printed while dying is kept.
    std::string console_path = run_dir + "/" + v.value("console", "console.log");
    std::string console = path_exists(console_path) ? read_file(console_path) : "";
    KmsgScanOptions ko;
    ko.fs = spec_of(running_case, "fs");
    ko.scenario = spec_of(running_case, "scenario");
    ko.case_name = running_case;
    ko.max_context = 120;
    size_t sysrq_off = v.contains("hang") && v["hang"].is_object() ? v["hang"].value("sysrq_console_offset", size_t(0)) : std::string::npos;
    // A boot ended by a [vm] power_cut was alive to the end: the case it ended in has its kernel log (the
    // agent's capture) judged by the next boot, so its console would only repeat those findings.
    KmsgScanResult ks = outcome == "power-cut"
                            ? KmsgScanResult{}
                            : scan_kmsg(parse_log_text(sysrq_off < console.size() ? console.substr(0, sysrq_off) : console), ko);
    bool have_crash = false;
    std::string state = workload_state(hb, 0);
    for (auto& f : ks.findings) {
      if (guest_keys.count(f.cls + "\x1f" + f.got)) continue;  // the agent's /dev/kmsg capture has it already
      f.phase = "console";
      explain_dax_pin_warning(f);
      if (f.cls == "kernel-crash") {
        have_crash = true;
        f.detail = fmt::format("guest kernel panic ({}); workload state: {}", f.got, state);
      }
      add_finding(f);
    }

    if (outcome == "crashed" && !have_crash) {
      Finding f = make_finding("kernel-crash", ko.fs, ko.scenario, running_case, "console");
      f.detail = fmt::format("the guest reset or stopped without a panic message ({}); workload state: {}",
                             v.value("detail", ""), state);
      f.kernel_log = tail_lines(console, 40);
      add_finding(f);
    }
    if (outcome == "hang") {
      json h = v["hang"].is_object() ? v["hang"] : json::object();
      Finding f = make_finding("hang", ko.fs, ko.scenario, running_case, hb.is_object() ? hb.value("phase", "") : "");
      f.detail = fmt::format("no progress for {:.1f} s (limit [vm] hang_timeout_s = {}); task states (sysrq-w, sysrq-t) "
                             "below and in {}; workload state: {}",
                             h.value("no_progress_s", 0.0), h.value("timeout_s", 0.0), v.value("console", "console.log"), state);
      if (sysrq_off < console.size()) {
        auto lines = parse_log_text(console.substr(sysrq_off));
        for (size_t i = 0; i < lines.size() && f.kernel_log.size() < 400; ++i) f.kernel_log.push_back(format_kmsg_line(lines[i]));
      }
      if (f.kernel_log.empty()) f.kernel_log.push_back("(the guest printed no task states: sysrq did not reach it)");
      if (ko.scenario == "dax-pin-vs-truncate" && hb.is_object())
        explain_layout_break_hang(f, hb.value("threads", json::array()));
      add_finding(f);
    }

    std::string detail = v.value("detail", "");
    if (outcome == "boot-failed") {
      std::string tail;
      for (const auto& l : tail_lines(console, 12)) tail += "\n    " + l;
      errors.push_back(fmt::format("boot-failed: {}; console tail ({}):{}", detail, console_path, tail));
    } else if (outcome == "init-error") {
      errors.push_back(fmt::format("guest init: {}", detail));
    } else if (outcome == "died") {
      // QEMU itself went away (the OOM killer, a kill, a QEMU crash): a host failure, never a kernel finding.
      errors.push_back(fmt::format("vm-error: {}: {}; console kept in {}: check the host (dmesg for the OOM killer, "
                                   "free memory for [vm] memory_mib) and rerun",
                                   label, detail, console_path));
    } else if (outcome == "qemu-failed") {
      errors.push_back(fmt::format("vm-error: QEMU failed: {}", detail));
    } else if (outcome == "exited" && v.value("guest_exit", 0) == 2) {
      std::string e = path_exists(vdir + "/agent-error") ? read_file(vdir + "/agent-error") : agent_error_line(console);
      while (!e.empty() && (e.back() == '\n' || e.back() == '\r')) e.pop_back();
      errors.push_back(fmt::format("in the guest: {}", e.empty() ? "see " + console_path : e));
    } else if (outcome == "exited" && v.contains("guest_exit") && v["guest_exit"].is_number_integer() &&
               v["guest_exit"] != 0 && v["guest_exit"] != 1 && v["guest_exit"] != 130) {
      if (std::string oom = guest_oom_kill(console); !oom.empty())
        errors.push_back(fmt::format("vm-error: {}: the guest agent ended with status {}: {} (a harness failure, not a "
                                     "kernel finding); console kept in {}: raise [vm] memory_mib (now {} MiB) or "
                                     "shorten the race, and rerun",
                                     label, v["guest_exit"].get<int>(), oom, console_path,
                                     vm.value("memory_mib", 0)));
      else
        errors.push_back(fmt::format("vm-error: {}: the guest agent ended with status {} (killed or crashed: a harness "
                                     "failure); console kept in {}: rerun, and report it with that console if it persists",
                                     label, v["guest_exit"].get<int>(), console_path));
    }
    if (outcome == "interrupted") status = "interrupted";
  }

  if (!errors.empty()) status = "error: " + errors.front().substr(0, errors.front().find('\n'));
  all.run()["vm"] = vminfo;
  json doc = all.doc(status);
  try {
    write_results(out_dir, doc, &kmsg_all);
  } catch (const Fatal& e) {  // e.g. a full results filesystem: what the run kept stays, so it can be redone
    throw Fatal(fmt::format("{}: free space there, then './fsrace vm-report {}' writes the run's results from what it kept",
                            e.what(), run_dir));
  }
  res.summary = render_summary(doc);
  res.exit_code = exit_code_of(doc);
  if (!errors.empty()) res.error = errors.front();
  return res;
}

std::map<std::string, json> stored_case_docs(const std::string& run_dir) {
  std::map<std::string, json> docs;
  DIR* d = opendir(run_dir.c_str());
  if (!d) return docs;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name[0] == '.') continue;
    json doc = load_json(run_dir + "/" + name + "/findings.json");
    if (doc.is_object() && doc.contains("cases")) docs[name] = doc;
  }
  closedir(d);
  return docs;
}

VmReportResult vm_report(const std::string& run_dir) { return vm_merge(run_dir, stored_case_docs(run_dir), run_dir); }

}  // namespace fsrace

