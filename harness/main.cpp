// fsrace command line: run, report, list. Exit codes: 0 no finding, 1 findings, 2 usage /
// configuration / environment error, 130 interrupted (results so far are kept).
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdlib>
#include <iostream>

#include "harness/agent.h"
#include "harness/campaign.h"
#include "harness/findings.h"
#include "harness/replay.h"
#include "harness/report.h"
#include "harness/runner.h"
#include "harness/util.h"
#include "harness/vm_report.h"
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
    std::cout << "    filesystems: ext4, xfs\n    finds: " << cls << "\n    parameters ([scenario." << sp.name << "]):\n";
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
    std::cout << fmt::format("{:<6} mkfs.{} {}  (device_size_mib {})\n", f, f, mk, c.device_size_mib);
  }
}

void list_classes() {
  for (const auto& c : finding_classes()) std::cout << fmt::format("{:<18} {:<10} {}\n", c.name, c.source, c.meaning);
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
  std::optional<uint64_t> seed;
  std::vector<std::string> fs_list, sc_list;
  RunOptions ropt;
  ropt.results_root = top_dir() + "/results";
  bool no_op_log = false, quiet = false;
  run->add_option("campaign", campaign_path, "campaign TOML file (default: campaigns/default.toml)");
  run->add_flag("--local", local, "host mode: run on the running kernel with loop devices (the only mode so far)");
  run->add_option("--duration", duration, "race seconds per case (overrides the campaign)");
  run->add_option("--seed", seed, "seed (overrides the campaign)");
  run->add_option("--fs", fs_list, "filesystem(s), comma-separated: ext4, xfs (overrides the campaign)");
  run->add_option("--scenario", sc_list, "scenario(s), comma-separated (overrides the campaign)");
  run->add_option("--results", ropt.results_root, "results store (default: <repo>/results)");
  run->add_option("--run-dir", ropt.run_dir, "exact run directory to write (default: <results>/<campaign>/<run-id>)");
  run->add_option("--workdir", ropt.workdir, "where disk images and mount points live during the run (default /var/tmp)");
  run->add_flag("--no-op-log", no_op_log, "do not record ops.bin (benchmark baseline; disables the oracle)");
  run->add_flag("--quiet", quiet, "no progress lines on stderr");
  // VM mode (vm/, docs: README "VM mode")
  VmLaunch vml;
  run->add_option("--kernel", vml.kernel,
                  "VM mode: boot this kernel in QEMU and run the campaign inside it: a bzImage/vmlinuz/vmlinux, or 'debian' "
                  "(Debian 12's packaged kernel, fetched into .cache/kernels)");
  run->add_option("--modules", vml.modules, "VM mode: the kernel's modules tree (lib/modules/<release>; default: next to the image)");
  run->add_option("--jobs", vml.jobs, "VM mode: VMs at once; the fs x scenario x repetition matrix is spread over them "
                                      "(default: cores / 2, at least 1)")->check(CLI::Range(1, 64));
  auto* inj = run->add_flag("--inject-corruption", ropt.inject_corruption,
                            "TEST ONLY: corrupt 4 known blocks on disk between race and verify");
  inj->group("");  // hidden

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
  agent->add_flag("--quiet", quiet, "no progress lines");
  auto* vmrep = app.add_subcommand("vm-report", "VM mode: final results of a run from vm.json + guest results + console (internal)");
  vmrep->group("");
  std::string vmrep_dir;
  vmrep->add_option("dir", vmrep_dir, "run directory")->required();

  // report
  auto* rep = app.add_subcommand("report", "print the summary of a run directory again");
  std::string rep_dir;
  bool rep_json = false;
  rep->add_option("dir", rep_dir, "run directory (results/<campaign>/<run-id>) or one of its case directories")->required();
  rep->add_flag("--json", rep_json, "print findings.json instead");
  rep->footer("Exit code: the run's own (0 no finding, 1 findings), 2 if DIR is not a run.");

  // replay
  auto* rpl = app.add_subcommand("replay", "rerun the case a finding came from and report how often it reproduces");
  ReplayOptions rpo;
  rpo.run.results_root = top_dir() + "/results";
  rpl->add_option("dir", rpo.run_dir, "run directory (results/<campaign>/<run-id>)")->required();
  rpl->add_option("--finding", rpo.finding, "index of the finding in findings.json (default 0)");
  rpl->add_option("--repeat", rpo.repeat, "how many reruns (default 1)")->check(CLI::Range(1u, 100000u));
  rpl->add_option("--results", rpo.run.results_root, "results store for the reruns (default: <repo>/results)");
  rpl->add_option("--workdir", rpo.run.workdir, "where disk images and mount points live (default /var/tmp)");
  rpl->footer("Exit code: 1 if the finding reproduced at least once, 0 if never, 2 on a bad run directory.");

  // list
  auto* lst = app.add_subcommand("list", "list scenarios, filesystems or finding classes");
  std::string what = "all";
  bool l_sc = false, l_fs = false, l_cl = false;
  lst->add_option("what", what, "scenarios | filesystems | classes | all")
      ->check(CLI::IsMember({"scenarios", "filesystems", "classes", "all"}));
  lst->add_flag("--scenarios", l_sc, "scenarios, their parameters and what they find");
  lst->add_flag("--filesystems", l_fs, "filesystems and default mkfs options");
  lst->add_flag("--classes", l_cl, "finding classes");

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
    if (*rep) return report_dir(rep_dir, rep_json);
    if (*rpl) {
      rpo.run.verbose = false;
      return replay(rpo);
    }
    if (*vmrep) {
      VmReportResult r = vm_report(vmrep_dir);
      std::cout << r.summary << fmt::format("\nresults: {}\n", vmrep_dir);
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
        if (eq == std::string::npos) throw UsageError(fmt::format("--device {}: expected fs=/dev/X", d));
        ropt.devices[d.substr(0, eq)] = d.substr(eq + 1);
      }
      ropt.only_cases = split_list(agent_cases);
      return run_agent(ropt, aopt);
    }
    if (*run) {
      (void)local;
      if (campaign_path.empty()) campaign_path = top_dir() + "/campaigns/default.toml";
      auto catalog = scenario_catalog();
      ropt.campaign = load_campaign(campaign_path, catalog);
      CampaignOverrides ov;
      ov.duration_s = duration;
      ov.seed = seed;
      ov.filesystems = split_list(fs_list);
      ov.scenarios = split_list(sc_list);
      apply_overrides(ropt.campaign, ov, catalog);
      ropt.log_ops = !no_op_log;
      ropt.verbose = !quiet;
      if (!vml.kernel.empty()) {
        if (local) throw UsageError("--local (host mode) and --kernel (VM mode) exclude each other: pick one");
        exec_vm_runner(ropt, vml);
      }
      if (!vml.modules.empty() || vml.jobs) throw UsageError("--modules and --jobs need --kernel K (VM mode)");
      RunOutcome o = run_host(ropt);
      std::cout << read_file(o.dir + "/summary.txt");
      std::cout << fmt::format("\nresults: {}\n", o.dir);
      if (o.interrupted) {
        std::cerr << "fsrace: interrupted; results so far are in " << o.dir << "\n";
        return 130;
      }
      return o.findings ? 1 : 0;
    }
  } catch (const UsageError& e) {
    std::cerr << "fsrace: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "fsrace: internal error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
