// Analysis as a function of a case directory: the corroboration rules on their own, and analyze_case
// on hand-written case directories (race.json, kmsg.log, no kernel needed).
#include "harness/analyze.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fmt/core.h>

#include "core/util.h"

using namespace fsrace;
using json = nlohmann::json;

namespace {

OpRecord op(OpKind k, uint64_t b, uint64_t n, uint64_t s, uint64_t e) {
  OpRecord r{};
  r.kind = uint16_t(k);
  r.offset = b * kBlockSize;
  r.length = n * kBlockSize;
  r.start_ns = s;
  r.end_ns = e;
  return r;
}

Finding data_finding(const std::string& cls, uint64_t block, std::vector<OpRecord> ops) {
  Finding f = make_finding(cls, "xfs", "mixed", "xfs-mixed", "race");
  f.file = "f0";
  f.block = block;
  f.ops = std::move(ops);
  return f;
}

TEST(Corroborate, DataWithoutACollisionCorroboratesTheOtherNotices) {
  FindingSet fs;
  fs.add(data_finding("stale", 3, {op(OpKind::kRead, 3, 1, 100, 200), op(OpKind::kWrite, 3, 1, 10, 20)}));
  DataCorroboration c = corroborate(fs, OpLogData{}, DioCollisionShown{}, {});
  EXPECT_TRUE(c.other);
  EXPECT_FALSE(c.dio);
  EXPECT_EQ(fs.kept[0].explained_by, "");
}

TEST(Corroborate, ADirectWriteAmongTheOpsIsExplainedByTheCollisionTheKernelShowed) {
  FindingSet fs;
  fs.add(data_finding("stale", 3, {op(OpKind::kRead, 3, 1, 100, 200), op(OpKind::kDioWrite, 3, 1, 10, 20)}));
  DioCollisionShown shown;
  shown.logged = true;
  DataCorroboration c = corroborate(fs, OpLogData{}, shown, {});
  EXPECT_TRUE(c.dio);
  EXPECT_FALSE(c.other);
  EXPECT_EQ(fs.kept[0].explained_by, "dio-collision");
  EXPECT_NE(fs.kept[0].detail.find(shown.explanation()), std::string::npos);
  // Without the kernel's word the same finding is plain bad data.
  FindingSet fs2;
  fs2.add(data_finding("stale", 3, {op(OpKind::kRead, 3, 1, 100, 200), op(OpKind::kDioWrite, 3, 1, 10, 20)}));
  EXPECT_TRUE(corroborate(fs2, OpLogData{}, DioCollisionShown{}, {}).other);
}

TEST(Corroborate, BlocksTheTestHelperCorruptedCorroborateNothing) {
  FindingSet fs;
  fs.add(data_finding("lost-write", 5, {op(OpKind::kRead, 5, 1, 100, 200)}));
  DataCorroboration c = corroborate(fs, OpLogData{}, DioCollisionShown{}, {{"f0", 5}});
  EXPECT_FALSE(c.other);
  EXPECT_FALSE(c.dio);
  // another block of the same file still counts
  fs.add(data_finding("lost-write", 6, {op(OpKind::kRead, 6, 1, 100, 200)}));
  EXPECT_TRUE(corroborate(fs, OpLogData{}, DioCollisionShown{}, {{"f0", 5}}).other);
}

TEST(Corroborate, UnexaminedFindingsCountAsOtherUnlessEveryKeptOneOfTheirClassWasACollision) {
  DioCollisionShown shown;
  shown.wb_error = true;
  FindingSet all_dio;
  for (int i = 0; i < 3; ++i)
    all_dio.add(data_finding("stale", 3, {op(OpKind::kRead, 3, 1, 100, 200), op(OpKind::kDioWrite, 3, 1, 10, 20)}), 2);
  ASSERT_EQ(all_dio.suppressed_by_class["stale"], 1u);
  DataCorroboration c = corroborate(all_dio, OpLogData{}, shown, {});
  EXPECT_TRUE(c.dio);
  EXPECT_FALSE(c.other);  // the one left out is of a class whose kept ones all were collisions
  FindingSet only_suppressed;
  only_suppressed.suppressed_by_class["foreign"] = 4;
  EXPECT_TRUE(corroborate(only_suppressed, OpLogData{}, shown, {}).other);
}

TEST(Corroborate, DioMixedNeedsADirectWriteAndCachedAccess) {
  EXPECT_FALSE(dio_mixed(json{{"dio-write", 5}}));
  EXPECT_FALSE(dio_mixed(json{{"write", 5}, {"mmap-read", 3}}));
  EXPECT_TRUE(dio_mixed(json{{"dio-write", 5}, {"mmap-read", 3}}));
  EXPECT_FALSE(dio_mixed(json::object()));
}

// ---- analyze_case on a directory ----------------------------------------------------------------

class CaseDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/fsrace-analyze-test.XXXXXX";
    ASSERT_NE(mkdtemp(t), nullptr);
    dir_ = t;
    race_ = {{"schema", kRaceSchema},
             {"run", {{"id", "r1"}, {"campaign", "t"}}},
             {"case", {{"case", "ext4-punch-vs-fault"}, {"fs", "ext4"}, {"scenario", "punch-vs-fault"}, {"status", "complete"},
                       {"notes", json::array()}, {"ops", {{"by_kind", {{"punch", 10}, {"read", 10}}}}}}},
             {"inputs", {{"op_logging", false}, {"interrupted", false}, {"test_devices", {"loop7"}}, {"device_name", "loop7"},
                         {"fatal_errors", json::array()}, {"fsck", json::array()}, {"kmsg", {{"captured", true}}}}}};
  }
  void TearDown() override { std::system(fmt::format("rm -rf '{}'", dir_).c_str()); }
  void write(const std::string& kmsg) {
    write_file_atomic(dir_ + "/race.json", race_.dump());
    write_file_atomic(dir_ + "/kmsg.log", kmsg);
  }
  std::vector<std::string> classes(const CaseAnalysis& a) {
    std::vector<std::string> v;
    for (const auto& f : a.findings.kept) v.push_back(f.cls);
    return v;
  }
  std::string dir_;
  json race_;
};

TEST_F(CaseDir, KernelLogLinesOfTheTestDeviceOnlyAreFindings) {
  write("[   10.000001] EXT4-fs error (device loop7): ext4_find_extent:1 inode #12: bad header\n"
        "[   10.000002] EXT4-fs error (device vda1): ext4_find_extent:1 inode #99: the host's own disk\n");
  CaseAnalysis a = analyze_case(dir_);
  EXPECT_EQ(classes(a), std::vector<std::string>{"ext4-error"});
  EXPECT_EQ(a.findings.kept[0].time_ns, 10000001000ull);
  EXPECT_EQ(a.info["kernel_log"]["lines"], 2);
  EXPECT_EQ(a.info["findings"], 1);
}

TEST_F(CaseDir, ANoticeAloneStaysANoticeAndFsckAndWorkloadErrorsComeFromTheRecord) {
  race_["inputs"]["fsck"] = json::array({{{"command", "e2fsck -fn /dev/dm-0"}, {"exit", 4}, {"clean", false}, {"output", "bad inode"}},
                                         {{"command", "e2fsck -fn /dev/dm-0"}, {"exit", 0}, {"clean", true}, {"output", ""}}});
  race_["inputs"]["fatal_errors"] = json::array({{{"kind", "punch"}, {"result", -5}, {"message", "punch failed: EIO"}}});
  write("[   11.000000] EXT4-fs (loop7): Inode 12 (00000000): i_reserved_data_blocks... data will be lost\n");
  CaseAnalysis a = analyze_case(dir_);
  EXPECT_EQ(classes(a), (std::vector<std::string>{"fsck-error", "workload-error"}));
  ASSERT_EQ(a.info["kernel_log"]["notices"].size(), 1u);
  EXPECT_EQ(a.info["kernel_log"]["notices"][0]["escalated"], false);
  EXPECT_NE(a.findings.kept[0].detail.find("bad inode"), std::string::npos);
}

TEST_F(CaseDir, MissingOrDamagedFilesAreOneLineErrors) {
  try {
    analyze_case(dir_);
    FAIL() << "no race.json accepted";
  } catch (const Fatal& e) {
    EXPECT_NE(std::string(e.what()).find("not a case directory"), std::string::npos) << e.what();
  }
  race_["inputs"]["op_logging"] = true;
  write("");
  try {
    analyze_case(dir_);
    FAIL() << "missing ops.bin accepted";
  } catch (const Fatal& e) {
    EXPECT_NE(std::string(e.what()).find("ops.bin is missing"), std::string::npos) << e.what();
  }
  write_file_atomic(dir_ + "/race.json", "{\"schema\": \"fsrace-race/1\"}");
  EXPECT_THROW(analyze_case(dir_), Fatal);
}

TEST_F(CaseDir, AMissingEventsFileIsANoteNotAnError) {
  race_["case"]["probes"] = {{"attached", 20}, {"events", 1000}, {"dropped", 0}};
  write("");
  CaseAnalysis a = analyze_case(dir_);
  ASSERT_EQ(a.notes.size(), 1u);
  EXPECT_NE(a.notes[0].find("events.bin is missing"), std::string::npos);
  EXPECT_NE(a.info["probes"]["error"].get<std::string>().find("not explained by kernel events"), std::string::npos);
}

TEST_F(CaseDir, ADamagedEventsFileIsAnErrorNamingIt) {
  race_["case"]["probes"] = {{"attached", 20}, {"events", 1000}, {"dropped", 0}};
  write("");
  write_file_atomic(dir_ + "/events.bin", "FSREVTS\0 garbage, not an events file");
  try {
    analyze_case(dir_);
    FAIL() << "damaged events.bin accepted";
  } catch (const Fatal& e) {
    EXPECT_NE(std::string(e.what()).find("events.bin is damaged"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("delete it to judge the case without kernel events"), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(RevalidationNote, OnlyXfsWithTheProbeAttachedAndTheDelaysDelayingAndNoRevalidation) {
  nlohmann::json info = {
      {"fs", "xfs"},
      {"scenario", "writeback-vs-write"},
      {"probes", {{"modes", {{"xfs_iomap_valid()", "fentry/fexit"}}}, {"analysis", {{"stale_iomap_seen", 0}}}}},
      {"kernel_delays", {{"points", {{"xfs-wb-mapped", {{"delayed", 12}}}, {"iomap-mapped", {{"delayed", 40}}}}}}}};
  std::string n = revalidation_note(info);
  EXPECT_NE(n.find("no stale-iomap revalidation seen on XFS although xfs-wb-mapped delayed 12 time(s) with xfs_iomap_valid() attached"),
            std::string::npos)
      << n;
  auto without = [&](auto change) {
    nlohmann::json j = info;
    change(j);
    return revalidation_note(j);
  };
  EXPECT_EQ(without([](nlohmann::json& j) { j["probes"]["analysis"]["stale_iomap_seen"] = 1; }), "");  // seen: fine
  EXPECT_EQ(without([](nlohmann::json& j) { j["fs"] = "ext4"; }), "");
  // scenarios whose stock cases mostly see none (measured) get no note
  EXPECT_EQ(without([](nlohmann::json& j) { j["scenario"] = "dio-vs-buffered"; }), "");
  EXPECT_NE(without([](nlohmann::json& j) { j["probes"]["modes"] = {{"xfs:xfs_iomap_invalid", "tp_btf"}}; }), "");
  EXPECT_EQ(without([](nlohmann::json& j) { j["probes"]["modes"] = nlohmann::json::object(); }), "");  // cannot see them
  EXPECT_EQ(without([](nlohmann::json& j) { j["probes"].erase("analysis"); }), "");                   // no events analysed
  EXPECT_EQ(without([](nlohmann::json& j) { j["kernel_delays"]["points"]["xfs-wb-mapped"]["delayed"] = 0; }), "");
  EXPECT_EQ(without([](nlohmann::json& j) { j.erase("kernel_delays"); }), "");
}
