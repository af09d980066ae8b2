#!/bin/sh
# Single-node ceph cluster on 127.0.0.1 for fsrace (harness/ceph_cluster.cpp embeds this file):
# one mon, one mgr, one OSD, one MDS, cephx on, pools of size 1, a filesystem "fsrace".
# Usage: ceph_bootstrap.sh DIR OBJECTSTORE   (DIR: empty directory for config, data, logs, pid files)
# Prints "step: NAME" before each step and "ready: SECRET" at the end (the client.admin key).
set -eu
D=$1
STORE=${2:-memstore}
step() { echo "step: $*"; }
C="-c $D/ceph.conf"
CLI="ceph -c $D/ceph.conf --connect-timeout 120"
mkdir -p $D/log $D/run $D/mon/ceph-a $D/mgr/ceph-x $D/osd/ceph-0 $D/mds/ceph-a
FSID=$(cat /proc/sys/kernel/random/uuid)
cat > $D/ceph.conf <<CONF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:6789
mon initial members = a
public addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
# the OSD names its crush host after the hostname, which is "(none)" in the guest: not a valid crush name
crush location = root=default host=fsrace
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
run dir = $D/run
pid file = $D/run/\$name.pid
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
keyring = $D/\$name.keyring
mon data = $D/mon/\$cluster-\$id
mgr data = $D/mgr/\$cluster-\$id
osd data = $D/osd/\$cluster-\$id
mds data = $D/mds/\$cluster-\$id
osd objectstore = $STORE
memstore device bytes = 2147483648
bluestore block path = $D/osd/\$cluster-\$id/block.img
bluestore block create = true
bluestore block size = 2147483648
osd max object name len = 256
osd max object namespace len = 64
mgr initial modules =
mon data avail warn = 1
mon data avail crit = 0
mon warn on insecure global id reclaim allowed = false
osd pool default pg num = 8
osd pool default pgp num = 8
CONF
step keys
ceph-authtool --create-keyring $D/mon.a.keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring $D/client.admin.keyring --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool $D/mon.a.keyring --import-keyring $D/client.admin.keyring >/dev/null
ceph-authtool --create-keyring $D/osd.0.keyring --gen-key -n osd.0 \
  --cap osd 'allow *' --cap mon 'allow profile osd' --cap mgr 'allow profile osd' >/dev/null
ceph-authtool --create-keyring $D/mgr.x.keyring --gen-key -n mgr.x \
  --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool --create-keyring $D/mds.a.keyring --gen-key -n mds.a \
  --cap mon 'allow profile mds' --cap osd 'allow rwx' --cap mds 'allow *' --cap mgr 'allow profile mds' >/dev/null
cat $D/osd.0.keyring $D/mgr.x.keyring $D/mds.a.keyring > $D/daemons.keyring
step monmap
monmaptool --create --addv a '[v1:127.0.0.1:6789]' --fsid $FSID $D/monmap >/dev/null
step mon-mkfs
ceph-mon $C --mkfs -i a --monmap $D/monmap --keyring $D/mon.a.keyring
step mon-start
ceph-mon $C -i a </dev/null >>$D/log/daemons.out 2>&1
step auth
$CLI auth import -i $D/daemons.keyring
step mgr-start
ceph-mgr $C -i x </dev/null >>$D/log/daemons.out 2>&1
step osd-mkfs
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
$CLI osd new $OSD_UUID 0 >/dev/null
ceph-osd $C -i 0 --mkfs --osd-uuid $OSD_UUID 2>&1 | grep -v '^$' >$D/log/osd-mkfs.out || true
[ -f $D/osd/ceph-0/fsid ] || { cat $D/log/osd-mkfs.out; echo "ceph-osd --mkfs failed"; exit 1; }
step osd-start
ceph-osd $C -i 0 </dev/null >>$D/log/daemons.out 2>&1
step pools
$CLI osd pool create fsrace_metadata 8 8 >/dev/null
$CLI osd pool create fsrace_data 8 8 >/dev/null
$CLI osd pool set fsrace_metadata size 1 --yes-i-really-mean-it >/dev/null
$CLI osd pool set fsrace_data size 1 --yes-i-really-mean-it >/dev/null
step fs-new
$CLI fs new fsrace fsrace_metadata fsrace_data >/dev/null
step mds-start
ceph-mds $C -i a </dev/null >>$D/log/daemons.out 2>&1
step mds-active
i=0
while :; do
  s=$($CLI mds stat 2>&1 || true)
  case "$s" in *up:active*) break ;; esac
  i=$((i+1))
  [ $i -lt 120 ] || { echo "the MDS did not become active within 120 tries: $s"; exit 1; }
  sleep 1
done
echo "ready: $(ceph-authtool -p -n client.admin $D/client.admin.keyring)"
