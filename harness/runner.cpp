#include "harness/runner.h"

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fmt/core.h>
#include <iostream>
#include <map>
#include <set>

#include "harness/host.h"
#include "harness/kernel_events.h"
#include "probes/delay.h"
#include "probes/dm.h"
#include "probes/inject.h"
#include "probes/kernel_info.h"
#include "probes/loader.h"
#include "probes/widening.h"
#include "harness/kmsg_capture.h"
#include "harness/kmsg_scan.h"
#include "harness/oplog.h"
#include "harness/oracle.h"
#include "harness/overlap.h"
#include "harness/probe_toggle.h"
#include "harness/report.h"
#include "harness/util.h"
#include "harness/verify.h"
#include "workloads/scenario.h"

namespace fsrace {
namespace {

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

// XFS's bmap_alloc_minlen_extent error tag allocates only from free extents exactly one block long
// (xfs_exact_minlen_extent_available; without one the allocation fails and writeback discards the data),
// so before arming it the free space gets `n` of them, as fstests fragments free space first: a file of
// 2n blocks allocated in one go, every other block punched out. Returns how many holes were made.
constexpr uint64_t kOneBlockHoles = 4096;
uint64_t make_one_block_holes(const std::string& path, uint64_t n, std::string* err) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    *err = fmt::format("cannot create {}: {}", path, strerror(errno));
    return 0;
  }
  uint64_t holes = 0;
  if (fallocate(fd, 0, 0, off_t(2 * n * kBlockSize)) != 0) {
    *err = fmt::format("fallocate of {} blocks in {}: {}", 2 * n, path, strerror(errno));
  } else {
    for (; holes < n; ++holes)
      if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t((2 * holes + 1) * kBlockSize), off_t(kBlockSize)) != 0) {
        *err = fmt::format("punching block {} of {}: {}", 2 * holes + 1, path, strerror(errno));
        break;
      }
  }
  close(fd);
  return holes;
}

uint64_t random_u64() {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != sizeof v) v = now_ns() ^ (uint64_t(getpid()) << 32);
  return v;
}

double secs_since(uint64_t t0) { return double(now_ns() - t0) / 1e9; }

struct CaseSpec {
  FsConfig fs;
  ScenarioConfig sc;
  uint64_t rep;
  std::string name;
};

struct CaseOut {
  nlohmann::json info;
  FindingSet findings;
  std::string kmsg_text;
};

nlohmann::json findings_doc(const nlohmann::json& run, const std::vector<nlohmann::json>& cases, const FindingSet& fs,
                            const std::string& status) {
  nlohmann::json doc;
  doc["schema"] = kFindingsSchema;
  doc["run"] = run;
  doc["status"] = status;
  doc["cases"] = cases;
  doc["findings_by_class"] = nlohmann::json::object();
  for (const auto& [c, n] : fs.total_by_class) doc["findings_by_class"][c] = n;
  doc["informational_by_class"] = nlohmann::json::object();
  for (const auto& [c, n] : fs.informational_by_class) doc["informational_by_class"][c] = n;
  uint64_t sup = 0;
  for (const auto& [c, n] : fs.suppressed_by_class) sup += n;
  doc["suppressed"] = sup;
  doc["findings"] = nlohmann::json::array();
  for (const auto& f : fs.kept) doc["findings"].push_back(finding_to_json(f));
  return doc;
}

class CaseRunner {
 public:
  // `kernel`: the running kernel's facts when probes or kernel-side widening are on; `probes`: load the probes.
  CaseRunner(const RunOptions& opt, const CaseSpec& cs, const std::string& case_dir, uint64_t nonce,
             const probes::KernelInfo* kernel, bool probes)
      : opt_(opt), cs_(cs), dir_(case_dir), nonce_(nonce), kernel_(kernel), probes_(probes) {}

  CaseOut run() {
    CaseOut out;
    auto& info = out.info;
    info["case"] = cs_.name;
    info["fs"] = cs_.fs.type;
    info["scenario"] = cs_.sc.name;
    info["repetition"] = cs_.rep;
    info["notes"] = nlohmann::json::array();
    Scenario* scenario = find_scenario(cs_.sc.name);
    uint64_t seed = opt_.campaign.seed + cs_.rep * 1000003ull;
    info["seed"] = seed;

    uint64_t t_setup = now_ns();
    phase("setup", "");
    TempDir work(opt_.workdir, "fsrace.");
    // The block device: a loop device on a sparse image (host), or one given by the VM agent.
    std::optional<LoopDevice> loop_dev;
    std::string dev, dev_name;
    if (auto it = opt_.devices.find(cs_.fs.type); it != opt_.devices.end()) {
      dev = it->second;
      dev_name = dev.substr(dev.rfind('/') + 1);
    } else {
      loop_dev.emplace(work.path() + "/disk.img", cs_.fs.device_size_mib);
      dev = loop_dev->dev();
      dev_name = loop_dev->name();
    }
    std::set<std::string> test_devices{dev_name};  // the kernel log names any of them (dm over loop)
    // kwiden dm-delay / dm-flakey: the filesystem goes on a device-mapper device stacked on that device
    // (removed after the last unmount: declared before the mount). Its table is a delay target (dm-delay),
    // or linear (dm-flakey alone); the power cut swaps in a flakey target that drops writes.
    std::optional<probes::DmDevice> dm;
    std::string dm_error, dm_target, dm_args;
    bool flakey = false;  // dm-flakey available: the race ends in a power cut
    std::map<std::string, probes::TechniqueStatus> detected;  // techniques already detected for this case
    if (kernel_ && cs_.sc.widens("dm-delay")) {
      auto& t = detected["dm-delay"] = probes::detect_technique("dm-delay", *kernel_);
      if (t.available) dm_target = "delay", dm_args = fmt::format("{{dev}} 0 {}", cs_.sc.i("dm_delay_ms"));
    }
    if (kernel_ && cs_.sc.widens("dm-flakey")) {
      auto& t = detected["dm-flakey"] = probes::detect_technique("dm-flakey", *kernel_);
      flakey = t.available;
      if (flakey && dm_target.empty()) dm_target = "linear", dm_args = "{dev} 0";
    }
    if (!dm_target.empty())
      try {
        static std::atomic<unsigned> serial{0};  // unique per process: one device per case
        dm.emplace(fmt::format("fsrace-{}-{:x}-{}", getpid(), nonce_ & 0xffffff, serial++), dev, dm_target, dm_args,
                   work.path());
        dev = dm->dev();
        dev_name = dm->kernel_name();
        test_devices.insert(dev_name);
      } catch (const probes::DmError& e) {
        dm_error = e.what();
        flakey = false;
      }
    make_filesystem(cs_.fs, dev);
    std::string mnt_dir = work.path() + "/mnt";
    std::optional<Mount> mnt;
    mnt.emplace(dev, mnt_dir, cs_.fs);
    std::string test_dir = mnt_dir + "/fsrace";
    if (mkdir(test_dir.c_str(), 0755) != 0) throw UsageError(fmt::format("cannot create {}: {}", test_dir, strerror(errno)));
    uint64_t one_block_holes = 0;  // kwiden xfs-errortag: see make_one_block_holes
    std::string holes_error;
    if (kernel_ && cs_.sc.widens("xfs-errortag") && cs_.fs.type == "xfs" &&
        path_exists(fmt::format("/sys/fs/xfs/{}/errortag/bmap_alloc_minlen_extent", dev_name)))
      one_block_holes = make_one_block_holes(mnt_dir + "/.fsrace-one-block-holes", kOneBlockHoles, &holes_error);
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
    env.seed = seed;
    env.duration_s = opt_.campaign.duration_s;
    env.run_nonce = nonce_ & 0xffffffffu;
    env.stop = &stop_requested();
    std::vector<TestFile> files = scenario->plan_files(env);

    nlohmann::json meta = {{"scenario", cs_.sc.name}, {"fs", cs_.fs.type},   {"case", cs_.name},
                           {"seed", seed},            {"clock", "CLOCK_MONOTONIC"}, {"block_size", kBlockSize},
                           {"kernel", kernel_release()}, {"params", cs_.sc.params}};
    meta["files"] = nlohmann::json::array();
    for (const auto& f : files) meta["files"].push_back({{"name", f.name}, {"file_id", f.file_id}, {"blocks", f.blocks}});
    OpLog log(dir_ + "/ops.bin", meta, opt_.log_ops);
    env.log = &log;
    ThreadLog& tl = log.thread(0);
    env.quiesce_ms = opt_.campaign.quiesce_ms;
    env.quiesce = [&](uint32_t round) {
      // All workers are stopped: the cache must agree with O_DIRECT, and space must match the model. With
      // a power cut ahead (dm-flakey) the rounds do not fsync: what survives it is decided by the race's
      // own fsyncs, not by a round that made everything durable a few ms before the cut.
      verify_cached_round(tl, files, round);
      if (flakey) return;
      fsync_files(tl, files);
      record_stat_blocks(tl, files, test_dir, space.fs_block);
    };

    // --- probes (issue 3): session from before setup until after the last unmount ---
    std::unique_ptr<probes::ProbeSession> probe;
    struct Inode {
      uint64_t dev, ino;
    };
    std::vector<Inode> inodes;  // test files, for a kernel-delay session without the probes' filter
    env.on_file = [&](const TestFile& f, int fd) {
      struct stat st;
      if (fstat(fd, &st) != 0) return;
      inodes.push_back({uint64_t(st.st_dev), uint64_t(st.st_ino)});
      if (probe) probe->add_inode(st.st_dev, st.st_ino, f.name);
    };
    if (kernel_ && probes_) {
      probes::SessionOptions po;
      po.ringbuf_bytes = opt_.campaign.probes.ringbuf_mib << 20;
      po.cpu_stats = opt_.campaign.probes.cpu_stats;
      po.cpu_stats_flip_while_attached = opt_.mode != "vm";  // a guest livelocked at that flip under TCG (loader.h)
      po.on_progress = [] { progress_counter().fetch_add(1, std::memory_order_relaxed); };
      po.required = opt_.campaign.probes.required;
      po.exclude = opt_.campaign.probes.exclude;
      po.lock_snapshot = opt_.campaign.probes.lock_snapshot;
      po.events_path = dir_ + "/events.bin";
      po.header_extra = {{"case", cs_.name}, {"fs", cs_.fs.type}, {"scenario", cs_.sc.name}};
      try {
        probe = std::make_unique<probes::ProbeSession>(*kernel_, po);
      } catch (const probes::ProbeError& e) {
        throw UsageError(e.what());
      }
      if (!probe->setup_error().empty()) info["notes"].push_back(fmt::format("probes unavailable: {}", probe->setup_error()));
    }
    if (kernel_ && !cs_.sc.kwiden.empty()) info["kernel_widening"] = detect_widening(dev_name, detected);
    if (cs_.sc.widens("dm-delay")) {
      auto& w = info["kernel_widening"]["dm-delay"];
      if (dm && dm_target == "delay") w.update({{"ran", true}, {"device", dm->dev()}, {"table", dm->table()}, {"delay_ms", cs_.sc.i("dm_delay_ms")}});
      else if (!dm_error.empty()) w["error"] = dm_error;
    }
    if (cs_.sc.widens("dm-flakey") && !dm_error.empty()) info["kernel_widening"]["dm-flakey"]["error"] = dm_error;

    scenario->setup(env, files);
    if (flakey) {
      // The power cut judges what fsync made durable: the files and their initial contents are.
      fsync_files(tl, files);
      fsync_path(test_dir);
    }
    // Kernel delays: armed for the race only (setup's writes and the verification reads run undelayed).
    std::unique_ptr<probes::DelaySession> delay;
    if (kernel_ && !cs_.sc.kdelay.empty()) {
      probes::DelayOptions d{cs_.sc.kdelay, cs_.fs.type, cs_.sc.d("kdelay_us"), cs_.sc.d("kdelay_ratio"), probe ? probe->filter_fd() : -1};
      delay = std::make_unique<probes::DelaySession>(*kernel_, d);
      for (const auto& i : inodes) delay->add_inode(i.dev, i.ino);
      if (delay->attached() && sysconf(_SC_NPROCESSORS_ONLN) < 2)
        info["notes"].push_back("kernel delays on a single CPU: the waiting task holds the only CPU, the racing thread cannot "
                                "run inside the widened window");
    }
    // Error injection (kwiden override-return / fail-function): armed for the race, on the racing threads.
    std::unique_ptr<probes::InjectSession> inject;
    if (kernel_ && !cs_.sc.injection().empty()) {
      probes::InjectOptions io{cs_.sc.injection(), int(cs_.sc.i("kinject_errno")), cs_.sc.d("kinject_ratio"), probe ? probe->filter_fd() : -1};
      inject = std::make_unique<probes::InjectSession>(*kernel_, io);
      if (!probe)
        for (const auto& i : inodes) inject->add_inode(i.dev, i.ino);
      if (inject->armed()) {
        env.on_worker_start = [p = inject.get()] { p->enlist_current_thread(); };
        if (io.err == ENOMEM) env.tolerated_errno = ENOMEM;
      }
    }
    // XFS error tags (kwiden xfs-errortag): armed for the race only (setup's writes allocate normally).
    std::optional<probes::XfsErrortags> errortags;
    if (kernel_ && cs_.sc.widens("xfs-errortag") && cs_.fs.type == "xfs") {
      auto& w = info["kernel_widening"]["xfs-errortag"];
      if (w.value("available", false) && one_block_holes < kOneBlockHoles) {
        w["error"] = fmt::format("could not prepare {} one-block free extents for bmap_alloc_minlen_extent ({} made): {}",
                                 kOneBlockHoles, one_block_holes, holes_error);
      } else if (w.value("available", false)) try {
          errortags.emplace(fmt::format("/sys/fs/xfs/{}/errortag", dev_name),
                            std::map<std::string, int>{{"bmap_alloc_minlen_extent", int(cs_.sc.i("xfs_minlen_alloc"))}});
          w.update({{"ran", true}, {"dir", errortags->dir()}, {"errortags", errortags->tags()}, {"one_block_free_extents", one_block_holes}});
        } catch (const probes::WideningError& e) {
          w["error"] = e.what();
        }
    }
    double setup_s = secs_since(t_setup);
    if (opt_.verbose) std::cerr << fmt::format("fsrace: {}: racing for {} s\n", cs_.name, opt_.campaign.duration_s);
    phase("race", test_dir);
    uint64_t t_race = now_ns();
    uint64_t race_cpu0 = process_cpu_ns();
    if (probe) probe->start_cpu_window();
    std::unique_ptr<ProbeToggler> toggler;  // benchmark only ([probes] toggle_ms)
    if (probe && opt_.campaign.probes.toggle_ms && probe->attached()) {
      if (opt_.mode == "vm")
        info["notes"].push_back("[probes] toggle_ms ignored in a VM guest: attaching and detaching while the race runs "
                                "patches kernel text, which livelocked guests under TCG (see probes/loader.h)");
      else
        toggler = std::make_unique<ProbeToggler>(*probe, opt_.campaign.probes.toggle_ms);
    }
    RaceStats rs = scenario->race(env, files);
    nlohmann::json toggle;
    if (toggler) toggle = toggler->finish();
    toggler.reset();
    uint64_t race_cpu_ns = process_cpu_ns() - race_cpu0;
    errortags.reset();
    info["extents"] = nlohmann::json::object();
    for (const auto& f : files)
      if (int64_t n = extent_count(f.path); n >= 0) info["extents"][f.name] = n;
    if (delay) {
      delay->stop();
      info["kernel_delays"] = delay->report();
      delay.reset();
    }
    if (inject) {
      inject->stop();
      auto& w = info["kernel_widening"][cs_.sc.injection()];
      w["ran"] = inject->armed();
      w["injection"] = inject->report();
      if (!inject->armed() && w.value("available", false)) w["error"] = inject->error();
      env.on_worker_start = nullptr;
      inject.reset();
    }
    double race_s = secs_since(t_race);
    uint64_t t_race_end = now_ns();
    bool interrupted = stop_requested().load();

    uint64_t t_verify = now_ns();
    // kwiden dm-flakey: the race ends in a power cut (writes dropped, unmount, journal replayed at the
    // next mount); the verification below then sees what survived it.
    if (flakey && !interrupted) {
      phase("power-cut", test_dir);
      info["kernel_widening"]["dm-flakey"].update(power_cut(tl, files, rs, *dm, mnt, dev, mnt_dir, dm_target, dm_args));
    }
    phase("verify", test_dir);
    std::vector<std::pair<uint64_t, std::string>> injected;
    if (!interrupted) {
      for (auto& n : verify_cached_round(tl, files, 1)) info["notes"].push_back(n);
      fsync_files(tl, files);
      if (opt_.inject_corruption) injected = inject_corruption(tl, files);
      sync();
      for (const auto& f : files) {
        struct stat st;
        space.allocated.push_back(stat(f.path.c_str(), &st) == 0 ? uint64_t(st.st_blocks) * 512 / space.fs_block : 0);
      }
      space.free_with_files = fs_space(test_dir).free;
      mnt->unmount();
      mnt.reset();
      mnt.emplace(dev, mnt_dir, cs_.fs);
      verify_disk_round(tl, files, 2);
      for (const auto& f : files) unlink(f.path.c_str());
      int dfd = open(test_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        syncfs(dfd);
        close(dfd);
      }
      space.free_after_delete = fs_space(test_dir).free;
      mnt->unmount();
      mnt.reset();
      mnt.emplace(dev, mnt_dir, cs_.fs);
      space.free_after_remount = fs_space(test_dir).free;
      space.have_after_delete = true;
    }
    mnt->unmount();
    mnt.reset();
    double verify_s = secs_since(t_verify);
    std::optional<probes::SessionStats> pstats;
    std::string probe_error;
    if (probe && probe->setup_error().empty()) {
      try {
        pstats = probe->stop();
      } catch (const probes::ProbeError& e) {
        probe_error = e.what();
      }
    }
    log.close();
    std::vector<KmsgLine> klines = kmsg.stop();

    // Analysis: everything below works from the files just written (ops.bin) and the captured log.
    uint64_t t_an = now_ns();
    phase("analysis", "");
    OracleStats ost;
    nlohmann::json overlap;
    OpLogData data;
    if (opt_.log_ops) {
      data = load_oplog(dir_ + "/ops.bin");
      OracleContext ctx{cs_.fs.type, cs_.sc.name, cs_.name};
      ctx.short_reads_legal = env.tolerated_errno != 0;
      out.findings = run_oracle(data, ctx, &ost);
      if (ost.power_cut_ns) {
        auto& w = info["kernel_widening"]["dm-flakey"];
        w["non_durable_ops"] = ost.non_durable_ops;
        w["reads_after_cut"] = ost.reads_after_cut;
        w["unjudged_reads_after_cut"] = ost.unjudged_after_cut;
      }
      OverlapStats ov = overlap_stats(data);
      overlap = {{"attempts", ov.attempts}, {"overlapped", ov.overlapped}, {"share", ov.share()}};
      if (!interrupted)
        for (auto& f : check_space(data, space, cs_.sc.name, cs_.name)) out.findings.add(std::move(f));
    }
    KmsgScanOptions kopt;
    kopt.devices = test_devices;
    kopt.fs = cs_.fs.type;
    kopt.scenario = cs_.sc.name;
    kopt.case_name = cs_.name;
    KmsgScanResult ks = scan_kmsg(klines, kopt);
    // Corroboration for notices: data the oracle rejected, except the blocks the test helper corrupted.
    // Data findings with an O_DIRECT write among their ops, in a case where the kernel showed a DIO
    // page-cache invalidation failure (its warning, or the EIO it leaves behind: dio_collision_shown), are
    // what that failure announces: marked, and they corroborate only the DIO notices.
    auto kind_count = [&](const char* k) { return rs.ops_by_kind.count(k) ? rs.ops_by_kind.at(k) : 0; };
    bool dio_mixed = kind_count("dio-write") > 0 &&
                     (kind_count("write") + kind_count("mmap-write") + kind_count("mmap-read")) > 0;
    std::vector<FailedSyscall> failed;
    for (const auto& e : rs.fatal_errors) failed.push_back({e.kind, e.result});
    DioCollisionShown dio_shown = dio_collision_shown(ks, failed, dio_mixed);
    bool dio_reported = dio_shown.any();
    DataCorroboration corr;
    std::set<std::string> other_classes;
    for (auto& f : out.findings.kept) {
      bool injected_block = false;
      for (const auto& [b, c] : injected) injected_block |= f.file == files[0].name && f.block && *f.block == b;
      if (!is_data_finding_class(f.cls) || injected_block) continue;
      bool dio_op = std::any_of(f.ops.begin(), f.ops.end(), [](const OpRecord& o) { return OpKind(o.kind) == OpKind::kDioWrite; });
      if (dio_reported && !dio_op)
        if (const OpRecord* w = colliding_dio_write(data, f)) {
          f.ops.push_back(*w);  // the report shows it with the finding's other ops
          dio_op = true;
        }
      if (dio_reported && dio_op) {
        f.explained_by = "dio-collision";
        f.detail += "; " + dio_shown.explanation();
        corr.dio = true;
      } else {
        corr.other = true;
        other_classes.insert(f.cls);
      }
    }
    // Findings beyond the kept ones are unexamined: they count as "other" unless every kept one of their
    // class was explained by the collision.
    for (const auto& [cls, n] : out.findings.suppressed_by_class)
      if (n > 0 && is_data_finding_class(cls)) {
        bool any_kept = std::any_of(out.findings.kept.begin(), out.findings.kept.end(), [&](const Finding& f) { return f.cls == cls; });
        corr.other |= other_classes.count(cls) || !any_kept;
      }
    for (auto& f : ks.findings) out.findings.add(std::move(f));
    for (const auto& fr : fsck_findings_) {
      Finding f = make_finding("fsck-error", cs_.fs.type, cs_.sc.name, cs_.name, "after-power-cut");
      f.detail = fmt::format("'{}' exited {} after the power cut and journal replay: {}", fr.command, fr.status, fr.excerpt);
      out.findings.add(std::move(f));
    }
    for (auto& f : escalate_notices(ks.notices, corr, kopt)) out.findings.add(std::move(f));
    nlohmann::json notices = nlohmann::json::array();
    for (const auto& n : ks.notices) {
      notices.push_back({{"rule", n.rule}, {"lines", n.lines}, {"escalated", is_dio_notice(n.rule) ? corr.dio : corr.other}});
    }
    uint64_t expected_eio = 0;
    for (const auto& e : rs.fatal_errors) {
      if (eio_expected_after_dio_collision(e.kind, e.result, ks, dio_mixed)) {
        ++expected_eio;
        continue;
      }
      Finding f = make_finding("workload-error", cs_.fs.type, cs_.sc.name, cs_.name, "race");
      f.detail = e.message;
      out.findings.add(std::move(f));
    }
    if (expected_eio)
      info["notes"].push_back(fmt::format("{} EIO result(s) from fsync / sync_file_range / O_DIRECT after the kernel's "
                                          "'Page cache invalidation failure on direct I/O' (it sets the mapping's "
                                          "writeback error on purpose): not findings by themselves",
                                          expected_eio));
    for (const auto& l : klines) out.kmsg_text += format_kmsg_line(l) + "\n";
    if (info.contains("kernel_widening") && info["kernel_widening"].contains("dm-flakey") &&
        info["kernel_widening"]["dm-flakey"].value("ran", false)) {
      // Did the mount after the cut replay a journal / log? (It must have had something to replay.)
      std::string recovery;
      for (const auto& l : klines)
        if (l.text.find(dev_name) != std::string::npos &&
            (l.text.find("recovery complete") != std::string::npos || l.text.find("Starting recovery") != std::string::npos ||
             l.text.find("Ending recovery") != std::string::npos))
          recovery += (recovery.empty() ? "" : " | ") + l.text;
      info["kernel_widening"]["dm-flakey"]["journal_recovery"] = recovery;
    }
    if (probe) info["probes"] = probe_report(*probe, pstats, probe_error, t_race_end, out.findings);
    if (!toggle.is_null()) info["probes"]["toggle"] = toggle;

    info["status"] = interrupted ? "interrupted" : "complete";
    info["device"] = dev;
    info["ops"] = {{"by_kind", rs.ops_by_kind}, {"errors", rs.errors_by_kind}, {"total", rs.total_ops()},
                   {"seconds", rs.seconds}, {"cpu_ns", race_cpu_ns}, {"quiescent_rounds", rs.quiescent_rounds}};
    if (env.tolerated_errno) info["ops"]["injected_failures"] = rs.injected_failures;
    info["widening"] = rs.widening;
    if (!overlap.is_null()) info["ops"]["overlap"] = overlap;
    info["oracle"] = {{"reads_checked", ost.reads_checked}, {"blocks_checked", ost.blocks_checked},
                      {"torn_legal", ost.torn_legal}, {"modifying_ops", ost.modifying_ops},
                      {"shifts", ost.shifts}, {"shift_conflicts", ost.shift_conflicts}};
    info["kernel_log"] = {{"captured", kmsg.ok()}, {"error", kmsg.error()}, {"lines", klines.size()},
                          {"lost", kmsg.lost()}, {"dio_invalidate_failures", ks.dio_invalidate_failures},
                          {"notices", notices}};
    if (space.have_after_delete)
      info["space"] = {{"fs_block", space.fs_block}, {"baseline_free", space.baseline_free},
                       {"free_with_files", space.free_with_files}, {"allocated", space.allocated},
                       {"free_after_delete", space.free_after_delete}, {"free_after_remount", space.free_after_remount}};
    if (!injected.empty()) {
      info["injected"] = nlohmann::json::array();
      for (auto& [b, c] : injected) info["injected"].push_back({{"file", files[0].name}, {"block", b}, {"class", c}});
    }
    info["oplog_bytes"] = log.bytes_written();
    info["timing"] = {{"setup_s", setup_s}, {"race_s", race_s}, {"verify_s", verify_s}, {"analysis_s", secs_since(t_an)}};
    info["findings"] = out.findings.total();
    phase("done", "");
    return out;
  }

 private:
  void phase(const char* name, const std::string& dir) {
    progress_counter().fetch_add(1, std::memory_order_relaxed);
    if (opt_.on_phase) opt_.on_phase(cs_.name, name, dir);
  }

  // kwiden dm-flakey, right after the race: files a collapse / insert / truncate changed are fsync'ed (the
  // oracle does not model a crash inside a shift), the device switches to a flakey table that drops every
  // write (without freezing the filesystem: nothing is flushed), the filesystem is unmounted (its last
  // writes dropped too), the normal table comes back and the mount replays the journal. Then a cold read
  // of every block (judged by what fsync made durable, oracle.h), an unmount and a read-only fsck, and
  // the mount the verification continues on. Returns what it did for kernel_widening.dm-flakey.
  nlohmann::json power_cut(ThreadLog& tl, const std::vector<TestFile>& files, const RaceStats& rs, probes::DmDevice& dm,
                           std::optional<Mount>& mnt, const std::string& dev, const std::string& mnt_dir,
                           const std::string& normal_target, const std::string& normal_args) {
    nlohmann::json j;
    auto count = [&](const char* k) { return rs.ops_by_kind.count(k) ? rs.ops_by_kind.at(k) : 0; };
    bool shifts = count("collapse-range") + count("insert-range") + count("truncate") > 0;
    if (shifts) fsync_files(tl, files);
    j["fsynced_before_cut"] = shifts ? "every file (collapse / insert / truncate ran; a crash inside a shift is not modelled)" : "";
    bool selfcheck = cs_.sc.i("power_cut_selfcheck") != 0;
    if (selfcheck) {
      // Self-check: fsyncs that never happened. Whatever the cut drops now counts as durable data lost.
      for (size_t fi = 0; fi < files.size(); ++fi) {
        uint64_t t = now_ns();
        tl.op(tl.new_id(), OpKind::kFsync, uint16_t(fi), 0, files[fi].blocks * kBlockSize, t, t, 0);
      }
      j["selfcheck"] = "an fsync of every file was recorded but not made: findings expected";
    }
    try {
      uint64_t id = tl.new_id(), t0 = now_ns();
      dm.reload("flakey", "{dev} 0 0 180 1 drop_writes", true);
      tl.op(id, OpKind::kPowerCut, 0, 0, 0, t0, now_ns(), 0);
      j["table_at_cut"] = dm.table();
    } catch (const probes::DmError& e) {
      j["error"] = e.what();  // nothing changed: the case goes on without a cut
      return j;
    }
    mnt->unmount();
    mnt.reset();
    try {
      dm.reload(normal_target, normal_args, false);
    } catch (const probes::DmError& e) {
      // Every write would still be dropped: nothing after this could be trusted.
      throw UsageError(fmt::format("the power cut could not restore the device's table: {}; the case stops here", e.what()));
    }
    mnt.emplace(dev, mnt_dir, cs_.fs);
    j["ran"] = true;
    j["device"] = dm.dev();
    verify_disk_round(tl, files, 3);
    mnt->unmount();
    mnt.reset();
    FsckResult fr = check_filesystem(cs_.fs.type, dev);
    j["fsck"] = {{"command", fr.command}, {"exit", fr.status}, {"clean", fr.clean}, {"output", fr.excerpt}};
    if (!fr.clean) fsck_findings_.push_back(fr);
    mnt.emplace(dev, mnt_dir, cs_.fs);
    return j;
  }

  // The campaign's kwiden techniques on this kernel: available or not, and why. "ran" turns true where
  // the case drives one (dm-delay, override-return, fail-function, xfs-errortag).
  nlohmann::json detect_widening(const std::string& dev_name, const std::map<std::string, probes::TechniqueStatus>& detected) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& name : cs_.sc.kwiden) {
      auto it = detected.find(name);
      probes::TechniqueStatus t{name, false, fmt::format("XFS only (this case runs {})", cs_.fs.type)};
      if (name != "xfs-errortag" || cs_.fs.type == "xfs")
        t = it != detected.end() ? it->second : probes::detect_technique(name, *kernel_, cs_.fs.type == "xfs" ? dev_name : "");
      j[name] = {{"available", t.available}, {"detail", t.detail}, {"ran", false}};
    }
    return j;
  }

  // probes (issue 3): reads events.bin back, attaches kernel_events to the findings, adds the
  // event-only findings, and returns the case's "probes" record for findings.json.
  nlohmann::json probe_report(const probes::ProbeSession& probe, const std::optional<probes::SessionStats>& st,
                              const std::string& error, uint64_t race_end, FindingSet& findings) {
    nlohmann::json j;
    j["attached"] = probe.attached();
    j["total"] = probes::probe_catalog().size();
    j["modes"] = nlohmann::json::object();
    j["unavailable"] = nlohmann::json::object();
    for (const auto& r : probe.results()) {
      if (r.mode == probes::AttachMode::kNone) j["unavailable"][r.spec->name] = r.reason;
      else j["modes"][r.spec->name] = probes::attach_mode_name(r.mode);
    }
    if (!probe.setup_error().empty()) j["error"] = probe.setup_error();
    if (!error.empty()) j["error"] = error;
    if (!st) return j;
    j["events"] = st->events;
    j["dropped"] = st->dropped;
    // What the probes cost in CPU: kernel time in the BPF programs (run-time statistics) and the ring
    // buffer reader, against fsrace's CPU time (user + system, BPF time of its threads included), all over
    // the sampling window at the start of the race (ProbeSession::start_cpu_window). A direct figure:
    // throughput comparisons are +-10 % noise on 2 cores.
    j["cpu"] = {{"bpf_stats", st->bpf_stats}, {"window_s", st->window_ns / 1e9}, {"bpf_ns", st->bpf_run_ns},
                {"bpf_runs", st->bpf_runs}, {"reader_ns", st->reader_cpu_ns}, {"process_ns", st->process_cpu_ns},
                {"programs", st->bpf_programs},
                {"share", st->process_cpu_ns ? double(st->bpf_run_ns + st->reader_cpu_ns) / double(st->process_cpu_ns) : 0.0}};
    if (st->dropped) j["note"] = fmt::format("{} events dropped (ring buffer full): raise [probes] ringbuf_mib", st->dropped);
    try {
      probes::EventsData ev = probes::load_events(dir_ + "/events.bin");
      attach_kernel_events(findings.kept, ev);
      EventContext ctx{cs_.fs.type, cs_.sc.name, cs_.name, race_end};
      EventAnalysis an = analyze_events(ev, ctx);
      // A failed DIO invalidation is the event form of the kernel's "Page cache invalidation failure on
      // direct I/O" notice: like it, a failure only together with data the oracle rejected (see
      // kNoticeRules in kmsg_scan.cpp); otherwise counted and listed as informational.
      bool data = false;
      for (const auto& f : findings.kept) data |= is_data_finding_class(f.cls);
      for (const auto& [c, n] : findings.suppressed_by_class) data |= n > 0 && is_data_finding_class(c);
      for (auto& f : an.findings) {
        if (f.cls == "dio-invalidate-failed" && !data) {
          f.informational = true;
          f.detail += " (no data went wrong in this case: informational)";
        }
        findings.add(std::move(f));
      }
      j["analysis"] = an.summary;
    } catch (const std::exception& e) {
      j["error"] = fmt::format("events.bin unreadable: {}", e.what());
    }
    return j;
  }

  const RunOptions& opt_;
  const CaseSpec& cs_;
  std::string dir_;
  uint64_t nonce_;
  const probes::KernelInfo* kernel_;
  std::vector<FsckResult> fsck_findings_;  // kwiden dm-flakey: fsck runs that found the filesystem inconsistent
  bool probes_;
};

}  // namespace

RunOutcome run_host(const RunOptions& opt) {
  const Campaign& c = opt.campaign;
  for (const auto& s : c.scenarios)
    if (!find_scenario(s.name)) throw UsageError(fmt::format("unknown scenario '{}'", s.name));
  bool need_loop = false;
  for (const auto& f : c.filesystems) need_loop |= !opt.devices.count(f.type);
  preflight_host(c.filesystems, need_loop);
  if (!path_exists(opt.workdir))
    throw UsageError(fmt::format("work directory {} does not exist: pass an existing directory with --workdir", opt.workdir));

  uint64_t nonce = random_u64();
  std::string id = fmt::format("{}-{:04x}", timestamp_id(), nonce & 0xffff);
  std::string dir = opt.run_dir.empty() ? fmt::format("{}/{}/{}", opt.results_root, c.name, id) : opt.run_dir;
  if (path_exists(dir + "/findings.json"))
    throw UsageError(fmt::format("{} already holds a run: pick another directory (earlier runs are never overwritten)", dir));
  make_dirs(dir);
  write_file_atomic(dir + "/campaign.toml", campaign_to_toml(c));

  nlohmann::json run = {{"id", id},          {"campaign", c.name},     {"kernel", kernel_release()},
                        {"mode", opt.mode},    {"seed", c.seed},         {"duration_s", c.duration_s},
                        {"started", timestamp_id()}, {"source", c.source}, {"op_logging", opt.log_ops}};
  run.update(opt.run_extra);
  std::vector<CaseSpec> cases;
  for (uint64_t r = 0; r < c.repetitions; ++r)
    for (const auto& fs : c.filesystems)
      for (const auto& sc : c.scenarios)
        cases.push_back({fs, sc, r, c.repetitions > 1 ? fmt::format("{}-{}-r{}", fs.type, sc.name, r) : fmt::format("{}-{}", fs.type, sc.name)});
  if (!opt.only_cases.empty()) {  // a VM job runs its share of the matrix
    std::vector<CaseSpec> mine;
    for (const auto& want : opt.only_cases) {
      bool found = false;
      for (const auto& cs : cases)
        if (cs.name == want) {
          mine.push_back(cs);
          found = true;
        }
      if (!found) throw UsageError(fmt::format("case '{}' is not in campaign {}", want, c.name));
    }
    cases = mine;
  }

  std::unique_ptr<probes::KernelInfo> kernel;
  bool probes_on = opt.probes && c.probes.enabled;
  bool kernel_widening = false;
  for (const auto& s : c.scenarios) kernel_widening |= !s.kdelay.empty() || !s.kwiden.empty();
  if (probes_on || kernel_widening) kernel = probes::running_kernel();
  install_stop_handlers();
  std::vector<nlohmann::json> infos;
  FindingSet all;
  std::string kmsg_all;
  RunOutcome outcome;
  outcome.dir = dir;
  auto persist = [&](const std::string& status) {
    auto doc = findings_doc(run, infos, all, status);
    write_file_atomic(dir + "/findings.json", doc.dump(2) + "\n");
    write_file_atomic(dir + "/summary.txt", render_summary(doc));
    write_file_atomic(dir + "/kmsg.log", kmsg_all);
  };
  persist("running");
  for (size_t i = 0; i < cases.size(); ++i) {
    if (stop_requested().load()) break;
    const CaseSpec& cs = cases[i];
    std::string case_dir = dir + "/" + cs.name;
    make_dirs(case_dir);
    if (opt.verbose) std::cerr << fmt::format("fsrace: case {}/{}: {}\n", i + 1, cases.size(), cs.name);
    CaseOut co;
    try {
      co = CaseRunner(opt, cs, case_dir, nonce + i, kernel.get(), probes_on).run();
    } catch (const UsageError& e) {
      nlohmann::json info = {{"case", cs.name}, {"fs", cs.fs.type}, {"scenario", cs.sc.name}, {"status", std::string("error: ") + e.what()}};
      infos.push_back(info);
      persist(std::string("error: ") + e.what());
      throw;
    }
    auto cdoc = findings_doc(run, {co.info}, co.findings, co.info.value("status", "complete"));
    write_file_atomic(case_dir + "/findings.json", cdoc.dump(2) + "\n");
    write_file_atomic(case_dir + "/summary.txt", render_summary(cdoc));
    write_file_atomic(case_dir + "/kmsg.log", co.kmsg_text);
    kmsg_all += fmt::format("==== case {} ====\n", cs.name) + co.kmsg_text;
    infos.push_back(co.info);
    all.merge(co.findings);
    persist(stop_requested().load() ? "interrupted" : "running");
  }
  outcome.interrupted = stop_requested().load();
  persist(outcome.interrupted ? "interrupted" : "complete");
  outcome.findings = all.total();
  return outcome;
}

}  // namespace fsrace
