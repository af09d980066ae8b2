#include "harness/cli_kernel.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/core.h>
#include <iostream>
#include <string>
#include <vector>

#include "core/util.h"

namespace fsrace {
namespace {

[[noreturn]] void exec_kbuild(const std::string& cmd, const std::vector<std::string>& rest) {
  const char* top_env = std::getenv("FSRACE_TOP");
  std::string top = top_env ? top_env : ".";
  std::string script = top + "/kernels/kbuild.py";
  if (!path_exists(script))
    throw Fatal(fmt::format("the kernel builder is missing ({}): run ./fsrace from the repository", script));
  std::vector<std::string> args = {"python3", script, cmd};
  args.insert(args.end(), rest.begin(), rest.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  execvp("python3", argv.data());
  throw Fatal(fmt::format("cannot run python3 for the kernel builder: {}; run 'make deps'", strerror(errno)));
}

}  // namespace

void add_kernel_command(CLI::App& app) {
  auto* kernel = app.add_subcommand("kernel", "build guest kernels from any kernel tree (git revision, patches, "
                                              "debug sets) into the machine-wide cache, and list them");
  kernel->require_subcommand(1);
  const std::pair<const char*, const char*> subs[] = {
      {"build", "build --src DIR [--rev REV] [--patch F ...] [--fragment F ...] [--debug lockdep,kasan,...] [NAME]: "
                "prints the bzImage path last; its id works with 'fsrace run --kernel'"},
      {"list", "the finished kernel builds: id, name, release, source, build time"},
      {"path", "path of a build's artifact: ID-or-NAME [--file vmlinux|.config|kbuild.json|build.log]"},
  };
  for (const auto& [name, help] : subs) {
    auto* sub = kernel->add_subcommand(name, help);
    sub->allow_extras();
    sub->prefix_command();
    sub->set_help_flag();  // --help goes to kbuild.py, which knows the options
    std::string cmd = name;
    sub->callback([sub, cmd] {
      try {
        exec_kbuild(cmd, sub->remaining());
      } catch (const Fatal& e) {
        std::cerr << "fsrace: " << e.what() << "\n";
        std::exit(e.exit_code());
      }
    });
  }
}

}  // namespace fsrace
