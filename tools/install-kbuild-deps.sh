#!/usr/bin/env bash
# Installs what kernels/kbuild.py needs to build fsrace guest kernels from Debian's
# linux-source-6.1, and qemu to boot them. Separate from tools/install-deps.sh
# (the core harness deps). Idempotent: packages already present are skipped;
# the ones installed are printed. Exit 2 when root is needed but missing.
set -euo pipefail
PKGS=(
  linux-source-6.1            # the kernel source tarball in /usr/src
  build-essential make gcc binutils
  flex bison bc               # kconfig parsers, timeconst
  dwarves                     # pahole: CONFIG_DEBUG_INFO_BTF
  libssl-dev libelf-dev       # certs/sign-file, objtool
  perl patch xz-utils cpio rsync python3 git
  ccache                      # CC="ccache gcc" (cache in /var/cache/fsrace/ccache)
  qemu-system-x86             # boot checks (TCG)
)
source "$(dirname "${BASH_SOURCE[0]}")/apt-ensure.sh"
ensure_packages kbuild-deps "${PKGS[@]}"
