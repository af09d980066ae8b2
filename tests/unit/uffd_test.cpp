// userfaultfd widening really parks the I/O: in ops.bin every paused read contains, inside its own
// interval, the punch the handler ran while the read's buffer fault was held (ext4: no lock between
// them). Runs the real engine in a temp directory; skipped where userfaultfd or ext4 is not available.
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <fmt/core.h>

#include "core/util.h"
#include "workloads/engine.h"
#include "workloads/scenario.h"
#include "workloads/uffd.h"

using namespace fsrace;

TEST(Uffd, RacingPunchRunsInsideTheParkedRead) {
  if (std::string why = uffd_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  std::string dir = fmt::format("/tmp/fsrace-uffd-{}", getpid());
  make_dirs(dir);
  struct statfs sf;
  if (statfs(dir.c_str(), &sf) != 0 || sf.f_type != EXT4_SUPER_MAGIC) {
    rmdir(dir.c_str());
    GTEST_SKIP() << "/tmp is not ext4 (XFS holds IOLOCK across a buffered read: the punch would wait)";
  }
  Scenario* sc = find_scenario("punch-vs-read");
  ScenarioConfig cfg{sc->spec().name, {}};
  for (const auto& p : sc->spec().params) cfg.params[p.name] = p.def;
  cfg.params["uffd_ratio"] = 1.0;
  cfg.params["hole_threads"] = 1;
  cfg.params["readers"] = 1;
  cfg.params["iterations"] = 60;
  ScenarioEnv env;
  env.dir = dir;
  env.cfg = &cfg;
  env.seed = 3;
  env.duration_s = 600;
  env.run_nonce = 9;
  auto files = sc->plan_files(env);
  std::string path = dir + "/ops.bin";
  RaceStats rs;
  {
    OpLog log(path, {{"files", nlohmann::json::array()}});
    env.log = &log;
    sc->setup(env, files);
    rs = sc->race(env, files);
    log.close();
  }
  OpLogData d = load_oplog(path);
  for (const auto& f : files) unlink(f.path.c_str());
  unlink(path.c_str());
  rmdir(dir.c_str());

  size_t paused = 0, contained = 0;
  for (const auto& r : d.ops) {
    if (!(r.flags & kFlagPaused)) continue;
    ++paused;
    EXPECT_EQ(OpKind(r.kind), OpKind::kRead);
    for (const auto& h : d.ops)
      if ((h.flags & kFlagDuringPause) && op_kind_zeroes(OpKind(h.kind)) && h.file == r.file && h.offset == r.offset &&
          r.start_ns < h.start_ns && h.end_ns < r.end_ns) {
        ++contained;
        break;
      }
  }
  EXPECT_EQ(paused, 60u);
  // Every racing op the handler saw finish inside the pause is, by the op log's own timestamps, inside
  // the parked read's interval; on ext4 nearly all finish inside (a loaded machine can exceed the
  // bounded pause now and then).
  uint64_t inside = rs.widening_counts["uffd-race-inside-pause"];
  EXPECT_GE(contained, inside) << rs.widening["userfaultfd"];
  EXPECT_GE(inside, paused / 2) << rs.widening["userfaultfd"];
}

