// The DAX flush check (harness/dax_check): stores that ended before a successful sync of their page began
// must have a dax_writeback_one covering the page between the store's start and the sync's return.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "core/oplog.h"
#include "harness/dax_check.h"
#include "probes/events.h"
#include "probes/fsrace_events.h"

namespace fsrace {
namespace {

OpRecord op(uint64_t id, OpKind k, uint64_t t0, uint64_t t1, uint64_t off, uint64_t len, int64_t res = 0) {
  OpRecord o{};
  o.id = id;
  o.kind = uint16_t(k);
  o.start_ns = t0;
  o.end_ns = t1;
  o.offset = off;
  o.length = len;
  o.result = res;
  o.file = 0;
  return o;
}

struct Fixture {
  OpLogData ops;
  probes::EventsData ev;
  Fixture() {
    ops.meta = {{"files", {{{"name", "f0"}, {"file_id", 1}, {"blocks", 1024}}}}};
    ev.trailer = {{"dropped", 0}, {"inodes", {{{"dev", 7}, {"ino", 12}, {"name", "f0"}}}}};
  }
  void flush(uint64_t ts, uint64_t pg, uint64_t len, const char* comm = "fsr-sync0") {
    fsr_event e{};
    snprintf(e.comm, sizeof e.comm, "%s", comm);
    e.kind = FSR_EV_DAX_WRITEBACK;
    e.probe = FSR_P_DAX_WRITEBACK_ONE;
    e.ts_ns = ts;
    e.dev = 7;
    e.ino = 12;
    e.a[0] = pg;
    e.a[1] = len;
    ev.events.push_back(e);
  }
  void fault(uint64_t t0, uint64_t t1, uint64_t pg, bool pmd, const char* comm = "fsr-mkw1", uint32_t tid = 76) {
    for (int done = 0; done < 2; ++done) {
      fsr_event e{};
      snprintf(e.comm, sizeof e.comm, "%s", comm);
      e.kind = done ? FSR_EV_DAX_FAULT : FSR_EV_DAX_FAULT_BEGIN;
      e.probe = done ? FSR_P_DAX_PTE_FAULT_DONE : FSR_P_DAX_PTE_FAULT;
      e.ts_ns = done ? t1 : t0;
      e.dev = 7;
      e.ino = 12;
      e.tid = tid;
      e.a[0] = pg;
      e.a[1] = pmd;
      e.a[2] = 1;
      ev.events.push_back(e);
    }
  }
  std::vector<Finding> run(DaxFlushStats* st = nullptr, bool attached = true) {
    return check_dax_flushes(ops, ev, attached, "ext4-dax", "dax-sync-vs-write-fault", "c", st);
  }
};

TEST(DaxFlush, FlushedStoreIsClean) {
  Fixture f;
  f.ops.ops = {op(1, OpKind::kMmapWrite, 100, 200, 4096, 4096), op(2, OpKind::kMsync, 300, 400, 0, 8192)};
  f.flush(350, 1, 1);
  DaxFlushStats st;
  EXPECT_TRUE(f.run(&st).empty());
  EXPECT_EQ(st.pages_judged, 1u);
  EXPECT_EQ(st.pages_unflushed, 0u);
}

TEST(DaxFlush, UnflushedStoreBeforeSyncIsAFinding) {
  Fixture f;
  f.ops.ops = {op(1, OpKind::kMmapWrite, 100, 200, 4096, 8192), op(2, OpKind::kFsync, 300, 400, 0, 1024 * 4096)};
  f.flush(350, 1, 1);  // page 2 never flushed
  auto fs = f.run();
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].cls, "dax-unflushed");
  EXPECT_EQ(*fs[0].block, 2u);
  EXPECT_EQ(fs[0].file, "f0");
}

// The detail says what flushed the page next: a writeback by another task right after the sync returned
// (it had taken the entry before the sync walked the range), or nothing at all.
TEST(DaxFlush, TheDetailNamesThePagesNextFlushAndWho) {
  Fixture f;
  f.ops.ops = {op(1, OpKind::kMmapWrite, 100, 200, 4096, 8192), op(2, OpKind::kFsync, 300, 400, 0, 1024 * 4096)};
  f.flush(350, 1, 1);
  f.flush(400 + 500000, 0, 512, "kworker/u4:1");  // page 2's flush, 0.5 ms after the fsync returned
  auto fs = f.run();
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_NE(fs[0].detail.find("the page's next flush came 0.500 ms after the sync returned, from a kernel worker"), std::string::npos)
      << fs[0].detail;
  EXPECT_NE(fs[0].detail.find("index 0+512"), std::string::npos) << fs[0].detail;
  Fixture g;
  g.ops.ops = f.ops.ops;
  auto gs = g.run();
  ASSERT_EQ(gs.size(), 2u);
  EXPECT_NE(gs[0].detail.find("no dax_writeback_one flushed the page later in the race either"), std::string::npos) << gs[0].detail;
}

// Program runs the kernel skipped (bpf_prog_info.recursion_misses) may have been flush events: no verdict.
TEST(DaxFlush, SkippedProgramRunsMeanNoVerdict) {
  Fixture f;
  f.ops.ops = {op(1, OpKind::kMmapWrite, 100, 200, 4096, 4096), op(2, OpKind::kFsync, 300, 400, 0, 1024 * 4096)};
  ASSERT_EQ(f.run().size(), 1u);
  f.ev.trailer["bpf_misses"] = 3;
  DaxFlushStats st;
  EXPECT_TRUE(f.run(&st).empty());
  EXPECT_NE(st.skipped.find("skipped 3 BPF program run(s)"), std::string::npos) << st.skipped;
}

TEST(DaxFlush, PmdFlushCoversItsPages) {
  Fixture f;
  f.ops.ops = {op(1, OpKind::kMmapWrite, 100, 200, 600 * 4096, 4096), op(2, OpKind::kFsync, 300, 400, 0, 1024 * 4096)};
  f.flush(390, 512, 512);
  EXPECT_TRUE(f.run().empty());
}

TEST(DaxFlush, FlushBeforeTheStoreDoesNotCount) {
  Fixture f;
  f.ops.ops = {op(1, OpKind::kMmapWrite, 100, 200, 0, 4096), op(2, OpKind::kMsync, 300, 400, 0, 4096)};
  f.flush(50, 0, 1);
  EXPECT_EQ(f.run().size(), 1u);
}

TEST(DaxFlush, SyncOverlappingTheStoreOrFailedOrElsewhereIsNotJudged) {
  Fixture f;
  f.ops.ops = {op(1, OpKind::kMmapWrite, 100, 200, 0, 4096), op(2, OpKind::kMsync, 150, 400, 0, 4096),
               op(3, OpKind::kMsync, 300, 400, 0, 4096, -5), op(4, OpKind::kMsync, 300, 400, 8192, 4096)};
  DaxFlushStats st;
  EXPECT_TRUE(f.run(&st).empty());
  EXPECT_EQ(st.pages_judged, 0u);
}

TEST(DaxFlush, PunchedPageIsNotJudged) {
  Fixture f;
  f.ops.ops = {op(1, OpKind::kMmapWrite, 100, 200, 0, 4096), op(2, OpKind::kPunch, 220, 230, 0, 4096),
               op(3, OpKind::kMsync, 300, 400, 0, 4096)};
  EXPECT_TRUE(f.run().empty());
}

TEST(DaxFlush, NothingJudgedWithoutTheProbeOrWithDrops) {
  Fixture f;
  f.ops.ops = {op(1, OpKind::kMmapWrite, 100, 200, 0, 4096), op(2, OpKind::kMsync, 300, 400, 0, 4096)};
  DaxFlushStats st;
  EXPECT_TRUE(f.run(&st, false).empty());
  EXPECT_FALSE(st.skipped.empty());
  f.ev.trailer["dropped"] = 3;
  EXPECT_TRUE(f.run(&st).empty());
  EXPECT_NE(st.skipped.find("dropped"), std::string::npos);
}

// An unflushed page whose entry a fault held locked while the sync's walk passed it (between the sync
// thread's flushes of the pages below and above) is explained: dax_writeback_one() skips locked entries.
// The same fault outside that moment, on another page, or with no begin event explains nothing.
TEST(DaxFlush, AFaultHoldingTheEntryWhileTheWalkPassedExplainsTheSkip) {
  auto fixture = [] {
    Fixture f;
    f.ops.ops = {op(1, OpKind::kMmapWrite, 100, 200, 4096, 3 * 4096), op(2, OpKind::kFsync, 1000, 2000, 0, 1024 * 4096)};
    f.ops.ops[1].thread = 3;
    f.flush(1200, 1, 1, "fsr-sync3");  // the walk: page 1, (page 2 skipped), page 3
    f.flush(1300, 3, 1, "fsr-sync3");
    return f;
  };
  {
    Fixture f = fixture();
    f.fault(1150, 1350, 2, false);  // held page 2 while the walk passed it
    std::sort(f.ev.events.begin(), f.ev.events.end(), [](auto& a, auto& b) { return a.ts_ns < b.ts_ns; });
    auto fs = f.run();
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(*fs[0].block, 2u);
    EXPECT_EQ(fs[0].explained_by, "dax-locked-entry-skip");
    EXPECT_NE(fs[0].detail.find("between its flushes of page 1 and page 3"), std::string::npos) << fs[0].detail;
    EXPECT_NE(fs[0].detail.find("write fault"), std::string::npos) << fs[0].detail;
    EXPECT_NE(fs[0].detail.find("fsr-mkw1[76]"), std::string::npos) << fs[0].detail;
  }
  {
    Fixture f = fixture();
    f.fault(1350, 1500, 2, false);  // after the walk passed: the entry was free when the walk looked
    std::sort(f.ev.events.begin(), f.ev.events.end(), [](auto& a, auto& b) { return a.ts_ns < b.ts_ns; });
    auto fs = f.run();
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(fs[0].explained_by, "");
  }
  {
    Fixture f = fixture();
    f.fault(1150, 1350, 5, false);  // another page
    std::sort(f.ev.events.begin(), f.ev.events.end(), [](auto& a, auto& b) { return a.ts_ns < b.ts_ns; });
    auto fs = f.run();
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(fs[0].explained_by, "");
  }
  {
    Fixture f = fixture();
    f.fault(1150, 1350, 2, false, "fsr-mkw1", 76);
    f.ev.events.erase(std::remove_if(f.ev.events.begin(), f.ev.events.end(), [](auto& e) { return e.kind == FSR_EV_DAX_FAULT_BEGIN; }),
                      f.ev.events.end());  // an older run: no fault-begin probe
    std::sort(f.ev.events.begin(), f.ev.events.end(), [](auto& a, auto& b) { return a.ts_ns < b.ts_ns; });
    auto fs = f.run();
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(fs[0].explained_by, "");
  }
  {
    Fixture f = fixture();
    f.flush(1250, 2, 1, "fsr-hole5");  // another walker's flush of page 2 in the window: no finding at all
    f.fault(1150, 1350, 2, false);
    std::sort(f.ev.events.begin(), f.ev.events.end(), [](auto& a, auto& b) { return a.ts_ns < b.ts_ns; });
    EXPECT_TRUE(f.run().empty());
  }
}

// Another writeback (a workload thread's sync whose walk was past the lower pages when this sync's walk
// passed the page) flushed it after this sync returned: explained as a concurrent writeback. A sync that
// began after that moment, or a thread outside the op log, explains nothing.
TEST(DaxFlush, AnotherSyncFlushingThePageWhenTheWalkPassedExplainsIt) {
  auto fixture = [](uint64_t w_start, uint64_t w_prev_flush) {
    Fixture f;
    f.ops.ops = {op(1, OpKind::kMmapWrite, 100, 200, 4096, 3 * 4096), op(2, OpKind::kFsync, 1000, 2000, 0, 1024 * 4096),
                 op(3, OpKind::kFsync, w_start, 2200, 0, 1024 * 4096)};
    f.ops.ops[1].thread = 3;
    f.ops.ops[2].thread = 5;
    if (w_prev_flush) f.flush(w_prev_flush, 0, 1, "fsr-sync5");
    f.flush(1200, 1, 1, "fsr-sync3");
    f.flush(1300, 3, 1, "fsr-sync3");
    f.flush(2100, 2, 1, "fsr-sync5");  // page 2: flushed by T5 after T3's fsync returned
    std::sort(f.ev.events.begin(), f.ev.events.end(), [](auto& a, auto& b) { return a.ts_ns < b.ts_ns; });
    return f;
  };
  {
    Fixture f = fixture(150, 950);  // T5 began during the store: the first sync after it is T3's
    auto fs = f.run();
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(fs[0].explained_by, "dax-concurrent-writeback");
    EXPECT_NE(fs[0].detail.find("T5 fsync #3"), std::string::npos) << fs[0].detail;
    EXPECT_NE(fs[0].detail.find("its walk flushed page 0"), std::string::npos) << fs[0].detail;
  }
  {
    Fixture f = fixture(1350, 0);  // T5's fsync began after T3's walk passed page 2
    auto fs = f.run();
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(fs[0].explained_by, "");
  }
  {
    Fixture f = fixture(150, 950);  // T5 began during the store: the first sync after it is T3's
    f.ops.ops.pop_back();  // the flusher is not a workload op (a kworker-like thread): no evidence
    auto fs = f.run();
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(fs[0].explained_by, "");
  }
}

}  // namespace
}  // namespace fsrace
