// `fsrace kernel build|list|path`: guest kernels built by kernels/kbuild.py (Python), which the
// subcommand execs with the arguments untouched (its --help is kbuild.py's).
#pragma once

namespace CLI {
class App;
}

namespace fsrace {
// Adds the `kernel` subcommand to the top-level app. When parsed, it replaces the process with
// `python3 $FSRACE_TOP/kernels/kbuild.py <build|list|path> ARGS...`; on failure it prints one line
// and exits with 2.
void add_kernel_command(CLI::App& app);
}  // namespace fsrace
