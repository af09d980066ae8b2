// A single-node ceph cluster for the ceph filesystem row (core/filesystems.h, backing kCluster): one mon,
// one mgr, one OSD (memstore by default, bluestore on a file in the cluster directory), one MDS, all on
// 127.0.0.1, cephx on, a data and a metadata pool of size 1 and a filesystem "fsrace". Bootstrapped with
// the ceph tools themselves (harness/ceph/bootstrap.sh: ceph-authtool, monmaptool, ceph-mon --mkfs,
// ceph-osd --mkfs, ceph fs new), no cephadm. Started once per run (per VM), before the first ceph case;
// each case mounts it with the kernel client on a fresh directory tree (harness/testbed.cpp).
//
// The destructor stops every daemon (SIGTERM, then SIGKILL after 10 s), copies the daemons' logs to
// <log_dir>/ceph-logs and removes the cluster directory. A cluster that does not come up throws Fatal
// (exit 2, an environment error, never a finding) after keeping the logs.
#pragma once
#include <string>
#include <vector>

namespace fsrace {

struct CephClusterSpec {
  std::string workdir;     // parent of the cluster directory (data, config, sockets, pid files)
  std::string log_dir;     // where the daemons' logs are kept (the run directory)
  std::string objectstore = "memstore";  // memstore | bluestore
};

class CephCluster {
 public:
  explicit CephCluster(const CephClusterSpec& spec);
  ~CephCluster();
  CephCluster(const CephCluster&) = delete;
  CephCluster& operator=(const CephCluster&) = delete;

  // mount(2) source and the options fsrace adds in front of the campaign's ("name=admin,secret=...").
  std::string mount_source() const { return "127.0.0.1:6789:/"; }
  std::string auth_options() const { return "name=admin,secret=" + secret_; }
  double start_s() const { return start_s_; }  // bootstrap start to the MDS active
  const std::string& dir() const { return dir_; }
  // Resident memory of each daemon now, in KiB ("mon.a" -> 38052); daemons not running are absent.
  std::vector<std::pair<std::string, long>> daemon_rss_kib() const;
  // Daemons that are not running any more (a crashed OSD / MDS): their names.
  std::vector<std::string> dead_daemons() const;
  // The last lines of each daemon's log (what a finding or an error report shows).
  std::string log_tail(size_t lines_per_daemon) const;

 private:
  void stop();
  void keep_logs();
  CephClusterSpec spec_;
  std::string dir_, secret_;
  double start_s_ = 0;
  bool logs_kept_ = false;
};

// Brings up the loopback interface (a VM guest boots with lo down; the cluster lives on 127.0.0.1).
// Returns "" or why it could not.
std::string ensure_loopback_up();

}  // namespace fsrace
