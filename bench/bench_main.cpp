// fsrace benchmarks (Google Benchmark). Figures, not pass/fail:
//   * punch-vs-fault ops/s in host mode on ext4 and XFS, with and without op logging; the closing
//     lines state the logging cost (target < 5 %).
//   * race attempts/s and overlap share per scenario: plain, widened (pinning + userfaultfd), and with
//     kernel delays (BPF busy-wait at punch-free) for the punching scenarios.
//   * stamp encode/decode and oracle throughput (blocks judged per second).
// The host benchmarks need root and loop devices; without them they are skipped with the reason.
#include <benchmark/benchmark.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fmt/core.h>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "harness/testbed.h"
#include "harness/oracle.h"
#include "harness/overlap.h"
#include "core/stamp.h"
#include "core/util.h"
#include "widening/delay.h"
#include "probes/kernel_info.h"
#include "workloads/scenario.h"

using namespace fsrace;

namespace {

std::map<std::string, std::vector<double>> g_ops_per_s;  // "ext4/log" -> samples
struct WidenSample {
  double attempts_per_s, share;
};
std::map<std::string, WidenSample> g_widen;  // "scenario/plain" | "scenario/widened" | "scenario/kdelay"

// Kernel delays of the kdelay rows: 200 us at every punch-free hit (after the punch dropped the page
// cache, before the blocks are freed).
const widening::DelayOptions kBenchDelay{{"punch-free"}, "", 200, 1.0, -1};

// Sample length and repetitions of the op-log benchmark: FSRACE_BENCH_SECONDS (default 3) and
// FSRACE_BENCH_REPS (default 3). Per-sample noise on a 2-core box is about +-10 % at 3 s, so figures for a
// note come from longer runs, e.g. FSRACE_BENCH_SECONDS=10 FSRACE_BENCH_REPS=8.
double env_number(const char* name, double def) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  double d = std::strtod(v, &end);
  return (end && *end == 0 && d > 0) ? d : def;
}
const double g_sample_s = env_number("FSRACE_BENCH_SECONDS", 3.0);
const int g_reps = int(env_number("FSRACE_BENCH_REPS", 3.0));

// One host-mode race of `seconds` on a fresh loop-device filesystem; returns the race stats and, when the
// op log is on, the overlap statistics computed from it.
// With `kdelay`, a kernel-delay session (widening/delay.h) is armed for the race on the test files.
std::pair<RaceStats, OverlapStats> race_once(const std::string& fs_type, const std::string& scenario,
                                             const std::map<std::string, double>& overrides, bool log_ops,
                                             double seconds, const widening::DelayOptions* kdelay = nullptr) {
  Scenario* sc = find_scenario(scenario);
  ScenarioConfig cfg{sc->spec().name, {}};
  for (const auto& p : sc->spec().params) cfg.params[p.name] = p.def;
  for (const auto& [k, v] : overrides)
    if (cfg.params.count(k)) cfg.params[k] = v;
  FsConfig fs = default_fs_config(fs_type);
  Testbed tb(TestbedSpec{fs, "", "/var/tmp", std::nullopt, ""});
  ScenarioEnv env;
  env.dir = tb.test_dir();
  env.cfg = &cfg;
  env.seed = 1;
  env.duration_s = seconds;
  env.run_nonce = 0x1234;
  auto files = sc->plan_files(env);
  nlohmann::json meta = {{"files", nlohmann::json::array()}};
  for (const auto& f : files) meta["files"].push_back({{"name", f.name}, {"file_id", f.file_id}, {"blocks", f.blocks}});
  std::string path = tb.work_dir() + "/ops.bin";
  OpLog log(path, meta, log_ops);
  env.log = &log;
  std::vector<std::pair<uint64_t, uint64_t>> inodes;
  env.on_file = [&inodes](const TestFile&, int fd) {
    struct stat st;
    if (fstat(fd, &st) == 0) inodes.push_back({st.st_dev, st.st_ino});
  };
  sc->setup(env, files);
  std::unique_ptr<widening::DelaySession> delay;
  if (kdelay) {
    static const auto kernel = probes::running_kernel();
    widening::DelayOptions d = *kdelay;
    d.fs = fs_type;
    delay = std::make_unique<widening::DelaySession>(*kernel, d);
    if (!delay->attached())
      throw Fatal(fmt::format("kernel delays unavailable: {}", delay->report()["points"].dump()));
    for (const auto& [dev, ino] : inodes) delay->add_inode(dev, ino);
  }
  RaceStats rs = sc->race(env, files);
  if (delay) delay->stop();
  log.close();
  OverlapStats ov;
  if (log_ops) ov = overlap_stats(load_oplog(path));
  tb.unmount();
  return {rs, ov};
}

bool host_ok(benchmark::State& state) {
  if (geteuid() == 0 && access("/dev/loop-control", W_OK) == 0) return true;
  state.SkipWithError("needs root and /dev/loop-control");
  return false;
}

// Race attempts per second and the share of attempts that really overlapped a read of the same blocks,
// without and with widening (CPU pinning, plus userfaultfd parking where the scenario has it), and with
// kernel delays at punch-free for the scenarios that punch.
// `how`: "plain", "widened" (CPU pinning + userfaultfd) or "kdelay" (kernel delays at punch-free, kBenchDelay).
void BM_Widening(benchmark::State& state, const std::string& scenario, const std::string& how) {
  if (!host_ok(state)) return;
  std::map<std::string, double> ov;
  if (how == "widened") ov = {{"pin_cpus", 1}, {"uffd_ratio", 0.3}};
  else ov = {{"uffd_ratio", 0}};
  for (auto _ : state) {
    try {
      auto [rs, st] = race_once("ext4", scenario, ov, true, 3.0, how == "kdelay" ? &kBenchDelay : nullptr);
      state.SetIterationTime(rs.seconds);
      double aps = double(st.attempts) / rs.seconds;
      state.counters["attempts_per_s"] = aps;
      state.counters["overlap_share"] = st.share();
      g_widen[scenario + "/" + how] = {aps, st.share()};
    } catch (const Fatal& e) {
      state.SkipWithError(e.what());
      return;
    }
  }
}

void BM_PunchVsFault(benchmark::State& state, const std::string& fs_type, bool log_ops) {
  if (!host_ok(state)) return;
  for (auto _ : state) {
    try {
      auto [rs, st] = race_once(fs_type, "punch-vs-fault", {}, log_ops, g_sample_s);
      double ops = double(rs.total_ops()) / rs.seconds;
      state.SetIterationTime(rs.seconds);
      state.counters["ops_per_s"] = ops;
      g_ops_per_s[fs_type + (log_ops ? "/log" : "/nolog")].push_back(ops);
    } catch (const Fatal& e) {
      state.SkipWithError(e.what());
      return;
    }
  }
}

void BM_StampEncode(benchmark::State& state) {
  std::vector<char> b(kBlockSize);
  uint64_t gen = 0;
  for (auto _ : state) {
    stamp_encode(b.data(), 0xabc00000001ull, 7, ++gen);
    benchmark::DoNotOptimize(b.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kBlockSize));
}

void BM_StampDecode(benchmark::State& state) {
  std::vector<char> b(kBlockSize);
  stamp_encode(b.data(), 0xabc00000001ull, 7, 99);
  for (auto _ : state) benchmark::DoNotOptimize(stamp_decode(b.data()));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kBlockSize));
}

// A synthetic history: 64 blocks, 1 writer (writes and punches), readers observing current values.
void BM_Oracle(benchmark::State& state) {
  OpLogData d;
  const uint64_t blocks = 64, fid = 0xabc00000000ull;
  d.meta = {{"files", {{{"name", "f0"}, {"file_id", fid}, {"blocks", blocks}}}}};
  Rng rng(1);
  std::vector<uint64_t> cur(blocks, 0);
  uint64_t t = 100, seq = 0;
  auto add = [&](OpKind k, uint64_t b, uint64_t n, int64_t res) {
    uint64_t id = (1ull << kOpIdThreadShift) | ++seq;
    d.ops.push_back(OpRecord{id, t, t + 50, b * kBlockSize, n * kBlockSize, res, 1, uint16_t(k), 0, 0, 0});
    d.obs_begin.push_back(d.obs.size());
    t += 60;
    return id;
  };
  uint64_t init = add(OpKind::kInit, 0, blocks, int64_t(blocks * kBlockSize));
  for (auto& c : cur) c = init;
  for (int i = 0; i < state.range(0); ++i) {
    uint64_t b = rng.below(blocks - 8), n = 1 + rng.below(8);
    if (rng.below(3) == 0) {
      uint64_t id = add(OpKind::kWrite, b, n, int64_t(n * kBlockSize));
      for (uint64_t k = 0; k < n; ++k) cur[b + k] = id;
    } else if (rng.below(3) == 0) {
      add(OpKind::kPunch, b, n, 0);
      for (uint64_t k = 0; k < n; ++k) cur[b + k] = 0;
    } else {
      add(OpKind::kRead, b, n, int64_t(n * kBlockSize));
      for (uint64_t k = 0; k < n; ++k) {
        ObsRecord o{cur[b + k], 0, cur[b + k] ? fid : 0, cur[b + k] ? b + k : 0, uint32_t(b + k),
                    uint8_t(cur[b + k] ? BlockClass::kData : BlockClass::kZero), 0, 1};
        d.obs.push_back(o);
        ++d.ops.back().nobs;
      }
    }
  }
  uint64_t checked = 0;
  for (auto _ : state) {
    OracleStats st;
    FindingSet fs = run_oracle(d, {"x", "y", "z"}, &st);
    if (fs.total()) state.SkipWithError("synthetic history produced findings");
    checked += st.blocks_checked;
  }
  state.counters["blocks_per_s"] = benchmark::Counter(double(checked), benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  for (const char* fs : {"ext4", "xfs"})
    for (bool log : {true, false})
      benchmark::RegisterBenchmark(fmt::format("punch_vs_fault/{}/{}", fs, log ? "op_log" : "no_op_log").c_str(),
                                   [fs = std::string(fs), log](benchmark::State& s) { BM_PunchVsFault(s, fs, log); })
          ->Iterations(1)
          ->Repetitions(g_reps)
          ->UseManualTime()
          ->Unit(benchmark::kSecond);
  for (const auto& sc : scenarios())
    for (std::string how : {"plain", "widened", "kdelay"}) {
      std::string name = sc->spec().name;
      if (how == "kdelay" && name != "punch-vs-fault" && name != "punch-vs-read") continue;  // scenarios that punch
      benchmark::RegisterBenchmark(fmt::format("widening/{}/{}", name, how).c_str(),
                                   [name, how](benchmark::State& s) { BM_Widening(s, name, how); })
          ->Iterations(1)
          ->UseManualTime()
          ->Unit(benchmark::kSecond);
    }
  benchmark::RegisterBenchmark("stamp_encode", BM_StampEncode);
  benchmark::RegisterBenchmark("stamp_decode", BM_StampDecode);
  benchmark::RegisterBenchmark("oracle", BM_Oracle)->Arg(200000)->Unit(benchmark::kMillisecond);
  // Interleave the repetitions of the with/without-logging runs so machine drift hits both alike.
  std::vector<char*> args(argv, argv + argc);
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  args.insert(args.begin() + 1, interleave.data());
  int n = int(args.size());
  benchmark::Initialize(&n, args.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / double(v.size());
  };
  auto median = [](std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  for (const char* fs : {"ext4", "xfs"}) {
    auto& a = g_ops_per_s[std::string(fs) + "/log"];
    auto& b = g_ops_per_s[std::string(fs) + "/nolog"];
    if (a.empty() || b.empty()) continue;
    double cost = (1.0 - mean(a) / mean(b)) * 100.0;
    double mcost = (1.0 - median(a) / median(b)) * 100.0;
    std::printf("punch-vs-fault %s: %.0f ops/s with op logging, %.0f ops/s without: logging costs %.1f %% of the mean, "
                "%.1f %% of the median (target < 5 %%; %zu x %.0f s samples each)\n",
                fs, mean(a), mean(b), cost, mcost, a.size(), g_sample_s);
  }
  for (const auto& sc : scenarios()) {
    auto p = g_widen.find(sc->spec().name + "/plain"), w = g_widen.find(sc->spec().name + "/widened");
    if (p == g_widen.end()) continue;
    if (w != g_widen.end())
      std::printf("%-22s race attempts/s %8.0f plain, %8.0f widened; overlap share %5.1f %% plain, %5.1f %% widened\n",
                  sc->spec().name.c_str(), p->second.attempts_per_s, w->second.attempts_per_s, 100 * p->second.share,
                  100 * w->second.share);
    auto kd = g_widen.find(sc->spec().name + "/kdelay");
    if (kd != g_widen.end())
      std::printf("%-22s race attempts/s %8.0f kernel delays off, %8.0f on (%g us at punch-free); overlap share %5.1f %% off, "
                  "%5.1f %% on\n",
                  sc->spec().name.c_str(), p->second.attempts_per_s, kd->second.attempts_per_s, kBenchDelay.delay_us,
                  100 * p->second.share, 100 * kd->second.share);
  }
  return 0;
}
