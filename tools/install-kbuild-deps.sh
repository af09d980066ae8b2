#!/usr/bin/env bash
# Installs what vm/kbuild.py needs to build fsrace guest kernels from Debian's
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
  perl patch xz-utils cpio rsync python3
  qemu-system-x86             # boot checks (TCG)
)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "kbuild-deps: all ${#PKGS[@]} packages already installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "kbuild-deps: missing packages ${missing[*]}: run 'sudo $0' (apt-get needs root)" >&2
  exit 2
fi
echo "kbuild-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "kbuild-deps: installed ${missing[*]}"
