// Space accounting against the block model: leaked blocks and reservations must be reported, exact
// accounting must not.
#include <gtest/gtest.h>

#include "harness/space.h"

using namespace fsrace;

namespace {
OpRecord op(uint64_t seq, OpKind k, uint64_t b, uint64_t n, uint64_t s, uint64_t e, int64_t res) {
  return OpRecord{(1ull << kOpIdThreadShift) | seq, s, e, b * kBlockSize, n * kBlockSize, res, 1, uint16_t(k), 0, 0, 0};
}
OpLogData history() {
  OpLogData d;
  d.meta = {{"files", {{{"name", "f0"}, {"file_id", 1}, {"blocks", 16}}}}};
  d.ops.push_back(op(1, OpKind::kInit, 0, 16, 0, 5, 16 * kBlockSize));
  d.ops.push_back(op(2, OpKind::kPunch, 0, 8, 10, 20, 0));
  for (size_t i = 0; i < d.ops.size(); ++i) d.obs_begin.push_back(0);
  return d;
}
SpaceMeasure exact(const std::string& fs) {
  SpaceMeasure m;
  m.fs = fs;
  m.baseline_free = 1000;
  m.allocated = {8};
  m.free_with_files = 992;
  m.free_after_delete = 1000;
  m.free_after_remount = 1000;
  m.have_after_delete = true;
  return m;
}
std::vector<std::string> details(const std::vector<Finding>& v) {
  std::vector<std::string> out;
  for (const auto& f : v) out.push_back(f.detail);
  return out;
}
}  // namespace

TEST(Space, ExactAccountingIsClean) {
  EXPECT_TRUE(check_space(history(), exact("ext4"), "s", "c").empty());
  EXPECT_TRUE(check_space(history(), exact("xfs"), "s", "c").empty());
}

TEST(Space, PunchedBlocksStillAllocated) {
  SpaceMeasure m = exact("ext4");
  m.allocated = {16};
  m.free_with_files = 984;
  auto f = check_space(history(), m, "s", "c");
  ASSERT_EQ(f.size(), 1u) << ::testing::PrintToString(details(f));
  EXPECT_EQ(f[0].cls, "space-leak");
  EXPECT_EQ(f[0].file, "f0");
}

TEST(Space, LeakedReservationWhileMounted) {
  SpaceMeasure m = exact("ext4");
  m.free_with_files = 990;  // 10 used, files hold 8: two blocks reserved for nothing
  auto f = check_space(history(), m, "s", "c");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_NE(f[0].detail.find("free space dropped by 10 blocks but the test files hold only 8"), std::string::npos);
}

TEST(Space, BlocksNotReturnedAfterDelete) {
  SpaceMeasure m = exact("ext4");
  m.free_after_delete = 997;
  m.free_after_remount = 997;
  EXPECT_EQ(check_space(history(), m, "s", "c").size(), 2u);
  SpaceMeasure x = exact("xfs");
  x.free_after_delete = 992;  // XFS frees unlinked inodes in the background: only after remount counts
  EXPECT_TRUE(check_space(history(), x, "s", "c").empty());
  x.free_after_remount = 980;
  EXPECT_EQ(check_space(history(), x, "s", "c").size(), 1u);
}

TEST(Space, QuiescentPointDuringTheRace) {
  OpLogData d = history();
  d.ops.push_back(op(3, OpKind::kStatBlocks, 0, 16, 30, 31, 8));
  d.ops.back().length = 992;
  d.obs_begin.push_back(0);
  EXPECT_TRUE(check_space(d, exact("ext4"), "s", "c").empty());
  d.ops.back().result = 14;  // more than the 8 blocks that can be allocated at t=30
  auto f = check_space(d, exact("ext4"), "s", "c");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_NE(f[0].detail.find("quiescent point"), std::string::npos);
}
