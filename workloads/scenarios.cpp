// The scenarios: each is a set of thread roles over shared files, with the interleaving it targets,
// the kernel paths involved (see ../shared/seeds/) and the finding classes it can produce.
#include <algorithm>
#include <fmt/core.h>
#include <chrono>
#include <map>
#include <thread>

#include "probes/fsrace_events.h"
#include "workloads/engine.h"
#include "workloads/scenario.h"

namespace fsrace {
namespace {

using T = ParamSpec::Type;

// Short thread-name tags (TASK_COMM_LEN is 16): "fsr-mmap3" is the mmap reader with op-log thread 3.
std::string thread_tag(const std::string& role) {
  static const std::map<std::string, std::string> tags = {
      {"punch", "punch"},   {"mmap-reader", "mmap"}, {"reader", "read"},       {"hole", "hole"},
      {"filler", "fill"},   {"mmap-writer", "mkw"},  {"allocator", "alloc"},   {"dio-writer", "dio"},
      {"dio", "dio"},       {"buffered", "buf"},     {"writer", "wr"},         {"flusher", "flush"},
      {"converter", "conv"}, {"mixed", "mix"},     {"shift-writer", "swr"},  {"pinner", "pin"}};
  auto it = tags.find(role);
  return it == tags.end() ? role.substr(0, 8) : it->second;
}

class TableScenario : public Scenario {
 public:
  using Builder = std::function<std::vector<Role>(const ScenarioConfig&, uint64_t max_blocks)>;
  TableScenario(std::string name, std::string summary, std::string description, std::vector<std::string> classes,
                std::vector<ParamSpec> params, InitMode init, bool needs_direct, Builder build,
                std::vector<std::string> backings = {})
      : description_(std::move(description)), classes_(std::move(classes)), init_(init), needs_direct_(needs_direct),
        build_(std::move(build)) {
    spec_.name = std::move(name);
    spec_.summary = std::move(summary);
    spec_.backings = std::move(backings);
    spec_.params = {
        {"files", T::kInt, 1, 1, 64, "test files (each op picks one)"},
        {"file_blocks", T::kInt, 64, 1, 1 << 20, "4 KiB blocks per file"},
        {"max_range_blocks", T::kInt, 8, 1, 4096, "largest range of one op, in blocks"},
        {"large_op_ratio", T::kDouble, 0, 0, 1,
         "share of the ops' ranges that are large: max_range_blocks+1 .. large_range_blocks blocks (multi-MiB writes, "
         "punches, zero ranges, reads over one large delalloc / unwritten extent; needs file_blocks above max_range_blocks)"},
        {"large_range_blocks", T::kInt, 1024, 1, 65536, "largest range of a large op, in blocks (1024 = 4 MiB)"},
        {"iterations", T::kInt, 0, 0, 1e12, "ops per thread (0: until the duration ends)"},
        {"pin_cpus", T::kInt, 0, 0, 1, "1: pin racing threads round-robin to CPUs (widening)"},
        {"jitter_us", T::kDouble, 0, -1, 100000,
         "random spin of 0..N us before each op (widening); -1: calibrate N from this kernel's op latency"},
        {"kdelay_us", T::kDouble, 100, 1, FSR_DELAY_MAX_US,
         "kernel busy-wait per delayed hit at the kdelay points (widening; the list: kdelay = [...], see fsrace widening)"},
        {"kdelay_ratio", T::kDouble, 1, 0, 1, "share of the kdelay points' hits on the test files that wait"},
        {"kinject_errno", T::kInt, 17, 12, 17,
         "errno injected into page-cache insertions (kwiden override-return / fail-function): 17 EEXIST (a lost insertion "
         "race, must stay invisible), 12 ENOMEM (reads / writes may fail or come back short)"},
        {"kinject_ratio", T::kDouble, 0.02, 0.0001, 1, "share of the page-cache insertions on the test files that fail"},
        {"dm_delay_ms", T::kInt, 2, 0, 1000, "delay of every read and write bio under the filesystem (kwiden dm-delay)"},
        {"datasync", T::kInt, 0, 0, 1,
         "1: the race's fsync ops call fdatasync(2) instead (the data, punched ranges included, must be just as "
         "durable; with kwiden dm-flakey the power cut checks it)"},
        {"power_cut_selfcheck", T::kInt, 0, 0, 1,
         "kwiden dm-flakey self-check: 1 records an fsync of every file just before the power cut without making one, so "
         "the oracle must report the writes the cut dropped (proves the cut drops writes; every such case has findings)"},
        {"xfs_minlen_alloc", T::kInt, 1, 1, 1000000,
         "XFS only, kwiden xfs-errortag: one in N data allocations takes a one-block free extent (errortag "
         "bmap_alloc_minlen_extent; fsrace makes 4096 of them first): files fragment, writeback maps block by block"},
    };
    for (auto& p : params) {  // a scenario's own default for a common parameter replaces the common one
      auto same = std::find_if(spec_.params.begin(), spec_.params.end(), [&](const ParamSpec& q) { return q.name == p.name; });
      if (same != spec_.params.end()) *same = p;
      else spec_.params.push_back(p);
    }
  }
  const ScenarioSpec& spec() const override { return spec_; }
  void set_staging_mib(uint64_t mib) { spec_.staging_mib = mib; }
  std::string description() const override { return description_; }
  std::vector<std::string> finding_classes() const override { return classes_; }

  std::vector<TestFile> plan_files(const ScenarioEnv& env) const override {
    std::vector<TestFile> files;
    uint64_t nb = uint64_t(env.cfg->i("file_blocks"));
    for (int64_t i = 0; i < env.cfg->i("files"); ++i)
      files.push_back({fmt::format("f{}", i), fmt::format("{}/f{}", env.dir, i), (env.run_nonce << 32) | uint64_t(i), nb});
    return files;
  }
  void setup(ScenarioEnv& env, const std::vector<TestFile>& files) override { init_files(env, files, init_); }
  RaceStats race(ScenarioEnv& env, const std::vector<TestFile>& files) override {
    uint64_t maxr = uint64_t(env.cfg->i("max_range_blocks"));
    if (spec_.staging_mib && env.staging_dev.empty())
      throw Fatal(fmt::format("scenario {} needs a staging block device for its O_DIRECT reads and has none ({}): load "
                              "the loop module or pick another scenario",
                              spec_.name, env.staging_error.empty() ? "not made" : env.staging_error));
    if (needs_direct_) {
      FileHandles h;
      h.open_all(files);
      bool direct = true;
      for (int d : h.dfd) direct &= d >= 0;
      h.close_all(files);
      if (!direct)
        throw Fatal(fmt::format("scenario {} needs O_DIRECT, which this filesystem refuses: pick another --fs or scenario",
                                     spec_.name));
    }
    std::vector<Role> roles = build_(*env.cfg, maxr);
    for (auto& r : roles)
      if (r.tag.empty()) r.tag = thread_tag(r.name);
    return run_roles(env, files, roles, uint64_t(env.cfg->i("iterations")), maxr);
  }

 private:
  ScenarioSpec spec_;
  std::string description_;
  std::vector<std::string> classes_;
  InitMode init_;
  bool needs_direct_;
  Builder build_;
};

// Readers that judge a range by pread(2) or by mmap loads, half and half (the role several scenarios share).
Role mixed_reader(int count, uint64_t maxr) {
  return {"reader", count, [=](OpCtx& x) {
            Range r = x.pick(maxr);
            if (x.rng.below(2)) x.read(r);
            else x.mmap_read(r);
          }};
}

std::unique_ptr<TableScenario> make(std::string name, std::string summary, std::string description,
                                    std::vector<std::string> classes, std::vector<ParamSpec> params, InitMode init,
                                    bool needs_direct, TableScenario::Builder build, std::vector<std::string> backings = {}) {
  return std::make_unique<TableScenario>(std::move(name), std::move(summary), std::move(description), std::move(classes),
                                         std::move(params), init, needs_direct, std::move(build), std::move(backings));
}

const std::vector<std::string> kDataClasses = {"stale", "stale-after-punch", "lost-write", "foreign", "torn",
                                               "cache-incoherent", "space-leak"};

// Scenarios that shift: modifying ops race the shifts by default (FileHandles::race_shifts).
const ParamSpec kShiftRace = {"shift_race", T::kInt, 1, 0, 1,
                              "1: writes, mmap stores, O_DIRECT writes, punches and fallocates race collapse / insert "
                              "range (the oracle takes each block as landing before the shift, then moved, or after "
                              "it); 0: they are ordered against shifts (only reads race them)"};

std::unique_ptr<Scenario> punch_vs_fault() {
  return make(
      "punch-vs-fault", "hole punch + rewrite vs mmap read faults, write faults and read(2) on the same blocks",
      "Punch threads punch holes (fallocate PUNCH_HOLE|KEEP_SIZE) and rewrite ranges (pwrite, or stores\n"
      "through a shared mapping: write faults / page_mkwrite into punched ranges) while readers fill the\n"
      "page cache from the same blocks through mmap read faults (with read-around) and pread(2), sometimes\n"
      "after fadvise(DONTNEED) so the fault must read from disk. Targets the hole-punch vs page-cache-fill\n"
      "race that mapping->invalidate_lock closes (seed 001): a folio instantiated after\n"
      "truncate_pagecache_range but before the blocks are freed keeps stale data in a hole.\n"
      "Kernel paths: fallocate -> truncate_pagecache_range, filemap_fault, filemap_read, page_mkwrite.",
      kDataClasses,
      {{"punch_threads", T::kInt, 1, 1, 64, "threads that punch holes and rewrite ranges"},
       {"mmap_readers", T::kInt, 1, 0, 64, "threads reading through the shared mapping (page faults)"},
       {"read_readers", T::kInt, 1, 0, 64, "threads reading with pread(2)"},
       {"punch_ratio", T::kDouble, 0.5, 0, 1, "share of punches among the punch threads' ops (rest: rewrites)"},
       {"mmap_write_ratio", T::kDouble, 0.0, 0, 1, "share of rewrites done as stores through the mapping"},
       {"evict_ratio", T::kDouble, 0.05, 0, 1, "share of reader ops preceded by fadvise(DONTNEED) of the range"},
       {"uffd_ratio", T::kDouble, 0.0, 0, 1,
        "share of read(2)s parked in copy_to_user by userfaultfd while the range is punched (widening)"}},
      InitMode::kStamped, false, [](const ScenarioConfig& c, uint64_t maxr) {
        double pr = c.d("punch_ratio"), mw = c.d("mmap_write_ratio"), ev = c.d("evict_ratio"), uf = c.d("uffd_ratio");
        return std::vector<Role>{
            {"punch", int(c.i("punch_threads")),
             [=](OpCtx& x) {
               Range r = x.pick(maxr);
               if (x.rng.unit() < pr) x.punch(r);
               else if (x.rng.unit() < mw) x.mmap_write(r);
               else x.write(r);
             }},
            {"mmap-reader", int(c.i("mmap_readers")),
             [=](OpCtx& x) {
               Range r = x.pick(maxr);
               if (x.rng.unit() < ev) x.evict(r);
               x.mmap_read(r);
             }},
            {"reader", int(c.i("read_readers")), [=](OpCtx& x) {
               Range r = x.pick(maxr);
               if (x.rng.unit() < ev) x.evict(r);
               if (x.rng.unit() < uf) x.paused_read(r, [r](OpCtx& h) { h.punch(r); });
               else x.read(r);
             }}};
      });
}

std::unique_ptr<Scenario> punch_vs_read() {
  return make(
      "punch-vs-read", "hole punch / zero range vs every path that fills the page cache",
      "Hole threads punch holes and zero ranges (fallocate PUNCH_HOLE / ZERO_RANGE, KEEP_SIZE), rewrite\n"
      "ranges, and shift the file: insert range (a hole of n blocks, the rest moves up) followed by collapse\n"
      "range (n blocks removed elsewhere, the rest moves down), so the file keeps at least its nominal size.\n"
      "Readers race them on every path that puts pages into the page cache for the same blocks: read(2),\n"
      "readahead(2), posix_fadvise(WILLNEED), madvise(WILLNEED) and mmap read faults with read-around, each\n"
      "followed by a read of the range, often after fadvise(DONTNEED) so the fill must go to disk.\n"
      "Targets seed 001 (invalidate_lock: page_cache_ra_unbounded / filemap_create_folio vs\n"
      "truncate_pagecache_range + block freeing, and vs the extent shifting of collapse / insert, which\n"
      "truncate the page cache from the offset to EOF) for every fill path. The oracle models the shifts:\n"
      "a read racing a collapse / insert may see each block's value from before or after it, nothing else.\n"
      "Shift writers write (pwrite, mmap stores, O_DIRECT) while the shifts run: each block of a write that\n"
      "overlaps a shift must show it landed before the shift (moved with it) or after it (at its offset);\n"
      "this reaches the shift paths themselves (ext4_collapse_range / ext4_insert_range,\n"
      "xfs_collapse_file_space / xfs_insert_file_space: the flush and page-cache truncation before the\n"
      "extent shift, the invalidate_lock that keeps page faults out while it runs).",
      kDataClasses,
      {{"hole_threads", T::kInt, 1, 1, 64, "threads punching / zeroing / rewriting"},
       {"readers", T::kInt, 2, 1, 64, "threads filling the cache (path chosen per op) and reading"},
       {"zero_ratio", T::kDouble, 0.3, 0, 1, "share of zero-range among the hole threads' zeroing ops"},
       {"rewrite_ratio", T::kDouble, 0.4, 0, 1, "share of rewrites among the hole threads' ops"},
       {"shift_ratio", T::kDouble, 0.1, 0, 1,
        "share of the hole threads' ops that are an insert-range + collapse-range pair (0: no shifts)"},
       {"shift_writers", T::kInt, 1, 0, 64,
        "threads writing stamped ranges (pwrite, stores through the mapping, O_DIRECT) that race the shifts "
        "(only with shift_ratio > 0)"},
       kShiftRace,
       {"evict_ratio", T::kDouble, 0.3, 0, 1, "share of reader ops that first drop the range from the cache"},
       {"uffd_ratio", T::kDouble, 0.1, 0, 1,
        "share of read(2)s parked in copy_to_user by userfaultfd while the range is punched or zeroed, then "
        "read again (widening)"}},
      InitMode::kStamped, false, [](const ScenarioConfig& c, uint64_t maxr) {
        double zr = c.d("zero_ratio"), rw = c.d("rewrite_ratio"), ev = c.d("evict_ratio"), uf = c.d("uffd_ratio");
        double sr = c.d("shift_ratio");
        int sw = sr > 0 ? int(c.i("shift_writers")) : 0;
        return std::vector<Role>{
            {"hole", int(c.i("hole_threads")),
             [=](OpCtx& x) {
               if (sr > 0 && x.rng.unit() < sr && x.insert_collapse(maxr)) return;
               Range r = x.pick(maxr);
               if (x.rng.unit() < rw) x.write(r);
               else if (x.rng.unit() < zr) x.zero_range(r);
               else x.punch(r);
             },
             sr > 0},
            {"filler", int(c.i("readers")), [=](OpCtx& x) {
               Range r = x.pick(maxr);
               if (x.rng.unit() < ev) x.evict(r);
               if (x.rng.unit() < uf) {
                 // Park the read between folio lookup and copy, punch or zero the range meanwhile, resume;
                 // then read again: the hole must be visible now.
                 bool zero = x.rng.unit() < zr;
                 x.paused_read(r, [r, zero](OpCtx& h) { zero ? h.zero_range(r) : h.punch(r); });
                 x.read(r);
                 return;
               }
               switch (x.rng.below(5)) {
                 case 0: x.read(r); break;
                 case 1: x.readahead(r); x.read(r); break;
                 case 2: x.fadvise_willneed(r); x.read(r); break;
                 case 3: x.madvise_willneed(r); x.mmap_read(r); break;
                 default: x.mmap_read(r); break;
               }
             }},
            {"shift-writer", sw,
             [=](OpCtx& x) {
               // A write, page_mkwrite / a store through an existing mapping, or O_DIRECT, into blocks an
               // insert / collapse may be moving right now.
               Range r = x.pick(maxr);
               switch (x.rng.below(x.has_direct() ? 3 : 2)) {
                 case 0: x.write(r); break;
                 case 1: x.mmap_write(r); break;
                 default: x.dio_write(r); break;
               }
             }}};
      });
}

std::unique_ptr<Scenario> mkwrite_vs_fallocate() {
  std::vector<std::string> cls = kDataClasses;
  cls.push_back("ext4-reservation");
  return make(
      "mkwrite-vs-fallocate", "mmap write faults into holes vs fallocate / punch / zero on the same blocks",
      "Writers store stamped blocks through a shared mapping into holes (write faults: page_mkwrite ->\n"
      "ext4_da_map_blocks -> delalloc reservation) while allocators fallocate (KEEP_SIZE: unwritten\n"
      "extents) and punch / zero the same blocks, and readers read them back. Targets seed 002: the\n"
      "ext4 extent-status lookup in ext4_da_map_blocks() done without i_data_sem races\n"
      "ext4_alloc_file_blocks(); without the re-check an extra block is reserved and never released\n"
      "(\"i_reserved_data_blocks(1) not cleared!\" at eviction). The files start as holes; the runner\n"
      "evicts the inodes at the end (fsync, unmount) and compares st_blocks and free space with the model.\n"
      "With shift_ratio the allocators also insert + collapse ranges while the stores go on: a store through\n"
      "an existing mapping does not enter the kernel, so a shift must flush and unmap (write_and_wait,\n"
      "truncate_pagecache) under the invalidate_lock for the store to land either before it (moved) or after.",
      cls,
      {{"mmap_writers", T::kInt, 1, 1, 64, "threads storing through the mapping"},
       {"allocators", T::kInt, 1, 1, 64, "threads running fallocate / punch / zero"},
       {"readers", T::kInt, 1, 0, 64, "threads reading with pread(2) and mmap"},
       {"falloc_ratio", T::kDouble, 0.6, 0, 1, "share of fallocate(KEEP_SIZE) among the allocators' ops"},
       {"zero_ratio", T::kDouble, 0.2, 0, 1, "share of zero-range among the allocators' other ops (rest: punch)"},
       {"fsync_ratio", T::kDouble, 0.05, 0, 1, "share of writer ops followed by fsync (writeback resolves delalloc)"},
       {"shift_ratio", T::kDouble, 0, 0, 1,
        "share of the allocators' ops that are an insert-range + collapse-range pair, raced by the mmap stores "
        "(0: no shifts; off by default: judging a 30 s case with shifts took 55-86 s, not profiled yet)"},
       kShiftRace},
      InitMode::kSparse, false, [](const ScenarioConfig& c, uint64_t maxr) {
        double fr = c.d("falloc_ratio"), zr = c.d("zero_ratio"), fs = c.d("fsync_ratio"), sr = c.d("shift_ratio");
        return std::vector<Role>{
            {"mmap-writer", int(c.i("mmap_writers")),
             [=](OpCtx& x) {
               Range r = x.pick(maxr);
               x.mmap_write(r);
               if (x.rng.unit() < fs) x.fsync(r.file);
             }},
            {"allocator", int(c.i("allocators")),
             [=](OpCtx& x) {
               if (sr > 0 && x.rng.unit() < sr && x.insert_collapse(maxr)) return;
               Range r = x.pick(maxr);
               if (x.rng.unit() < fr) x.falloc(r);
               else if (x.rng.unit() < zr) x.zero_range(r);
               else x.punch(r);
             },
             sr > 0},
            mixed_reader(int(c.i("readers")), maxr)};
      });
}

std::unique_ptr<Scenario> dax_sync_vs_write_fault() {
  std::vector<std::string> cls = kDataClasses;
  cls.push_back("dax-unflushed");
  return make(
      "dax-sync-vs-write-fault", "msync / fsync vs write faults dirtying PTE and PMD entries of DAX files (seed 003)",
      "Writers store stamped blocks through a shared, 2 MiB-aligned mapping of DAX files (write faults:\n"
      "dax_iomap_pte_fault / dax_iomap_pmd_fault insert dirty DAX entries) while syncers msync(MS_SYNC)\n"
      "ranges and fsync whole files (dax_writeback_mapping_range: each dirty entry is write-protected and\n"
      "its cache lines flushed) and a hole thread punches / zeroes ranges and whole 2 MiB extents, so\n"
      "entries go from PTE to PMD and back. Targets seed 003: a dirty PTE entry replaced by a clean PMD\n"
      "entry (or a dirty tag lost another way) makes the sync skip stores it promised to make durable.\n"
      "Under QEMU a missed flush loses nothing, so the check is on the kernel's flush events\n"
      "(fs_dax:dax_writeback_one): a store that ended before a successful sync of its page began must be\n"
      "flushed by the time the sync returns (dax-unflushed); the data oracle judges every read as usual.\n"
      "Kernel paths: dax_iomap_fault, dax_insert_entry, dax_writeback_mapping_range, dax_writeback_one,\n"
      "dax_entry_mkclean, the fs's punch / zero range.",
      cls,
      {{"files", T::kInt, 2, 1, 64, "test files (each op picks one)"},
       {"file_blocks", T::kInt, 1024, 1, 1 << 20, "4 KiB blocks per file (1024: 4 MiB, two 2 MiB extents for PMD faults)"},
       {"mmap_writers", T::kInt, 2, 1, 64, "threads storing through the mapping"},
       {"syncers", T::kInt, 1, 1, 64, "threads calling msync(MS_SYNC) on ranges and fsync on files"},
       {"hole_threads", T::kInt, 1, 0, 64, "threads punching / zeroing ranges and whole 2 MiB extents"},
       {"readers", T::kInt, 1, 0, 64, "threads reading with mmap loads and pread(2)"},
       {"msync_ratio", T::kDouble, 0.7, 0, 1, "share of msync(range) among the syncers' ops (rest: fsync)"},
       {"huge_punch_ratio", T::kDouble, 0.3, 0, 1, "share of the hole thread's ops that punch a whole aligned 2 MiB extent"},
       {"zero_ratio", T::kDouble, 0.3, 0, 1, "share of zero-range among the hole thread's other ops (rest: punch)"},
       {"hole_pause_us", T::kInt, 2000, 0, 1000000, "pause between the hole thread's ops, so stores and syncs dominate"},
       {"flush_selfcheck", T::kInt, 0, 0, 1,
        "self-check: 1 makes the syncers record msyncs they never make, so the flush check must report dax-unflushed "
        "(proves it fires; every such case has findings)"}},
      InitMode::kSparse, false, [](const ScenarioConfig& c, uint64_t maxr) {
        double mr = c.d("msync_ratio"), hr = c.d("huge_punch_ratio"), zr = c.d("zero_ratio");
        uint64_t pause = uint64_t(c.i("hole_pause_us")), fb = uint64_t(c.i("file_blocks"));
        bool selfcheck = c.i("flush_selfcheck") != 0;
        std::vector<Role> roles{
            {"mmap-writer", int(c.i("mmap_writers")), [=](OpCtx& x) { x.mmap_write(x.pick(maxr)); }},
            {"syncer", int(c.i("syncers")),
             [=](OpCtx& x) {
               Range r = x.pick(maxr * 4);
               if (selfcheck) x.msync_not_made(r);
               else if (x.rng.unit() < mr) x.msync(r);
               else x.fsync(r.file);
             },
             false, "sync"},
            mixed_reader(int(c.i("readers")), maxr)};
        if (c.i("hole_threads") > 0)
          roles.push_back({"hole", int(c.i("hole_threads")), [=](OpCtx& x) {
                             Range r = x.pick(maxr);
                             if (fb >= 512 && x.rng.unit() < hr) {
                               r.b0 = x.rng.below(fb / 512) * 512;
                               r.n = 512;
                               x.punch(r);
                             } else if (x.rng.unit() < zr) {
                               x.zero_range(r);
                             } else {
                               x.punch(r);
                             }
                             if (pause) std::this_thread::sleep_for(std::chrono::microseconds(pause));
                           }});
        return roles;
      },
      {"pmem"});
}

std::unique_ptr<Scenario> dax_pin_vs_truncate() {
  std::vector<std::string> cls = kDataClasses;
  cls.push_back("kernel-warning");
  auto s = make(
      "dax-pin-vs-truncate", "pages of DAX mappings pinned by O_DIRECT reads while the file is punched, truncated or evicted (seed 004)",
      "Pinners read with O_DIRECT from a scratch staging device (a loop device under a dm-delay read delay, so\n"
      "each read keeps its buffer pinned for pin_delay_ms) into shared mappings of DAX files: get_user_pages\n"
      "pins the DAX pages, i.e. the filesystem's blocks themselves, until the device has copied into them.\n"
      "Into a test file's mapping (pin-write: stamps of that range, judged like a store) while a hole thread\n"
      "punches and zeroes the same ranges: the filesystem must wait for the pins before freeing the blocks\n"
      "(ext4_break_layouts / xfs_break_dax_layouts -> dax_layout_busy_page_range). Into a scratch victim file\n"
      "(asynchronous I/O, then while the read is in flight) that is truncated to 0 (same wait), or unmapped,\n"
      "closed and unlinked so its inode is evicted with the pages still pinned: iput_final -> evict ->\n"
      "truncate_inode_pages_final -> dax_delete_mapping_entry breaks no layout (seed 004: \"no access to a\n"
      "page may outlive the hosting inode\"), the blocks are freed while the device still writes to them, and\n"
      "writers that allocate in the test files (with fsyncs, so freed blocks become reusable) can get them.\n"
      "Findings: a victim's stamp in a test file (foreign: data written through a pin into blocks the\n"
      "filesystem had given to another file), the data classes for the pinned writes, and the kernel's\n"
      "WARN in dax_disassociate_entry (a DAX entry removed from a truncated or evicted file while its page\n"
      "was still pinned). io_uring fixed buffers over a DAX mapping (a long-term pin) are tried once: the\n"
      "case record says whether the kernel refused them, as fsdax kernels must.\n"
      "Kernel paths: iov_iter_get_pages / pin_user_pages on a DAX vma, dax_layout_busy_page_range,\n"
      "ext4_break_layouts, xfs_break_layouts, evict, truncate_inode_pages_final, dax_delete_mapping_entry.",
      cls,
      {{"files", T::kInt, 2, 1, 64, "test files (each op picks one)"},
       {"file_blocks", T::kInt, 512, 1, 1 << 20, "4 KiB blocks per file"},
       {"max_range_blocks", T::kInt, 16, 1, 4096, "largest range of one op, in blocks (pins and victims too)"},
       {"pinners", T::kInt, 1, 1, 64, "threads reading O_DIRECT into DAX mappings"},
       {"hole_threads", T::kInt, 1, 0, 64, "threads punching / zeroing the test files' ranges"},
       {"writers", T::kInt, 1, 0, 64, "threads writing (pwrite, mmap stores) into the test files, so freed blocks are reused"},
       {"readers", T::kInt, 1, 0, 64, "threads reading with mmap loads and pread(2)"},
       {"victim_ratio", T::kDouble, 0.4, 0, 1, "share of the pinners' ops that pin a victim file (rest: pin-write into a test file)"},
       {"evict_ratio", T::kDouble, 0.5, 0, 1, "share of the victim ops that evict the victim during the read (rest: truncate it)"},
       {"pin_delay_ms", T::kInt, 10, 0, 1000, "read delay of the staging device: how long each pinned read holds its pages (0: no delay)"},
       {"zero_ratio", T::kDouble, 0.3, 0, 1, "share of zero-range among the hole thread's ops (rest: punch)"},
       {"fsync_ratio", T::kDouble, 0.2, 0, 1, "share of the writers' ops followed by fsync (commits the frees, so blocks are reused)"},
       {"hole_pause_us", T::kInt, 500, 0, 1000000, "pause between the hole thread's ops"}},
      InitMode::kStamped, false, [](const ScenarioConfig& c, uint64_t maxr) {
        double vr = c.d("victim_ratio"), er = c.d("evict_ratio"), zr = c.d("zero_ratio"), fr = c.d("fsync_ratio");
        uint64_t pause = uint64_t(c.i("hole_pause_us"));
        std::vector<Role> roles{
            {"pinner", int(c.i("pinners")),
             [=, probed = false](OpCtx& x) mutable {
               if (!probed) {
                 x.stats.widening["io-uring-fixed-buffers"] = x.probe_uring_fixed_buffers();
                 probed = true;
               }
               if (x.rng.unit() < vr) x.pin_victim(x.rng.unit() < er, 1 + x.rng.below(maxr));
               else x.pin_write(x.pick(maxr));
             }},
            mixed_reader(int(c.i("readers")), maxr)};
        if (c.i("writers") > 0)
          roles.push_back({"writer", int(c.i("writers")), [=](OpCtx& x) {
                             Range r = x.pick(maxr);
                             if (x.rng.below(2)) x.write(r);
                             else x.mmap_write(r);
                             if (x.rng.unit() < fr) x.fsync(r.file);
                           }});
        if (c.i("hole_threads") > 0)
          roles.push_back({"hole", int(c.i("hole_threads")), [=](OpCtx& x) {
                             Range r = x.pick(maxr);
                             if (x.rng.unit() < zr) x.zero_range(r);
                             else x.punch(r);
                             if (pause) std::this_thread::sleep_for(std::chrono::microseconds(pause));
                           }});
        return roles;
      },
      {"pmem"});
  s->set_staging_mib(64);
  return s;
}

std::unique_ptr<Scenario> dio_vs_mmap() {
  return make(
      "dio-vs-mmap", "O_DIRECT writes vs mmap and buffered readers of the same ranges (generic/647's class)",
      "DIO writers write stamped blocks with O_DIRECT into written blocks, holes (made by punch),\n"
      "unwritten extents (made by fallocate KEEP_SIZE) and past EOF (truncate into the tail, extending DIO\n"
      "write, truncate back) while mmap readers fault the same ranges and buffered readers read them.\n"
      "Once a DIO write has returned, any read or fault that starts later must see its data, and a read\n"
      "may end at EOF only where the size allowed it at some instant of the read (the oracle models the\n"
      "size). The DIO path must invalidate the page cache after the write (seed 000: ceph\n"
      "ceph_direct_read_write / invalidate_inode_pages2_range -EBUSY; iomap_dio_rw ->\n"
      "kiocb_invalidate_post_direct_write). \"Page cache invalidation failure on direct I/O\" is counted and\n"
      "becomes a finding only together with data the oracle rejects.",
      kDataClasses,
      {{"dio_writers", T::kInt, 1, 1, 64, "threads writing with O_DIRECT"},
       {"mmap_readers", T::kInt, 1, 0, 64, "threads reading through the shared mapping"},
       {"read_readers", T::kInt, 1, 0, 64, "threads reading with pread(2)"},
       {"hole_ratio", T::kDouble, 0.15, 0, 1, "share of DIO-writer ops that punch a hole first"},
       {"unwritten_ratio", T::kDouble, 0.15, 0, 1, "share of DIO-writer ops that punch + fallocate first (unwritten)"},
       {"eof_ratio", T::kDouble, 0.1, 0, 1,
        "share of DIO-writer ops that write past EOF: truncate into the last blocks, O_DIRECT write extending "
        "the file, truncate back"},
       {"uffd_ratio", T::kDouble, 0.1, 0, 1,
        "share of DIO writes parked at get_user_pages by userfaultfd while the range is faulted through the "
        "mapping and read buffered (widening: the cache is filled with pre-write data mid-write)"}},
      InitMode::kHalf, true, [](const ScenarioConfig& c, uint64_t maxr) {
        double hr = c.d("hole_ratio"), ur = c.d("unwritten_ratio"), uf = c.d("uffd_ratio"), er = c.d("eof_ratio");
        return std::vector<Role>{
            {"dio-writer", int(c.i("dio_writers")),
             [=](OpCtx& x) {
               if (er > 0 && x.rng.unit() < er) {
                 x.dio_write_past_eof(maxr);
                 return;
               }
               Range r = x.pick(maxr);
               double u = x.rng.unit();
               if (u < hr) x.punch(r);
               else if (u < hr + ur) {
                 x.punch(r);
                 x.falloc(r);
               }
               if (x.rng.unit() < uf) {
                 x.paused_dio_write(r, [r](OpCtx& h) {
                   h.mmap_read(r);
                   h.read(r);
                 });
                 x.mmap_read(r);  // the write has returned: the mapping must show it
               } else {
                 x.dio_write(r);
               }
             },
             er > 0},
            {"mmap-reader", int(c.i("mmap_readers")), [=](OpCtx& x) { x.mmap_read(x.pick(maxr)); }},
            {"reader", int(c.i("read_readers")), [=](OpCtx& x) { x.read(x.pick(maxr)); }}};
      });
}

std::unique_ptr<Scenario> dio_vs_buffered() {
  return make(
      "dio-vs-buffered", "O_DIRECT read/write vs buffered read/write and readahead on the same ranges",
      "DIO threads write and read with O_DIRECT while buffered threads write with pwrite, read with pread\n"
      "and trigger readahead on the same ranges. A DIO read must see every write that completed before it\n"
      "started (the DIO path writes back and waits for dirty cache first), and a buffered read after a\n"
      "completed DIO write must not see the pre-write cache contents. Kernel paths: iomap_dio_rw /\n"
      "__blockdev_direct_IO, filemap_write_and_wait_range, invalidate_inode_pages2_range, readahead.\n"
      "With shift_ratio the buffered threads also insert + collapse ranges, raced by O_DIRECT and buffered\n"
      "writes (the shift must wait for in-flight DIO: inode_dio_wait).",
      kDataClasses,
      {{"dio_threads", T::kInt, 1, 1, 64, "threads doing O_DIRECT writes and reads"},
       {"buffered_threads", T::kInt, 2, 1, 64, "threads doing buffered writes, reads and readahead"},
       {"write_ratio", T::kDouble, 0.4, 0, 1, "share of writes among every thread's ops"},
       {"uffd_ratio", T::kDouble, 0.1, 0, 1,
        "share of ops parked by userfaultfd (widening): an O_DIRECT write parked at get_user_pages while the "
        "range is read buffered (the cache fills with pre-write data mid-write), or a buffered read parked in "
        "copy_to_user while an O_DIRECT write lands; each then followed by a buffered read that must see the "
        "DIO data"},
       {"shift_ratio", T::kDouble, 0, 0, 1,
        "share of the buffered threads' ops that are an insert-range + collapse-range pair, raced by the other "
        "threads' O_DIRECT and buffered writes (0: no shifts; off by default until a stock-ext4 lost-write with a "
        "uffd-parked read across an insert range is settled, see issue 20)"},
       kShiftRace},
      InitMode::kStamped, true, [](const ScenarioConfig& c, uint64_t maxr) {
        double wr = c.d("write_ratio"), uf = c.d("uffd_ratio"), sr = c.d("shift_ratio");
        return std::vector<Role>{
            {"dio", int(c.i("dio_threads")),
             [=](OpCtx& x) {
               Range r = x.pick(maxr);
               if (uf > 0 && x.rng.unit() < uf) {
                 // The post-write invalidation must drop what the buffered read cached mid-write.
                 x.paused_dio_write(r, [r](OpCtx& h) { h.read(r); });
                 x.read(r);
                 return;
               }
               if (x.rng.unit() < wr) x.dio_write(r);
               else x.dio_read(r);
             }},
            {"buffered", int(c.i("buffered_threads")),
             [=](OpCtx& x) {
               if (sr > 0 && x.rng.unit() < sr && x.insert_collapse(maxr)) return;
               Range r = x.pick(maxr);
               if (uf > 0 && x.rng.unit() < uf) {
                 x.paused_read(r, [r](OpCtx& h) { h.dio_write(r); });
                 x.read(r);
                 return;
               }
               double u = x.rng.unit();
               if (u < wr) x.write(r);
               else if (u < wr + (1 - wr) / 3) {
                 x.readahead(r);
                 x.read(r);
               } else x.read(r);
             },
             sr > 0}};
      });
}

std::unique_ptr<Scenario> writeback_vs_write() {
  return make(
      "writeback-vs-write", "large buffered writes vs writeback, reclaim and unwritten conversion (stale iomaps)",
      "Writers issue large buffered writes over ranges that are partly written, unwritten (fallocate) or\n"
      "delalloc while other threads force writeback (sync_file_range, fsync), reclaim the cache\n"
      "(fadvise DONTNEED, madvise PAGEOUT) and recreate holes and unwritten extents. Targets the stale\n"
      "cached iomap class (seed 002, Dave Chinner on xfs/559): a write or writeback holding an iomap\n"
      "while the extent map changes underneath must notice (IOMAP_F_STALE / xfs_iomap_valid) or it\n"
      "zeroes or skips the wrong range.",
      kDataClasses,
      {{"writers", T::kInt, 1, 0, 64, "threads writing large ranges (0: only the setup data, punched, preallocated, "
                                      "flushed and reclaimed)"},
       {"flushers", T::kInt, 1, 0, 64, "threads forcing writeback and reclaim"},
       {"converters", T::kInt, 1, 0, 64, "threads punching and preallocating (holes, unwritten extents)"},
       {"converter_falloc_ratio", T::kDouble, 0.5, 0, 1,
        "share of the converters' punches followed by a fallocate(KEEP_SIZE) of the same range"},
       {"readers", T::kInt, 1, 0, 64, "threads reading with pread(2)"},
       {"uffd_ratio", T::kDouble, 0.1, 0, 1,
        "share of writes parked by userfaultfd at their source buffer's fault (widening): i_rwsem held and, on "
        "iomap filesystems, the mapping already looked up, while the range is written back and dropped from the "
        "cache; each then followed by a read that must see the write"}},
      InitMode::kHalf, false, [](const ScenarioConfig& c, uint64_t maxr) {
        double uf = c.d("uffd_ratio"), cf = c.d("converter_falloc_ratio");
        return std::vector<Role>{
            {"writer", int(c.i("writers")),
             [=](OpCtx& x) {
               Range r = x.pick(maxr);
               if (uf > 0 && x.rng.unit() < uf) {
                 // Writeback converts delalloc / unwritten blocks and reclaim drops folios under the
                 // parked write's cached mapping: it must notice (IOMAP_F_STALE) and land where it should.
                 x.paused_write(r, [r](OpCtx& h) {
                   h.sync_range(r);
                   h.evict(r);
                 });
                 x.read(r);
                 return;
               }
               x.write(r);
             }},
            {"flusher", int(c.i("flushers")),
             [=](OpCtx& x) {
               Range r = x.pick(maxr);
               switch (x.rng.below(4)) {
                 case 0: x.sync_range(r); break;
                 case 1: x.fsync(r.file); break;
                 case 2: x.evict(r); break;
                 default: x.pageout(r); break;
               }
             }},
            {"converter", int(c.i("converters")),
             [=](OpCtx& x) {
               Range r = x.pick(maxr);
               x.punch(r);
               if (cf >= 1 || (cf > 0 && x.rng.unit() < cf)) x.falloc(r);
             }},
            {"reader", int(c.i("readers")), [=](OpCtx& x) { x.read(x.pick(maxr)); }}};
      });
}

std::unique_ptr<Scenario> mixed() {
  return make(
      "mixed", "seeded fsx-like random mix of every op over several threads and files (the soak)",
      "Every thread draws each op from the whole set — buffered / O_DIRECT / mmap writes, punch, zero\n"
      "range, fallocate, buffered / O_DIRECT / mmap reads, readahead and WILLNEED hints, writeback and\n"
      "reclaim, and collapse / insert range (an insert + collapse pair, like fsx) — over several files,\n"
      "with weights from the seed; the shifts race the other threads' modifying ops (shift_race). The long-soak\n"
      "default: no single interleaving, every path against every\n"
      "other.",
      kDataClasses,
      {{"threads", T::kInt, 4, 1, 64, "worker threads"},
       {"shift_ratio", T::kDouble, 0.03, 0, 1, "share of ops that are an insert-range + collapse-range pair"},
       kShiftRace,
       {"uffd_ratio", T::kDouble, 0.02, 0, 1,
        "share of ops that are a buffered read, buffered write or O_DIRECT write parked by userfaultfd at its "
        "buffer's fault while another op of the mix (punch, zero range, write, O_DIRECT write, writeback, "
        "eviction) runs on the same range (widening)"}},
      InitMode::kHalf, true,
      [](const ScenarioConfig& c, uint64_t maxr) {
        double sr = c.d("shift_ratio"), uf = c.d("uffd_ratio");
        return std::vector<Role>{{"mixed", int(c.i("threads")), [=](OpCtx& x) {
                                    if (sr > 0 && x.rng.unit() < sr && x.insert_collapse(maxr)) return;
                                    if (uf > 0 && x.rng.unit() < uf) {
                                      Range r = x.pick(maxr);
                                      auto during = [r, k = x.rng.below(6)](OpCtx& h) {
                                        switch (k) {
                                          case 0: h.punch(r); break;
                                          case 1: h.zero_range(r); break;
                                          case 2: h.write(r); break;
                                          case 3: h.dio_write(r); break;
                                          case 4: h.sync_range(r); break;
                                          default: h.evict(r); break;
                                        }
                                      };
                                      switch (x.rng.below(3)) {
                                        case 0: x.paused_read(r, during); break;
                                        case 1: x.paused_write(r, during); break;
                                        default: x.paused_dio_write(r, during); break;
                                      }
                                      return;
                                    }
                                    Range r = x.pick(maxr);
                                    switch (x.rng.below(16)) {
                                      case 0: case 1: x.write(r); break;
                                      case 2: x.dio_write(r); break;
                                      case 3: x.mmap_write(r); break;
                                      case 4: x.punch(r); break;
                                      case 5: x.zero_range(r); break;
                                      case 6: x.falloc(r); break;
                                      case 7: case 8: x.read(r); break;
                                      case 9: x.dio_read(r); break;
                                      case 10: case 11: x.mmap_read(r); break;
                                      case 12: x.readahead(r); break;
                                      case 13: x.evict(r); break;
                                      case 14: x.sync_range(r); break;
                                      default: x.pageout(r); break;
                                    }
                                  },
                                  sr > 0}};
      });
}

}  // namespace

std::vector<std::unique_ptr<Scenario>> make_scenarios() {
  std::vector<std::unique_ptr<Scenario>> v;
  v.push_back(punch_vs_fault());
  v.push_back(punch_vs_read());
  v.push_back(mkwrite_vs_fallocate());
  v.push_back(dax_sync_vs_write_fault());
  v.push_back(dax_pin_vs_truncate());
  v.push_back(dio_vs_mmap());
  v.push_back(dio_vs_buffered());
  v.push_back(writeback_vs_write());
  v.push_back(mixed());
  return v;
}

}  // namespace fsrace
