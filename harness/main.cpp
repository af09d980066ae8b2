// fsrace command line: run, report, list. Exit codes: 0 no finding, 1 findings, 2 usage /
// configuration / environment error, 130 interrupted (results so far are kept).
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdlib>
#include <iostream>
#include <sys/stat.h>

#include "harness/agent.h"
#include "harness/cli_kernel.h"
#include "harness/cli_bisect.h"
#include "harness/cli_explore.h"
#include <fmt/ranges.h>
#include "harness/explore.h"
#include "core/filesystems.h"
#include "core/campaign.h"
#include "core/filesystems.h"
#include "core/findings.h"
#include "harness/replay.h"
#include "harness/report.h"
#include "harness/report_formats.h"
#include "harness/runner.h"
#include "core/util.h"
#include "harness/vm_launch.h"
#include "harness/vm_report.h"
#include "harness/analyze.h"
#include "harness/kernel_events.h"
#include "harness/results.h"
#include "probes/events.h"
#include "probes/fsrace_events.h"
#include "probes/kernel_info.h"
#include "probes/loader.h"
#include "widening/auto.h"
#include "widening/delay.h"
#include "widening/techniques.h"
#include "workloads/scenario.h"

using namespace fsrace;

namespace {

const char* kExitCodes =
    "Exit codes: 0 no finding, 1 at least one finding, 2 usage / configuration / environment error,\n"
    "130 interrupted by SIGINT/SIGTERM (results written so far are kept).";

std::string top_dir() {
  const char* t = std::getenv("FSRACE_TOP");
  return t ? t : ".";
}

std::vector<std::string> split_list(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& s : in) {
    size_t pos = 0;
    while (pos <= s.size()) {
      size_t c = s.find(',', pos);
      std::string p = s.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
      if (!p.empty()) out.push_back(p);
      if (c == std::string::npos) break;
      pos = c + 1;
    }
  }
  return out;
}

void list_scenarios() {
  for (const auto& s : scenarios()) {
    const auto& sp = s->spec();
    std::cout << fmt::format("{}: {}\n", sp.name, sp.summary);
    std::string d = s->description();
    size_t pos = 0;
    while (pos < d.size()) {
      size_t nl = d.find('\n', pos);
      std::cout << "    " << d.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos) << "\n";
      pos = nl == std::string::npos ? d.size() : nl + 1;
    }
    std::string cls;
    for (const auto& c : s->finding_classes()) cls += (cls.empty() ? "" : ", ") + c;
    std::string fss;
    for (const auto& f : filesystem_table())
      if (sp.backings.empty() || std::find(sp.backings.begin(), sp.backings.end(), fs_backing_name(f.backing)) != sp.backings.end())
        fss += (fss.empty() ? "" : ", ") + f.name;
    std::cout << "    filesystems: " << fss << "\n    finds: " << cls << "\n    parameters ([scenario." << sp.name << "]):\n";
    for (const auto& p : sp.params)
      std::cout << fmt::format("      {:<18} {:<6} default {:<6} range {}..{}  {}\n", p.name,
                               p.type == ParamSpec::Type::kInt ? "int" : "float", p.def, p.min, p.max, p.help);
    std::cout << "\n";
  }
}

void list_filesystems() {
  for (const auto& f : known_filesystems()) {
    FsConfig c = default_fs_config(f);
    std::string mk;
    for (const auto& o : c.mkfs_options) mk += (mk.empty() ? "" : " ") + o;
    const FilesystemInfo* fi = find_filesystem(f);
    if (fi && fi->backing == FsBacking::kCluster)
      std::cout << fmt::format("{:<8} a single-node cluster started once per run / VM (no mkfs; a fresh directory tree "
                               "per case; VM mode, host mode only with --allow-host-cluster; only when named)\n", f);
    else {
      std::string extra = fi && fi->backing != FsBacking::kBlockDevice
                              ? fmt::format(", on {}, mount {}, only when named", fs_backing_name(fi->backing), fi->mount_defaults)
                              : "";
      std::cout << fmt::format("{:<8} {} {}  (device_size_mib {}{})\n", f, fi ? fi->mkfs : f, mk, c.device_size_mib, extra);
    }
  }
}

void list_classes() {
  for (const auto& c : finding_classes()) std::cout << fmt::format("{:<18} {:<10} {}\n", c.name, c.source, c.meaning);
}

// `fsrace probes` (issue 3): every probe with the attach mode it gets on the running kernel (really
// loaded and attached, then detached) or why it is unavailable; --facts plans for a recorded kernel.
int list_probes(const std::string& facts_path, bool dump_facts, bool json) {
  std::unique_ptr<probes::KernelInfo> k;
  bool planned_only = !facts_path.empty();
  if (planned_only) {
    auto j = nlohmann::json::parse(read_file(facts_path), nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw Fatal(fmt::format("{} is not a kernel facts JSON file (make one with 'fsrace probes --dump-facts')", facts_path));
    k = std::make_unique<probes::RecordedKernelInfo>(j);
  } else {
    k = probes::running_kernel();
  }
  if (dump_facts) {
    std::cout << probes::facts_to_json(*k).dump(1) << "\n";
    return 0;
  }
  nlohmann::json out = nlohmann::json::array();
  std::vector<std::tuple<std::string, std::string, std::string, std::string>> rows;  // name family attach why
  std::string bpf_error;
  if (planned_only) {
    for (const auto& p : probes::probe_catalog()) {
      auto cands = probes::plan_probe(p, *k);
      std::string mode = "unavailable", why;
      for (const auto& c : cands)
        if (c.skip.empty()) {
          mode = probes::attach_mode_name(c.mode);
          break;
        }
      if (mode == "unavailable") why = probes::summarize_reasons(cands);
      rows.emplace_back(p.name, p.family, mode, why);
    }
  } else {
    probes::SessionOptions so;
    so.ringbuf_bytes = 1 << 20;
    probes::ProbeSession s(*k, so);
    bpf_error = s.setup_error();
    for (const auto& r : s.results())
      rows.emplace_back(r.spec->name, r.spec->family, r.mode == probes::AttachMode::kNone ? "unavailable" : probes::attach_mode_name(r.mode),
                        r.reason);
    s.stop();
  }
  size_t ok = 0;
  for (const auto& [name, fam, mode, why] : rows) {
    ok += mode != "unavailable";
    out.push_back({{"name", name}, {"family", fam}, {"attach", mode}, {mode == "unavailable" ? "reason" : "fallback", why}});
  }
  if (json) {
    std::cout << nlohmann::json{{"kernel", k->release()}, {"planned_only", planned_only}, {"probes", out}}.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("kernel {}{}: {}/{} probes {}\n", k->release(), planned_only ? " (recorded facts, planned, not loaded)" : "",
                           ok, rows.size(), planned_only ? "would attach" : "attach");
  if (!bpf_error.empty()) std::cout << "BPF unavailable: " << bpf_error << "\n";
  std::string fam_prev;
  for (const auto& [name, fam, mode, why] : rows) {
    if (fam != fam_prev) std::cout << fmt::format("\n[{}]\n", fam);
    fam_prev = fam;
    if (mode == "unavailable") std::cout << fmt::format("  {:<44} unavailable: {}\n", name, why);
    else std::cout << fmt::format("  {:<44} {}{}\n", name, mode, why.empty() ? "" : fmt::format("   (skipped: {})", why));
  }
  return 0;
}

// `fsrace widening`: the kernel-side widening fsrace has, on the running kernel. Every kernel delay point
// with its hooks really loaded and attached (then detached), or why a hook is unavailable; then the other
// techniques (error injection, device-mapper, XFS errortags) as detected on this kernel, and which of
// them a run drives.
int list_widening(bool json, bool verbose) {
  auto k = probes::running_kernel();
  widening::DelaySession ds(*k, widening::DelayOptions{probes::delay_point_names(), "", 100, 0, -1});
  ds.stop();
  nlohmann::json points = nlohmann::json::array();
  for (const auto& p : probes::delay_points()) {
    nlohmann::json hooks = nlohmann::json::array();
    for (const auto& r : ds.results()) {
      if (r.point != &p) continue;
      nlohmann::json h = {{"name", r.hook->spec.name}, {"fs", r.hook->fs.empty() ? "any" : r.hook->fs},
                          {"attach", r.mode == probes::AttachMode::kNone ? "unavailable" : probes::attach_mode_name(r.mode)},
                          {"context", r.hook->context}};
      if (!r.reason.empty()) h[r.mode == probes::AttachMode::kNone ? "reason" : "fallback"] = r.reason;
      hooks.push_back(h);
    }
    points.push_back({{"name", p.name}, {"widens", p.widens}, {"hooks", hooks}});
  }
  nlohmann::json techniques = nlohmann::json::array();
  for (const auto& [name, what] : probes::kernel_techniques()) {
    auto t = widening::detect_technique(name, *k);
    techniques.push_back({{"name", name}, {"what", what}, {"available", t.available}, {"detail", t.detail},
                          {"driven", probes::kernel_technique_driven(name)}});
  }
  // [campaign] widening = "auto": what a case of each scenario x filesystem would arm here (variant 0)
  nlohmann::json autos = nlohmann::json::array();
  for (const char* fs : {"ext4", "xfs"}) {
    auto caps = widening::detect_auto_caps(*k, fs);
    for (const auto& sc : scenario_catalog()) {
      auto choice = widening::choose_auto_widening(caps, sc.name, fs, 0);
      nlohmann::json a = widening::auto_widening_json(choice);
      a.update({{"scenario", sc.name}, {"fs", fs}, {"note", widening::auto_widening_note(choice)}});
      autos.push_back(a);
    }
  }
  if (json) {
    std::cout << nlohmann::json{{"kernel", k->release()}, {"delay_cap_us", FSR_DELAY_MAX_US}, {"delays_unavailable", ds.setup_error()},
                                {"delay_points", points}, {"techniques", techniques}, {"auto", autos}}.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("kernel {}: kernel delay points (campaign: [scenario.<name>] kdelay = [...], kdelay_us, kdelay_ratio;\n"
                           "a BPF busy-wait of at most {} us per hit, for the test files only)\n", k->release(), FSR_DELAY_MAX_US);
  if (!ds.setup_error().empty()) std::cout << "kernel delays unavailable: " << ds.setup_error() << "\n";
  for (const auto& p : points) {
    std::cout << fmt::format("\n{}: {}\n", p["name"].get<std::string>(), p["widens"].get<std::string>());
    for (const auto& h : p["hooks"]) {
      std::string a = h["attach"];
      std::cout << fmt::format("  {:<40} {:<5} {}\n", h["name"].get<std::string>(), h["fs"].get<std::string>(),
                               a == "unavailable" ? "unavailable: " + h.value("reason", "") : a + (h.contains("fallback") ? "   (skipped: " + h.value("fallback", "") + ")" : ""));
      if (verbose) std::cout << fmt::format("      fires in: {}\n", h["context"].get<std::string>());
    }
  }
  std::cout << "\nother kernel-side techniques (campaign: kwiden = [...]; override-return / fail-function: kinject_errno,\n"
               "kinject_ratio, failing __filemap_add_folio for the racing threads on the test files; dm-delay: dm_delay_ms;\n"
               "xfs-errortag: xfs_minlen_alloc, errortag bmap_alloc_minlen_extent during the race on XFS cases;\n"
               "dm-flakey: a power cut after the race, fsync'ed data checked after journal replay, fsck):\n";
  for (const auto& t : techniques)
    std::cout << fmt::format("  {:<16} {}{}: {}\n", t["name"].get<std::string>(), t["available"].get<bool>() ? "available" : "unavailable",
                             t["driven"].get<bool>() ? "" : " (detected only)", t["detail"].get<std::string>());
  std::cout << "\n[campaign] widening = \"auto\" (scenarios without kdelay / kwiden of their own; campaigns/default.toml and\n"
               "all-scenarios.toml use it): per scenario x filesystem, what the first case would arm on this kernel (the delay\n"
               "profile rotates with the repetition and the scenario's place in the campaign; dm-delay on odd variants):\n";
  for (const auto& a : autos)
    std::cout << fmt::format("  {:<4} {:<22} {}\n", a["fs"].get<std::string>(), a["scenario"].get<std::string>(),
                             a["note"].get<std::string>().substr(std::string("auto widening (variant 0): ").size()));
  return 0;
}

// `fsrace events DIR` (issue 3): decodes a case's events.bin and prints it, one event per line.
struct EventFilter {
  std::optional<uint64_t> from_ns, to_ns;  // the case's clock (CLOCK_MONOTONIC ns, as ops and findings' time_ns)
  std::string file;                        // a test file's name (the trailer's inode table)
  std::optional<uint64_t> page;            // events whose page range covers this page
};

int print_events(const std::string& dir, size_t limit, bool header, const EventFilter& flt) {
  struct stat st{};
  bool is_dir = stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  std::string path = is_dir ? dir + "/events.bin" : dir;
  if (!path_exists(path)) throw Fatal(fmt::format("{} has no events.bin: pass a case directory of a run made with probes", dir));
  probes::EventsData d;
  try {
    d = probes::load_events(path);
  } catch (const std::exception& e) {
    throw Fatal(e.what());
  }
  if (header) {
    std::cout << "header: " << d.header.dump(1) << "\ntrailer: " << d.trailer.dump(1) << "\n";
    return 0;
  }
  if (flt.from_ns && flt.to_ns && *flt.to_ns < *flt.from_ns)
    throw Fatal(fmt::format("--to {} is before --from {}: give the window's start first", *flt.to_ns, *flt.from_ns));
  std::set<std::pair<uint32_t, uint64_t>> inodes;
  if (!flt.file.empty()) {
    inodes = inodes_of_file(d, flt.file);
    if (inodes.empty()) {
      std::string names;
      if (d.trailer.contains("inodes"))
        for (const auto& i : d.trailer["inodes"]) names += (names.empty() ? "" : ", ") + i.value("name", "");
      throw Fatal(fmt::format("--file {}: no such test file in {} (its files: {})", flt.file, path, names.empty() ? "none recorded" : names));
    }
  }
  // Times are relative to --from when given (the window a finding names), else to the first event.
  uint64_t t0 = flt.from_ns ? *flt.from_ns : d.events.empty() ? 0 : d.events.front().ts_ns;
  size_t n = 0, shown = 0;
  for (const auto& e : d.events) {
    if (flt.from_ns && e.ts_ns < *flt.from_ns) continue;
    if (flt.to_ns && e.ts_ns > *flt.to_ns) break;  // sorted by time
    if (!inodes.empty() && !inodes.count({e.dev, e.ino})) continue;
    if (flt.page) {
      auto r = event_page_range(e);
      if (!r || *flt.page < r->first || *flt.page > r->second) continue;
    }
    ++shown;
    if (limit && n++ >= limit) continue;
    std::cout << fmt::format("dev {}:{} ino {} ", e.dev >> 20, e.dev & 0xfffff, e.ino) << probes::describe_event(e, t0 ? t0 : 1) << "\n";
  }
  if (limit && shown > limit) std::cout << fmt::format("... {} more\n", shown - limit);
  bool filtered = flt.from_ns || flt.to_ns || !inodes.empty() || flt.page;
  std::cout << fmt::format("{}{} events, {} dropped (kernel {}, clock {})\n", filtered ? fmt::format("{} of ", shown) : "",
                           d.events.size(), d.trailer.value("dropped", 0), d.header.value("kernel", "?"), d.header.value("clock", "?"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fsrace: race campaigns against real Linux kernels (hole punch / mmap / O_DIRECT), with an oracle\n"
               "that decides from the data and the kernel log whether the kernel was wrong."};
  app.footer(kExitCodes);
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  // run
  auto* run = app.add_subcommand("run", "run a campaign: in a QEMU guest with --kernel K, else on the running kernel (host mode, needs root)");
  run->footer(kExitCodes);
  std::string campaign_path;
  bool local = false;
  std::optional<double> duration;
  std::optional<std::string> seed;  // validated by parse_seed_option (CLI11 takes -1 as 2^64 - 1)
  std::vector<std::string> fs_list, sc_list;
  RunOptions ropt;
  ropt.results_root = top_dir() + "/results";
  bool no_op_log = false, quiet = false;
  run->add_option("campaign", campaign_path, "campaign TOML file (default: campaigns/default.toml)");
  run->add_flag("--local", local, "host mode: run on the running kernel with loop devices (the default without --kernel)");
  run->add_option("--duration", duration, "race seconds per case (overrides the campaign)");
  run->add_option("--seed", seed, "seed, 0 to 2^53 - 1 (overrides the campaign)");
  run->add_option("--fs", fs_list, fmt::format("filesystem(s), comma-separated: {} (overrides the campaign; fsrace list filesystems)", fmt::join(known_filesystems(), ", ")));
  run->add_option("--scenario", sc_list, "scenario(s), comma-separated (overrides the campaign)");
  run->add_option("--results", ropt.results_root, "results store (default: <repo>/results)");
  run->add_option("--run-dir", ropt.run_dir, "exact run directory to write (default: <results>/<campaign>/<run-id>)");
  run->add_option("--workdir", ropt.workdir, "where disk images and mount points live during the run (default /var/tmp)");
  run->add_flag("--no-op-log", no_op_log, "do not record ops.bin (benchmark baseline; disables the oracle)");
  run->add_flag("--quiet", quiet, "no progress lines on stderr");
  std::string shard_text;
  run->add_option("--shard", shard_text, "run shard I of N of the case matrix (the same split everywhere; default: GitLab's "
                                         "CI_NODE_INDEX / CI_NODE_TOTAL or a Kubernetes Indexed Job's JOB_COMPLETION_INDEX + "
                                         "FSRACE_SHARD_TOTAL when set); merge shards with 'fsrace report A B ... --out DIR'");
  // VM mode (vm/, docs: README "VM mode")
  VmLaunch vml;
  run->add_option("--kernel", vml.kernel,
                  "VM mode: boot this kernel in QEMU and run the campaign inside it: a bzImage/vmlinuz/vmlinux, or 'debian' "
                  "(Debian 12's packaged kernel, fetched into .cache/kernels)");
  run->add_option("--modules", vml.modules, "VM mode: the kernel's modules tree (lib/modules/<release>; default: next to the image)");
  run->add_option("--jobs", vml.jobs, "VM mode: VMs at once; the fs x scenario x repetition matrix is spread over them "
                                      "(default: cores / 2, at least 1)")->check(CLI::Range(1, 64));
  bool no_probes = false;
  run->add_flag("--allow-host-cluster", ropt.allow_host_cluster,
                "host mode on ceph: start the cluster daemons on this machine and mount it with the running kernel's ceph.ko");
  run->add_flag("--no-probes", no_probes, "do not load the eBPF probes (benchmark baseline; same as [probes] enabled = false)");
  auto* inj = run->add_flag("--inject-corruption", ropt.inject_corruption,
                            "TEST ONLY: corrupt 4 known blocks on disk between race and verify");
  inj->group("");  // hidden
  bool bisect_exit = false;
  std::string bisect_class;
  run->add_flag("--bisect-exit", bisect_exit, "exit as a 'git bisect run' script: 0 no finding, 1 a finding (of "
                "--bisect-class if given), 125 skip (an error, a kernel that did not boot, only other classes)");
  run->add_option("--bisect-class", bisect_class, "with --bisect-exit: only this finding class is the bug");

  // explore (harness/explore.h, docs/explore.md)
  auto* exp = app.add_subcommand("explore", "search a kernel for races nobody described: short rounds over scenarios x filesystems x "
                                            "parameter sets x widening, the next rounds going where the probe events show near misses");
  std::string exp_campaign, exp_budget = "10m";
  ExploreOptions eopt;
  eopt.run.results_root = top_dir() + "/results";
  std::optional<std::string> exp_seed;
  std::vector<std::string> exp_fs, exp_sc;
  bool exp_quiet = false;
  exp->add_option("campaign", exp_campaign, "campaign TOML whose filesystems, scenarios, [fs.*] and [scenario.*] it explores "
                                            "(default: campaigns/all-scenarios.toml)");
  exp->add_option("--budget", exp_budget, "wall time for the rounds: 90s, 30m, 2h (default 10m)");
  exp->add_option("--round", eopt.round_s, "race seconds per round (default 3)")->check(CLI::Range(0.5, 600.0));
  exp->add_option("--repeats", eopt.repeats, "reruns of a round that found something, for its reproduction rate (default 3)")
      ->check(CLI::Range(0u, 100u));
  exp->add_option("--seed", exp_seed, "seed, 0 to 2^53 - 1 (same seed and kernel behaviour: same rounds in the same order)");
  exp->add_option("--fs", exp_fs, "filesystem(s), comma-separated (overrides the campaign)");
  exp->add_option("--scenario", exp_sc, "scenario(s), comma-separated (overrides the campaign)");
  exp->add_option("--results", eopt.run.results_root, "results store (default: <repo>/results)");
  exp->add_option("--workdir", eopt.run.workdir, "where disk images and mount points live (default /var/tmp)");
  exp->add_flag("--quiet", exp_quiet, "no line per round on stderr");
  VmLaunch exp_vml;
  exp->add_option("--kernel", exp_vml.kernel, "VM mode: explore this kernel in one QEMU guest (a bzImage/vmlinuz/vmlinux, or 'debian')");
  exp->add_option("--modules", exp_vml.modules, "VM mode: the kernel's modules tree (default: next to the image)");
  exp->footer("Host mode (the running kernel, root), or VM mode with --kernel K (one guest). Writes explore.json (allocation table, every round's signals) and a\n"
              "reproducer campaign per finding into the run directory.\n"
              "Exit code: 0 no finding, 1 findings, 2 bad input or environment, 130 interrupted.");

  // agent / vm-report: internal halves of VM mode (hidden)
  auto* agent = app.add_subcommand("agent", "VM guest agent (started by the guest's init; internal)");
  agent->group("");
  std::string agent_campaign;
  AgentOptions aopt;
  std::vector<std::string> agent_devices, agent_cases;
  agent->add_option("campaign", agent_campaign, "resolved campaign TOML")->required();
  agent->add_option("--out", aopt.out_dir, "result share (this VM's run directory)")->required();
  agent->add_option("--device", agent_devices, "fs=block device, e.g. ext4=/dev/vda");
  agent->add_option("--cases", agent_cases, "case names to run (comma-separated)");
  agent->add_option("--explore", aopt.explore, "fsrace explore: BUDGET_S,ROUND_S,REPEATS (rounds instead of --cases)");
  agent->add_flag("--quiet", quiet, "no progress lines");
  bool agent_no_hook = false;
  agent->add_flag("--no-test-hook", agent_no_hook, "ignore [vm] test_hook (a VM restarted after a hang or crash)");
  std::string agent_after_cut;
  agent->add_option("--after-power-cut", agent_after_cut, "the boot after [vm] power_cut: verify this case (its race ran before the cut)");
  auto* vmrep = app.add_subcommand("vm-report", "VM mode: final results of a run from vm.json + guest results + console (internal)");
  vmrep->group("");
  std::string vmrep_dir;
  vmrep->add_option("dir", vmrep_dir, "run directory")->required();

  // report
  auto* rep = app.add_subcommand("report", "print a run's summary again, or write its trace reports: report.html (timeline of "
                                            "every finding), trace.json (Perfetto / chrome://tracing), junit.xml; several runs "
                                            "(or the shards of one campaign) merge into one report");
  std::vector<std::string> rep_dirs;
  std::string rep_out;
  ReportFormats rep_fmt;
  rep->add_option("dirs", rep_dirs, "run directories (results/<campaign>/<run-id>), or one case directory to print")->required();
  rep->add_flag("--html", rep_fmt.html, "write report.html: one self-contained page (summary, repro statistics, timelines)");
  rep->add_flag("--perfetto", rep_fmt.perfetto, "write trace.json (Chrome trace-event format: ui.perfetto.dev, chrome://tracing)");
  rep->add_flag("--junit", rep_fmt.junit, "write junit.xml (fstests' xunit shape: Jenkins, GitLab, kdevops)");
  rep->add_flag("--json", rep_fmt.json, "with --out or several runs: write the (merged) findings.json; else print findings.json");
  rep->add_option("--out", rep_out, "where to write (default: the run directory; needed for several runs)");
  rep->footer("Without a format flag or --out, prints the summary. With --out or several runs and no format flag, writes all four.\n"
              "Exit code: the run's own (merged: the worst): 0 no finding, 1 findings, 130 interrupted, 2 a run that failed or never "
              "finished (or a directory that is not a run).");

  // analyze
  auto* ana = app.add_subcommand("analyze", "judge a stored run or case directory again from its files (ops.bin, events.bin, "
                                            "kmsg.log, race.json), e.g. after an oracle fix");
  std::string ana_dir, ana_out;
  bool ana_in_place = false;
  ana->add_option("dir", ana_dir, "run directory (results/<campaign>/<run-id>) or one of its case directories")->required();
  ana->add_option("--out", ana_out, "where to write findings.json / summary.txt (default: DIR/reanalysis)");
  ana->add_flag("--in-place", ana_in_place, "replace the directory's own findings.json / summary.txt (its inputs stay untouched)");
  ana->footer("Exit code: as the run's: 0 no finding, 1 findings, 130 an interrupted run, 2 bad input or a run that never finished.");

  // plan
  auto* pln = app.add_subcommand("plan", "print a campaign's case matrix: case names, filesystems, scenarios, seeds, parameters");
  std::string plan_path;
  bool plan_json = false;
  pln->add_option("campaign", plan_path, "campaign TOML file (default: campaigns/default.toml)");
  pln->add_flag("--json", plan_json, "machine-readable (the VM runner reads this)");
  std::string plan_shard;
  pln->add_option("--shard", plan_shard, "only shard I of N (as fsrace run --shard)");

  // replay
  auto* rpl = app.add_subcommand("replay", "rerun the case a finding came from and report how often it reproduces");
  ReplayOptions rpo;
  rpo.run.results_root = top_dir() + "/results";
  rpl->add_option("dir", rpo.run_dir, "run directory (results/<campaign>/<run-id>)")->required();
  rpl->add_option("--finding", rpo.finding, "index of the finding in findings.json (default 0)");
  rpl->add_option("--repeat", rpo.repeat, "how many reruns (default 1)")->check(CLI::Range(1u, 100000u));
  rpl->add_option("--results", rpo.run.results_root, "results store for the reruns (default: <repo>/results)");
  rpl->add_option("--workdir", rpo.run.workdir, "where disk images and mount points live (default /var/tmp)");
  rpl->footer("Exit code: 1 if the finding reproduced at least once, 0 if never, 2 on a bad run directory, 130 if interrupted.");
  // probes (issue 3)
  auto* prb = app.add_subcommand("probes", "list every eBPF probe with the attach mode it gets on the running kernel, or why not");
  std::string facts_path;
  bool dump_facts = false, probes_json = false;
  prb->add_option("--facts", facts_path, "plan for a recorded kernel (JSON from --dump-facts) instead of loading here");
  prb->add_flag("--dump-facts", dump_facts, "print the kernel facts the planner uses, as JSON");
  prb->add_flag("--json", probes_json, "machine-readable listing");
  prb->footer("Loading needs root; without it every probe is listed as unavailable with the reason. Exit code 0.");

  auto* wid = app.add_subcommand("widening", "list the kernel-side race-window widening on the running kernel: BPF delay points "
                                             "(attach mode or why not), the error-injection / device-mapper / XFS errortag techniques, and what "
                                             "[campaign] widening = \"auto\" arms per scenario x filesystem here");
  bool wid_json = false, wid_verbose = false;
  wid->add_flag("--json", wid_json, "machine-readable listing");
  wid->add_flag("-v,--verbose", wid_verbose, "also say where each hook fires and what the kernel holds there");
  wid->footer("Loading needs root; without it every delay hook is unavailable with the reason. Exit code 0.");

  auto* evs = app.add_subcommand("events", "print the probe events of a case (its events.bin), one per line");
  std::string ev_dir;
  size_t ev_limit = 0;
  bool ev_header = false;
  evs->add_option("dir", ev_dir, "case directory (results/<campaign>/<run-id>/<case>) or an events.bin file")->required();
  evs->add_option("--limit", ev_limit, "print at most N events");
  evs->add_flag("--header", ev_header, "print the header (attach modes) and trailer (counts, drops, inodes) instead");
  EventFilter ev_flt;
  evs->add_option("--from", ev_flt.from_ns, "only events at or after this time: ns on the case's clock (a finding's time_ns, an op's start_ns); times print relative to it");
  evs->add_option("--to", ev_flt.to_ns, "only events at or before this time (ns on the case's clock)");
  evs->add_option("--file", ev_flt.file, "only events on this test file (f0, f1, ...)");
  evs->add_option("--page", ev_flt.page, "only events whose page range covers this page (4 KiB index)");

  // list
  auto* lst = app.add_subcommand("list", "list scenarios, filesystems or finding classes");
  std::string what = "all";
  bool l_sc = false, l_fs = false, l_cl = false;
  lst->add_option("what", what, "scenarios | filesystems | classes | all")
      ->check(CLI::IsMember({"scenarios", "filesystems", "classes", "all"}));
  lst->add_flag("--scenarios", l_sc, "scenarios, their parameters and what they find");
  lst->add_flag("--filesystems", l_fs, "filesystems and default mkfs options");
  lst->add_flag("--classes", l_cl, "finding classes");

  add_kernel_command(app);  // fsrace kernel build|list|path (kernels/kbuild.py)
  add_bisect_command(app);  // fsrace bisect (harness/cli_bisect.cpp)

  if (argc > 1 && argv[1][0] != '-') {  // a mistyped command: name it, not "a subcommand is required"
    bool known = false;
    std::string names;
    for (const CLI::App* sc : app.get_subcommands([](const CLI::App*) { return true; })) {
      known = known || sc->check_name(argv[1]);
      names += (names.empty() ? "" : ", ") + sc->get_name();
    }
    if (!known) {
      std::cerr << "fsrace: unknown command '" << argv[1] << "'; commands: " << names << " (see 'fsrace --help')\n";
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "fsrace: " << e.what() << " (see 'fsrace --help')\n";
    return 2;
  }

  bool bisect_map = false;  // fsrace run --bisect-exit: a run error is a skip (125)
  try {
    if (*lst) {
      if (l_sc) what = "scenarios";
      if (l_fs) what = "filesystems";
      if (l_cl) what = "classes";
      if (what == "scenarios" || what == "all") list_scenarios();
      if (what == "filesystems" || what == "all") {
        if (what == "all") std::cout << "Filesystems:\n";
        list_filesystems();
      }
      if (what == "classes" || what == "all") {
        if (what == "all") std::cout << "\nFinding classes:\n";
        list_classes();
      }
      return 0;
    }
    if (*rep) {
      bool write = rep_fmt.any() && !(rep_fmt.json && !rep_fmt.html && !rep_fmt.perfetto && !rep_fmt.junit && rep_out.empty());
      if (rep_dirs.size() == 1 && !write && rep_out.empty()) return report_dir(rep_dirs[0], rep_fmt.json);
      if (rep_dirs.size() > 1 && rep_out.empty())
        throw Fatal(fmt::format("{} run directories given without --out: pass --out DIR for the merged report", rep_dirs.size()));
      if (!rep_fmt.any()) rep_fmt = {true, true, true, true};
      ReportModel m = load_report(rep_dirs, {}, rep_fmt.html || rep_fmt.perfetto);
      std::string out = rep_out.empty() ? m.runs[0].dir : rep_out;
      for (const auto& p : write_reports(m, out, rep_fmt)) std::cout << p << "\n";
      // A damaged ops.bin / events.bin: the reports are written (the verdict is findings.json's), but
      // without those timelines, so the report is not whole: say which file, exit 2.
      std::vector<std::string> damaged = m.damaged;
      for (const auto& [dir, cd] : m.loaded)
        if (cd && cd->note.find("unreadable") != std::string::npos) damaged.push_back(cd->note);
      if (!damaged.empty()) {
        std::cerr << fmt::format("fsrace: {}{}: the reports were written without its timelines; restore the file or rerun the case\n",
                                 damaged[0], damaged.size() > 1 ? fmt::format(" (and {} more case(s))", damaged.size() - 1) : "");
        return 2;
      }
      return exit_code_of(m.doc);
    }
    if (*ana) {
      AnalyzeResult r = analyze_path(ana_dir, ana_out, ana_in_place);
      for (const auto& n : r.notes) std::cerr << "fsrace: note: " << n << "\n";
      std::cout << render_summary(r.doc) << fmt::format("\nanalysis: {}\n", r.out);
      return r.exit_code;
    }
    if (*pln) {
      if (plan_path.empty()) plan_path = top_dir() + "/campaigns/default.toml";
      Campaign c = load_campaign(plan_path, scenario_catalog());
      check_matrix_fits(c);
      nlohmann::json cases = nlohmann::json::array();
      Shard psh = plan_shard.empty() ? Shard{} : parse_shard(plan_shard);
      for (const auto& cs : shard_cases(case_matrix(c), psh))
        cases.push_back({{"name", cs.name}, {"fs", cs.fs.type}, {"scenario", cs.sc.name}, {"rep", cs.rep}, {"seed", cs.seed},
                         {"device_size_mib", cs.fs.device_size_mib}, {"params", cs.sc.params}, {"kdelay", cs.sc.kdelay},
                         {"kwiden", cs.sc.kwiden}});
      if (plan_json) {
        std::cout << nlohmann::json{{"campaign", c.name}, {"source", c.source}, {"cases", cases}}.dump(1) << "\n";
      } else {
        for (const auto& cs : cases)
          std::cout << fmt::format("{:<40} fs {:<5} scenario {:<22} seed {}\n", cs["name"].get<std::string>(), cs["fs"].get<std::string>(),
                                   cs["scenario"].get<std::string>(), cs["seed"].get<uint64_t>());
        std::cout << fmt::format("{} case(s), {:g} s of racing each\n", cases.size(), c.duration_s);
      }
      return 0;
    }
    if (*rpl) {
      rpo.run.verbose = false;
      int rc = replay(rpo);
      if (rc == 130) std::cerr << "fsrace: interrupted; the replay runs so far are in " << rpo.run.results_root << "\n";
      return rc;
    }
    if (*vmrep) {
      VmReportResult r = vm_report(vmrep_dir);
      std::cout << r.summary << fmt::format("\nresults: {}\n{}\n", vmrep_dir, write_run_reports(vmrep_dir));
      if (!r.error.empty()) std::cerr << "fsrace: " << r.error << "\n";
      return r.exit_code;
    }
    if (*agent) {
      auto catalog = scenario_catalog();
      ropt.campaign = load_campaign(agent_campaign, catalog);
      ropt.verbose = !quiet;
      ropt.workdir = "/tmp";
      for (const auto& d : split_list(agent_devices)) {
        auto eq = d.find('=');
        if (eq == std::string::npos) throw Fatal(fmt::format("--device {}: expected fs=/dev/X", d));
        ropt.devices[d.substr(0, eq)] = d.substr(eq + 1);
      }
      ropt.only_cases = split_list(agent_cases);
      ropt.after_power_cut = agent_after_cut;
      aopt.test_hook = !agent_no_hook;
      return run_agent(ropt, aopt);
    }
    if (*prb) return list_probes(facts_path, dump_facts, probes_json);
    if (*evs) return print_events(ev_dir, ev_limit, ev_header, ev_flt);
    if (*wid) return list_widening(wid_json, wid_verbose);
    if (*exp) {
      std::optional<double> b = parse_budget(exp_budget);
      if (!b) throw Fatal(fmt::format("--budget '{}' is not a duration: give seconds or a number with s, m or h (90s, 30m, 2h)", exp_budget));
      eopt.budget_s = *b;
      if (exp_campaign.empty()) exp_campaign = top_dir() + "/campaigns/all-scenarios.toml";
      auto catalog = scenario_catalog();
      eopt.run.campaign = load_campaign(exp_campaign, catalog);
      CampaignOverrides ov;
      if (exp_seed) ov.seed = parse_seed_option(*exp_seed);
      ov.filesystems = split_list(exp_fs);
      ov.scenarios = split_list(exp_sc);
      apply_overrides(eopt.run.campaign, ov, catalog);
      eopt.run.campaign.name = "explore-" + eopt.run.campaign.name;
      eopt.run.verbose = !exp_quiet;
      if (explore_arms(eopt.run.campaign).empty())
        throw Fatal("explore: no scenario of the campaign runs on its filesystems: pick others with --fs / --scenario");
      if (!exp_vml.kernel.empty()) {  // one guest runs every round (vm/runner.py --explore, the agent's --explore)
        eopt.run.campaign.duration_s = eopt.round_s;
        eopt.run.campaign.repetitions = 1;
        exp_vml.jobs = 1;
        exp_vml.explore = explore_spec(eopt);
        exec_vm_runner(eopt.run, exp_vml);
      }
      if (!exp_vml.modules.empty()) throw Fatal("--modules needs --kernel K (VM mode)");
      return run_explore(eopt);
    }
    if (*run) {
      (void)local;
      if (campaign_path.empty()) campaign_path = top_dir() + "/campaigns/default.toml";
      auto catalog = scenario_catalog();
      ropt.campaign = load_campaign(campaign_path, catalog);
      CampaignOverrides ov;
      ov.duration_s = duration;
      if (seed) ov.seed = parse_seed_option(*seed);
      ov.filesystems = split_list(fs_list);
      ov.scenarios = split_list(sc_list);
      apply_overrides(ropt.campaign, ov, catalog);
      ropt.log_ops = !no_op_log;
      ropt.verbose = !quiet;
      ropt.shard = shard_text.empty() ? shard_from_env([](const char* k) -> const char* { return std::getenv(k); }) : parse_shard(shard_text);
      if (ropt.shard.active() && shard_cases(case_matrix(ropt.campaign), ropt.shard).empty())
        throw Fatal(fmt::format("shard {}/{} of campaign {} is empty: its matrix has {} case(s), so use at most that many shards",
                                ropt.shard.index, ropt.shard.total, ropt.campaign.name, case_matrix(ropt.campaign).size()));
      if (!bisect_class.empty() && !bisect_exit) throw Fatal("--bisect-class needs --bisect-exit");
      check_bisect_class(bisect_class);
      bisect_map = bisect_exit;
      if (!vml.kernel.empty()) {
        if (local) throw Fatal("--local (host mode) and --kernel (VM mode) exclude each other: pick one");
        if (bisect_exit) return run_vm_bisect_exit(ropt, vml, bisect_class);
        exec_vm_runner(ropt, vml);
      }
      if (!vml.modules.empty() || vml.jobs) throw Fatal("--modules and --jobs need --kernel K (VM mode)");
      ropt.probes = !no_probes;
      RunOutcome o = run_host(ropt);
      std::cout << read_file(o.dir + "/summary.txt");
      std::string report_note = write_run_reports(o.dir);
      std::cout << fmt::format("\nresults: {}\n{}\n", o.dir, report_note);
      if (o.interrupted) {
        std::cerr << "fsrace: interrupted; results so far are in " << o.dir << "\n";
        return 130;
      }
      if (bisect_exit) return bisect_exit_code(o.dir, o.findings ? 1 : 0, bisect_class);
      return o.findings ? 1 : 0;
    }
  } catch (const Fatal& e) {
    std::cerr << "fsrace: " << e.what() << "\n";
    if (bisect_map && e.exit_code() == 2) return kBisectSkip;
    return e.exit_code();
  } catch (const probes::ProbeError& e) {
    std::cerr << "fsrace: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "fsrace: internal error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
