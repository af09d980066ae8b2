// Large ops (params large_op_ratio, large_range_blocks): the engine makes that share of its ranges
// max_range_blocks+1 .. large_range_blocks blocks long, inside the file, deterministically; the op log
// carries them and the oracle judges multi-MiB writes and punches block by block (a far block of a large
// punch that brings old data back is still stale-after-punch, a read racing a large write may see either).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fmt/core.h>

#include "core/oplog.h"
#include "core/util.h"
#include "harness/oracle.h"
#include "workloads/scenario.h"

using namespace fsrace;

namespace {

std::vector<OpRecord> race_ops(const std::string& scenario, const std::map<std::string, double>& overrides, uint64_t* file_blocks) {
  std::string dir = fmt::format("/tmp/fsrace-large-{}-{}", getpid(), scenario);
  make_dirs(dir);
  Scenario* sc = find_scenario(scenario);
  ScenarioConfig cfg{scenario, {}};
  for (const auto& p : sc->spec().params) cfg.params[p.name] = p.def;
  cfg.params["iterations"] = 120;
  for (const auto& [k, v] : overrides) cfg.params[k] = v;
  ScenarioEnv env;
  env.dir = dir;
  env.cfg = &cfg;
  env.seed = 5;
  env.duration_s = 600;
  env.run_nonce = 9;
  auto files = sc->plan_files(env);
  std::string path = dir + "/ops.bin";
  {
    OpLog log(path, {{"files", nlohmann::json::array()}});
    env.log = &log;
    sc->setup(env, files);
    sc->race(env, files);
    log.close();
  }
  OpLogData d = load_oplog(path);
  *file_blocks = files[0].blocks;
  for (const auto& f : files) unlink(f.path.c_str());
  unlink(path.c_str());
  rmdir(dir.c_str());
  std::vector<OpRecord> out;
  for (const auto& r : d.ops)
    if (r.thread != 0) out.push_back(r);
  return out;
}

}  // namespace

TEST(LargeOps, AShareOfTheRangesIsMultiMiBInsideTheFile) {
  uint64_t nb = 0;
  auto ops = race_ops("punch-vs-fault", {{"file_blocks", 2048}, {"large_op_ratio", 0.3}, {"large_range_blocks", 1024}}, &nb);
  ASSERT_EQ(nb, 2048u);
  uint64_t large = 0, large_mod = 0, biggest = 0;
  for (const auto& r : ops) {
    if (r.length == 0) continue;
    uint64_t n = r.length / kBlockSize;
    EXPECT_LE(r.offset + r.length, nb * kBlockSize);
    EXPECT_LE(n, 1024u);
    if (n > 8) {
      ++large;
      large_mod += op_kind_modifies(OpKind(r.kind));
    }
    biggest = std::max(biggest, n);
  }
  EXPECT_GT(large, ops.size() / 10) << "about 30 % of the ranges should be large";
  EXPECT_GT(large_mod, 0u) << "large writes / punches, not only large reads";
  EXPECT_GT(biggest, 256u) << "some ranges span hundreds of folios";
  // off by default: nothing longer than max_range_blocks
  auto plain = race_ops("punch-vs-fault", {{"file_blocks", 2048}}, &nb);
  for (const auto& r : plain) EXPECT_LE(r.length, 8 * kBlockSize);
  // deterministic like the rest (same seed, same ranges)
  auto again = race_ops("punch-vs-fault", {{"file_blocks", 2048}, {"large_op_ratio", 0.3}, {"large_range_blocks", 1024}}, &nb);
  ASSERT_EQ(again.size(), ops.size());
  std::map<uint32_t, std::vector<std::pair<uint64_t, uint64_t>>> a, b;
  for (const auto& r : ops) a[r.thread].emplace_back(r.offset, r.length);
  for (const auto& r : again) b[r.thread].emplace_back(r.offset, r.length);
  EXPECT_EQ(a, b);
}

TEST(LargeOps, FileSmallerThanALargeOpKeepsTheRangeInside) {
  uint64_t nb = 0;
  auto ops = race_ops("mixed", {{"file_blocks", 40}, {"large_op_ratio", 1}, {"large_range_blocks", 4096}}, &nb);
  uint64_t checked = 0;
  for (const auto& r : ops)
    if (r.kind == uint16_t(OpKind::kPunch) || r.kind == uint16_t(OpKind::kWrite) || r.kind == uint16_t(OpKind::kRead)) {
      // (mixed's collapse / insert / truncate change the size; these ops stay inside the planned file)
      EXPECT_LE(r.offset + r.length, nb * kBlockSize) << "kind " << r.kind;
      ++checked;
    }
  EXPECT_GT(checked, 0u);
}

namespace {
constexpr uint64_t kFid = 0x77700000000ull;
struct Log {
  OpLogData d;
  uint64_t seq = 0;
  explicit Log(uint64_t blocks) { d.meta = {{"files", {{{"name", "f0"}, {"file_id", kFid}, {"blocks", blocks}}}}}; }
  uint64_t add(OpKind k, uint64_t b, uint64_t n, uint64_t s, uint64_t e, int64_t res) {
    uint64_t id = (1ull << kOpIdThreadShift) | ++seq;
    d.ops.push_back(OpRecord{id, s, e, b * kBlockSize, n * kBlockSize, res, 1, uint16_t(k), 0, 0, 0});
    d.obs_begin.push_back(d.obs.size());
    return id;
  }
  // a read of [b, b+n) that saw run after run: {first block, count, cls, gen}
  void read(uint64_t b, uint64_t n, uint64_t s, uint64_t e, std::vector<std::tuple<uint64_t, uint16_t, BlockClass, uint64_t>> runs) {
    add(OpKind::kRead, b, n, s, e, int64_t(n * kBlockSize));
    d.obs_begin.back() = d.obs.size();
    for (auto& [fb, cnt, cls, gen] : runs)
      d.obs.push_back(ObsRecord{gen, 0, cls == BlockClass::kZero ? 0 : kFid, cls == BlockClass::kZero ? 0 : fb, uint32_t(fb), uint8_t(cls), 0, cnt});
    d.ops.back().nobs = uint32_t(runs.size());
  }
  std::vector<std::string> classes() {
    FindingSet fs = run_oracle(d, OracleContext{"xfs", "t", "case"});
    std::vector<std::string> out;
    for (const auto& f : fs.kept) out.push_back(f.cls);
    return out;
  }
};
}  // namespace

TEST(LargeOps, OracleJudgesMultiMiBOpsBlockByBlock) {
  // 4096 blocks; a 1024-block write (4 MiB) racing a read of its far end: either value is legal per block
  Log l(4096);
  uint64_t init = l.add(OpKind::kInit, 0, 4096, 1, 2, 4096 * kBlockSize);
  uint64_t w = l.add(OpKind::kWrite, 1000, 1024, 10, 20, 1024 * kBlockSize);
  l.read(1900, 200, 12, 18, {{1900, 50, BlockClass::kData, init}, {1950, 74, BlockClass::kData, w}, {2024, 76, BlockClass::kData, init}});
  EXPECT_EQ(l.classes(), std::vector<std::string>{});
  // a 900-block punch after the write: a read afterwards that finds the write's data at the punch's far end
  // brought punched-out data back
  uint64_t p = l.add(OpKind::kPunch, 1100, 900, 30, 40, 0);
  (void)p;
  l.read(1990, 20, 50, 60, {{1990, 10, BlockClass::kData, w}, {2000, 20, BlockClass::kData, w}});
  FindingSet got = run_oracle(l.d, OracleContext{"xfs", "t", "case"});
  ASSERT_EQ(got.kept.size(), 1u) << "one finding over the punched blocks that came back (1990..1999), none for 2000..2009";
  EXPECT_EQ(got.kept[0].cls, "stale-after-punch");
  EXPECT_EQ(*got.kept[0].block, 1990u);
  EXPECT_EQ(got.kept[0].blocks, 10u);
  // the same read seeing zeros in the punched part and the write beyond it is fine
  Log ok(4096);
  init = ok.add(OpKind::kInit, 0, 4096, 1, 2, 4096 * kBlockSize);
  w = ok.add(OpKind::kWrite, 1000, 1024, 10, 20, 1024 * kBlockSize);
  ok.add(OpKind::kPunch, 1100, 900, 30, 40, 0);
  ok.read(1990, 30, 50, 60, {{1990, 10, BlockClass::kZero, 0}, {2000, 24, BlockClass::kData, w}, {2024, 6, BlockClass::kData, init}});
  EXPECT_EQ(ok.classes(), std::vector<std::string>{});
}
