#!/usr/bin/env bash
# ceph's bad inputs, without a VM: each a single 'fsrace:' line naming the thing and the fix, exit 2, no
# daemon started. Host mode refuses ceph unless --allow-host-cluster (and a kernel with ceph.ko).
source "$(dirname "$0")/common.sh"
[ "$(id -u)" = 0 ] || skip "needs root (host mode)"
expect2() {  # expect2 NAME PATTERN CMD...
  local name="$1" pat="$2"
  shift 2
  "$@" > "$TMP/o" 2> "$TMP/e"
  local rc=$?
  [ "$rc" = 2 ] || { cat "$TMP/o" "$TMP/e"; fail "$name: exit $rc, expected 2"; }
  [ "$(wc -l < "$TMP/e")" = 1 ] || { cat "$TMP/e"; fail "$name: error is not one line"; }
  grep -q -- "$pat" "$TMP/e" || { cat "$TMP/e"; fail "$name: error does not say '$pat'"; }
  pass "$name: $(cat "$TMP/e")"
}
printf '[campaign]\nfilesystems = ["ceph"]\nscenarios = ["dio-vs-mmap"]\nduration_s = 1\n' > "$TMP/ceph.toml"
printf '[campaign]\nfilesystems = ["ceph"]\n[fs.ceph]\nmount_options = "nowsync,secret=AQBxyz=="\n' > "$TMP/secret.toml"
printf '[campaign]\nfilesystems = ["ceph"]\n[fs.ceph]\nmount_options = "name=admin"\n' > "$TMP/name.toml"
printf '[campaign]\nfilesystems = ["ceph"]\n[fs.ceph]\nmkfs_options = ["-q"]\n' > "$TMP/mkfs.toml"
printf '[campaign]\nfilesystems = ["ceph"]\n[fs.ceph]\ndevice_size_mib = 512\n' > "$TMP/size.toml"
printf '[campaign]\nfilesystems = ["ceph"]\n[fs.ceph]\nmount_options = "nowsync,,fscache"\n' > "$TMP/empty.toml"
printf '[campaign]\nfilesystems = ["ceph"]\n[fs.ceph]\nmount_options = 3\n' > "$TMP/type.toml"
R=(--quiet --workdir "$WORK" --results "$TMP/res")
expect2 "host mode" "ceph in host mode would start cluster daemons.*--kernel debian.*--allow-host-cluster" \
  "$FSRACE" run "$TMP/ceph.toml" "${R[@]}"
expect2 "host mode, --fs" "ceph in host mode" "$FSRACE" run "$TOP/campaigns/default.toml" --fs ceph "${R[@]}"
expect2 "secret" "secret.toml:4:17: \[fs.ceph\] mount_options: 'secret' is set by fsrace" "$FSRACE" run "$TMP/secret.toml" "${R[@]}"
expect2 "name" "'name' is set by fsrace.*remove it" "$FSRACE" run "$TMP/name.toml" "${R[@]}"
expect2 "mkfs_options" "mkfs.toml:4:1: unknown key 'mkfs_options' in \[fs.ceph\]; allowed: mount_options" "$FSRACE" run "$TMP/mkfs.toml" "${R[@]}"
expect2 "device_size_mib" "unknown key 'device_size_mib' in \[fs.ceph\]" "$FSRACE" run "$TMP/size.toml" "${R[@]}"
expect2 "empty option" "has an empty option" "$FSRACE" run "$TMP/empty.toml" "${R[@]}"
expect2 "wrong type" "mount_options" "$FSRACE" run "$TMP/type.toml" "${R[@]}"
# The kernel lacks ceph.ko here: --allow-host-cluster still refuses (before any daemon starts) when the
# module cannot be loaded; on a host with ceph.ko this case would start a cluster, so it is not run there.
if ! grep -qw ceph /proc/filesystems && ! modprobe -n ceph 2>/dev/null; then
  expect2 "no ceph.ko" "does not support ceph" "$FSRACE" run "$TMP/ceph.toml" --allow-host-cluster "${R[@]}"
fi
pgrep -f "ceph-mon.*$TMP" && fail "a ceph daemon was started"
[ -z "$(ls -A "$TMP/res" 2>/dev/null)" ] || { find "$TMP/res"; fail "a run directory was left"; }
pass "ceph bad inputs"
