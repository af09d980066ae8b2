// `fsrace bisect` (the hand-over to kernels/bisect.py) and `fsrace run ... --bisect-exit` (a run's result as a
// `git bisect run` exit code). docs/bisect.md.
#pragma once
#include <string>

namespace CLI {
class App;
}

namespace fsrace {
struct RunOptions;
struct VmLaunch;

// Adds the `bisect` subcommand; when the command line selects it, parsing execs
// python3 $FSRACE_TOP/kernels/bisect.py with the options given (never returns then; a failing exec is one
// line on stderr and exit 2).
void add_bisect_command(CLI::App& app);

// git-bisect-run exit codes
inline constexpr int kBisectGood = 0, kBisectBad = 1, kBisectSkip = 125;

// The git-bisect-run code of a finished run: 130 stays 130 (git bisect run aborts); a run that did not
// complete (harness / infra / VM error, a kernel that did not boot: today's exit 2) is 125; a finding of
// `cls` (any class when empty) is 1; only findings of other classes is 125 (another bug: no verdict on this
// one); no finding is 0.
int bisect_exit_code(const std::string& run_dir, int run_rc, const std::string& cls);

// Refuses a --bisect-class that is not a finding class (Fatal, exit 2, with the classes listed).
void check_bisect_class(const std::string& cls);

// VM mode with --bisect-exit: the VM runner runs as a child (not exec'ed), then its run directory's
// findings.json is mapped by bisect_exit_code. Signals reach the runner; Ctrl-C gives 130.
int run_vm_bisect_exit(RunOptions ropt, const VmLaunch& l, const std::string& cls);
}  // namespace fsrace
