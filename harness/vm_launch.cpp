#include "harness/vm_launch.h"

#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/core.h>

#include "core/campaign.h"
#include "core/util.h"
#include "harness/results.h"
#include "harness/runner.h"

extern char** environ;

namespace fsrace {

void exec_vm_runner(const RunOptions& ropt, const VmLaunch& l) {
  const Campaign& c = ropt.campaign;
  const char* top_env = std::getenv("FSRACE_TOP");
  std::string top = top_env ? top_env : ".";
  if (!path_exists(top + "/vm/__main__.py"))
    throw Fatal(fmt::format("the VM runner is missing ({}/vm/__main__.py): run ./fsrace from the repository", top));
  struct stat wst;
  if (stat(ropt.workdir.c_str(), &wst) != 0 || !S_ISDIR(wst.st_mode))  // as host mode says it, before a run dir exists
    throw Fatal(fmt::format("work directory {} does not exist: pass an existing directory with --workdir", ropt.workdir));
  uint64_t nonce = 0;
  if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce) nonce = now_ns();
  RunDir rd = create_run_dir(ropt.results_root, c.name, ropt.run_dir, nonce);
  const std::string& dir = rd.dir;
  const std::string& id = rd.id;
  write_file_atomic(dir + "/campaign.toml", campaign_to_toml(c));
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) throw Fatal("cannot resolve /proc/self/exe (needed to run the same fsrace in the guest)");
  self[n] = 0;
  std::vector<std::string> args = {"python3", "-m", "vm", "run", "--run-dir", dir, "--run-id", ropt.run_dir.empty() ? id : "",
                                   "--kernel", l.kernel, "--fsrace", self, "--source", c.source, "--workdir", ropt.workdir};
  if (!l.modules.empty()) args.insert(args.end(), {"--modules", l.modules});
  if (l.jobs > 0) args.insert(args.end(), {"--jobs", std::to_string(l.jobs)});
  if (!ropt.verbose) args.push_back("--quiet");
  if (!l.explore.empty()) args.insert(args.end(), {"--explore", l.explore});
  if (ropt.shard.active()) args.insert(args.end(), {"--shard", fmt::format("{}/{}", ropt.shard.index, ropt.shard.total)});
  std::string pp = top;
  if (const char* old = std::getenv("PYTHONPATH")) pp += std::string(":") + old;
  setenv("PYTHONPATH", pp.c_str(), 1);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  execvp("python3", argv.data());
  throw Fatal(fmt::format("cannot run python3 for the VM runner: {}; run 'make deps'", strerror(errno)));
}

}  // namespace fsrace
