#include "harness/runner.h"
#include "harness/report_model.h"
#include "harness/status.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fmt/core.h>
#include <fstream>
#include <iostream>

#include "core/oplog.h"
#include "core/util.h"
#include "harness/analyze.h"
#include "harness/ceph_cluster.h"
#include "harness/kmsg_capture.h"
#include "harness/probe_toggle.h"
#include "harness/results.h"
#include "harness/space.h"
#include "harness/testbed.h"
#include "core/filesystems.h"
#include "harness/verify.h"
#include "probes/kernel_info.h"
#include "probes/loader.h"
#include "widening/auto.h"
#include "widening/plan.h"
#include "workloads/scenario.h"

namespace fsrace {
namespace {

using json = nlohmann::json;

// How many extents a file has now (FIEMAP asked only to count; delalloc ranges count too), -1 if unknown.
int64_t extent_count(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct fiemap fm {};
  fm.fm_length = FIEMAP_MAX_OFFSET;
  int r = ioctl(fd, FS_IOC_FIEMAP, &fm);
  close(fd);
  return r == 0 ? int64_t(fm.fm_mapped_extents) : -1;
}

uint64_t random_u64() {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != sizeof v) v = now_ns() ^ (uint64_t(getpid()) << 32);
  return v;
}

double secs_since(uint64_t t0) { return double(now_ns() - t0) / 1e9; }

json fsck_json(const FsckResult& fr) {
  return {{"command", fr.command}, {"exit", fr.status}, {"clean", fr.clean}, {"output", fr.excerpt}};
}

// One case from a fresh filesystem to its files: ops.bin, events.bin, kmsg.log and race.json (what only
// the run knows). Judging them is analyze_case's job.
class CaseRunner {
 public:
  CaseRunner(const RunOptions& opt, const json& run, const CaseSpec& cs, const std::string& case_dir, uint64_t nonce,
             const probes::KernelInfo* kernel, bool probes, const CephCluster* cluster)
      : opt_(opt), run_(run), cs_(cs), dir_(case_dir), nonce_(nonce), kernel_(kernel), probes_(probes), cluster_(cluster) {}

  void run() {
    json info = {{"case", cs_.name}, {"fs", cs_.fs.type}, {"scenario", cs_.sc.name}, {"repetition", cs_.rep},
                 {"notes", json::array()}, {"seed", cs_.seed}};
    json in = {{"op_logging", opt_.log_ops}};
    Scenario* scenario = find_scenario(cs_.sc.name);

    uint64_t t_setup = now_ns();
    phase("setup", "");
    static std::atomic<unsigned> serial{0};  // device-mapper names: unique per process and case
    // [campaign] widening = "auto": the scenario's relevant techniques this kernel supports (widening/auto.h)
    ScenarioConfig sc_widened = cs_.sc;
    if ((cs_.widening.empty() ? opt_.campaign.widening : cs_.widening) == "auto" && kernel_) {
      if (widening::explicit_widening(cs_.sc)) {
        info["auto_widening"] = {{"mode", "explicit"}};
      } else {
        uint64_t variant = cs_.rep;
        for (size_t k = 0; k < opt_.campaign.scenarios.size(); ++k)
          if (opt_.campaign.scenarios[k].name == cs_.sc.name) variant += k;
        auto choice = widening::choose_auto_widening(widening::detect_auto_caps(*kernel_, kernel_fs_type(cs_.fs.type)), cs_.sc.name,
                                                   kernel_fs_type(cs_.fs.type), variant);
        sc_widened = widening::apply_auto_widening(cs_.sc, choice);
        info["auto_widening"] = widening::auto_widening_json(choice);
        info["notes"].push_back(widening::auto_widening_note(choice));
      }
    }
    widening::WideningPlan plan(sc_widened, kernel_fs_type(cs_.fs.type), kernel_);
    TestbedSpec ts{cs_.fs, "", opt_.workdir, plan.device_layer(), fmt::format("fsrace-{}-{:x}-{}", getpid(), nonce_ & 0xffffff, serial++)};
    if (auto it = opt_.devices.find(cs_.fs.type); it != opt_.devices.end()) ts.device = it->second;
    if (const FilesystemInfo* fi = find_filesystem(cs_.fs.type); fi && fi->backing == FsBacking::kCluster) ts.cluster = cluster_;
    Testbed tb(ts);
    const FilesystemInfo& fsi = tb.info();
    Staging staging(scenario->spec(), cs_.sc, tb.work_dir(), ts.layer_name + "-stg");
    if (json st = staging.record(); !st.is_null()) {
      info["staging"] = st;
      if (!staging.error().empty()) info["notes"].push_back(staging.error());
    }
    bool space_applies = fsi.space_not_applicable.empty();
    if (!space_applies) info["notes"].push_back("space check not applicable: " + fsi.space_not_applicable);
    if (!fsi.fsck_not_applicable.empty()) info["fsck"] = {{"applicable", false}, {"reason", fsi.fsck_not_applicable}};
    if (!fsi.unsupported_ops.empty()) info["notes"].push_back(fsi.unsupported_reason);
    plan.on_testbed(tb.layer(), tb.layer_error(), tb.dev_name(), tb.mnt_dir());
    const std::string& test_dir = tb.test_dir();
    sync();
    SpaceMeasure space;
    space.fs = cs_.fs.type;
    FsSpace base = fs_space(test_dir);
    space.fs_block = base.block_size;
    space.baseline_free = base.free;

    KmsgCapture kmsg(fmt::format("{:016x} {}", nonce_, cs_.name));
    if (!kmsg.ok()) info["notes"].push_back(fmt::format("kernel log not captured: {}", kmsg.error()));

    ScenarioEnv env;
    env.dir = test_dir;
    env.cfg = &cs_.sc;
    env.seed = cs_.seed;
    env.duration_s = opt_.campaign.duration_s;
    env.run_nonce = nonce_ & 0xffffffffu;
    env.stop = &stop_requested();
    env.unsupported_ops = fsi.unsupported_ops;
    env.staging_dev = staging.dev();
    env.staging_bytes = staging.bytes();
    env.staging_error = staging.error();
    std::vector<TestFile> files = scenario->plan_files(env);
    json meta = {{"scenario", cs_.sc.name}, {"fs", cs_.fs.type}, {"case", cs_.name}, {"seed", cs_.seed}, {"clock", "CLOCK_MONOTONIC"},
                 {"block_size", kBlockSize}, {"kernel", kernel_release()}, {"params", cs_.sc.params}, {"files", json::array()}};
    for (const auto& f : files) meta["files"].push_back({{"name", f.name}, {"file_id", f.file_id}, {"blocks", f.blocks}});
    OpLog log(dir_ + "/ops.bin", meta, opt_.log_ops);
    env.log = &log;
    ThreadLog& tl = log.thread(0);
    env.quiesce_ms = opt_.campaign.quiesce_ms;
    bool power_cut = plan.power_cut();
    env.quiesce = [&](uint32_t round) {
      // All workers are stopped: the cache must agree with O_DIRECT, and space must match the model. With
      // a power cut ahead the rounds do not fsync: what survives it is decided by the race's own fsyncs.
      verify_cached_round(tl, files, round);
      if (power_cut) return;
      fsync_files(tl, files);
      if (space_applies) record_stat_blocks(tl, files, test_dir, space.fs_block);
    };

    // Probes: from before setup until after the last unmount.
    std::unique_ptr<probes::ProbeSession> probe;
    widening::RaceTarget target;
    env.on_file = [&](const TestFile& f, int fd) {
      struct stat st;
      if (fstat(fd, &st) != 0) return;
      target.inodes.push_back({uint64_t(st.st_dev), uint64_t(st.st_ino)});
      if (probe) probe->add_inode(st.st_dev, st.st_ino, f.name);
    };
    if (kernel_ && probes_) probe = open_probes(info);

    scenario->setup(env, files);
    if (const auto& pm = tb.pmem()) {
      // Each test file's DAX state as the kernel reports it (statx STATX_ATTR_DAX): the case record says
      // what really ran, and a file that is not DAX on a DAX mount ends the case (never a silent fallback).
      json dx = {{"device", pm->dev}, {"namespace", pm->namespace_}, {"mode", pm->mode}, {"size_bytes", pm->size_bytes},
                 {"converted_by_ndctl", pm->converted}, {"mount_options", cs_.fs.mount_options}, {"files", json::object()}};
      if (pm->converted) dx["convert_s"] = pm->convert_s;
      size_t n_dax = 0;
      for (const auto& f : files) {
        int d = statx_dax(f.path);
        dx["files"][f.name] = d == 1;
        n_dax += d == 1;
      }
      dx["all_files_dax"] = n_dax == files.size();
      info["dax"] = dx;
      if (n_dax != files.size())
        throw Fatal(fmt::format("{}: {} of {} test files are not DAX on a dax mount (statx STATX_ATTR_DAX): the kernel fell "
                                "back to the page cache; see the kernel log", cs_.name, files.size() - n_dax, files.size()));
    }
    if (power_cut) {  // the power cut judges what fsync made durable: the files and their initial contents are
      fsync_files(tl, files);
      fsync_path(test_dir);
    }
    target.filter_fd = probe ? probe->filter_fd() : -1;
    widening::WorkloadHooks hooks;
    plan.arm(target, hooks);  // kernel-side widening: for the race only
    env.on_worker_start = hooks.on_worker_start;
    env.tolerated_errno = hooks.tolerated_errno;
    for (auto& n : hooks.notes) info["notes"].push_back(n);
    double setup_s = secs_since(t_setup);
    if (opt_.verbose) std::cerr << fmt::format("fsrace: {}: racing for {} s\n", cs_.name, opt_.campaign.duration_s);
    phase("race", test_dir);
    uint64_t t_race = now_ns(), race_cpu0 = process_cpu_ns();
    if (probe) probe->start_cpu_window();
    std::unique_ptr<ProbeToggler> toggler;  // benchmark only ([probes] toggle_ms)
    if (probe && opt_.campaign.probes.toggle_ms && probe->attached()) {
      if (opt_.in_vm_guest())
        info["notes"].push_back("[probes] toggle_ms ignored in a VM guest: attaching and detaching while the race runs "
                                "patches kernel text, which livelocked guests under TCG (see probes/loader.h)");
      else
        toggler = std::make_unique<ProbeToggler>(*probe, opt_.campaign.probes.toggle_ms);
    }
    RaceStats rs = scenario->race(env, files);
    json toggle = toggler ? toggler->finish() : json();
    toggler.reset();
    uint64_t race_cpu_ns = process_cpu_ns() - race_cpu0;
    info["extents"] = json::object();
    for (const auto& f : files)
      if (int64_t n = extent_count(f.path); n >= 0) info["extents"][f.name] = n;
    plan.disarm();
    env.on_worker_start = nullptr;
    double race_s = secs_since(t_race);
    uint64_t t_race_end = now_ns();
    bool interrupted = stop_requested().load();

    uint64_t t_verify = now_ns();
    json fsck = json::array();
    if (power_cut && !interrupted) {
      phase("power-cut", test_dir);
      cut_power(tl, files, rs, plan, tb, fsck);
    }
    // [vm] power_cut: the host cuts the power of this VM once the case's files are written (below); the
    // next boot verifies what survived (verify_after_vm_cut). Nothing is verified, synced or unmounted here.
    bool vm_cut = opt_.campaign.vm.power_cut && opt_.in_vm_guest() && !cluster_ && !interrupted;
    if (vm_cut) {
      phase("power-cut", test_dir);
      prepare_vm_cut(tl, files, rs, info);
    } else {
      phase("verify", test_dir);
      if (!interrupted) verify_after_race(tl, files, tb, opt_.inject_corruption, space, info);
      tb.unmount();
    }
    double verify_s = secs_since(t_verify);
    if (probe) info["probes"] = probes::stop_and_record(*probe);
    log.close();
    std::vector<KmsgLine> klines = kmsg.stop();
    std::string ktext;
    for (const auto& l : klines) ktext += format_kmsg_line(l) + "\n";
    write_file_atomic(dir_ + "/kmsg.log", ktext);

    plan.report(info);
    if (!toggle.is_null()) info["probes"]["toggle"] = toggle;
    info["status"] = interrupted ? "interrupted" : vm_cut ? "power-cut" : "complete";
    info["device"] = tb.dev();
    info["ops"] = {{"by_kind", rs.ops_by_kind}, {"errors", rs.errors_by_kind}, {"total", rs.total_ops()},
                   {"seconds", rs.seconds}, {"cpu_ns", race_cpu_ns}, {"quiescent_rounds", rs.quiescent_rounds}};
    if (env.tolerated_errno) info["ops"]["injected_failures"] = rs.injected_failures;
    info["widening"] = rs.widening;
    if (space.have_after_delete && space_applies)
      info["space"] = {{"fs_block", space.fs_block}, {"baseline_free", space.baseline_free},
                       {"free_with_files", space.free_with_files}, {"allocated", space.allocated},
                       {"free_after_delete", space.free_after_delete}, {"free_after_remount", space.free_after_remount}};
    info["oplog_bytes"] = log.bytes_written();
    info["timing"] = {{"setup_s", setup_s}, {"race_s", race_s}, {"verify_s", verify_s}};
    json errors = json::array();
    for (const auto& e : rs.fatal_errors) errors.push_back({{"kind", e.kind}, {"result", e.result}, {"message", e.message}});
    in.update({{"interrupted", interrupted}, {"test_devices", tb.kernel_devices()}, {"device_name", tb.dev_name()},
               {"fatal_errors", errors}, {"tolerated_errno", env.tolerated_errno},
               {"fsck", fsck}, {"kmsg", {{"captured", kmsg.ok()}, {"error", kmsg.error()}, {"lost", kmsg.lost()}}},
               {"race_end_ns", t_race_end}});
    if (space_applies && !vm_cut) in["space"] = space_to_json(space);
    else if (vm_cut)
      in["space_check"] = {{"applicable", false},
                           {"reason", "the case ends in a VM power cut: its files are not deleted and the space not measured again"}};
    else in["space_check"] = {{"applicable", false}, {"reason", fsi.space_not_applicable}};
    if (cluster_) {
      json dd = json::array();
      for (const auto& d : cluster_->dead_daemons()) dd.push_back(d);
      info["cluster"] = {{"dead_daemons", dd}};
      if (!dd.empty()) {
        info["notes"].push_back(fmt::format("ceph daemons not running after the case: {}", dd.dump()));
        write_file_atomic(dir_ + "/ceph-daemons.log", cluster_->log_tail(200));
      }
    }
    write_file_atomic(dir_ + "/race.json", json{{"schema", kRaceSchema}, {"run", run_}, {"case", info}, {"inputs", in}}.dump(1) + "\n");
    if (vm_cut) {
      // Everything of the case is on the result share (ops.bin fsync'ed, race.json): ask the host to cut
      // the power now, with the filesystem still mounted and whatever it has not written lost.
      write_file_atomic(opt_.run_dir + "/power-cut-request.json",
                        json{{"case", cs_.name}, {"cut_op_ns", vm_cut_ns_}, {"requested_ns", now_ns()}}.dump() + "\n");
      std::cerr << fmt::format("fsrace-agent: {}: race done, waiting for the host to cut the power\n", cs_.name) << std::flush;
      for (;;) pause();  // the host SIGKILLs QEMU; a signal here (SIGTERM) ends the process as usual
    }
  }

  // The boot after a [vm] power_cut: mount what the crashed boot left (no mkfs: the journal / log is
  // replayed), read every block of every test file (thread kAfterCutThread, appended to the case's
  // ops.bin with its clock moved past the crashed boot's), fsck, and complete the case's race.json.
  void verify_after_vm_cut() {
    uint64_t t0 = now_ns();
    json race = read_race_json(dir_);
    json& info = race["case"];
    json& in = race["inputs"];
    if (info.value("status", "") != "power-cut")
      throw Fatal(fmt::format("{}: race.json says status '{}', not a case waiting for its power-cut verification", dir_,
                              info.value("status", "")));
    OpLogData before = load_oplog(dir_ + "/ops.bin");
    uint64_t last = 0;
    bool cut = false;
    for (const auto& o : before.ops) {
      last = std::max(last, o.end_ns);
      cut |= OpKind(o.kind) == OpKind::kPowerCut;
    }
    if (!cut) throw Fatal(fmt::format("{}/ops.bin has no power-cut op: the crashed boot did not record its cut", dir_));
    const FilesystemInfo* fi = find_filesystem(cs_.fs.type);
    KmsgCapture kmsg(fmt::format("{:016x} {} after power cut", nonce_, cs_.name));
    TestbedSpec ts{cs_.fs, "", opt_.workdir, std::nullopt, ""};
    if (auto it = opt_.devices.find(cs_.fs.type); it != opt_.devices.end()) ts.device = it->second;
    ts.reuse = true;
    phase("power-cut-mount", "");
    uint64_t t_mount = now_ns();
    Testbed tb(ts);  // mount: journal / log recovery
    double mount_s = secs_since(t_mount);
    std::vector<TestFile> files;
    for (const auto& f : before.meta.value("files", json::array()))
      files.push_back({f.value("name", ""), tb.test_dir() + "/" + f.value("name", ""), f.value("file_id", uint64_t(0)),
                       f.value("blocks", uint64_t(0))});
    phase("verify-after-cut", tb.test_dir());
    uint64_t t_verify = now_ns();
    {
      // 1 ms after the crashed boot's last op on its clock: every read here comes after the cut.
      OpLog log(dir_ + "/ops.bin", OpLog::Append{int64_t(last + 1000000) - int64_t(now_ns())});
      ThreadLog& tl = log.thread(kAfterCutThread);
      verify_disk_round(tl, files, 3);
      log.close();
    }
    double verify_s = secs_since(t_verify);
    FsckResult fr = tb.fsck();
    std::vector<KmsgLine> klines = kmsg.stop();
    std::string ktext, recovery;
    for (const auto& l : klines) {
      ktext += format_kmsg_line(l) + "\n";
      for (const auto& m : fi ? fi->recovery_markers : std::vector<std::string>{})
        if (l.text.find(m) != std::string::npos) recovery += (recovery.empty() ? "" : " | ") + l.text;
    }
    std::string old = path_exists(dir_ + "/kmsg.log") ? read_file(dir_ + "/kmsg.log") : "";
    write_file_atomic(dir_ + "/kmsg.log", old + "---- after the power cut (next boot) ----\n" + ktext);
    if (!in.contains("fsck") || !in["fsck"].is_array()) in["fsck"] = json::array();
    in["fsck"].push_back(fsck_json(fr));
    info["kernel_widening"]["vm-power-cut"] = {
        {"ran", true}, {"how", "the host killed QEMU (SIGKILL) with the filesystem mounted, then booted the VM again on the same disk images and NVDIMM backing files"},
        {"device", tb.dev()}, {"mount_s", mount_s}, {"verify_s", verify_s}, {"total_s", secs_since(t0)},
        {"journal_recovery", recovery}, {"fsck", fsck_json(fr)}};
    if (recovery.empty())
      info["notes"].push_back("the mount after the power cut printed no journal / log recovery line: nothing was left to replay");
    info["status"] = "complete";
    info["timing"]["after_cut_s"] = secs_since(t0);
    race["run"] = run_;  // this boot's run record, as its findings.json will say
    write_file_atomic(dir_ + "/race.json", race.dump(1) + "\n");
  }

 private:
  void phase(const char* name, const std::string& dir) { report_phase(opt_, cs_.name, name, dir); }

  // Right before either power cut (kwiden dm-flakey, [vm] power_cut): files a collapse / insert / truncate
  // changed are fsync'ed (the oracle does not model a crash inside a shift); with power_cut_selfcheck, an
  // fsync of every file is recorded but not made, after a write of its block 0 that the cut must lose.
  // dm-flakey drops the write's dirty page: a buffered write is enough, even when the race's own writeback
  // left nothing dirty (without it the check passed vacuously now and then: seen in CI, 0 ops at risk, no
  // finding). The VM cut loses only what the kernel had not written at all, and a DAX store reaches the
  // media at once: so `punch_first` punches block 0 (made durable) before the write, whose allocation then
  // lives only in the running transaction.
  void before_cut(ThreadLog& tl, const std::vector<TestFile>& files, const RaceStats& rs, json& j, bool punch_first) {
    auto count = [&](const char* k) { return rs.ops_by_kind.count(k) ? rs.ops_by_kind.at(k) : 0; };
    bool shifts = count("collapse-range") + count("insert-range") + count("truncate") > 0;
    if (shifts) fsync_files(tl, files);
    j["fsynced_before_cut"] = shifts ? "every file (collapse / insert / truncate ran; a crash inside a shift is not modelled)" : "";
    if (cs_.sc.i("power_cut_selfcheck") == 0) return;
    AlignedBuf buf(kBlockSize);
    for (size_t fi = 0; fi < files.size(); ++fi) {
      int fd = open(files[fi].path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) continue;
      uint16_t f = uint16_t(fi);
      uint64_t len = files[fi].blocks * kBlockSize;
      if (punch_first) {
        uint64_t id = tl.new_id(), t0 = now_ns();
        int64_t r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, kBlockSize) == 0 ? 0 : -int64_t(errno);
        tl.op(id, OpKind::kPunch, f, 0, kBlockSize, t0, now_ns(), r);
        id = tl.new_id(), t0 = now_ns();
        r = fsync(fd) == 0 ? 0 : -int64_t(errno);
        tl.op(id, OpKind::kFsync, f, 0, len, t0, now_ns(), r);
      }
      uint64_t id = tl.new_id(), t0 = now_ns();
      int64_t r = write_stamped(fd, files[fi], 0, 1, id, buf.p);
      tl.op(id, OpKind::kWrite, f, 0, kBlockSize, t0, now_ns(), r);
      close(fd);
      uint64_t t = now_ns();
      tl.op(tl.new_id(), OpKind::kFsync, f, 0, len, t, t, 0);  // recorded, never made
    }
    j["selfcheck"] = "an fsync of every file was recorded but not made: findings expected";
  }

  // [vm] power_cut, in the crashed-to-be boot: the self-check's fsyncs that are never made, then the cut op.
  // The cut itself comes later (the host kills QEMU); nothing the workload did after this op exists.
  void prepare_vm_cut(ThreadLog& tl, const std::vector<TestFile>& files, const RaceStats& rs, json& info) {
    json j = {{"requested", true}};
    before_cut(tl, files, rs, j, /*punch_first=*/true);
    uint64_t t0 = now_ns();
    vm_cut_ns_ = t0;
    tl.op(tl.new_id(), OpKind::kPowerCut, 0, 0, 0, t0, t0, 0);
    info["kernel_widening"]["vm-power-cut"] = j;
  }
  uint64_t vm_cut_ns_ = 0;

  std::unique_ptr<probes::ProbeSession> open_probes(json& info) {
    probes::SessionOptions po;
    po.ringbuf_bytes = opt_.campaign.probes.ringbuf_mib << 20;
    po.cpu_stats = opt_.campaign.probes.cpu_stats;
    // Flipping the statistics' static key while programs run hot patches kernel text under them, which
    // livelocks TCG guests (loader.h): in a guest they stay on from before the first attach.
    po.cpu_stats_flip_while_attached = !opt_.in_vm_guest();
    po.on_progress = [] { progress_counter().fetch_add(1, std::memory_order_relaxed); };
    po.required = opt_.campaign.probes.required;
    po.exclude = opt_.campaign.probes.exclude;
    po.lock_snapshot = opt_.campaign.probes.lock_snapshot;
    po.events_path = dir_ + "/events.bin";
    po.header_extra = {{"case", cs_.name}, {"fs", cs_.fs.type}, {"scenario", cs_.sc.name}};
    std::unique_ptr<probes::ProbeSession> p;
    try {
      p = std::make_unique<probes::ProbeSession>(*kernel_, po);
    } catch (const probes::ProbeError& e) {
      throw Fatal(e.what());
    }
    if (!p->setup_error().empty()) info["notes"].push_back(fmt::format("probes unavailable: {}", p->setup_error()));
    return p;
  }

  // kwiden dm-flakey, right after the race: files a collapse / insert / truncate changed are fsync'ed (the
  // oracle does not model a crash inside a shift), the device switches to a table that drops every write
  // (without freezing the filesystem), the filesystem is unmounted (its last writes dropped too), the
  // normal table comes back and the mount replays the journal. Then a cold read of every block (judged by
  // what fsync made durable, oracle.h) and a read-only fsck; the verification continues on a new mount.
  void cut_power(ThreadLog& tl, const std::vector<TestFile>& files, const RaceStats& rs, widening::WideningPlan& plan, Testbed& tb,
                 json& fsck) {
    json& j = plan.flakey_record();
    before_cut(tl, files, rs, j, /*punch_first=*/false);
    uint64_t id = tl.new_id(), t0 = now_ns();
    if (std::string e = plan.cut_power(); !e.empty()) {
      j["error"] = e;  // nothing changed: the case goes on without a cut
      return;
    }
    tl.op(id, OpKind::kPowerCut, 0, 0, 0, t0, now_ns(), 0);
    j["table_at_cut"] = plan.layer()->table();
    tb.unmount();
    plan.restore_power();
    tb.mount();
    j["ran"] = true;
    j["device"] = plan.layer()->dev();
    verify_disk_round(tl, files, 3);
    FsckResult fr = tb.fsck();
    j["fsck"] = fsck_json(fr);
    fsck.push_back(fsck_json(fr));
    tb.mount();
  }

  const RunOptions& opt_;
  const json& run_;
  const CaseSpec& cs_;
  std::string dir_;
  uint64_t nonce_;
  const probes::KernelInfo* kernel_;
  bool probes_;
  const CephCluster* cluster_ = nullptr;
};

// The process's peak resident memory so far (the race, the probes' buffers and the analysis of the case's
// op log and events), against the machine's: a guest agent near its VM's memory is OOM-killed at the next
// heavier case (status 137, a vm-error), so say so while it still finishes.
void note_peak_memory(CaseAnalysis& ca) {
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return;
  uint64_t peak_mib = uint64_t(ru.ru_maxrss) / 1024, total_mib = 0;
  std::ifstream mi("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  while (mi >> key >> kib) {
    if (key == "MemTotal:") {
      total_mib = kib / 1024;
      break;
    }
    mi.ignore(64, '\n');
  }
  ca.info["timing"]["peak_rss_mib"] = peak_mib;
  if (total_mib && peak_mib * 2 > total_mib) {
    std::string n = fmt::format("fsrace's peak memory was {} MiB of the machine's {} MiB (op log and events of the case "
                                "analysed in memory): in VM mode raise [vm] memory_mib, or shorten the race, before a "
                                "heavier case gets the agent OOM-killed",
                                peak_mib, total_mib);
    ca.info["notes"].push_back(n);
    ca.notes.push_back(fmt::format("{}: {}", ca.info.value("case", ""), n));
  }
}

}  // namespace

RunOutcome run_host(const RunOptions& opt) {
  install_stop_handlers();  // first: a signal during setup ends the run as interrupted, with its files
  const Campaign& c = opt.campaign;
  if (c.vm.power_cut && !opt.in_vm_guest())
    throw Fatal("[vm] power_cut needs VM mode (--kernel K: the host kills the VM); in host mode use kwiden = "
                "[\"dm-flakey\"] in a [scenario.NAME] table for a power cut below the filesystem");
  for (const auto& s : c.scenarios)
    if (!find_scenario(s.name)) throw Fatal(fmt::format("unknown scenario '{}'", s.name));
  bool need_loop = false;
  bool has_cluster = false;
  for (const auto& f : c.filesystems) {
    const FilesystemInfo* fi = find_filesystem(f.type);
    bool given = opt.devices.count(f.type) > 0;
    bool cluster = fi && fi->backing == FsBacking::kCluster;
    has_cluster |= cluster;
    if (fi && fi->backing == FsBacking::kPmem && !given)
      throw Fatal(fmt::format("{} needs a persistent-memory device (an fsdax /dev/pmemN) and this run has none: run it in VM "
                              "mode (--kernel debian), where the guest gets an emulated NVDIMM", f.type));
    need_loop |= !given && (!fi || fi->backing == FsBacking::kBlockDevice);
  }
  if (has_cluster && !opt.in_vm_guest() && !opt.allow_host_cluster)
    throw Fatal("ceph in host mode would start cluster daemons and mount the running kernel's ceph client: run it in a VM "
                "(--kernel debian), or pass --allow-host-cluster on a kernel with ceph.ko");
  preflight_host(c.filesystems, need_loop);
  if (!path_exists(opt.workdir))
    throw Fatal(fmt::format("work directory {} does not exist: pass an existing directory with --workdir", opt.workdir));

  if (!opt.in_vm_guest())
    for (const auto& line : recover_leftovers(opt.workdir)) std::cerr << "fsrace: " << line << "\n";
  uint64_t nonce = random_u64();
  RunDir rd = create_run_dir(opt.results_root, c.name, opt.run_dir, nonce);
  write_file_atomic(rd.dir + "/campaign.toml", campaign_to_toml(c));
  json run = {{"id", rd.id},      {"campaign", c.name},  {"kernel", kernel_release()}, {"mode", opt.mode},
              {"seed", c.seed},   {"duration_s", c.duration_s}, {"started", timestamp_id()}, {"source", c.source},
              {"op_logging", opt.log_ops}};
  run.update(opt.run_extra);
  if (!run.contains("kernel_config")) {
    json kc = kernel_config_highlights(running_kernel_config());
    if (!kc.empty()) run["kernel_config"] = kc;
  }
  std::vector<CaseSpec> cases = opt.next_case ? std::vector<CaseSpec>{} : case_matrix(c);
  if (opt.shard.active() && !opt.next_case) {
    size_t all_cases = cases.size();
    cases = shard_cases(cases, opt.shard);
    run["shard"] = {{"index", opt.shard.index}, {"total", opt.shard.total}, {"matrix_cases", all_cases}};
  }
  if (!opt.only_cases.empty() && !opt.next_case) {  // a VM job runs its share of the matrix
    std::vector<CaseSpec> mine;
    for (const auto& want : opt.only_cases) {
      auto it = std::find_if(cases.begin(), cases.end(), [&](const CaseSpec& cs) { return cs.name == want; });
      if (it == cases.end()) throw Fatal(fmt::format("case '{}' is not in campaign {}", want, c.name));
      mine.push_back(*it);
    }
    cases = mine;
  }

  // A cluster filesystem's cluster: started once for the run (once per VM), before its first case.
  std::unique_ptr<CephCluster> cluster;
  bool cluster_cases = false;
  for (const auto& cs : cases) {
    const FilesystemInfo* fi = find_filesystem(cs.fs.type);
    cluster_cases |= fi && fi->backing == FsBacking::kCluster;
  }
  if (opt.next_case)
    for (const auto& f : c.filesystems) {
      const FilesystemInfo* fi = find_filesystem(f.type);
      cluster_cases |= fi && fi->backing == FsBacking::kCluster;
    }
  if (cluster_cases && !stop_requested().load()) {
    if (opt.verbose) std::cerr << "fsrace: starting the ceph cluster (mon, mgr, OSD, MDS on 127.0.0.1)\n";
    cluster = std::make_unique<CephCluster>(CephClusterSpec{opt.workdir, rd.dir, opt.ceph_objectstore});
    json rss = json::object();
    long total = 0;
    for (const auto& [d, kib] : cluster->daemon_rss_kib()) {
      rss[d] = kib;
      total += kib;
    }
    run["ceph_cluster"] = {{"objectstore", opt.ceph_objectstore}, {"start_s", cluster->start_s()}, {"daemon_rss_kib", rss},
                           {"daemon_rss_total_kib", total}};
    if (opt.verbose)
      std::cerr << fmt::format("fsrace: ceph cluster up in {:.1f} s ({}, daemons' RSS {} MiB)\n", cluster->start_s(),
                               opt.ceph_objectstore, total / 1024);
  }

  RunDoc all(run);
  std::string kmsg_all;
  RunOutcome outcome;
  outcome.dir = rd.dir;
  auto persist = [&](const std::string& status) { write_results(rd.dir, all.doc(status), &kmsg_all); };
  persist("running");
  std::unique_ptr<probes::KernelInfo> kernel;
  bool probes_on = opt.probes && c.probes.enabled;
  bool kernel_widening = false;
  for (const auto& s : c.scenarios) kernel_widening |= !s.kdelay.empty() || !s.kwiden.empty() || c.widening == "auto";
  kernel_widening |= bool(opt.next_case);  // explore rounds may widen
  if ((probes_on || kernel_widening) && !stop_requested().load()) kernel = probes::running_kernel();
  // Progress: a live status line on a terminal, plain lines otherwise (the guest agent keeps its own lines).
  std::unique_ptr<StatusLine> status;
  RunOptions copt = opt;
  if (opt.verbose && !opt.in_vm_guest() && !opt.next_case) {  // explore prints a line per round itself
    status = std::make_unique<StatusLine>(cases.size(), double(cases.size()) * (c.duration_s + 3.0), false, c.duration_s);
    copt.verbose = false;
    copt.on_phase = [&status, outer = opt.on_phase](const std::string& cn, const std::string& ph, const std::string& dir) {
      status->phase(cn, ph);
      if (outer) outer(cn, ph, dir);
    };
  }
  auto note = [&](const std::string& text) {
    if (status) status->line(text);
    else std::cerr << text << "\n";
  };
  std::string last_dir;
  CaseAnalysis last;
  for (size_t i = 0;; ++i) {
    if (stop_requested().load()) break;
    if (opt.next_case) {  // fsrace explore: the next round, chosen from the ones judged so far
      std::optional<CaseSpec> nc = opt.next_case(i ? &last_dir : nullptr, i ? &last : nullptr);
      if (!nc) break;
      cases.push_back(*nc);
    }
    if (i >= cases.size()) break;
    const CaseSpec& cs = cases[i];
    std::string case_dir = rd.dir + "/" + cs.name;
    bool after_cut = !copt.after_power_cut.empty() && cs.name == copt.after_power_cut;
    // A fresh directory, never one that is there already (a link planted in a shared results store
    // would take the case's files elsewhere); after a power cut, the crashed boot's (the host copied it).
    if (after_cut) {
      struct stat st {};
      if (lstat(case_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw Fatal(fmt::format("{}: no case directory from the boot before the power cut", case_dir));
    } else if (mkdir(case_dir.c_str(), 0755) != 0)
      throw Fatal(fmt::format("cannot create case directory {}: {}{}", case_dir, strerror(errno),
                              errno == EEXIST ? " (something already has that name in a new run directory: remove it)" : ""));
    if (status) status->case_started(i, cs.name);
    else if (opt.verbose && !opt.next_case) std::cerr << fmt::format("fsrace: case {}/{}: {}\n", i + 1, cases.size(), cs.name);
    CaseAnalysis ca;
    try {
      CaseRunner cr(copt, run, cs, case_dir, nonce + i, kernel.get(), probes_on, cluster.get());
      if (after_cut) cr.verify_after_vm_cut();
      else cr.run();
      report_phase(copt, cs.name, "analysis");
      ca = analyze_case(case_dir);
      note_peak_memory(ca);
    } catch (const Fatal& e) {
      bool intr = e.exit_code() == kExitInterrupted;
      std::string st = intr ? "interrupted" : std::string("error: ") + e.what();
      all.add_case_record({{"case", cs.name}, {"fs", cs.fs.type}, {"scenario", cs.sc.name}, {"status", st}});
      try {
        persist(st);
      } catch (const Fatal&) {  // e.g. the results filesystem is full: the original error is the one to report
      }
      throw;
    }
    for (const auto& n : ca.notes) note("fsrace: note: " + n);
    json cdoc = findings_doc(run, {ca.info}, ca.findings, ca.info.value("status", "complete"));
    write_results(case_dir, cdoc, nullptr);
    report_phase(copt, cs.name, "done");
    kmsg_all += fmt::format("==== case {} ====\n", cs.name) + ca.kmsg_text;
    all.add_case(cdoc);
    if (status) status->case_done(cs.name, all.by_class());
    persist(stop_requested().load() ? "interrupted" : "running");
    last_dir = case_dir;
    last = std::move(ca);
  }
  outcome.interrupted = stop_requested().load();
  persist(outcome.interrupted ? "interrupted" : "complete");
  outcome.findings = all.total();
  return outcome;
}

void report_phase(const RunOptions& opt, const std::string& case_name, const char* phase, const std::string& dir) {
  progress_counter().fetch_add(1, std::memory_order_relaxed);
  if (opt.on_phase) opt.on_phase(case_name, phase, dir);
}

}  // namespace fsrace
