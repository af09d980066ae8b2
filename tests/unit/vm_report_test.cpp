// vm-report over synthetic VM run directories: one finding per boot that hung or crashed, for the case it
// ended in; cases a restarted boot ran are not "not finished"; QEMU dying is an error, not a finding.
#include "harness/vm_report.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <stdlib.h>

#include <filesystem>

#include "core/util.h"

using namespace fsrace;
using json = nlohmann::json;

namespace {

struct RunDir {
  std::string path;
  RunDir() {
    char tmpl[] = "/tmp/fsrace-vmreport-test.XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~RunDir() { std::filesystem::remove_all(path); }
  void put(const std::string& rel, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(path + "/" + rel).parent_path());
    write_file_atomic(path + "/" + rel, text);
  }
  json findings() const { return json::parse(read_file(path + "/findings.json")); }
};

json vm_json(const json& boots) {
  json cases = json::array();
  for (const auto& b : boots)
    for (const auto& c : b["cases"])
      if (std::find(cases.begin(), cases.end(), c) == cases.end()) cases.push_back(c);
  return {{"schema", "fsrace-vm/1"}, {"status", "complete"}, {"run", {{"id", "t"}, {"campaign", "c"}}},
          {"kernel", {{"release", "6.1.0-test"}}}, {"accel", "tcg"}, {"jobs", 1},
          {"vms", json::array({{{"index", 0}, {"cases", cases}, {"boots", boots}}})}};
}

json guest_findings(const std::vector<std::string>& cases) {
  json cs = json::array();
  for (const auto& c : cases) cs.push_back({{"case", c}, {"fs", "ext4"}, {"scenario", "punch-vs-read"}, {"status", "complete"}});
  return {{"schema", "fsrace-findings/1"}, {"status", "complete"}, {"cases", cs}, {"findings_by_class", json::object()},
          {"findings", json::array()}};
}

std::string case_status(const json& doc, const std::string& name) {
  for (const auto& c : doc["cases"])
    if (c["case"] == name) return c["status"];
  return "(missing)";
}

}  // namespace

TEST(VmReport, HangThenRestartedBootCompletes) {
  RunDir d;
  std::string hang_console = "fsrace-agent: started\nracing for 2 s\nsysrq: Show Blocked State\ntask:fsr-punch1 state:D\n";
  d.put("console.log", hang_console);
  d.put("console-vm0-boot1.log", "fsrace-agent: started\nfsrace-init: agent exit 0\n");
  d.put("vm0-boot1/findings.json", guest_findings({"ext4-punch-vs-read"}).dump());
  json boots = json::array(
      {{{"boot", 0}, {"dir", "vm0"}, {"console", "console.log"}, {"cases", {"ext4-punch-vs-fault", "ext4-punch-vs-read"}},
        {"case", "ext4-punch-vs-fault"}, {"boot_s", 5.0}, {"outcome", "hang"}, {"detail", "no progress for 8 s"},
        {"hang", {{"no_progress_s", 8.0}, {"timeout_s", 8}, {"sysrq_console_offset", hang_console.find("sysrq")}}},
        {"last_heartbeat", {{"case", "ext4-punch-vs-fault"}, {"phase", "race"}, {"progress", 7}}}},
       {{"boot", 1}, {"dir", "vm0-boot1"}, {"console", "console-vm0-boot1.log"}, {"cases", {"ext4-punch-vs-read"}},
        {"case", ""}, {"boot_s", 6.0}, {"outcome", "exited"}, {"guest_exit", 0},
        {"last_heartbeat", {{"case", "ext4-punch-vs-read"}, {"phase", "exit"}}}}});
  d.put("vm.json", vm_json(boots).dump());
  VmReportResult r = vm_report(d.path);
  EXPECT_EQ(r.exit_code, 1);
  json doc = d.findings();
  EXPECT_EQ(doc["findings_by_class"].value("hang", 0), 1);
  EXPECT_EQ(doc["findings"][0]["case"], "ext4-punch-vs-fault");
  EXPECT_NE(doc["findings"][0]["detail"].get<std::string>().find("console.log"), std::string::npos);
  EXPECT_EQ(case_status(doc, "ext4-punch-vs-fault"), "not finished: the guest hung");
  EXPECT_EQ(case_status(doc, "ext4-punch-vs-read"), "complete");
  EXPECT_EQ(doc["cases"].size(), 2u);
  EXPECT_EQ(doc["run"]["vm"]["boot_to_agent_s"].size(), 2u);
}

TEST(VmReport, EachBootsConsoleIsScannedForItsOwnCase) {
  RunDir d;
  d.put("console.log", "fsrace-agent: started\n[   9.100000] Kernel panic - not syncing: sysrq triggered crash\n");
  d.put("console-vm0-boot1.log", "fsrace-agent: started\n[  12.000000] Kernel panic - not syncing: Fatal exception\n");
  d.put("console-vm0-boot2.log", "fsrace-agent: started\nfsrace-init: agent exit 0\n");
  d.put("vm0-boot2/findings.json", guest_findings({"c-x"}).dump());
  json boots = json::array(
      {{{"boot", 0}, {"dir", "vm0"}, {"console", "console.log"}, {"cases", {"a-x", "b-x", "c-x"}}, {"case", "a-x"},
        {"outcome", "crashed"}, {"detail", "Kernel panic"}, {"last_heartbeat", {{"case", "a-x"}, {"phase", "race"}}}},
       {{"boot", 1}, {"dir", "vm0-boot1"}, {"console", "console-vm0-boot1.log"}, {"cases", {"b-x", "c-x"}}, {"case", "b-x"},
        {"outcome", "crashed"}, {"detail", "Kernel panic"}, {"last_heartbeat", {{"case", "b-x"}, {"phase", "race"}}}},
       {{"boot", 2}, {"dir", "vm0-boot2"}, {"console", "console-vm0-boot2.log"}, {"cases", {"c-x"}}, {"case", ""},
        {"outcome", "exited"}, {"guest_exit", 0}}});
  d.put("vm.json", vm_json(boots).dump());
  VmReportResult r = vm_report(d.path);
  EXPECT_EQ(r.exit_code, 1);
  json doc = d.findings();
  std::vector<std::string> crashed;
  for (const auto& f : doc["findings"])
    if (f["class"] == "kernel-crash") crashed.push_back(f["case"]);
  EXPECT_EQ(crashed, (std::vector<std::string>{"a-x", "b-x"}));
  EXPECT_EQ(case_status(doc, "a-x"), "not finished: the guest kernel crashed");
  EXPECT_EQ(case_status(doc, "b-x"), "not finished: the guest kernel crashed");
  EXPECT_EQ(case_status(doc, "c-x"), "complete");
  EXPECT_EQ(doc["cases"].size(), 3u);
}

TEST(VmReport, QemuKilledIsAnErrorNotAFinding) {
  RunDir d;
  d.put("console.log", "fsrace-agent: started\nracing for 60 s\n");
  json boots = json::array({{{"boot", 0}, {"dir", "vm0"}, {"console", "console.log"},
                             {"cases", {"ext4-punch-vs-fault", "xfs-punch-vs-fault"}}, {"case", "ext4-punch-vs-fault"}, {"outcome", "died"},
                             {"detail", "QEMU was killed by SIGKILL from outside fsrace"}}});
  d.put("vm.json", vm_json(boots).dump());
  VmReportResult r = vm_report(d.path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.error.find('\n'), std::string::npos);
  EXPECT_NE(r.error.find("vm-error: vm0: QEMU was killed by SIGKILL"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("console kept in"), std::string::npos) << r.error;
  json doc = d.findings();
  EXPECT_EQ(doc["findings"].size(), 0u);
  EXPECT_EQ(case_status(doc, "ext4-punch-vs-fault"), "not finished: QEMU died (vm-error)");
  EXPECT_EQ(case_status(doc, "xfs-punch-vs-fault"), "not run: the VM ended before it (QEMU died)");
}

TEST(VmReport, AgentErrorFromTheConsoleWhenTheShareWasFull) {
  RunDir d;
  d.put("console.log",
        "fsrace-agent: started (uptime 4.0 s)\r\nfsrace: case 1/1: ext4-punch-vs-fault\r\n"
        "fsrace: cannot write /out/ext4-punch-vs-fault/ops.bin.tmp: No space left on device\r\n"
        "fsrace-agent: cannot write agent-exit: cannot write /out/agent-exit.tmp.1: No space left on device\r\n"
        "fsrace-init: agent exit 2\r\n");
  json boots = json::array({{{"boot", 0}, {"dir", "vm0"}, {"console", "console.log"}, {"cases", {"ext4-punch-vs-fault"}},
                             {"outcome", "exited"}, {"guest_exit", 2}}});
  d.put("vm.json", vm_json(boots).dump());
  VmReportResult r = vm_report(d.path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.error, "in the guest: cannot write /out/ext4-punch-vs-fault/ops.bin.tmp: No space left on device");
}

TEST(VmReport, AgentKilledInTheGuestIsAnError) {
  RunDir d;
  d.put("console.log", "fsrace-agent: started\nfsrace-init: agent exit 134\n");
  json boots = json::array({{{"boot", 0}, {"dir", "vm0"}, {"console", "console.log"}, {"cases", {"ext4-punch-vs-fault"}},
                             {"outcome", "exited"}, {"guest_exit", 134}}});
  d.put("vm.json", vm_json(boots).dump());
  VmReportResult r = vm_report(d.path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.error.find("the guest agent ended with status 134"), std::string::npos) << r.error;
}

TEST(VmReport, AgentOomKilledInTheGuestSaysSoAndWhatToRaise) {
  RunDir d;
  d.put("console.log", "fsrace-agent: started\n[   44.424570] Out of memory: Killed process 65 (fsrace) total-vm:1554048kB, "
                       "anon-rss:934132kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:2084kB oom_score_adj:0\nKilled\n"
                       "fsrace-init: agent exit 137\n");
  json boots = json::array({{{"boot", 0}, {"dir", "vm0"}, {"console", "console.log"}, {"cases", {"ext4-punch-vs-fault"}},
                             {"outcome", "exited"}, {"guest_exit", 137}}});
  json vm = vm_json(boots);
  vm["memory_mib"] = 1024;
  d.put("vm.json", vm.dump());
  VmReportResult r = vm_report(d.path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.error.find("the guest's OOM killer killed the agent at 912 MiB resident"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("raise [vm] memory_mib (now 1024 MiB)"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("kernel-crash"), std::string::npos) << r.error;
}

TEST(VmReport, SingleBootRecordWithoutBoots) {
  RunDir d;
  d.put("console.log", "fsrace-agent: started\n");
  d.put("vm0/findings.json", guest_findings({"ext4-punch-vs-read"}).dump());
  json v = {{"index", 0}, {"dir", "vm0"}, {"console", "console.log"}, {"cases", {"ext4-punch-vs-read"}},
            {"outcome", "exited"}, {"guest_exit", 0}, {"boot_s", 4.0}};
  d.put("vm.json", json{{"run", {{"id", "t"}}}, {"kernel", {{"release", "x"}}}, {"vms", json::array({v})}}.dump());
  VmReportResult r = vm_report(d.path);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(case_status(d.findings(), "ext4-punch-vs-read"), "complete");
}
