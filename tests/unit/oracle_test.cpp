// The oracle on hand-built interleavings: each case states the op intervals and what a read saw.
#include "harness/oracle.h"

#include <gtest/gtest.h>
#include <fmt/core.h>
#include <algorithm>

using namespace fsrace;

namespace {

constexpr uint64_t kFid = 0xabc00000000ull;

class History {
 public:
  explicit History(uint64_t blocks = 16) {
    d.meta = {{"files", {{{"name", "f0"}, {"file_id", kFid}, {"blocks", blocks}}}}};
  }
  uint64_t write(uint64_t b, uint64_t n, uint64_t s, uint64_t e, bool ok = true) {
    return add(OpKind::kWrite, b, n, s, e, ok ? int64_t(n * kBlockSize) : -5);
  }
  uint64_t init(uint64_t n, uint64_t s, uint64_t e) { return add(OpKind::kInit, 0, n, s, e, int64_t(n * kBlockSize)); }
  uint64_t punch(uint64_t b, uint64_t n, uint64_t s, uint64_t e, bool ok = true) {
    return add(OpKind::kPunch, b, n, s, e, ok ? 0 : -5);
  }
  // A read of block b over [s, e] that saw `v`.
  void read(uint64_t b, uint64_t s, uint64_t e, BlockValue v, OpKind k = OpKind::kRead, uint32_t round = 0) {
    add(k, b, 1, s, e, int64_t(kBlockSize), round);
    ObsRecord o{v.gen, v.gen2, v.file_id, v.block, uint32_t(b), uint8_t(v.cls), 0, 1};
    d.ops.back().nobs = 1;
    d.obs_begin.back() = d.obs.size();
    d.obs.push_back(o);
  }
  static BlockValue data(uint64_t b, uint64_t op, uint64_t fid = kFid) {
    BlockValue v;
    v.cls = BlockClass::kData;
    v.file_id = fid;
    v.block = b;
    v.gen = op;
    return v;
  }
  static BlockValue zero() { return BlockValue{}; }
  static BlockValue mixed(uint64_t b, uint64_t op1, uint64_t op2) {
    BlockValue v = data(b, op1);
    v.cls = BlockClass::kMixed;
    v.gen2 = op2;
    return v;
  }
  std::vector<std::string> classes(OracleStats* st = nullptr) {
    FindingSet fs = run_oracle(d, {"ext4", "t", "case"}, st);
    std::vector<std::string> out;
    for (const auto& f : fs.kept) out.push_back(f.cls);
    last = fs;
    return out;
  }
  OpLogData d;
  FindingSet last;

 private:
  uint64_t add(OpKind k, uint64_t b, uint64_t n, uint64_t s, uint64_t e, int64_t res, uint32_t flags = 0) {
    uint64_t id = (1ull << kOpIdThreadShift) | ++seq_;
    d.ops.push_back(OpRecord{id, s, e, b * kBlockSize, n * kBlockSize, res, 1, uint16_t(k), 0, 0, flags});
    d.obs_begin.push_back(d.obs.size());
    return id;
  }
  uint64_t seq_ = 0;
};

using V = std::vector<std::string>;

}  // namespace

TEST(Oracle, ReadAfterInitSeesInit) {
  History h;
  uint64_t i = h.init(16, 10, 20);
  h.read(3, 30, 40, History::data(3, i));
  EXPECT_EQ(h.classes(), V{});
}

TEST(Oracle, ReadOverlappingInitMaySeeTheInitialHole) {
  History h;
  uint64_t i = h.init(16, 10, 20);
  h.read(3, 15, 18, History::zero());
  h.read(4, 15, 18, History::data(4, i));
  EXPECT_EQ(h.classes(), V{});
}

TEST(Oracle, ReadStrictlyAfterInitSeeingZeroesIsLostWrite) {
  History h;
  h.init(16, 10, 20);
  h.read(3, 30, 40, History::zero());
  EXPECT_EQ(h.classes(), V{"lost-write"});
}

TEST(Oracle, ReadOverlappingPunchMaySeeEitherSide) {
  History h;
  uint64_t i = h.init(16, 10, 20);
  h.punch(2, 4, 100, 200);
  h.read(3, 150, 160, History::data(3, i));   // inside the punch
  h.read(4, 90, 110, History::zero());        // starts before, ends inside
  h.read(5, 190, 260, History::data(5, i));   // starts inside
  EXPECT_EQ(h.classes(), V{});
}

TEST(Oracle, ReadStrictlyAfterPunchSeeingOldDataIsStaleAfterPunch) {
  History h;
  uint64_t i = h.init(16, 10, 20);
  uint64_t p = h.punch(2, 4, 100, 200);
  h.read(3, 201, 210, History::data(3, i));
  auto c = h.classes();
  ASSERT_EQ(c, V{"stale-after-punch"});
  const Finding& f = h.last.kept[0];
  EXPECT_EQ(*f.block, 3u);
  EXPECT_EQ(f.phase, "race");
  ASSERT_EQ(f.ops.size(), 3u);  // the read, the op whose data it saw, the punch that superseded it
  EXPECT_EQ(f.ops[2].id, p);
  EXPECT_EQ(f.expected, V{fmt::format("zeroes (punch op={})", p)});
}

TEST(Oracle, ReadStrictlyAfterPunchSeeingZeroesIsFine) {
  History h;
  h.init(16, 10, 20);
  h.punch(2, 4, 100, 200);
  h.read(3, 201, 210, History::zero());
  EXPECT_EQ(h.classes(), V{});
}

TEST(Oracle, PunchOfOtherBlocksDoesNotMatter) {
  History h;
  uint64_t i = h.init(16, 10, 20);
  h.punch(8, 2, 100, 200);
  h.read(3, 300, 310, History::data(3, i));
  EXPECT_EQ(h.classes(), V{});
}

TEST(Oracle, OlderGenerationAfterCompletedWriteIsStale) {
  History h;
  uint64_t i = h.init(16, 10, 20);
  h.write(3, 1, 100, 200);
  h.read(3, 300, 310, History::data(3, i));
  EXPECT_EQ(h.classes(), V{"stale"});
}

TEST(Oracle, ConcurrentWriteMayOrMayNotBeSeen) {
  History h;
  uint64_t i = h.init(16, 10, 20);
  uint64_t w = h.write(3, 2, 100, 200);
  h.read(3, 150, 160, History::data(3, i));
  h.read(3, 150, 160, History::data(3, w));
  h.read(4, 50, 101, History::data(4, w));  // read ends just after the write started
  EXPECT_EQ(h.classes(), V{});
}

TEST(Oracle, DataFromAWriteThatStartedAfterTheReadEndedIsImpossible) {
  History h;
  h.init(16, 10, 20);
  uint64_t w = h.write(3, 1, 100, 200);
  h.read(3, 50, 100, History::data(3, w));  // read ended at 100, write started at 100: not before
  EXPECT_EQ(h.classes(), V{"foreign"});
}

TEST(Oracle, ZeroesAfterCompletedWriteIsLostWrite) {
  History h;
  h.init(16, 10, 20);
  h.punch(3, 1, 30, 40);
  uint64_t w = h.write(3, 1, 100, 200);
  h.read(3, 300, 310, History::zero());
  ASSERT_EQ(h.classes(), V{"lost-write"});
  EXPECT_EQ(h.last.kept[0].ops.back().id, w);
}

TEST(Oracle, PunchThenWriteThenOldData) {
  History h;
  uint64_t i = h.init(16, 10, 20);
  h.punch(3, 1, 30, 40);
  h.write(3, 1, 100, 200);
  h.read(3, 300, 310, History::data(3, i));
  EXPECT_EQ(h.classes(), V{"stale"});  // the latest completed op was a write
}

TEST(Oracle, OverlappingWritesBothAllowedAfterwards) {
  History h;
  h.init(16, 0, 5);
  uint64_t a = h.write(3, 1, 10, 30);
  uint64_t b = h.write(3, 1, 20, 40);
  h.read(3, 50, 60, History::data(3, a));
  h.read(3, 50, 60, History::data(3, b));
  EXPECT_EQ(h.classes(), V{});
}

TEST(Oracle, SequentialWritesOnlyTheLastAllowed) {
  History h;
  h.init(16, 0, 5);
  uint64_t a = h.write(3, 1, 10, 20);
  uint64_t b = h.write(3, 1, 30, 40);
  h.read(3, 50, 60, History::data(3, b));
  h.read(3, 50, 60, History::data(3, a));
  EXPECT_EQ(h.classes(), V{"stale"});
}

TEST(Oracle, FailedWriteDoesNotSupersede) {
  History h;
  uint64_t i = h.init(16, 0, 5);
  h.write(3, 1, 10, 20, /*ok=*/false);
  h.read(3, 50, 60, History::data(3, i));
  EXPECT_EQ(h.classes(), V{});
}

TEST(Oracle, TearingDuringAConcurrentWriteIsLegal) {
  History h;
  uint64_t i = h.init(16, 0, 5);
  uint64_t w = h.write(3, 1, 100, 200);
  h.read(3, 150, 250, History::mixed(3, i, w));
  OracleStats st;
  EXPECT_EQ(h.classes(&st), V{});
  EXPECT_EQ(st.torn_legal, 1u);
}

TEST(Oracle, TearingWithoutAConcurrentOpIsTorn) {
  History h;
  uint64_t i = h.init(16, 0, 5);
  uint64_t w = h.write(3, 1, 100, 200);
  h.read(3, 300, 310, History::mixed(3, i, w));
  EXPECT_EQ(h.classes(), V{"torn"});
}

TEST(Oracle, GarbageInQuiescentVerifyIsTorn) {
  History h;
  uint64_t i = h.init(16, 0, 5);
  BlockValue g = History::data(3, i);
  g.cls = BlockClass::kGarbage;
  h.read(3, 300, 310, g, OpKind::kVerifyDisk, 2);
  auto c = h.classes();
  ASSERT_EQ(c, V{"torn"});
  EXPECT_EQ(h.last.kept[0].phase, "verify-disk");
}

TEST(Oracle, StampOfAnotherFileIsForeign) {
  History h;
  uint64_t i = h.init(16, 0, 5);
  h.read(3, 300, 310, History::data(3, i, kFid + 1));
  EXPECT_EQ(h.classes(), V{"foreign"});
}

TEST(Oracle, StampOfAnotherBlockIsForeign) {
  History h;
  uint64_t i = h.init(16, 0, 5);
  h.read(3, 300, 310, History::data(9, i));
  EXPECT_EQ(h.classes(), V{"foreign"});
}

TEST(Oracle, GenerationThatNeverWroteThisBlockIsForeign) {
  History h;
  h.init(16, 0, 5);
  uint64_t w = h.write(8, 1, 10, 20);
  h.read(3, 300, 310, History::data(3, w));
  EXPECT_EQ(h.classes(), V{"foreign"});
}

TEST(Oracle, ZeroesBetweenWriteAndLaterPunch) {
  History h;
  h.init(16, 0, 5);
  h.punch(3, 1, 10, 20);
  h.write(3, 1, 30, 40);
  h.punch(3, 1, 100, 110);
  h.read(3, 50, 60, History::zero());    // after the write, before the second punch
  h.read(3, 120, 130, History::zero());  // after the second punch
  h.read(3, 95, 105, History::zero());   // overlapping the second punch
  EXPECT_EQ(h.classes(), V{"lost-write"});
}

TEST(Oracle, CacheAndDirectMustAgreeInAVerifyRound) {
  History h;
  uint64_t i = h.init(16, 0, 5);
  h.punch(3, 1, 10, 20);
  // Page cache still holds the pre-punch data; the disk says hole.
  h.read(3, 100, 110, History::data(3, i), OpKind::kVerifyCached, 1);
  h.read(3, 111, 120, History::data(3, i), OpKind::kVerifyMmap, 1);
  h.read(3, 121, 130, History::zero(), OpKind::kVerifyDirect, 1);
  auto c = h.classes();
  // Both cached reads are stale after the punch, and both disagree with O_DIRECT.
  EXPECT_EQ(std::count(c.begin(), c.end(), "stale-after-punch"), 2);
  EXPECT_EQ(std::count(c.begin(), c.end(), "cache-incoherent"), 2);
}

TEST(Oracle, AgreeingVerifyRoundIsClean) {
  History h;
  h.init(16, 0, 5);
  h.punch(3, 1, 10, 20);
  h.read(3, 100, 110, History::zero(), OpKind::kVerifyCached, 1);
  h.read(3, 111, 120, History::zero(), OpKind::kVerifyMmap, 1);
  h.read(3, 121, 130, History::zero(), OpKind::kVerifyDirect, 1);
  EXPECT_EQ(h.classes(), V{});
}

TEST(Oracle, FindingsAreCappedPerClassButCounted) {
  History h;
  uint64_t i = h.init(16, 0, 5);
  h.write(3, 1, 10, 20);
  for (int k = 0; k < 120; ++k) h.read(3, 100 + k, 101 + k, History::data(3, i));
  h.classes();
  EXPECT_EQ(h.last.kept.size(), 50u);
  EXPECT_EQ(h.last.total_by_class["stale"], 120u);
  EXPECT_EQ(h.last.suppressed_by_class["stale"], 70u);
}

TEST(Oracle, ZeroRangeProducesZeroesLikeAPunch) {
  History h;
  uint64_t i = h.init(16, 0, 5);
  h.d.ops.push_back(OpRecord{(1ull << kOpIdThreadShift) | 999, 10, 20, 3 * kBlockSize, kBlockSize, 0, 1,
                             uint16_t(OpKind::kZeroRange), 0, 0, 0});
  h.d.obs_begin.push_back(h.d.obs.size());
  h.read(3, 30, 40, History::zero());
  h.read(3, 30, 40, History::data(3, i));
  EXPECT_EQ(h.classes(), V{"stale-after-punch"});
}

TEST(Oracle, TornBlockAfterAnMmapStoreRacedAPunchIsLegal) {
  History h;
  h.init(16, 0, 5);
  uint64_t id = (1ull << kOpIdThreadShift) | 777;
  h.d.ops.push_back(OpRecord{id, 100, 200, 3 * kBlockSize, kBlockSize, int64_t(kBlockSize), 1,
                             uint16_t(OpKind::kMmapWrite), 0, 0, 0});
  h.d.obs_begin.push_back(h.d.obs.size());
  h.punch(3, 1, 150, 160);  // zapped the page in the middle of the stores
  BlockValue v = History::data(3, id);
  v.cls = BlockClass::kMixed;
  v.gen2 = ~0ull;  // data + zero sectors
  h.read(3, 300, 310, v, OpKind::kVerifyDisk, 2);
  EXPECT_EQ(h.classes(), V{});
}

TEST(Oracle, TornBlockAfterAPwriteRacedAPunchIsTorn) {
  History h;
  h.init(16, 0, 5);
  uint64_t w = h.write(3, 1, 100, 200);
  h.punch(3, 1, 150, 160);
  BlockValue v = History::data(3, w);
  v.cls = BlockClass::kMixed;
  v.gen2 = ~0ull;
  h.read(3, 300, 310, v, OpKind::kVerifyDisk, 2);
  EXPECT_EQ(h.classes(), V{"torn"});  // a buffered write copies a block under the folio lock
}

TEST(Oracle, DirectReadIsJudgedLikeAnyRead) {
  History h;
  uint64_t i = h.init(16, 0, 5);
  h.write(3, 1, 10, 20);
  h.read(3, 30, 40, History::data(3, i), OpKind::kDioRead);
  EXPECT_EQ(h.classes(), V{"stale"});
}

TEST(Oracle, AllocationModel) {
  History h(4);
  h.init(4, 0, 5);
  h.punch(0, 2, 10, 20);
  h.d.ops.push_back(OpRecord{(1ull << kOpIdThreadShift) | 555, 30, 40, 1 * kBlockSize, kBlockSize, 0, 1,
                             uint16_t(OpKind::kFalloc), 0, 0, 0});
  h.d.obs_begin.push_back(h.d.obs.size());
  BlockModel m(h.d);
  EXPECT_FALSE(m.may_be_allocated(0, 0, 25));  // punched
  EXPECT_FALSE(m.may_be_allocated(0, 1, 25));
  EXPECT_TRUE(m.may_be_allocated(0, 1, 45));   // fallocated again
  EXPECT_TRUE(m.may_be_allocated(0, 1, 35));   // fallocate in flight
  EXPECT_TRUE(m.may_be_allocated(0, 2, 45));   // never punched
  EXPECT_TRUE(m.may_be_allocated(0, 0, 15));   // punch in flight
}

#include "harness/overlap.h"

TEST(Overlap, CountsModifyingOpsRacedByAReadOfTheSameBlocks) {
  History h;
  h.init(16, 0, 5);
  h.punch(2, 2, 100, 200);   // overlapped by the read of block 3 below
  h.write(8, 1, 300, 400);   // a read at the same time, other blocks: no
  h.punch(10, 1, 500, 600);  // a read of block 10, later: no
  h.read(3, 150, 250, History::data(3, 1));
  h.read(12, 350, 360, History::zero());
  h.read(10, 700, 710, History::zero());
  for (auto& o : h.d.ops)
    if (OpKind(o.kind) == OpKind::kRead) o.thread = 2;  // readers on another thread than the writer
  OverlapStats st = overlap_stats(h.d);
  EXPECT_EQ(st.attempts, 3u);
  EXPECT_EQ(st.overlapped, 1u);
}
