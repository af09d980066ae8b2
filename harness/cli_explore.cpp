#include "harness/cli_explore.h"

#include <fmt/core.h>

#include <cstdio>
#include <iostream>

#include "core/util.h"
#include "harness/analyze.h"
#include "harness/explore.h"
#include "harness/report_formats.h"
#include "harness/results.h"
#include "probes/events.h"

namespace fsrace {

namespace {

double since(uint64_t t0) { return double(now_ns() - t0) / 1e9; }

// A campaign that reruns one arm as its own case (the maintainer's reproducer): the arm's fs and
// scenario with the variant's params, widening and the round's seed.
std::string repro_campaign(const Campaign& c, const CaseSpec& cs) {
  Campaign r = c;
  r.name = "repro-" + cs.name;
  r.filesystems = {cs.fs};
  r.scenarios = {cs.sc};
  r.seed = cs.seed;
  r.repetitions = 1;
  r.widening = cs.widening.empty() ? c.widening : cs.widening;
  return campaign_to_toml(r);
}

}  // namespace

std::string explore_spec(const ExploreOptions& o) { return fmt::format("{},{},{}", o.budget_s, o.round_s, o.repeats); }

void parse_explore_spec(const std::string& spec, ExploreOptions& o) {
  double b = 0, r = 0;
  unsigned k = 0;
  char tail = 0;
  if (std::sscanf(spec.c_str(), "%lf,%lf,%u%c", &b, &r, &k, &tail) != 3 || !(b > 0) || !(r > 0))
    throw Fatal(fmt::format("--explore '{}': expected BUDGET_S,ROUND_S,REPEATS (internal: the VM runner passes it)", spec));
  o.budget_s = b, o.round_s = r, o.repeats = k;
}

RunOutcome explore_rounds(ExploreOptions o, std::string* table) {
  Campaign& c = o.run.campaign;
  c.duration_s = o.round_s;
  c.repetitions = 1;
  std::vector<ExploreArm> arms = explore_arms(c);
  if (arms.empty())
    throw Fatal("explore: no scenario of the campaign runs on its filesystems: pick others with --fs / --scenario");
  Explorer ex(arms, c.seed, o.repeats);
  const uint64_t t0 = now_ns();
  std::optional<size_t> cur;
  std::optional<CaseSpec> cur_case;
  uint64_t round_t0 = 0;
  size_t round = 0;
  double spent_rounds = 0;
  nlohmann::json rounds = nlohmann::json::array();
  std::map<std::string, std::string> repros;  // arm -> reproducer file name
  std::string run_dir;
  bool verbose = o.run.verbose;
  auto say = [&](const std::string& s) {
    if (verbose) std::cerr << s << "\n";
  };
  say(fmt::format("fsrace explore: {} arms ({} filesystem(s) x {} scenario(s) x up to {} parameter sets), budget {:.0f} s, "
                  "{:.1f} s races, seed {}",
                  arms.size(), c.filesystems.size(), c.scenarios.size(), explore_variants().size(), o.budget_s, o.round_s, c.seed));

  o.run.next_case = [&](const std::string* dir, const CaseAnalysis* ca) -> std::optional<CaseSpec> {
    if (dir && cur && ca) {
      RoundResult r;
      r.seconds = since(round_t0);
      spent_rounds += r.seconds;
      r.findings_by_class = ca->findings.total_by_class;
      std::string events_note;
      try {
        std::optional<OpLogData> ops;
        if (path_exists(*dir + "/ops.bin")) ops = load_oplog(*dir + "/ops.bin");
        if (path_exists(*dir + "/events.bin"))
          r.signals = near_misses(probes::load_events(*dir + "/events.bin"), ca->info, ops ? &*ops : nullptr);
        else events_note = " (no events.bin: no near-miss signal)";
      } catch (const std::exception& e) {
        events_note = fmt::format(" (events.bin unreadable: {})", e.what());
      }
      bool repeat = ex.is_repeat(*cur);
      ex.record(*cur, r);
      std::string found;
      for (const auto& [k, n] : r.findings_by_class) found += fmt::format("{}{} {}", found.empty() ? "" : ", ", k, n);
      double score = near_miss_score(r.signals);
      say(fmt::format("fsrace explore: round {} {}{}: {:.1f} s, score {:.3f} (inval-fill {}, dio-fill {}, stale-iomap {}, "
                      "dio-fail {}, contention {}, overlap {:.0f} %){}{}",
                      round - 1, cur_case->name, repeat ? " [repeat]" : "", r.seconds, score, r.signals.fill_in_invalidation,
                      r.signals.fill_in_dio_write, r.signals.stale_iomap, r.signals.dio_invalidate_failed, r.signals.lock_contention,
                      100 * r.signals.overlap_share, events_note, found.empty() ? "" : "  FINDING: " + found));
      if (!found.empty() && !repeat && !repros.count(arms[*cur].name())) {
        std::string name = "repro-" + arms[*cur].name() + ".toml";
        run_dir = dir->substr(0, dir->rfind('/'));
        write_file_atomic(run_dir + "/" + name, repro_campaign(c, *cur_case));
        repros[arms[*cur].name()] = name;
        say(fmt::format("fsrace explore:   reproducer: fsrace run {}/{}   (rerunning it {} time(s) now for its rate)", run_dir, name,
                        o.repeats));
      }
      rounds.push_back({{"round", round - 1}, {"case", cur_case->name}, {"arm", arms[*cur].name()}, {"repeat", repeat},
                        {"seed", cur_case->seed}, {"seconds", r.seconds}, {"score", score}, {"signals", r.signals.to_json()},
                        {"findings", r.findings_by_class}});
    }
    // Budget: start a round only if a round of the average length so far still fits.
    double avg = round ? spent_rounds / double(round) : o.round_s + 3;
    if (since(t0) + avg > o.budget_s) return std::nullopt;
    cur = ex.next();
    if (!cur) {
      say("fsrace explore: every arm found something or is retired: done before the budget");
      return std::nullopt;
    }
    cur_case = explore_case(c, arms[*cur], round, c.seed + round * 1000003ull);
    round_t0 = now_ns();
    ++round;
    return cur_case;
  };

  RunOutcome out = run_host(o.run);
  if (table) *table = ex.table_text();
  nlohmann::json doc = {{"schema", "fsrace-explore/1"},
                        {"budget_s", o.budget_s},
                        {"round_s", o.round_s},
                        {"elapsed_s", since(t0)},
                        {"seed", c.seed},
                        {"variants", nlohmann::json::array()},
                        {"table", ex.table()},
                        {"rounds", rounds},
                        {"reproducers", repros},
                        {"interrupted", out.interrupted}};
  doc["excluded"] = nlohmann::json::array();
  for (const auto& [k, why] : explore_exclusions()) doc["excluded"].push_back({{"scenario", k.first}, {"variant", k.second}, {"why", why}});
  for (const auto& v : explore_variants())
    doc["variants"].push_back({{"name", v.name}, {"params", v.params}, {"widening", v.widening}, {"what", v.what}});
  write_file_atomic(out.dir + "/explore.json", doc.dump(1) + "\n");
  return out;
}

int run_explore(ExploreOptions o) {
  std::string table;
  uint64_t t0 = now_ns();
  RunOutcome out = explore_rounds(o, &table);
  nlohmann::json doc = nlohmann::json::parse(read_file(out.dir + "/explore.json"));
  size_t rounds = doc["rounds"].size();
  std::map<std::string, std::string> repros = doc["reproducers"].get<std::map<std::string, std::string>>();
  std::cout << fmt::format("fsrace explore: {} round(s) in {:.0f} s (budget {:.0f} s); allocation by time:\n", rounds,
                           since(t0), o.budget_s)
            << table;
  std::string summary = read_file(out.dir + "/summary.txt");
  auto p = summary.find("\nresult:");
  if (p != std::string::npos) std::cout << summary.substr(p + 1, summary.find('\n', p + 1) - p);
  for (const auto& [arm, f] : repros) std::cout << fmt::format("reproducer for {}: fsrace run {}/{}\n", arm, out.dir, f);
  std::string report_note = write_run_reports(out.dir);
  std::cout << fmt::format("\nresults: {} (explore.json: every round and its signals)\n{}\n", out.dir, report_note);
  if (out.interrupted) {
    std::cerr << "fsrace: interrupted; results so far are in " << out.dir << "\n";
    return 130;
  }
  return out.findings ? 1 : 0;
}

}  // namespace fsrace
