#!/usr/bin/env bash
# Installs fsrace's build and run dependencies from Debian 12 with apt-get.
# Idempotent: packages already present are skipped, and the ones installed are printed.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config python3 ccache
  libgtest-dev libgmock-dev libbenchmark-dev
  libtomlplusplus-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  e2fsprogs xfsprogs util-linux kmod
  # VM mode (vm/, ./fsrace run --kernel K): QEMU, the guest's init (busybox), depmod for unpacked
  # kernels (kmod above), apt-get download + dpkg -x for --kernel debian (apt, dpkg: always present).
  qemu-system-x86 busybox-static
  # probes (issue 3): BPF toolchain, libbpf, bpftool for vmlinux.h + skeletons, libFuzzer runtime
  clang-14 llvm-14 libclang-rt-14-dev libbpf-dev bpftool libelf-dev zlib1g-dev
  # trace reports (fsrace report): their tests validate findings.json (JSON Schema), junit.xml (xmllint
  # --schema) and open report.html in a real browser (headless chromium)
  python3-jsonschema libxml2-utils chromium
  time                        # /usr/bin/time: bench/report_bench.sh (wall time and peak RSS of fsrace report)
  # DAX filesystems (ext4-dax, xfs-dax): the guest makes its NVDIMM namespace fsdax with ndctl
  ndctl
  # ceph (filesystems = ["ceph"]): the single-node cluster the guest starts (harness/ceph_cluster.h)
  ceph-mon ceph-osd ceph-mds ceph-mgr ceph-common
)
source "$(dirname "${BASH_SOURCE[0]}")/apt-ensure.sh"
ensure_packages deps "${PKGS[@]}"
