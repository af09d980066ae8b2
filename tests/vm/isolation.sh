#!/usr/bin/env bash
# Guest isolation (issue 15 item 13): fsrace runs as root, so QEMU drops to an unprivileged user before
# the guest starts (-runas) and runs under its seccomp sandbox. The guest agent's "isolation" test hook
# tries, mid-race, to read /etc/shadow and /root through the read-only host root share, to open a host
# binary for writing, and to create a device node and a setuid-root file on its result share. Here:
# each attempt failed or stayed harmless on the host, the run itself is clean, vm.json says how QEMU was
# confined, and everything in the run directory belongs to its owner again afterwards.
source "$(dirname "$0")/lib.sh"
run_vm 0 "$TOP/tests/vm/isolation.toml" --kernel debian
P="$RUN/vm0/isolation-probe.json"
[ -s "$P" ] || fail "the guest did not write $P (test hook not run?)"
echo "guest attempts (errno, 0 = succeeded): $(cat "$P")"
[ "$(json "$RUN/vm.json" 'd["isolation"]["qemu_user"]')" = nobody ] || fail "QEMU not confined: $(json "$RUN/vm.json" 'd["isolation"]')"
[ "$(json "$P" 'd["read_etc_shadow"]')" = 13 ] || fail "the guest read the host's /etc/shadow (errno $(json "$P" 'd["read_etc_shadow"]'), want EACCES)"
[ "$(json "$P" 'd["open_root_home"]')" = 13 ] || fail "the guest opened the host's /root (want EACCES)"
[ "$(json "$P" 'd["write_host_root"]')" != 0 ] || fail "the guest opened a host binary for writing"
[ "$(json "$P" 'd["create_share_file"]')" = 0 ] || fail "the guest could not write its own result share"
[ ! -e "$RUN/vm0/isolation-node" ] || [ ! -c "$RUN/vm0/isolation-node" ] || fail "the guest created a device node on the host"
if [ -e "$RUN/vm0/isolation-suid" ]; then
  m="$(stat -c '%u %a' "$RUN/vm0/isolation-suid")"
  case "$m" in 0\ 4*|0\ 6*) fail "a setuid-root file from the guest on the host: $m" ;; esac
fi
bad="$(find "$RUN" \( -perm -4000 -o -perm -2000 -o -type c -o -type b \) -print)"
[ -z "$bad" ] || fail "setuid / setgid files or device nodes in the run directory: $bad"
own="$(stat -c %u "$RUN")"
strays="$(find "$RUN" ! -uid "$own" -print | head -5)"
[ -z "$strays" ] || fail "files not given back to the run directory's owner: $strays"
grep -q "guest isolation: QEMU runs as nobody" <<<"$ERR" || fail "the run did not say how the guest is confined"
no_qemu_left
echo "PASS: the guest read no host secret, wrote no host file, made no device node or setuid-root file"
