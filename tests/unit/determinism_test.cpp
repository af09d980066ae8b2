// Same seed -> same op sequence per thread (kinds, files, ranges), for every scenario; another seed ->
// another sequence. Runs the real engine in a plain temp directory (no root needed) with a fixed
// iteration count.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fmt/core.h>
#include <map>

#include "core/util.h"
#include "workloads/scenario.h"

using namespace fsrace;

namespace {

using Seq = std::map<uint32_t, std::vector<std::tuple<uint16_t, uint16_t, uint64_t, uint64_t>>>;

Seq run_once(const std::string& scenario, uint64_t seed, const std::string& tag,
             const std::map<std::string, double>& overrides = {}) {
  std::string dir = fmt::format("/tmp/fsrace-det-{}-{}", getpid(), tag);
  make_dirs(dir);
  Scenario* sc = find_scenario(scenario);
  ScenarioConfig cfg{scenario, {}};
  for (const auto& p : sc->spec().params) cfg.params[p.name] = p.def;
  cfg.params["iterations"] = 150;
  for (const auto& [k, v] : overrides) cfg.params[k] = v;
  ScenarioEnv env;
  env.dir = dir;
  env.cfg = &cfg;
  env.seed = seed;
  env.duration_s = 600;
  env.run_nonce = 7;
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
  Seq s;
  for (const auto& r : d.ops)
    if (r.thread != 0) s[r.thread].emplace_back(r.kind, r.file, r.offset, r.length);
  for (const auto& f : files) unlink(f.path.c_str());
  unlink(path.c_str());
  rmdir(dir.c_str());
  return s;
}

}  // namespace

class Determinism : public ::testing::TestWithParam<std::string> {};

TEST_P(Determinism, SameSeedSameOps) {
  Seq a, b, c;
  try {
    a = run_once(GetParam(), 42, "a");
  } catch (const Fatal& e) {
    GTEST_SKIP() << "the filesystem of /tmp cannot run this scenario: " << e.what();
  }
  b = run_once(GetParam(), 42, "b");
  c = run_once(GetParam(), 43, "c");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (const auto& [t, ops] : a) {
    if (t < 1000) {  // 1000+: userfaultfd racers, which run only during pauses
      EXPECT_GE(ops.size(), 150u) << "thread " << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllScenarios, Determinism,
                         ::testing::Values("punch-vs-fault", "punch-vs-read", "mkwrite-vs-fallocate", "dio-vs-mmap",
                                           "dio-vs-buffered", "writeback-vs-write", "mixed"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

TEST(Determinism, JitterNeverShiftsTheOpSequence) {
  Seq plain = run_once("punch-vs-fault", 42, "plain");
  Seq jittered = run_once("punch-vs-fault", 42, "jitter", {{"jitter_us", 30}});
  EXPECT_EQ(plain, jittered);
}
