// Trace reports: Wilson intervals, the merge of run documents (shards), shard parsing from flags and
// schedulers' variables, kernel config highlights, and the writers on synthetic run directories: a run
// with 3500 findings (bounded itemising), hostile strings (escaped), a clean run.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fmt/core.h>
#include <map>

#include "core/campaign.h"
#include "core/oplog.h"
#include "core/util.h"
#include "harness/report_formats.h"
#include "harness/report_model.h"
#include "harness/results.h"

using namespace fsrace;
using json = nlohmann::json;

namespace {

std::string temp_dir() {
  char t[] = "/tmp/fsrace-report-test.XXXXXX";
  return mkdtemp(t);
}

json case_rec(const std::string& name, const std::string& fs, uint64_t findings, const std::string& status = "complete") {
  return {{"case", name}, {"fs", fs}, {"scenario", "punch-vs-fault"}, {"status", status}, {"findings", findings}, {"repetition", 0},
          {"timing", {{"race_s", 1.0}}}};
}

json run_doc(const std::string& id, std::vector<json> cases, std::vector<json> findings, json shard = nullptr) {
  json run = {{"id", id}, {"campaign", "c"}, {"kernel", "6.1"}, {"mode", "host"}, {"seed", 1}, {"duration_s", 1.0}};
  if (!shard.is_null()) run["shard"] = shard;
  std::map<std::string, uint64_t> by;
  for (const auto& f : findings) ++by[f["class"].get<std::string>()];
  return {{"schema", kFindingsSchema}, {"run", run},      {"status", "complete"}, {"cases", cases},
          {"findings_by_class", by},   {"informational_by_class", json::object()}, {"suppressed", 0}, {"findings", findings}};
}

json finding(const std::string& cls, const std::string& c, std::string detail = "x") {
  return {{"class", cls}, {"fs", "ext4"}, {"scenario", "punch-vs-fault"}, {"case", c}, {"phase", "race"}, {"file", "f0"}, {"block", 3},
          {"detail", detail}, {"time_ns", 1000}};
}

const char* env_of(const std::map<std::string, std::string>& m, const char* k) {
  auto it = m.find(k);
  return it == m.end() ? nullptr : it->second.c_str();
}

}  // namespace

TEST(Report, Wilson95) {
  Interval a = wilson95(0, 10);
  EXPECT_NEAR(a.lo, 0.0, 1e-9);
  EXPECT_NEAR(a.hi, 0.2775, 1e-3);
  Interval b = wilson95(5, 10);
  EXPECT_NEAR(b.lo, 0.2366, 1e-3);
  EXPECT_NEAR(b.hi, 0.7634, 1e-3);
  Interval c = wilson95(10, 10);
  EXPECT_NEAR(c.hi, 1.0, 1e-9);
  EXPECT_NEAR(c.lo, 0.7225, 1e-3);
  Interval z = wilson95(0, 0);
  EXPECT_EQ(z.lo, 0);
  EXPECT_EQ(z.hi, 1);
}

TEST(Report, MergeSumsShardsAndNamesMissingOnes) {
  json a = run_doc("a", {case_rec("ext4-p", "ext4", 2)}, {finding("stale", "ext4-p"), finding("torn", "ext4-p")}, {{"index", 1}, {"total", 3}});
  json b = run_doc("b", {case_rec("xfs-p", "xfs", 0)}, {}, {{"index", 3}, {"total", 3}});
  b["status"] = "interrupted";
  json m = merge_docs({a, b});
  EXPECT_EQ(m["cases"].size(), 2u);
  EXPECT_EQ(m["findings"].size(), 2u);
  EXPECT_EQ(m["findings_by_class"]["stale"], 1);
  EXPECT_EQ(m["status"], "interrupted");  // the worst of the runs
  EXPECT_EQ(m["run"]["id"], "merged");
  ASSERT_TRUE(m["run"].contains("shards_missing"));
  EXPECT_EQ(m["run"]["shards_missing"], json::array({"c shard 2/3"}));
  EXPECT_EQ(m["cases"][1]["run_index"], 1);
  EXPECT_EQ(m["findings"][1]["index"], 1);
  // one shard alone names the others
  json one = merge_docs({a});
  EXPECT_EQ(one["run"]["shards_missing"].size(), 2u);
}

TEST(Report, ReproStatsPerScenarioAndFs) {
  std::vector<json> cases, fs;
  for (int r = 0; r < 10; ++r) {
    std::string n = fmt::format("ext4-p-r{}", r);
    cases.push_back(case_rec(n, "ext4", r < 3 ? 1 : 0));
    if (r < 3) fs.push_back(finding("stale", n));
  }
  cases.push_back(case_rec("ext4-p-r10", "ext4", 0, "error: boot failed"));
  json m = merge_docs({run_doc("a", cases, fs)});
  json st = repro_stats(m, {});
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0]["runs"], 10);
  EXPECT_EQ(st[0]["runs_with_finding"], 3);
  EXPECT_EQ(st[0]["not_run"], 1);
  EXPECT_NEAR(st[0]["rate"].get<double>(), 0.3, 1e-9);
  EXPECT_NEAR(st[0]["ci95"][0].get<double>(), wilson95(3, 10).lo, 1e-9);
  EXPECT_EQ(st[0]["classes"], json::array({"stale"}));
}

TEST(Report, ShardParsingAndSchedulers) {
  EXPECT_EQ(parse_shard("2/8").index, 2u);
  EXPECT_EQ(parse_shard("2/8").total, 8u);
  for (const char* bad : {"0/2", "3/2", "1/0", "a/b", "1/", "/2", "1/2/3", "-1/2", " 1/2", "1/1000000", "99999999999999999999/1"})
    EXPECT_THROW(parse_shard(bad), Fatal) << bad;
  static std::map<std::string, std::string> env;
  auto get = [](const char* k) { return env_of(env, k); };
  env = {};
  EXPECT_FALSE(shard_from_env(get).active());
  env = {{"CI_NODE_INDEX", "2"}, {"CI_NODE_TOTAL", "5"}};
  EXPECT_EQ(shard_from_env(get).index, 2u);
  env = {{"JOB_COMPLETION_INDEX", "0"}, {"FSRACE_SHARD_TOTAL", "4"}};  // 0-based in Kubernetes
  EXPECT_EQ(shard_from_env(get).index, 1u);
  EXPECT_EQ(shard_from_env(get).total, 4u);
  env = {{"JOB_COMPLETION_INDEX", "4"}, {"FSRACE_SHARD_TOTAL", "4"}};
  EXPECT_THROW(shard_from_env(get), Fatal);
  env = {{"JOB_COMPLETION_INDEX", "1"}};
  EXPECT_THROW(shard_from_env(get), Fatal);
  env = {{"CI_NODE_TOTAL", "3"}};
  EXPECT_THROW(shard_from_env(get), Fatal);
  // shards partition any matrix
  std::vector<CaseSpec> all(17);
  for (size_t i = 0; i < all.size(); ++i) all[i].name = fmt::format("c{}", i);
  for (uint64_t n : {1, 2, 3, 16, 17, 40}) {
    std::map<std::string, int> seen;
    for (uint64_t i = 1; i <= n; ++i)
      for (const auto& c : shard_cases(all, {i, n})) ++seen[c.name];
    EXPECT_EQ(seen.size(), all.size()) << n;
    for (auto& [k, v] : seen) EXPECT_EQ(v, 1) << k;
  }
}

TEST(Report, KernelConfigHighlights) {
  json h = kernel_config_highlights("CONFIG_LOCKDEP=y\n# CONFIG_KASAN is not set\nCONFIG_XFS_DEBUG=y\nCONFIG_XFS_FS=m\nXCONFIG_KPROBES=y\n");
  EXPECT_EQ(h["LOCKDEP"], "y");
  EXPECT_EQ(h["KASAN"], "n");
  EXPECT_EQ(h["XFS_DEBUG"], "y");
  EXPECT_EQ(h["KPROBES"], "n");  // not at a line start
  EXPECT_TRUE(kernel_config_highlights("").empty());
}

TEST(Report, ThousandsOfFindingsItemiseABoundedNumber) {
  std::string dir = temp_dir();
  std::vector<json> fs;
  for (int i = 0; i < 3500; ++i) fs.push_back(finding(i % 2 ? "stale" : "torn", "ext4-p"));
  write_file_atomic(dir + "/findings.json", run_doc("big", {case_rec("ext4-p", "ext4", 3500)}, fs).dump());
  ReportModel m = load_report({dir});
  EXPECT_EQ(m.windows.size(), 50u);
  EXPECT_EQ(m.left_out, 3450u);
  std::string h = render_html(m);
  EXPECT_NE(h.find("3450 more are counted above"), std::string::npos);
  EXPECT_LT(h.size(), 5u << 20);
  // both classes itemised (round-robin over case x class), not just the first 50 in file order
  size_t torn = 0, stale = 0;
  for (const auto& w : m.windows) (m.doc["findings"][w["finding"].get<size_t>()]["class"] == "torn" ? torn : stale)++;
  EXPECT_EQ(torn, 25u);
  EXPECT_EQ(stale, 25u);
  std::string x = render_junit(m);
  EXPECT_NE(x.find("tests=\"1\" failures=\"1\""), std::string::npos);
  EXPECT_NE(x.find("3450 more not itemised"), std::string::npos);
  std::string cmd = "rm -rf " + dir;
  EXPECT_EQ(system(cmd.c_str()), 0);
}

TEST(Report, HostileStringsStayText) {
  std::string dir = temp_dir();
  json f = finding("stale", "ext4-p", "</script><script>alert(1)</script><img src=http://x/>&\"'");
  f["kernel_log"] = {"<b>\x01</b> ]]> \xff\xfe"};
  write_file_atomic(dir + "/findings.json", run_doc("evil", {case_rec("ext4-p", "ext4", 1)}, {f}).dump(-1, ' ', false, json::error_handler_t::replace));
  ReportModel m = load_report({dir});
  std::string h = render_html(m);
  size_t scripts = 0;
  for (size_t p = 0; (p = h.find("<script", p)) != std::string::npos; ++p) ++scripts;
  EXPECT_EQ(scripts, 2u);  // the data block and the page's own script
  EXPECT_EQ(h.find("<img src=http"), std::string::npos);
  std::string x = render_junit(m);
  EXPECT_EQ(x.find("<script>"), std::string::npos);
  EXPECT_EQ(x.find('\x01'), std::string::npos);
  std::string cmd = "rm -rf " + dir;
  EXPECT_EQ(system(cmd.c_str()), 0);
}

TEST(Report, CleanRunAndBadInputs) {
  std::string dir = temp_dir();
  write_file_atomic(dir + "/findings.json", run_doc("clean", {case_rec("ext4-p", "ext4", 0)}, {}).dump());
  ReportModel m = load_report({dir});
  EXPECT_TRUE(m.windows.empty());
  EXPECT_NE(render_html(m).find("No finding"), std::string::npos);
  json t = chrome_trace(m);
  EXPECT_TRUE(t["traceEvents"].is_array());
  EXPECT_THROW(load_report({}), Fatal);
  EXPECT_THROW(load_report({dir, dir + "/"}), Fatal);  // the same run twice
  EXPECT_THROW(load_report({dir + "/nope"}), Fatal);
  write_file_atomic(dir + "/findings.json", "{\"schema\": \"fsrace-findings/1\", \"run\": 3}");
  EXPECT_THROW(load_report({dir}), Fatal);
  std::string cmd = "rm -rf " + dir;
  EXPECT_EQ(system(cmd.c_str()), 0);
}

// After a power cut the lanes mark the fsync whose return promised the lost data ("durable"), beside the
// read that saw the old data and the write it should have seen.
TEST(Report, AfterPowerCutTheSyncThatPromisedDurabilityIsMarked) {
  std::string dir = temp_dir();
  std::string cdir = dir + "/ext4-p";
  ASSERT_EQ(mkdir(cdir.c_str(), 0755), 0);
  uint64_t init_id, write_id, sync_id, cut_id, read_id;
  {
    OpLog log(cdir + "/ops.bin", {{"files", json::array({{{"name", "f0"}, {"file_id", 1}, {"blocks", 16}}})}});
    ThreadLog& t0 = log.thread(0);
    ThreadLog& t1 = log.thread(1);
    init_id = t0.new_id();
    t0.op(init_id, OpKind::kInit, 0, 0, 16 * 4096, 1000, 2000, 16 * 4096);
    write_id = t1.new_id();
    t1.op(write_id, OpKind::kWrite, 0, 3 * 4096, 4096, 10000, 20000, 4096);
    sync_id = t1.new_id();
    t1.op(sync_id, OpKind::kFsync, 0, 0, 0, 30000, 40000, 0);
    cut_id = t0.new_id();
    t0.op(cut_id, OpKind::kPowerCut, 0, 0, 0, 50000, 60000, 0);
    read_id = t0.new_id();
    t0.op(read_id, OpKind::kVerifyDisk, 0, 3 * 4096, 4096, 70000, 80000, 4096);
    log.close();
  }
  json f = finding("lost-write", "ext4-p");
  f["phase"] = "after-power-cut";
  f["time_ns"] = 70000;
  f["expected"] = {fmt::format("write op={}", write_id)};
  f["ops"] = json::array();
  for (uint64_t id : {read_id, sync_id, cut_id}) f["ops"].push_back({{"id", id}});
  write_file_atomic(dir + "/findings.json", run_doc("pc", {case_rec("ext4-p", "ext4", 1)}, {f}).dump());
  ReportModel m = load_report({dir});
  ASSERT_EQ(m.windows.size(), 1u);
  std::map<std::string, int> roles;
  for (const auto& it : m.windows[0]["items"])
    if (it.size() > 6 && it[6].is_string() && !it[6].get<std::string>().empty()) ++roles[it[6].get<std::string>()];
  EXPECT_EQ(roles["read"], 1);
  EXPECT_EQ(roles["expected"], 1);
  EXPECT_EQ(roles["durable"], 1) << m.windows[0].dump();
  for (const auto& it : m.windows[0]["items"]) {
    if (it[6] == "durable") {
      EXPECT_NE(it[5].get<std::string>().find("fsync"), std::string::npos) << it.dump();
    }
  }
  EXPECT_NE(render_html(m).find("the sync that promised durability"), std::string::npos);
  // A race-phase finding has no such sync: nothing is marked durable.
  f["phase"] = "race";
  write_file_atomic(dir + "/findings.json", run_doc("pc", {case_rec("ext4-p", "ext4", 1)}, {f}).dump());
  ReportModel r = load_report({dir});
  for (const auto& it : r.windows[0]["items"]) EXPECT_NE(it[6], "durable");
  std::string cmd = "rm -rf " + dir;
  EXPECT_EQ(system(cmd.c_str()), 0);
}
