#!/usr/bin/env bash
# Installs fsrace's build and run dependencies from Debian 12 with apt-get.
# Idempotent: packages already present are skipped, and the ones installed are printed.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config python3
  libgtest-dev libgmock-dev libbenchmark-dev
  libtomlplusplus-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  e2fsprogs xfsprogs util-linux kmod
  # VM mode (vm/, ./fsrace run --kernel K): QEMU, the guest's init (busybox), depmod for unpacked
  # kernels (kmod above), apt-get download + dpkg -x for --kernel debian (apt, dpkg: always present).
  qemu-system-x86 busybox-static
  # probes (issue 3): BPF toolchain, libbpf, bpftool for vmlinux.h + skeletons, libFuzzer runtime
  clang-14 llvm-14 libclang-rt-14-dev libbpf-dev bpftool libelf-dev zlib1g-dev
)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages already installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages ${missing[*]}: run 'sudo make deps' (apt-get needs root)" >&2
  exit 2
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "deps: installed ${missing[*]}"
