// dax-pin-vs-truncate's explanations (harness/dax_pin): which kernel report or stamp they account for,
// and which they must leave alone.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/findings.h"
#include "core/oplog.h"
#include "harness/dax_pin.h"
#include "workloads/engine.h"

namespace fsrace {
namespace {

Finding warning(std::vector<std::string> trace) {
  Finding f = make_finding("kernel-warning", "ext4-dax", "dax-pin-vs-truncate", "c", "kernel-log");
  f.got = "WARNING: CPU: 1 PID: 148 at fs/dax.c:398 dax_disassociate_entry+0x87/0xb0";
  f.kernel_log = std::move(trace);
  f.kernel_log.insert(f.kernel_log.begin(), f.got);
  return f;
}

TEST(DaxPin, WarningFromTheEvictionPathIsThePinnedPageEvicted) {
  // The call trace of the warning seen on Debian's 6.1.0-57 (unlink of a victim with an O_DIRECT read in flight).
  Finding f = warning({"Call Trace:", " __dax_invalidate_entry+0x94/0x140", " dax_delete_mapping_entry+0xf/0x20",
                       " truncate_inode_pages_range+0xfa/0x450", " ext4_evict_inode+0x1ad/0x710 [ext4]",
                       " evict+0x10f/0x2c0", " do_unlinkat+0x173/0x320"});
  ASSERT_TRUE(explain_dax_pin_warning(f));
  EXPECT_EQ(f.explained_by, "dax-pinned-page-evicted");
  EXPECT_NE(f.detail.find("evicted"), std::string::npos);
}

TEST(DaxPin, WarningFromAPunchIsThePinnedPageTruncated) {
  Finding f = warning({"Call Trace:", " __dax_invalidate_entry+0x94/0x140", " dax_delete_mapping_entry+0xf/0x20",
                       " truncate_inode_pages_range+0xfa/0x450", " ext4_punch_hole+0x135/0x560 [ext4]"});
  ASSERT_TRUE(explain_dax_pin_warning(f));
  EXPECT_EQ(f.explained_by, "dax-pinned-page-truncated");
}

TEST(DaxPin, OtherWarningsAreLeftAlone) {
  Finding f = make_finding("kernel-warning", "ext4-dax", "dax-pin-vs-truncate", "c", "kernel-log");
  f.got = "WARNING: CPU: 0 PID: 1 at fs/ext4/inode.c:3700 ext4_set_page_dirty+0x1/0x2";
  f.kernel_log = {f.got, " ext4_punch_hole+0x135/0x560 [ext4]"};
  EXPECT_FALSE(explain_dax_pin_warning(f));
  EXPECT_TRUE(f.explained_by.empty());
  Finding h = warning({" evict+0x10f/0x2c0"});
  h.cls = "kernel-oops";
  EXPECT_FALSE(explain_dax_pin_warning(h));
}

nlohmann::json thread(int tid, const char* comm, const char* state, const char* syscall, const char* wchan) {
  return {{"tid", tid}, {"comm", comm}, {"state", state}, {"syscall", syscall}, {"wchan", wchan}};
}

TEST(DaxPin, HangInLayoutBreaksWithNoReadInFlightIsALostWakeUp) {
  // The heartbeat of the hang on Debian's 6.1.0-57: pinner in ftruncate, hole thread in fallocate, both in
  // ext4_break_layouts; reader and writer queued on i_rwsem.
  nlohmann::json th = {thread(148, "fsr-pin1", "S", "77 0xdd 0x0", "ext4_break_layouts"),
                       thread(149, "fsr-read2", "D", "17 0xd8 0x7f1108101000 0x9000", ""),
                       thread(150, "fsr-wr3", "D", "18 0xd8 0x7f10fc101000 0x6000", ""),
                       thread(151, "fsr-hole4", "S", "285 0xd8 0x3 0x172000", "ext4_break_layouts"),
                       thread(147, "fsr-events", "S", "232 0xd6", "do_epoll_wait")};
  Finding f = make_finding("hang", "ext4-dax", "dax-pin-vs-truncate", "c", "race");
  ASSERT_TRUE(explain_layout_break_hang(f, th));
  EXPECT_EQ(f.explained_by, "dax-layout-break-wake-lost");
  EXPECT_NE(f.detail.find("fsr-pin1[148] in ext4_break_layouts, fsr-hole4[151] in ext4_break_layouts"), std::string::npos);
}

TEST(DaxPin, HangWithAReadStillInIoOrNoLayoutBreakIsNotExplained) {
  nlohmann::json io = {thread(151, "fsr-hole4", "S", "285 0xd8 0x3", "xfs_break_dax_layouts"),
                       thread(148, "fsr-pin1", "D", "17 0xdd 0x7f 0x10000", "io_schedule")};
  Finding f = make_finding("hang", "xfs-dax", "dax-pin-vs-truncate", "c", "race");
  EXPECT_FALSE(explain_layout_break_hang(f, io));
  nlohmann::json other = {thread(151, "fsr-hole4", "D", "285 0xd8 0x3", "rwsem_down_write_slowpath")};
  EXPECT_FALSE(explain_layout_break_hang(f, other));
  EXPECT_TRUE(f.explained_by.empty());
}

Finding foreign_with(uint64_t file_id) {
  Finding f = make_finding("foreign", "xfs-dax", "dax-pin-vs-truncate", "c", "verify-cache");
  f.file = "f0";
  BlockValue v;
  v.cls = BlockClass::kData;
  v.file_id = file_id;
  v.gen = 2199023255595ull;
  f.got_value = v;
  return f;
}

TEST(DaxPin, VictimStampsInATestFileAreWritesAfterFreeOrUnzeroedBlocks) {
  const uint64_t nonce = 0xcc3e242d;
  uint64_t dma = (nonce << 32) | kVictimFileBit | (uint64_t(1) << 20) | 8;
  Finding a = foreign_with(dma);
  ASSERT_TRUE(explain_victim_stamp(a, nonce));
  EXPECT_EQ(a.explained_by, "dax-pin-write-after-free");
  EXPECT_NE(a.detail.find("pv1.8"), std::string::npos);
  Finding b = foreign_with(dma | kVictimOwnBit);
  ASSERT_TRUE(explain_victim_stamp(b, nonce));
  EXPECT_EQ(b.explained_by, "dax-freed-block-not-zeroed");
  // Another run's victim, or a test file's stamp: not explained.
  Finding c = foreign_with(((nonce + 1) << 32) | kVictimFileBit | 8);
  EXPECT_FALSE(explain_victim_stamp(c, nonce));
  Finding d = foreign_with((nonce << 32) | 1);
  EXPECT_FALSE(explain_victim_stamp(d, nonce));
}

// Every op kind fsrace writes must be in the findings schema's op kind enum (msync and pin-write once were
// missing from it).
TEST(OpKinds, EveryKindNameIsInTheFindingsSchema) {
  std::ifstream in(std::string(FSRACE_TEST_DATA) + "/../../docs/schema/findings.schema.json");
  ASSERT_TRUE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  std::string schema = ss.str();
  for (int k = 1; k < 64; ++k) {
    std::string name = op_kind_name(OpKind(k));
    if (name == "unknown") continue;
    EXPECT_NE(schema.find("\"" + name + "\""), std::string::npos) << name << " is not in docs/schema/findings.schema.json";
  }
}

}  // namespace
}  // namespace fsrace
