// The oracle on hand-built interleavings: each case states the op intervals and what a read saw.
#include "harness/oracle.h"
#include "core/util.h"

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
  // fallocate(COLLAPSE_RANGE) / (INSERT_RANGE) of n blocks at b.
  uint64_t collapse(uint64_t b, uint64_t n, uint64_t s, uint64_t e, bool ok = true) {
    return add(OpKind::kCollapse, b, n, s, e, ok ? 0 : -22);
  }
  uint64_t insert(uint64_t b, uint64_t n, uint64_t s, uint64_t e) { return add(OpKind::kInsert, b, n, s, e, 0); }
  uint64_t falloc(uint64_t b, uint64_t n, uint64_t s, uint64_t e) { return add(OpKind::kFalloc, b, n, s, e, 0); }
  uint64_t truncate(uint64_t blocks, uint64_t s, uint64_t e) { return add(OpKind::kTruncate, blocks, 0, s, e, 0); }
  uint64_t mmap_write(uint64_t b, uint64_t n, uint64_t s, uint64_t e) {
    return add(OpKind::kMmapWrite, b, n, s, e, int64_t(n * kBlockSize));
  }
  uint64_t dio_write(uint64_t b, uint64_t n, uint64_t s, uint64_t e) {
    return add(OpKind::kDioWrite, b, n, s, e, int64_t(n * kBlockSize));
  }
  uint64_t fsync(uint64_t s, uint64_t e, bool ok = true) { return add(OpKind::kFsync, 0, 16, s, e, ok ? 0 : -5); }
  uint64_t power_cut(uint64_t t) { return add(OpKind::kPowerCut, 0, 0, t, t, 0); }
  // A read of blocks [b, b+n) over [s, e] that returned `got` blocks (short at EOF), each as in `v`.
  void read_short(uint64_t b, uint64_t n, uint64_t got, uint64_t s, uint64_t e, const std::vector<BlockValue>& v,
                  OpKind k = OpKind::kRead) {
    add(k, b, n, s, e, int64_t(got * kBlockSize));
    d.obs_begin.back() = d.obs.size();
    for (uint64_t i = 0; i < got; ++i)
      d.obs.push_back(ObsRecord{v[i].gen, v[i].gen2, v[i].file_id, v[i].block, uint32_t(b + i), uint8_t(v[i].cls), 0, 1});
    d.ops.back().nobs = uint32_t(got);
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
    OracleContext ctx{"ext4", "t", "case"};
    ctx.short_reads_legal = short_reads_legal;
    FindingSet fs = run_oracle(d, ctx, st);
    std::vector<std::string> out;
    for (const auto& f : fs.kept) out.push_back(f.cls);
    last = fs;
    return out;
  }
  OpLogData d;
  FindingSet last;
  bool short_reads_legal = false;

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

TEST(Oracle, ConsecutiveBlocksOneReadGotWrongAlikeAreOneFinding) {
  History h;
  uint64_t i = h.init(16, 10, 20);
  uint64_t w = h.write(6, 1, 30, 40);
  uint64_t p = h.punch(2, 7, 100, 200);
  // One read of blocks 2..9 after the punch: 2-5 pre-punch init data, 6 the later write's data (other
  // ops, so apart), 7 init again (not adjacent to 2-5 in kind), 8 zeroes (right), 9 outside the punch.
  h.read_short(2, 8, 8, 201, 210,
               {History::data(2, i), History::data(3, i), History::data(4, i), History::data(5, i), History::data(6, w),
                History::data(7, i), History::zero(), History::data(9, i)});
  auto c = h.classes();
  ASSERT_EQ(c, (V{"stale-after-punch", "stale-after-punch", "stale-after-punch"}));
  EXPECT_EQ(*h.last.kept[0].block, 2u);
  EXPECT_EQ(h.last.kept[0].blocks, 4u);
  EXPECT_EQ(*h.last.kept[1].block, 6u);
  EXPECT_EQ(h.last.kept[1].blocks, 1u);
  EXPECT_EQ(h.last.kept[1].ops[1].id, w);
  EXPECT_EQ(*h.last.kept[2].block, 7u);
  EXPECT_EQ(h.last.kept[2].blocks, 1u);
  EXPECT_EQ(h.last.total_by_class.at("stale-after-punch"), 3u);
  EXPECT_EQ(h.last.kept[0].ops[2].id, p);
  auto j = finding_to_json(h.last.kept[0]);
  EXPECT_EQ(j["blocks"], 4u);
  EXPECT_EQ(finding_blocks_text(j), "blocks 2-5");
  EXPECT_EQ(finding_blocks_text(finding_to_json(h.last.kept[1])), "block 6");
  EXPECT_FALSE(finding_to_json(h.last.kept[1]).contains("blocks"));
  // The same blocks read by two reads are two findings.
  History h2;
  uint64_t i2 = h2.init(16, 10, 20);
  h2.punch(2, 2, 100, 200);
  h2.read(2, 201, 210, History::data(2, i2));
  h2.read(3, 201, 210, History::data(3, i2));
  EXPECT_EQ(h2.classes().size(), 2u);
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

// Seen with explore's large variant on stock ext4: an extending truncate does not free blocks that a
// KEEP_SIZE fallocate put past the old EOF (they end up inside the file, unwritten); a shrinking one
// frees everything past the new size.
TEST(Oracle, TruncateFreesOnlyWhenItShrinks) {
  History h(8);
  h.init(8, 0, 5);
  h.truncate(4, 10, 20);     // shrink to 4 blocks: 4..7 freed
  h.falloc(5, 2, 30, 40);    // KEEP_SIZE past EOF: 5, 6 allocated beyond i_size
  h.truncate(6, 50, 60);     // extend to 6 blocks: nothing freed, 5 now inside the file
  h.truncate(2, 70, 80);     // shrink to 2: everything past 2 freed
  BlockModel m(h.d);
  EXPECT_FALSE(m.may_be_allocated(0, 5, 25));
  EXPECT_TRUE(m.may_be_allocated(0, 5, 45));
  EXPECT_TRUE(m.may_be_allocated(0, 5, 65));   // the extending truncate kept it
  EXPECT_TRUE(m.may_be_allocated(0, 6, 65));   // past the new EOF too
  EXPECT_FALSE(m.may_be_allocated(0, 4, 65));  // never allocated again
  EXPECT_FALSE(m.may_be_allocated(0, 5, 85));  // the shrink freed it
  EXPECT_TRUE(m.may_be_allocated(0, 1, 85));
  EXPECT_FALSE(m.may_be_allocated(0, 3, 85));
}

TEST(Oracle, AllocationModel) {
  History h(4);
  h.init(4, 0, 5);
  h.punch(0, 2, 10, 20);
  h.falloc(1, 1, 30, 40);
  BlockModel m(h.d);
  EXPECT_FALSE(m.may_be_allocated(0, 0, 25));  // punched
  EXPECT_FALSE(m.may_be_allocated(0, 1, 25));
  EXPECT_TRUE(m.may_be_allocated(0, 1, 45));   // fallocated again
  EXPECT_TRUE(m.may_be_allocated(0, 1, 35));   // fallocate in flight
  EXPECT_TRUE(m.may_be_allocated(0, 2, 45));   // never punched
  EXPECT_TRUE(m.may_be_allocated(0, 0, 15));   // punch in flight
}

// page_mkwrite prepares a whole (possibly large) folio: after an mmap write, the holes around it may be
// written back as zeroes (ext4 / XFS on 6.18 with large folios: 3-4 blocks more than the written ones
// were seen at fsync'ed quiescent points). A punch that started after the mmap write ended clears it.
TEST(Oracle, AllocationModelMmapWriteMayFillItsFolio) {
  History h(1024);  // 4 MiB: two 2 MiB folio windows
  h.punch(0, 1024, 10, 20);
  h.mmap_write(4, 1, 30, 40);
  h.punch(9, 1, 50, 60);
  h.punch(10, 1, 35, 45);  // overlapped the mmap write: does not clear
  BlockModel m(h.d);
  EXPECT_FALSE(m.may_be_allocated(0, 8, 25));   // before the mmap write
  EXPECT_TRUE(m.may_be_allocated(0, 4, 45));    // the written block
  EXPECT_TRUE(m.may_be_allocated(0, 8, 45));    // a hole in the same window
  EXPECT_TRUE(m.may_be_allocated(0, 511, 45));
  EXPECT_FALSE(m.may_be_allocated(0, 512, 45)); // the next 2 MiB window
  EXPECT_FALSE(m.may_be_allocated(0, 9, 65));   // punched after the write
  EXPECT_TRUE(m.may_be_allocated(0, 9, 55));    // punch still in flight
  EXPECT_TRUE(m.may_be_allocated(0, 10, 65));   // its punch raced the write
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

// Collapse / insert range: values move with their stamps; a read racing the shift may see a block's value
// from before or after it, nothing else.
TEST(OracleShift, ReadAfterCollapseSeesTheBlockMovedDown) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.collapse(2, 2, 10, 20);  // blocks 4..7 -> 2..5
  h.read(2, 30, 40, History::data(4, i));
  h.read(5, 30, 40, History::data(7, i));
  h.read(1, 30, 40, History::data(1, i));  // below the offset: unchanged
  OracleStats st;
  EXPECT_EQ(h.classes(&st), V{});
  EXPECT_EQ(st.shifts, 1u);
  EXPECT_EQ(st.shift_conflicts, 0u);
}

TEST(OracleShift, OldValueAfterCollapseIsStale) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  uint64_t c = h.collapse(2, 2, 10, 20);
  h.read(3, 30, 40, History::data(3, i));  // block 3 now holds what was block 5
  EXPECT_EQ(h.classes(), V{"stale"});
  const Finding& f = h.last.kept.at(0);
  EXPECT_NE(f.detail.find("collapse-range op " + std::to_string(c)), std::string::npos) << f.detail;
  EXPECT_NE(std::find(f.expected.begin(), f.expected.end(),
                      fmt::format("data op={} (written at block 5, moved here by op={})", i, c)),
            f.expected.end());
}

TEST(OracleShift, ReadRacingTheShiftMaySeeEitherSide) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.collapse(2, 2, 10, 20);
  h.read(3, 15, 25, History::data(3, i));  // before
  h.read(3, 15, 25, History::data(5, i));  // after
  EXPECT_EQ(h.classes(), V{});
}

TEST(OracleShift, StampThatNoShiftCanHaveMovedHereIsForeign) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.collapse(2, 2, 10, 20);
  h.read(3, 30, 40, History::data(4, i));   // 4 would need a shift by 1
  h.read(0, 30, 40, History::data(2, i));   // below the collapse offset nothing moved
  EXPECT_EQ(h.classes(), (V{"foreign", "foreign"}));
}

TEST(OracleShift, InsertLeavesAHoleAndMovesTheRestUp) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.insert(1, 2, 10, 20);  // hole at 1..2, blocks 1..7 -> 3..9
  h.read(1, 30, 40, History::zero());
  h.read(3, 30, 40, History::data(1, i));
  h.read(9, 30, 40, History::data(7, i));
  EXPECT_EQ(h.classes(), V{});
  History g(8);
  uint64_t j = g.init(8, 1, 5);
  g.insert(1, 2, 10, 20);
  g.read(2, 30, 40, History::data(2, j));  // old data in the inserted hole
  g.read(4, 30, 40, History::zero());      // a moved block lost
  EXPECT_EQ(g.classes(), (V{"stale-after-punch", "lost-write"}));
}

TEST(OracleShift, WriteBeforeAShiftTravelsWithItsBlock) {
  History h(8);
  h.init(8, 1, 5);
  uint64_t w = h.write(5, 1, 10, 20);
  h.collapse(2, 2, 30, 40);  // block 5 -> 3
  h.read(3, 50, 60, History::data(5, w));
  EXPECT_EQ(h.classes(), V{});
  History g(8);
  g.init(8, 1, 5);
  uint64_t w2 = g.write(5, 1, 10, 20);
  g.collapse(2, 2, 30, 40);
  g.read(5, 50, 60, History::data(5, w2));  // still at its old place after the collapse
  EXPECT_EQ(g.classes(), V{"stale"});
}

TEST(OracleShift, EitherOfTwoRacingWritesMayHaveWonBeforeTheShift) {
  History h(8);
  h.init(8, 1, 5);
  uint64_t a = h.write(4, 1, 10, 30), b = h.write(4, 1, 20, 40);
  h.collapse(2, 2, 50, 60);
  h.read(2, 70, 80, History::data(4, a));
  h.read(2, 70, 80, History::data(4, b));
  EXPECT_EQ(h.classes(), V{});
  History g(8);
  g.init(8, 1, 5);
  g.write(4, 1, 10, 20);
  uint64_t y = g.write(4, 1, 25, 40);  // strictly after: only y survives
  g.collapse(2, 2, 50, 60);
  g.read(2, 70, 80, History::data(4, y));
  g.read(2, 70, 80, History::data(4, y - 1));  // superseded before the shift: never moved here
  EXPECT_EQ(g.classes(), V{"stale"});
  EXPECT_NE(g.last.kept.at(0).detail.find("not among the values"), std::string::npos) << g.last.kept.at(0).detail;
}

TEST(OracleShift, InsertThenCollapseRoundTrip) {
  // The workload's pair: insert 2 at 1 (size 8 -> 10), collapse 2 at 5 (back to 8).
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.insert(1, 2, 10, 20);    // 0 H H 1 2 3 4 5 6 7
  h.collapse(5, 2, 30, 40);  // 0 H H 1 2 5 6 7
  std::vector<BlockValue> want = {History::data(0, i), History::zero(),      History::zero(),      History::data(1, i),
                                  History::data(2, i), History::data(5, i), History::data(6, i), History::data(7, i)};
  for (uint64_t b = 0; b < 8; ++b) h.read(b, 50, 60, want[b], OpKind::kVerifyDirect, 1);
  EXPECT_EQ(h.classes(), V{});
  BlockModel m(h.d);
  EXPECT_FALSE(m.may_be_allocated(0, 1, 50));  // the inserted hole
  EXPECT_TRUE(m.may_be_allocated(0, 3, 50));   // moved data stays allocated
  EXPECT_FALSE(m.may_be_allocated(0, 8, 50));  // past EOF after the collapse
}

TEST(OracleShift, FailedShiftMovesNothing) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.collapse(2, 2, 10, 20);
  h.collapse(6, 4, 30, 40, false);  // EINVAL: reaches EOF
  h.read(2, 50, 60, History::data(4, i));
  EXPECT_EQ(h.classes(), V{});
}

TEST(OracleShift, ModifyingOpOverlappingAShiftIsCounted) {
  History h(8);
  h.init(8, 1, 5);
  h.write(1, 1, 10, 30);
  h.collapse(2, 2, 20, 40);
  h.write(1, 1, 50, 60);  // after it: not racing
  OracleStats st;
  h.classes(&st);
  EXPECT_EQ(st.shift_races, 1u);
  EXPECT_EQ(st.shift_conflicts, 0u);
}

// Modifying ops racing a shift: each block of the op lands before the shift (its data then moved with it)
// or after it (at its own offset in the shifted file).
TEST(OracleShiftRace, WriteRacingACollapseMayLandBeforeItAndMove) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.collapse(2, 2, 10, 20);                 // blocks 4..7 -> 2..5
  uint64_t w = h.write(5, 1, 12, 18);       // races it
  h.read(3, 30, 40, History::data(5, w));   // before: block 5's new data moved to 3
  h.read(3, 30, 40, History::data(5, i));   // after: block 3 holds the old block 5
  h.read(5, 30, 40, History::data(5, w));   // after: at its own offset
  h.read(5, 30, 40, History::data(7, i));   // before: block 5 holds the old block 7
  OracleStats st;
  EXPECT_EQ(h.classes(&st), V{});
  EXPECT_EQ(st.shift_races, 1u);
}

TEST(OracleShiftRace, WriteThatStartedBeforeTheShiftMayAlsoLandAfterIt) {
  // The write started first (it is in the history before the shift is modelled): still either outcome.
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  uint64_t w = h.dio_write(5, 1, 8, 15);
  h.collapse(2, 2, 10, 20);
  h.read(3, 30, 40, History::data(5, w));
  h.read(3, 30, 40, History::data(5, i));
  h.read(5, 30, 40, History::data(5, w));
  h.read(5, 30, 40, History::data(7, i));
  EXPECT_EQ(h.classes(), V{});
}

TEST(OracleShiftRace, WriteAfterTheShiftIsNotMoved) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.collapse(2, 2, 10, 20);
  uint64_t w = h.write(5, 1, 25, 30);       // strictly after the shift
  h.read(5, 40, 50, History::data(5, w));
  h.read(3, 40, 50, History::data(5, i));
  EXPECT_EQ(h.classes(), V{});
  History g(8);
  g.init(8, 1, 5);
  g.collapse(2, 2, 10, 20);
  uint64_t w2 = g.write(5, 1, 25, 30);
  g.read(3, 40, 50, History::data(5, w2));  // moved by a shift that ended before it began
  EXPECT_EQ(g.classes().size(), 1u);
}

TEST(OracleShiftRace, AValueNeitherOutcomeCanGiveIsAFinding) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.collapse(2, 2, 10, 20);
  uint64_t w = h.write(5, 1, 12, 18);
  h.read(4, 30, 40, History::data(5, w));   // moved by 1: neither before (-> 3) nor after (5)
  h.read(5, 30, 40, History::data(5, i));   // block 5's old data, still in place after the collapse
  h.read(2, 30, 40, History::zero());       // block 4's data lost (nothing punched)
  EXPECT_EQ(h.classes(), (V{"foreign", "stale", "lost-write"}));
  // The stale finding names the shift that moved other data here.
  EXPECT_NE(h.last.kept.at(1).detail.find("collapse-range"), std::string::npos) << h.last.kept.at(1).detail;
}

TEST(OracleShiftRace, WriteRacingAnInsertMayLandBeforeOrAfterIt) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.insert(1, 2, 10, 20);                   // hole at 1..2, blocks 1..7 -> 3..9
  uint64_t w = h.write(1, 2, 15, 25);       // blocks 1..2
  h.read(1, 30, 40, History::data(1, w));   // after: over the inserted hole
  h.read(1, 30, 40, History::zero());       // before: the hole
  h.read(3, 30, 40, History::data(1, w));   // before: moved up
  h.read(3, 30, 40, History::data(1, i));   // after
  h.read(4, 30, 40, History::data(2, w));
  EXPECT_EQ(h.classes(), V{});
  History g(8);
  g.init(8, 1, 5);
  g.insert(1, 2, 10, 20);
  uint64_t w2 = g.write(1, 2, 15, 25);
  g.read(5, 30, 40, History::data(1, w2));  // moved by 4
  EXPECT_EQ(g.classes(), V{"foreign"});
}

TEST(OracleShiftRace, ShiftReadsItsSourceLikeARead) {
  // The shift moves whatever the source block may hold at some instant of it: b, still running when the
  // shift began, may land after it, so a (which b replaced) may be what moved.
  History h(8);
  h.init(8, 1, 5);
  uint64_t a = h.write(5, 1, 6, 8);
  uint64_t b = h.write(5, 1, 9, 15);
  h.collapse(2, 2, 12, 20);
  h.read(3, 30, 40, History::data(5, b));
  h.read(3, 30, 40, History::data(5, a));
  EXPECT_EQ(h.classes(), V{});
  // A value superseded before the shift began stays superseded even when another write races the shift.
  History g(8);
  g.init(8, 1, 5);
  uint64_t a2 = g.write(5, 1, 6, 8);
  uint64_t b2 = g.write(5, 1, 9, 11);
  uint64_t c2 = g.write(5, 1, 13, 18);
  g.collapse(2, 2, 12, 20);
  g.read(3, 30, 40, History::data(5, b2));
  g.read(3, 30, 40, History::data(5, c2));
  g.read(3, 30, 40, History::data(5, a2));
  EXPECT_EQ(g.classes(), V{"stale"});
}

TEST(OracleShiftRace, MmapStoreRacingACollapse) {
  // Stores through an existing mapping do not enter the kernel: each page is stored before the shift's
  // flush + page-cache truncation (and moved) or faults and waits for the invalidate_lock (after it).
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.collapse(2, 2, 10, 20);
  uint64_t m = h.mmap_write(4, 2, 12, 18);  // blocks 4, 5
  h.read(2, 30, 40, History::data(4, m), OpKind::kMmapRead);  // block 4 before -> 2
  h.read(3, 30, 40, History::data(5, i), OpKind::kMmapRead);  // block 5 after (old 5 moved to 3)
  h.read(4, 30, 40, History::data(4, m), OpKind::kMmapRead);  // block 4 after
  h.read(5, 30, 40, History::data(7, i), OpKind::kMmapRead);  // block 5 before (7 moved to 5)
  // A page half stored before the flush and half after the fault: a mixture of the store and the other
  // outcome, at either place.
  h.read(2, 30, 40, History::mixed(4, m, i), OpKind::kVerifyDirect, 1);
  EXPECT_EQ(h.classes(), V{});
  History g(8);
  g.init(8, 1, 5);
  g.collapse(2, 2, 10, 20);
  uint64_t m2 = g.mmap_write(4, 2, 12, 18);
  g.read(6, 30, 40, History::data(4, m2), OpKind::kMmapRead);  // past the new EOF: nothing lands there
  g.read(1, 30, 40, History::data(4, m2), OpKind::kMmapRead);  // below the collapse offset
  // The first read is flagged twice: data past every EOF the file had (stale), and a value no outcome
  // can have put at block 6 (foreign).
  EXPECT_EQ(g.classes(), (V{"stale", "foreign", "foreign"}));
}

TEST(OracleShiftRace, PwriteRacingAShiftIsNotTorn) {
  // A write(2) holds i_rwsem like the shift: a block is never a mixture, even where it raced.
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.collapse(2, 2, 10, 20);
  h.write(4, 1, 12, 18);
  h.read(2, 30, 40, History::mixed(4, i, i + 1), OpKind::kVerifyDirect, 1);
  EXPECT_EQ(h.classes(), V{"torn"});
}

TEST(OracleShiftRace, PunchRacingACollapse) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.collapse(2, 2, 10, 20);
  h.punch(4, 1, 12, 18);
  h.read(2, 30, 40, History::zero());       // before: the hole moved down
  h.read(2, 30, 40, History::data(4, i));   // after
  h.read(4, 30, 40, History::zero());       // after
  h.read(4, 30, 40, History::data(6, i));   // before
  EXPECT_EQ(h.classes(), V{});
}

// The findings about where a read ended (EOF), ignoring what its blocks held.
V eof_findings(History& h) {
  h.classes();
  V out;
  for (const auto& f : h.last.kept)
    if (f.got.find(" bytes") != std::string::npos) out.push_back(f.cls);
  return out;
}

TEST(OracleShiftRace, SizeAtEofWhenAnExtendingWriteRacesACollapse) {
  // Size 8, a write of blocks 8..9 racing a collapse of 2: write first -> 10 - 2 = 8, collapse first -> 6,
  // then the write extends to 10. Once both are done the size is 8 or 10 (9: i_size may grow block by block).
  History h(8);
  h.init(8, 1, 5);
  h.collapse(2, 2, 10, 20);
  h.write(8, 2, 12, 18);
  std::vector<BlockValue> v(12, History::zero());
  h.read_short(0, 12, 8, 30, 40, v);
  h.read_short(0, 12, 10, 30, 40, v);
  h.read_short(0, 12, 6, 14, 16, v);        // during both: the collapse done, the write not yet
  EXPECT_EQ(eof_findings(h), V{});
  History g(8);
  g.init(8, 1, 5);
  g.collapse(2, 2, 10, 20);
  g.write(8, 2, 12, 18);
  g.read_short(0, 12, 6, 30, 40, v);        // after both: never 6
  g.read_short(0, 12, 12, 30, 40, v);       // past every EOF
  EXPECT_EQ(eof_findings(g), (V{"lost-write", "stale"}));
}

TEST(OracleShiftRace, WriteInsideTheFileRacingTheWorkloadsPairKeepsTheSize) {
  // insert 2 + collapse 2 (the workload's pair) raced by a write inside the nominal size: back to 8.
  History h(8);
  h.init(8, 1, 5);
  h.insert(1, 2, 10, 20);
  h.write(6, 2, 15, 35);
  h.collapse(3, 2, 25, 30);
  std::vector<BlockValue> z(10, History::zero());
  h.read_short(0, 10, 8, 40, 50, z);
  h.read_short(0, 10, 7, 40, 50, z);        // short although the size is 8 whatever the order
  h.read_short(0, 10, 10, 22, 24, z);       // between the two shifts: 10
  EXPECT_EQ(eof_findings(h), V{"lost-write"});
}

TEST(OracleShift, ManyShiftsStayConsistent) {
  // A file shifted back and forth many times: simulate the content and check every block after each
  // pair, plus a stale read of each pair's pre-shift value (which must be flagged).
  const uint64_t N = 16;
  History h(N);
  uint64_t i = h.init(N, 1, 5);
  std::vector<std::pair<uint64_t, uint64_t>> content;  // (op, origin), op 0 = hole
  for (uint64_t b = 0; b < N; ++b) content.push_back({i, b});
  uint64_t t = 10;
  Rng rng(7);
  for (int k = 0; k < 200; ++k) {
    uint64_t n = 1 + rng.below(4), a = rng.below(N), c = rng.below(N);
    h.insert(a, n, t, t + 5);
    content.insert(content.begin() + long(a), n, {0, 0});
    h.collapse(c, n, t + 10, t + 15);
    content.erase(content.begin() + long(c), content.begin() + long(c + n));
    if (k % 3 == 0) {
      uint64_t w = h.write(c % N, 1, t + 20, t + 25);
      content[c % N] = {w, c % N};
    }
    t += 40;
    uint64_t b = rng.below(N);
    auto [op, origin] = content[b];
    h.read(b, t - 10, t - 5, op ? History::data(origin, op) : History::zero());
  }
  EXPECT_EQ(h.classes(), V{});
  // Now a read that sees a value from long ago at a block that has moved since is flagged.
  h.read(0, t + 10, t + 12, History::data(N - 1, i));
  auto cls = h.classes();
  EXPECT_EQ(cls.size(), 1u);
}

// Writes past EOF: truncate into the tail, O_DIRECT write extending the file, truncate back.
TEST(OracleEof, ShortReadOnlyWhileTheFileWasShort) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.truncate(5, 10, 20);
  uint64_t w = h.dio_write(5, 2, 30, 40);  // size 7
  h.truncate(8, 50, 60);
  h.read_short(4, 3, 1, 22, 28, {History::data(4, i)});                          // EOF at 5
  h.read_short(3, 4, 2, 12, 18, {History::data(3, i), History::data(4, i)});      // mid-truncate: EOF 5 of 8..5
  h.read_short(4, 3, 3, 15, 28, {History::data(4, i), History::data(5, i), History::data(6, i)});  // raced truncate
  h.read_short(4, 3, 3, 45, 48, {History::data(4, i), History::data(5, w), History::data(6, w)});
  h.read_short(6, 2, 1, 45, 48, {History::data(6, w)});                         // EOF at 7
  h.read_short(6, 2, 2, 70, 80, {History::data(6, w), History::zero()});        // back to 8: a hole at 7
  EXPECT_EQ(h.classes(), V{});
}

TEST(OracleEof, ShortReadAfterTheExtendingWriteReturnedIsLostWrite) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.truncate(5, 10, 20);
  h.dio_write(5, 2, 30, 40);
  h.read_short(4, 3, 1, 45, 48, {History::data(4, i)});  // the write returned: the size is 7
  auto cls = h.classes();
  ASSERT_EQ(cls, V{"lost-write"});
  EXPECT_NE(h.last.kept.at(0).detail.find("ended at byte 20480"), std::string::npos) << h.last.kept.at(0).detail;
}

TEST(OracleEof, ShortReadIsLegalUnderInjectedEnomemButDataPastEofIsNot) {
  // ENOMEM injected into page-cache insertions: read(2) returns what it copied before the failure.
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.truncate(5, 10, 20);
  h.dio_write(5, 2, 30, 40);
  h.short_reads_legal = true;
  h.read_short(4, 3, 1, 45, 48, {History::data(4, i)});  // short of EOF 7: legal now
  EXPECT_EQ(h.classes(), V{});
  h.truncate(5, 50, 60);
  h.read_short(4, 3, 2, 70, 80, {History::data(4, i), History::data(5, i)});  // past EOF 5: still wrong
  auto cls = h.classes();
  EXPECT_NE(std::find(cls.begin(), cls.end(), "stale"), cls.end());
}

TEST(OracleEof, DataPastEofAfterTruncateIsFlagged) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.truncate(5, 10, 20);
  // Full read after the truncate completed: past EOF, with old data in it.
  h.read_short(4, 2, 2, 25, 28, {History::data(4, i), History::data(5, i)});
  auto cls = h.classes();
  std::sort(cls.begin(), cls.end());
  EXPECT_EQ(cls, (V{"stale", "stale-after-punch"}));
}

TEST(OracleEof, TruncatedBlocksReadBackAsHolesAfterRegrowing) {
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.truncate(5, 10, 20);
  h.truncate(8, 30, 40);
  h.read(6, 50, 60, History::zero());
  h.read(4, 50, 60, History::data(4, i));
  EXPECT_EQ(h.classes(), V{});
  History g(8);
  uint64_t j = g.init(8, 1, 5);
  g.truncate(5, 10, 20);
  g.truncate(8, 30, 40);
  g.read(6, 50, 60, History::data(6, j));  // the old block came back
  EXPECT_EQ(g.classes(), V{"stale-after-punch"});
  BlockModel m(g.d);
  EXPECT_FALSE(m.may_be_allocated(0, 6, 50));
  EXPECT_TRUE(m.may_be_allocated(0, 4, 50));
}

TEST(OracleEof, AReadRacingASizeChangeMayEndAnywhereInBetween) {
  // O_DIRECT falling back to buffered I/O extends i_size folio by folio, and reads check EOF block by
  // block: a read racing a size change may end at any block boundary in between; afterwards only at
  // the final size.
  History h(8);
  uint64_t i = h.init(8, 1, 5);
  h.truncate(3, 10, 20);
  uint64_t w = h.dio_write(3, 4, 30, 40);  // 3 -> 7
  h.read_short(2, 6, 3, 32, 38, {History::data(2, i), History::data(3, w), History::data(4, w)});  // EOF 5
  EXPECT_EQ(h.classes(), V{});
  h.read_short(2, 6, 3, 45, 48, {History::data(2, i), History::data(3, w), History::data(4, w)});
  EXPECT_EQ(h.classes(), V{"lost-write"});
}

// kwiden dm-flakey: after a power cut only what an fsync made durable had to survive.
TEST(OraclePowerCut, FsyncedDataMustSurviveLaterDataMayBeLost) {
  History h;
  uint64_t i = h.init(16, 1, 5);
  h.fsync(6, 8);
  uint64_t w = h.write(2, 2, 10, 20);  // durable: an fsync started after it ended
  h.fsync(25, 30);
  uint64_t u = h.write(2, 1, 40, 50);  // not durable: no fsync after it
  uint64_t p = h.punch(4, 1, 60, 70);  // not durable
  h.power_cut(100);
  h.read(2, 200, 210, History::data(2, w), OpKind::kVerifyDisk);  // the write after the fsync was lost: legal
  h.read(2, 220, 230, History::data(2, u), OpKind::kVerifyDisk);  // or it survived: legal
  h.read(4, 240, 250, History::data(4, i), OpKind::kVerifyDisk);  // the punch was lost: legal
  h.read(4, 260, 270, History::zero(), OpKind::kVerifyDisk);      // or not
  OracleStats st;
  EXPECT_EQ(h.classes(&st), V{});
  EXPECT_EQ(st.power_cut_ns, 100u);
  EXPECT_EQ(st.non_durable_ops, 2u);
  EXPECT_EQ(st.reads_after_cut, 4u);
  (void)p;
}

TEST(OraclePowerCut, DurableWriteReadBackOldOrZeroIsAFinding) {
  History h;
  uint64_t i = h.init(16, 1, 5);
  h.fsync(6, 8);
  h.write(2, 1, 10, 20);
  h.punch(5, 1, 21, 22);
  h.fsync(25, 30);
  h.power_cut(100);
  h.read(2, 200, 210, History::data(2, i), OpKind::kVerifyDisk);  // the fsync'ed write is gone
  h.read(5, 220, 230, History::data(5, i), OpKind::kVerifyDisk);  // the fsync'ed punch is gone
  auto c = h.classes();
  ASSERT_EQ(c, (V{"stale", "stale-after-punch"}));
  EXPECT_EQ(h.last.kept[0].phase, "after-power-cut");
  EXPECT_NE(h.last.kept[0].detail.find("power cut"), std::string::npos) << h.last.kept[0].detail;
  EXPECT_NE(h.last.kept[0].detail.find("so it had to survive, yet"), std::string::npos) << h.last.kept[0].detail;
  EXPECT_TRUE(std::any_of(h.last.kept[0].ops.begin(), h.last.kept[0].ops.end(),
                          [](const OpRecord& o) { return OpKind(o.kind) == OpKind::kPowerCut; }));
}

TEST(OraclePowerCut, InitNeverFsyncedMayVanishButAFailedFsyncGuaranteesNothing) {
  History h;
  h.init(16, 1, 5);
  h.power_cut(100);
  h.read(3, 200, 210, History::zero(), OpKind::kVerifyDisk);
  EXPECT_EQ(h.classes(), V{});
  History g;
  g.init(16, 1, 5);
  g.fsync(6, 8, false);  // EIO: nothing became durable
  g.power_cut(100);
  g.read(3, 200, 210, History::zero(), OpKind::kVerifyDisk);
  EXPECT_EQ(g.classes(), V{});
  History k;
  k.init(16, 1, 5);
  k.fsync(6, 8);
  k.power_cut(100);
  k.read(3, 200, 210, History::zero(), OpKind::kVerifyDisk);
  EXPECT_EQ(k.classes(), V{"lost-write"});
}

TEST(OraclePowerCut, ReadsBeforeTheCutKeepTheNormalRule) {
  History h;
  uint64_t i = h.init(16, 1, 5);
  h.write(2, 1, 10, 20);            // never fsync'ed
  h.read(2, 30, 40, History::data(2, i));  // before the cut: the write had completed, so this is stale
  h.power_cut(100);
  h.read(2, 200, 210, History::data(2, i), OpKind::kVerifyDisk);  // after it: legal
  EXPECT_EQ(h.classes(), V{"stale"});
}

TEST(OraclePowerCut, ShiftedFileNotDurableIsNotJudgedAfterTheCut) {
  History h;
  h.init(16, 1, 5);
  h.fsync(6, 8);
  h.collapse(2, 2, 10, 20);  // not durable
  h.power_cut(100);
  h.read(3, 200, 210, History::data(9, 999), OpKind::kVerifyDisk);  // anything: not judged
  OracleStats st;
  EXPECT_EQ(h.classes(&st), V{});
  EXPECT_EQ(st.unjudged_after_cut, 1u);
  History g;
  uint64_t i = g.init(16, 1, 5);
  g.collapse(2, 2, 10, 20);
  g.fsync(25, 30);  // the collapse was fsync'ed: judged as usual
  g.power_cut(100);
  g.read(2, 200, 210, History::data(2, i), OpKind::kVerifyDisk);  // block 2 must hold old block 4
  EXPECT_EQ(g.classes(), V{"stale"});
}
