// fsrace explore's policy (harness/explore.h): near-miss signals on recorded and hand-built events,
// the score, the bandit's order and determinism, retirement and repeats after a finding.
#include "harness/explore.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "core/campaign.h"
#include "probes/fsrace_events.h"
#include "workloads/scenario.h"

using namespace fsrace;
using probes::EventsData;
using json = nlohmann::json;

namespace {
std::string data(const std::string& rel) { return std::string(FSRACE_TEST_DATA) + "/" + rel; }

fsr_event ev(uint64_t ts, uint16_t kind, const char* comm, uint32_t tid, uint64_t a0 = 0, uint64_t a1 = 0, int64_t ret = 0) {
  fsr_event e{};
  e.ts_ns = ts;
  e.dev = 7u << 20;
  e.ino = 12;
  e.kind = kind;
  e.tid = tid;
  e.a[0] = a0;
  e.a[1] = a1;
  e.ret = ret;
  std::strcpy(e.comm, comm);
  return e;
}
EventsData stream(std::vector<fsr_event> v) {
  EventsData d;
  d.trailer = {{"dropped", 0}, {"inodes", {{{"dev", 7u << 20}, {"ino", 12}, {"name", "f0"}}}}};
  d.events = std::move(v);
  return d;
}
OpRecord op(OpKind k, uint64_t s, uint64_t e, uint64_t block, uint64_t blocks) {
  OpRecord r{};
  r.kind = uint16_t(k), r.start_ns = s, r.end_ns = e, r.offset = block * 4096, r.length = blocks * 4096, r.result = 0;
  return r;
}
}  // namespace

// Each signal from the events alone (function-probe windows) and from the op log (the host's only view).
TEST(ExploreSignals, WindowsFromEventsAndFromTheOpLog) {
  json info = {{"ops", {{"overlap", {{"share", 0.25}}}}}};
  // truncate_pagecache_range by the punch thread over pages 16..19, a fault adds 17 inside it: a near miss
  EventsData a = stream({ev(100, FSR_EV_TRUNC_PC_ENTER, "fsr-punch1", 1, 16 * 4096, 20 * 4096 - 1),
                         ev(150, FSR_EV_PC_ADD, "fsr-mmap2", 2, 17, 1), ev(200, FSR_EV_TRUNC_PC_EXIT, "fsr-punch1", 1),
                         ev(300, FSR_EV_PC_ADD, "fsr-mmap2", 2, 17, 1),  // after: not one
                         ev(400, FSR_EV_IOMAP_STALE, "fsr-buf1", 3), ev(410, FSR_EV_CONTENTION_BEGIN, "fsr-mmap2", 2),
                         ev(500, FSR_EV_INVAL2_ENTER, "fsr-dio1", 4, 30, 31), ev(510, FSR_EV_INVAL2_EXIT, "fsr-dio1", 4, 0, 0, -16)});
  NearMisses n = near_misses(a, info);
  EXPECT_EQ(n.fill_in_invalidation, 1u);
  EXPECT_EQ(n.stale_iomap, 1u);
  EXPECT_EQ(n.lock_contention, 1u);
  EXPECT_EQ(n.dio_invalidate_failed, 1u);  // invalidate_inode_pages2_range returned -EBUSY
  EXPECT_DOUBLE_EQ(n.overlap_share, 0.25);
  // No function probes (the host): the punch and the O_DIRECT write are windows from the op log.
  OpLogData ops;
  ops.meta = {{"files", {{{"name", "f0"}, {"file_id", 1}, {"blocks", 64}}}}};
  ops.ops = {op(OpKind::kPunch, 1000, 2000, 16, 4), op(OpKind::kDioWrite, 3000, 4000, 40, 2)};
  EventsData b = stream({ev(1500, FSR_EV_PC_ADD, "fsr-read3", 2, 18, 1), ev(1500, FSR_EV_PC_ADD, "fsr-read3", 2, 30, 1),
                         ev(3500, FSR_EV_PC_ADD, "fsr-mmap2", 2, 41, 1), ev(3600, FSR_EV_PC_ADD, "fsr-dio1", 5, 41, 1)});
  n = near_misses(b, json::object(), &ops);
  EXPECT_EQ(n.fill_in_invalidation, 1u);  // page 18 in the punch; page 30 is outside it
  EXPECT_EQ(n.fill_in_dio_write, 1u);     // the fault's, not the O_DIRECT thread's own
  EXPECT_EQ(near_misses(b, json::object()).fill_in_invalidation, 0u);  // without the op log: no window
}

TEST(ExploreSignals, RecordedXfsCaseHasRevalidationsAndContention) {
  EventsData ev = probes::load_events(data("events/xfs.events.bin"));
  NearMisses n = near_misses(ev, json::object());
  EXPECT_GT(n.lock_contention, 0u);
  EXPECT_GT(near_miss_score(n), 0.0);
}

TEST(ExploreScore, MonotoneAndBelowOne) {
  NearMisses z, a, b;
  a.stale_iomap = 10;
  b = a;
  b.fill_in_invalidation = 1;
  EXPECT_EQ(near_miss_score(z), 0.0);
  EXPECT_GT(near_miss_score(a), 0.0);
  EXPECT_GT(near_miss_score(b), near_miss_score(a));
  b.stale_iomap = b.lock_contention = b.fill_in_dio_write = b.fill_in_invalidation = 1000000;
  EXPECT_LT(near_miss_score(b), 1.0);
}

namespace {
std::vector<ExploreArm> arms4() { return {{"ext4", "a", 0}, {"ext4", "a", 1}, {"xfs", "a", 0}, {"xfs", "a", 1}}; }
RoundResult signal(uint64_t fills) {
  RoundResult r;
  r.signals.fill_in_invalidation = fills;
  return r;
}
}  // namespace

TEST(Explorer, SweepsBaseVariantsFirstThenFollowsTheSignal) {
  Explorer ex(arms4(), 7);
  std::vector<size_t> first;
  for (int i = 0; i < 4; ++i) {
    size_t a = *ex.next();
    first.push_back(a);
    ex.record(a, signal(a == 3 ? 50 : 0));  // only xfs variant 1 shows near misses
  }
  EXPECT_EQ(ex.arms()[first[0]].variant, 0u);
  EXPECT_EQ(ex.arms()[first[1]].variant, 0u);
  std::vector<size_t> sorted = first;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<size_t>{0, 1, 2, 3}));  // every arm once
  size_t to3 = 0;
  for (int i = 0; i < 20; ++i) {
    size_t a = *ex.next();
    to3 += a == 3;
    ex.record(a, signal(a == 3 ? 50 : 0));
  }
  EXPECT_GT(to3, 12u) << ex.table_text();
}

TEST(Explorer, SameSeedAndResultsSameRounds) {
  auto rounds = [](uint64_t seed) {
    Explorer ex(arms4(), seed);
    std::vector<size_t> v;
    for (int i = 0; i < 12; ++i) {
      size_t a = *ex.next();
      v.push_back(a);
      ex.record(a, signal(a));
    }
    return v;
  };
  EXPECT_EQ(rounds(3), rounds(3));
  bool differs = false;
  for (uint64_t s = 4; s < 12 && !differs; ++s) differs = rounds(s) != rounds(3);
  EXPECT_TRUE(differs);  // the seed orders the first sweep
}

TEST(Explorer, AFindingRetiresItsArmAndIsRepeated) {
  Explorer ex(arms4(), 1, 2);
  size_t a = *ex.next();
  RoundResult f;
  f.findings_by_class["stale"] = 3;
  ex.record(a, f);
  EXPECT_EQ(*ex.next(), a);  // two repeats for the reproduction rate
  EXPECT_TRUE(ex.is_repeat(a));
  ex.record(a, f);
  EXPECT_EQ(*ex.next(), a);
  ex.record(a, RoundResult{});
  for (int i = 0; i < 10; ++i) {
    std::optional<size_t> n = ex.next();
    ASSERT_TRUE(n);
    EXPECT_NE(*n, a);
    ex.record(*n, RoundResult{});
  }
  json t = ex.table();
  bool seen = false;
  for (const auto& r : t["rows"])
    if (r["arm"] == ex.arms()[a].name()) {
      seen = true;
      EXPECT_EQ(r["repro"]["repeats"], 2);
      EXPECT_EQ(r["repro"]["found"], 1);
    }
  EXPECT_TRUE(seen);
  // every arm retired: nothing left
  Explorer one({{"ext4", "a", 0}}, 1, 0);
  one.record(*one.next(), f);
  EXPECT_FALSE(one.next());
}

TEST(ExploreArms, VariantsOnlyWhereTheScenarioHasTheirParams) {
  Campaign c = parse_campaign("[campaign]\nfilesystems = [\"ext4\"]\nscenarios = [\"dio-vs-buffered\", \"punch-vs-read\"]\n", "c.toml",
                              scenario_catalog());
  auto arms = explore_arms(c);
  std::set<std::string> names;
  for (const auto& a : arms) names.insert(a.name());
  EXPECT_TRUE(names.count("ext4-punch-vs-read-base"));
  EXPECT_TRUE(names.count("ext4-punch-vs-read-tight"));
  EXPECT_FALSE(names.count("ext4-dio-vs-buffered-shifts"));  // excluded, with its reason in explore_exclusions()
  CaseSpec cs = explore_case(c, {"ext4", "punch-vs-read", 2}, 5, 99);
  EXPECT_EQ(cs.name, "r005-ext4-punch-vs-read-tight");
  EXPECT_EQ(cs.sc.i("file_blocks"), 16);
  EXPECT_EQ(cs.seed, 99u);
  EXPECT_EQ(cs.widening, "off");
  EXPECT_EQ(explore_case(c, {"ext4", "punch-vs-read", 1}, 6, 1).widening, "auto");
}

TEST(ExploreBudget, Durations) {
  EXPECT_EQ(*parse_budget("90s"), 90);
  EXPECT_EQ(*parse_budget("30m"), 1800);
  EXPECT_EQ(*parse_budget("2h"), 7200);
  EXPECT_EQ(*parse_budget("45"), 45);
  for (const char* bad : {"", "x", "-5m", "0", "5d", "nan"}) EXPECT_FALSE(parse_budget(bad)) << bad;
}
