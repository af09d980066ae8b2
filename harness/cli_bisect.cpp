#include "harness/cli_bisect.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>

#include "core/findings.h"
#include "core/util.h"
#include "harness/runner.h"
#include "harness/vm_launch.h"

extern char** environ;

namespace fsrace {

namespace {

struct BisectArgs {
  std::string src, good, bad, campaign, cls, out, build_cmd, test_cmd;
  std::optional<double> confidence, max_hours;
  std::optional<long> max_runs;
};

std::string top() {
  const char* t = std::getenv("FSRACE_TOP");
  return t ? t : ".";
}

[[noreturn]] void exec_bisect(const BisectArgs& a) {
  try {
    check_bisect_class(a.cls);
  } catch (const Fatal& e) {
    std::cerr << "fsrace: " << std::string(e.what()).replace(0, std::strlen("--bisect-class"), "--class") << "\n";
    std::exit(2);
  }
  std::string script = top() + "/kernels/bisect.py";
  if (!path_exists(script)) {
    std::cerr << fmt::format("fsrace: the bisect driver is missing ({}): run ./fsrace from the repository\n", script);
    std::exit(2);
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string fsrace = n > 0 ? std::string(self, n) : top() + "/fsrace";
  std::vector<std::string> args = {"python3", script, "--src", a.src, "--good", a.good, "--bad", a.bad, "--campaign", a.campaign,
                                   "--fsrace", fsrace};
  if (!a.cls.empty()) args.insert(args.end(), {"--class", a.cls});
  if (a.confidence) args.insert(args.end(), {"--confidence", fmt::format("{}", *a.confidence)});
  if (a.max_runs) args.insert(args.end(), {"--max-runs", std::to_string(*a.max_runs)});
  if (a.max_hours) args.insert(args.end(), {"--max-hours", fmt::format("{}", *a.max_hours)});
  if (!a.out.empty()) args.insert(args.end(), {"--out", a.out});
  if (!a.build_cmd.empty()) args.insert(args.end(), {"--build-cmd", a.build_cmd});
  if (!a.test_cmd.empty()) args.insert(args.end(), {"--test-cmd", a.test_cmd});
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  setenv("FSRACE_TOP", top().c_str(), 1);
  execvp("python3", argv.data());
  std::cerr << fmt::format("fsrace: cannot run python3 for the bisect driver: {}; run 'make deps'\n", strerror(errno));
  std::exit(2);
}

pid_t g_child = -1;
void forward_signal(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

}  // namespace

void add_bisect_command(CLI::App& app) {
  auto a = std::make_shared<BisectArgs>();
  auto* b = app.add_subcommand("bisect", "find the commit that introduced a (flaky) kernel bug: build, boot and run a "
                                         "campaign per candidate, with a stated confidence (docs/bisect.md)");
  b->add_option("--src", a->src, "the kernel's git work tree")->required();
  b->add_option("--good", a->good, "a commit without the bug")->required();
  b->add_option("--bad", a->bad, "a commit with the bug (a descendant of --good)")->required();
  b->add_option("--campaign", a->campaign, "campaign TOML that reproduces the bug at --bad")->required();
  b->add_option("--class", a->cls, "only a finding of this class counts as the bug (fsrace list classes); others are skips");
  b->add_option("--confidence", a->confidence, "stop when one commit has this posterior (default 0.99)");
  b->add_option("--max-runs", a->max_runs, "test runs at most, skips included (default 300)");
  b->add_option("--max-hours", a->max_hours, "hours at most (default: no limit)");
  b->add_option("--out", a->out, "state directory (default results/bisect/<good>-<bad>); the same command resumes from it");
  b->add_option("--build-cmd", a->build_cmd, "build command template (default '{fsrace} kernel build --src {worktree} --rev {rev}'; "
                                             "its last stdout line is the image)");
  b->add_option("--test-cmd", a->test_cmd, "test command template (default '{fsrace} run {campaign} --kernel {image} "
                                           "--bisect-exit {class_opt}'; exit 0 clean, 1 bug, 125 skip)");
  b->footer("Writes bisect.json, bisect.log and git-bisect.log in --out. Exit code: 0 a culprit named with the confidence, "
            "1 inconclusive (the suspects with their probabilities are printed), 2 bad input, 130 interrupted (rerun "
            "the same command to continue).");
  b->callback([a] { exec_bisect(*a); });
}

void check_bisect_class(const std::string& cls) {
  if (cls.empty()) return;
  std::string all;
  for (const auto& c : finding_classes()) {
    if (c.name == cls) return;
    all += std::string(all.empty() ? "" : ", ") + c.name;
  }
  throw Fatal(fmt::format("--bisect-class {}: not a finding class; pick one of {}", cls, all));
}

int bisect_exit_code(const std::string& run_dir, int run_rc, const std::string& cls) {
  if (run_rc == kExitInterrupted) return kExitInterrupted;
  std::string path = run_dir + "/findings.json";
  if (run_dir.empty() || !path_exists(path)) return kBisectSkip;
  auto doc = nlohmann::json::parse(read_file(path), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return kBisectSkip;
  std::string status = doc.value("status", "");
  if (status == "interrupted") return kExitInterrupted;
  if (status != "complete") return kBisectSkip;
  uint64_t total = 0, of_class = 0;
  const auto by = doc.value("findings_by_class", nlohmann::json::object());
  for (auto it = by.begin(); it != by.end(); ++it) {
    if (!it.value().is_number_unsigned() && !it.value().is_number_integer()) continue;
    uint64_t n = it.value().get<uint64_t>();
    total += n;
    if (it.key() == cls) of_class += n;
  }
  if (cls.empty()) return total ? kBisectBad : kBisectGood;
  if (of_class) return kBisectBad;
  return total ? kBisectSkip : kBisectGood;
}

int run_vm_bisect_exit(RunOptions ropt, const VmLaunch& l, const std::string& cls) {
  if (ropt.run_dir.empty()) {  // the parent must know the run directory the runner writes
    uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce) nonce = now_ns();
    ropt.run_dir = fmt::format("{}/{}/{}-{:04x}", ropt.results_root, ropt.campaign.name, timestamp_id(), nonce & 0xffff);
  }
  std::cout.flush();
  pid_t pid = fork();
  if (pid < 0) throw Fatal(fmt::format("cannot fork for the VM runner: {}", strerror(errno)));
  if (pid == 0) {
    try {
      exec_vm_runner(ropt, l);  // returns only by throwing
    } catch (const Fatal& e) {
      std::cerr << "fsrace: " << e.what() << "\n";
      _exit(e.exit_code());
    } catch (const std::exception& e) {
      std::cerr << "fsrace: " << e.what() << "\n";
      _exit(2);
    }
    _exit(2);
  }
  g_child = pid;
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (WIFSIGNALED(st) && (WTERMSIG(st) == SIGINT || WTERMSIG(st) == SIGTERM)) rc = kExitInterrupted;
  int code = bisect_exit_code(ropt.run_dir, rc, cls);
  std::cerr << fmt::format("fsrace: --bisect-exit: run exit {} -> {} ({})\n", rc, code,
                           code == kBisectGood ? "good" : code == kBisectBad ? "bad" : code == kBisectSkip ? "skip" : "interrupted");
  return code;
}

}  // namespace fsrace
