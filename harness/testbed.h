// The testbed: the one place that builds and tears down what a case's filesystem sits on — the device
// (a loop device on a sparse image in host mode, a given virtio disk in a VM guest), an optional
// device-mapper layer (widening/dm.h), mkfs, the mount and the test directory — and runs the read-only
// fsck. Every piece is an RAII member, so success, a Fatal error and SIGINT/SIGTERM all unwind it in
// reverse order: nothing stays mounted, attached or on disk.
#pragma once
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/campaign.h"
#include "core/filesystems.h"
#include "harness/host.h"
#include "widening/dm.h"

namespace fsrace {
class CephCluster;
using widening::DeviceLayer;

// Work directories are <workdir>/fsrace.<pid>.XXXXXX: a killed run's are recognisable by their dead pid.
inline constexpr const char* kWorkPrefix = "fsrace.";
// Removes what fsrace processes that no longer run left in `workdir` (SIGKILL, OOM): mounts, fsrace's dm
// devices, loop devices on their images, the work directories. Never touches a live run's or anything
// not named as fsrace's. Returns one line per killed run cleaned up.
std::vector<std::string> recover_leftovers(const std::string& workdir);

class LoopDevice {
 public:
  // Creates a sparse image of `size_mib` at `image` and attaches it (autoclear).
  LoopDevice(const std::string& image, uint64_t size_mib);
  ~LoopDevice();
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  const std::string& dev() const { return dev_; }
  std::string name() const;  // "loop3"

 private:
  std::string image_, dev_;
  int fd_ = -1;
};

class Mount {
 public:
  // hidden_options go in front of the campaign's mount_options in the mount(2) data but never into a
  // message (the ceph client's secret).
  Mount(const std::string& dev, const std::string& dir, const FsConfig& fs, const std::string& hidden_options = "");
  ~Mount();
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;
  void unmount();  // throws Fatal if the filesystem stays busy
  const std::string& dir() const { return dir_; }

 private:
  std::string dev_, dir_, type_;
  bool mounted_ = false;
};

// mkfs per the filesystem table and the campaign's mkfs_options. Throws Fatal naming the command and
// the reason (exit 130 when SIGINT / SIGTERM killed it).
void make_filesystem(const FsConfig& fs, const std::string& dev);

// Read-only consistency check of an unmounted filesystem (the table's fsck argv, e.g. e2fsck -fn).
struct FsckResult {
  std::string command;
  int status = -1;     // the tool's exit code
  bool clean = false;  // exit 0
  std::string excerpt; // the tool's report, first lines (what it found)
};
FsckResult check_filesystem(const std::string& fs_type, const std::string& dev);

// A persistent-memory device in fsdax mode (the testbed's pmem kind). ensure_fsdax() checks the
// block device's DAX capability (/sys/block/<dev>/queue/dax) and, when it is a raw namespace (what
// QEMU's label-less NVDIMM comes up as), reconfigures it with `ndctl create-namespace -f -e <ns> -m
// fsdax` (once per device: the pfn info block stays on the media across reboots).
struct PmemInfo {
  std::string dev;        // /dev/pmem0
  std::string namespace_; // namespace0.0
  std::string mode;       // fsdax | raw | sector | devdax | unknown
  bool dax_capable = false;
  bool converted = false; // this call ran ndctl
  double convert_s = 0;
  uint64_t size_bytes = 0;
  std::string error;      // "" = usable for DAX
};
PmemInfo ensure_fsdax(const std::string& dev);
// statx(STATX_ATTR_DAX) of one path: 1 DAX, 0 not, -1 the kernel does not report the attribute.
int statx_dax(const std::string& path);

// A scenario's scratch staging device (ScenarioSpec::staging_mib > 0; dax-pin-vs-truncate reads its
// O_DIRECT source from it): a loop device on a sparse image in the case's work directory and, when the
// scenario's pin_delay_ms > 0, a dm-delay layer that delays its reads by that much (writes undelayed), so a
// read's pinned buffer stays pinned that long. Nothing when the scenario asks for none. A device that
// cannot be made is not fatal: dev() is "" and error() says why (the scenario counts its ops as skipped).
class Staging {
 public:
  Staging(const ScenarioSpec& spec, const ScenarioConfig& sc, const std::string& work_dir, const std::string& dm_name);
  ~Staging();
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;
  const std::string& dev() const { return dev_; }
  uint64_t bytes() const { return bytes_; }
  const std::string& error() const { return error_; }
  nlohmann::json record() const;  // race.json "staging": device, size, delay, error

 private:
  std::optional<LoopDevice> loop_;
  std::unique_ptr<widening::DmDevice> dm_;
  std::string dev_, error_;
  uint64_t bytes_ = 0, delay_ms_ = 0;
  bool wanted_ = false;
};

struct TestbedSpec {
  FsConfig fs;
  std::string device;   // block device to use (VM guest: /dev/vdX); "" = a loop device on a sparse image
  std::string workdir;  // parent of the case's work directory (image, mount point, device nodes)
  std::optional<DeviceLayer> layer;
  std::string layer_name;  // device-mapper name, unique on the machine
  // Cluster filesystems (FsBacking::kCluster): the running cluster to mount; no device, no mkfs, and the
  // case's tree is a fresh directory <mnt>/fsrace.<pid>.<serial> removed at teardown.
  const CephCluster* cluster = nullptr;
  // The filesystem is already on the device (VM power cut: the boot after the cut mounts what the
  // crashed boot left, which replays its journal): no mkfs, the test directory is there.
  bool reuse = false;
};

class Testbed {
 public:
  // Builds the stack, runs mkfs, mounts and creates <mnt>/fsrace (a cluster: mounts it and creates a
  // fresh directory tree of the case's own). A layer that cannot be created is not
  // fatal: the filesystem goes on the raw device and layer_error() says why (widening is then reported
  // as not run). Throws Fatal for everything else.
  explicit Testbed(const TestbedSpec& spec);
  ~Testbed();
  Testbed(const Testbed&) = delete;
  Testbed& operator=(const Testbed&) = delete;

  const FilesystemInfo& info() const { return *info_; }
  const std::string& dev() const { return dev_; }            // what the filesystem is on
  const std::string& dev_name() const { return dev_name_; }  // its kernel name: loop3, vdb, dm-0
  const std::set<std::string>& kernel_devices() const { return devices_; }  // every layer's kernel name
  const std::string& work_dir() const { return work_.path(); }
  const std::string& mnt_dir() const { return mnt_dir_; }
  const std::string& test_dir() const { return test_dir_; }
  widening::DmDevice* layer() { return dm_.get(); }
  const std::string& layer_error() const { return layer_error_; }
  const std::optional<DeviceLayer>& layer_spec() const { return spec_.layer; }
  // pmem testbeds: the device facts and whether files on the mount are DAX (race.json "dax").
  const std::optional<PmemInfo>& pmem() const { return pmem_; }

  bool mounted() const { return mnt_.has_value(); }
  void mount();
  void unmount();
  void remount() {
    unmount();
    mount();
  }
  FsckResult fsck();  // unmounts first if needed; leaves it unmounted (a cluster: not applicable, said so)

 private:
  TestbedSpec spec_;
  const FilesystemInfo* info_;
  TempDir work_;
  std::optional<LoopDevice> loop_;
  std::unique_ptr<widening::DmDevice> dm_;
  std::optional<Mount> mnt_;
  std::string dev_, dev_name_, mnt_dir_, test_dir_, layer_error_;
  std::set<std::string> devices_;
  std::optional<PmemInfo> pmem_;
};

}  // namespace fsrace
