#include "probes/catalog.h"

#include <fmt/core.h>
#include <tuple>

#include "probes/fsrace_events.h"

namespace fsrace::probes {

const char* attach_mode_name(AttachMode m) {
  switch (m) {
    case AttachMode::kNone: return "none";
    case AttachMode::kTpBtf: return "tp_btf";
    case AttachMode::kRawTp: return "raw_tp";
    case AttachMode::kTracepoint: return "tracepoint";
    case AttachMode::kFentry: return "fentry/fexit";
    case AttachMode::kKprobe: return "kprobe/kretprobe";
  }
  return "?";
}

std::vector<std::string> ProbeSpec::programs(AttachMode mode) const {
  std::vector<std::string> v;
  if (tracepoint) {
    if (mode == AttachMode::kTpBtf) v.push_back("btf__" + prog);
    if (mode == AttachMode::kRawTp) v.push_back("raw__" + prog);
    if (mode == AttachMode::kTracepoint && classic) v.push_back("tp__" + prog);
    return v;
  }
  if (mode == AttachMode::kFentry) {
    if (has_entry) v.push_back("fentry__" + prog);
    if (has_exit) v.push_back("fexit__" + prog);
  }
  if (mode == AttachMode::kKprobe) {
    if (has_entry || has_exit) v.push_back("kprobe__" + prog);  // kretprobes read the entry's stash
    if (has_exit) v.push_back("kretprobe__" + prog);
  }
  return v;
}

namespace {

ProbeSpec tp(int id, const char* family, const char* cat, const char* ev, const char* prog, const char* what) {
  ProbeSpec p;
  p.id = id;
  p.family = family;
  p.tracepoint = true;
  p.tp_category = cat;
  p.tp_event = ev;
  p.name = fmt::format("{}:{}", cat, ev);
  p.prog = prog;
  p.what = what;
  return p;
}

ProbeSpec fn(int id, const char* family, const char* func, const char* prog, bool exit, const char* what) {
  ProbeSpec p;
  p.id = id;
  p.family = family;
  p.func = func;
  p.name = fmt::format("{}()", func);
  p.prog = prog;
  p.has_exit = exit;
  p.what = what;
  return p;
}

std::vector<ProbeSpec> build() {
  std::vector<ProbeSpec> v;
  // pagecache
  v.push_back(tp(FSR_P_PC_ADD, "pagecache", "filemap", "mm_filemap_add_to_page_cache", "pc_add",
                 "folio inserted into a test inode's page cache (index, pages, invalidate_lock state)"));
  v.push_back(tp(FSR_P_PC_DELETE, "pagecache", "filemap", "mm_filemap_delete_from_page_cache", "pc_delete",
                 "folio removed from a test inode's page cache (index, pages, invalidate_lock state)"));
  v.push_back(tp(FSR_P_FAULT_TP, "pagecache", "filemap", "mm_filemap_fault", "fault",
                 "page fault on a test inode's mapping reached filemap_fault (index)"));
  v.push_back(fn(FSR_P_TRUNC_PC, "pagecache", "truncate_pagecache_range", "trunc_pc", true,
                 "hole punch / zero range drops the range from the page cache (entry, exit)"));
  v.push_back(fn(FSR_P_INVAL2, "pagecache", "invalidate_inode_pages2_range", "inval2", true,
                 "page cache invalidation around direct I/O; -EBUSY return = stale cache left behind"));
  // lock
  v.push_back(fn(FSR_P_DOWN_WRITE, "lock", "down_write", "down_write", true, "invalidate_lock taken exclusive"));
  v.push_back(fn(FSR_P_DOWN_WRITE_KILLABLE, "lock", "down_write_killable", "down_write_k", true,
                 "invalidate_lock taken exclusive (killable)"));
  v.push_back(fn(FSR_P_DOWN_READ, "lock", "down_read", "down_read", true, "invalidate_lock taken shared"));
  v.push_back(fn(FSR_P_DOWN_READ_KILLABLE, "lock", "down_read_killable", "down_read_k", true,
                 "invalidate_lock taken shared (killable)"));
  v.push_back(fn(FSR_P_UP_WRITE, "lock", "up_write", "up_write", false, "invalidate_lock released (exclusive)"));
  v.push_back(fn(FSR_P_UP_READ, "lock", "up_read", "up_read", false, "invalidate_lock released (shared)"));
  v.push_back(tp(FSR_P_CONTENTION_BEGIN, "lock", "lock", "contention_begin", "cont_begin",
                 "a task waits for a test inode's invalidate_lock"));
  v.push_back(tp(FSR_P_CONTENTION_END, "lock", "lock", "contention_end", "cont_end",
                 "the wait for a test inode's invalidate_lock ended"));
  // iomap
  {
    ProbeSpec p = tp(FSR_P_IOMAP_ITER, "iomap", "iomap", "iomap_iter", "iomap_iter",
                     "iomap_iter found IOMAP_F_STALE: a cached mapping went stale and was looked up again");
    p.classic = false;
    p.classic_missing = "the classic record carries no iomap flags";
    p.needs_iomap_stale = true;
    v.push_back(p);
  }
  v.push_back(tp(FSR_P_XFS_IOMAP_INVALID, "iomap", "xfs", "xfs_iomap_invalid", "xfs_iomap_invalid",
                 "XFS found a cached write iomap stale (validity cookie mismatch, 6.2+)"));
  v.push_back(tp(FSR_P_XFS_WB_DATA_INVALID, "iomap", "xfs", "xfs_wb_data_iomap_invalid", "xfs_wb_data",
                 "XFS writeback found its cached data fork mapping stale (6.2+)"));
  v.push_back(tp(FSR_P_XFS_WB_COW_INVALID, "iomap", "xfs", "xfs_wb_cow_iomap_invalid", "xfs_wb_cow",
                 "XFS writeback found its cached COW fork mapping stale (6.2+)"));
  {
    ProbeSpec p = fn(FSR_P_XFS_IOMAP_VALID, "iomap", "xfs_iomap_valid", "xfs_iomap_valid", true,
                     "xfs_iomap_valid returned false: stale iomap (kernels without the XFS tracepoints)");
    p.has_entry = false;  // fexit alone has the arguments; kprobe mode needs the entry stash
    v.push_back(p);
  }
  v.push_back(tp(FSR_P_DIO_INVALIDATE_FAIL, "iomap", "iomap", "iomap_dio_invalidate_fail", "dio_inval_fail",
                 "direct I/O could not invalidate the page cache over its range"));
  // ext4
  v.push_back(tp(FSR_P_EXT4_DA_RESERVE, "ext4", "ext4", "ext4_da_reserve_space", "da_reserve",
                 "delalloc block reserved (i_reserved_data_blocks after)"));
  v.push_back(tp(FSR_P_EXT4_DA_RELEASE, "ext4", "ext4", "ext4_da_release_space", "da_release",
                 "delalloc reservation released (freed, i_reserved_data_blocks before)"));
  v.push_back(tp(FSR_P_EXT4_DA_UPDATE, "ext4", "ext4", "ext4_da_update_reserve_space", "da_update",
                 "delalloc reservation converted at allocation (used, i_reserved_data_blocks before)"));
  v.push_back(tp(FSR_P_EXT4_ES_DELAYED_EXTENT, "ext4", "ext4", "ext4_es_insert_delayed_extent", "es_delayed_extent",
                 "delayed extent inserted in the extent-status tree (6.10+)"));
  v.push_back(tp(FSR_P_EXT4_ES_DELAYED_BLOCK, "ext4", "ext4", "ext4_es_insert_delayed_block", "es_delayed_block",
                 "delayed block inserted in the extent-status tree (before 6.10)"));
  v.push_back(tp(FSR_P_EXT4_PUNCH, "ext4", "ext4", "ext4_punch_hole", "punch", "ext4 hole punch (offset, len, mode)"));
  v.push_back(tp(FSR_P_EXT4_ZERO, "ext4", "ext4", "ext4_zero_range", "zero", "ext4 zero range (offset, len, mode)"));
  v.push_back(tp(FSR_P_EXT4_COLLAPSE, "ext4", "ext4", "ext4_collapse_range", "collapse", "ext4 collapse range"));
  v.push_back(tp(FSR_P_EXT4_INSERT, "ext4", "ext4", "ext4_insert_range", "insert", "ext4 insert range"));
  v.push_back(tp(FSR_P_EXT4_FALLOC_ENTER, "ext4", "ext4", "ext4_fallocate_enter", "falloc_enter", "ext4 fallocate entered"));
  v.push_back(tp(FSR_P_EXT4_FALLOC_EXIT, "ext4", "ext4", "ext4_fallocate_exit", "falloc_exit", "ext4 fallocate returned"));
  v.push_back(tp(FSR_P_EXT4_SYNC_EXIT, "ext4", "ext4", "ext4_sync_file_exit", "sync_exit",
                 "fsync finished (i_reserved_data_blocks must be 0 when nothing is dirty)"));
  v.push_back(tp(FSR_P_EXT4_EVICT, "ext4", "ext4", "ext4_evict_inode", "evict",
                 "inode evicted (i_reserved_data_blocks must be 0)"));
  // entry points
  v.push_back(fn(FSR_P_FN_EXT4_FALLOCATE, "entry", "ext4_fallocate", "ext4_falloc", true, "ext4 fallocate handler"));
  v.push_back(fn(FSR_P_FN_XFS_FALLOCATE, "entry", "xfs_file_fallocate", "xfs_falloc", true, "XFS fallocate handler"));
  v.push_back(fn(FSR_P_FN_FILEMAP_FAULT, "entry", "filemap_fault", "filemap_fault", true, "generic page fault handler"));
  v.push_back(fn(FSR_P_FN_EXT4_PAGE_MKWRITE, "entry", "ext4_page_mkwrite", "ext4_mkwrite", true, "ext4 page_mkwrite"));
  v.push_back(fn(FSR_P_FN_XFS_PAGE_MKWRITE, "entry", "xfs_filemap_page_mkwrite", "xfs_mkwrite", true, "XFS page_mkwrite"));
  v.push_back(fn(FSR_P_FN_IOMAP_DIO_RW, "entry", "iomap_dio_rw", "iomap_dio_rw", true, "iomap direct I/O (ext4, XFS)"));
  v.push_back(fn(FSR_P_FN_CEPH_DIRECT_RW, "entry", "ceph_direct_read_write", "ceph_dio", true, "ceph direct I/O (seed 000)"));
  v.push_back(fn(FSR_P_FN_EXT4_WRITEPAGES, "entry", "ext4_writepages", "ext4_wb", true, "ext4 writeback of a test inode"));
  v.push_back(fn(FSR_P_FN_XFS_WRITEPAGES, "entry", "xfs_vm_writepages", "xfs_wb", true, "XFS writeback of a test inode"));
  // dax (tp_btf / raw_tp only: the classic records carry dev/ino but not the entry sizes consistently)
  for (auto [id, ev, prog, what] : {std::tuple{FSR_P_DAX_WRITEBACK_ONE, "dax_writeback_one", "dax_wb_one",
                                               "a DAX entry's cache lines flushed to persistence (fsync / msync / writeback)"},
                                    std::tuple{FSR_P_DAX_PTE_FAULT_DONE, "dax_pte_fault_done", "dax_pte_fault",
                                               "a page fault on a DAX file mapped a PTE (index, write, result)"},
                                    std::tuple{FSR_P_DAX_PMD_FAULT_DONE, "dax_pmd_fault_done", "dax_pmd_fault",
                                               "a 2 MiB fault on a DAX file: PMD mapped or fell back to PTEs"},
                                    std::tuple{FSR_P_DAX_PTE_FAULT, "dax_pte_fault", "dax_pte_fault_begin",
                                               "a page fault on a DAX file began (it holds the entry locked until done)"},
                                    std::tuple{FSR_P_DAX_PMD_FAULT, "dax_pmd_fault", "dax_pmd_fault_begin",
                                               "a 2 MiB fault on a DAX file began (entry locked until done)"}}) {
    ProbeSpec p = tp(id, "dax", "fs_dax", ev, prog, what);
    p.classic = false;
    p.classic_missing = "fsrace's DAX probes use the typed (tp_btf / raw_tp) arguments";
    v.push_back(p);
  }
  // The DAX layout break's question (entry family: fentry / fexit, else kprobes): does a page of the mapping
  // still have a reference beyond the idle one (a pin)? The caller (ext4_break_layouts, xfs_break_dax_layouts)
  // then waits for it (dax-pin-vs-truncate).
  v.push_back(fn(FSR_P_FN_DAX_LAYOUT_BUSY, "entry", "dax_layout_busy_page_range", "dax_busy", true,
                 "DAX layout break: returned 1 when a page of the range is still referenced (pinned), so the "
                 "truncate / punch waits for it"));
  return v;
}

}  // namespace

const std::vector<ProbeSpec>& probe_catalog() {
  static const std::vector<ProbeSpec> v = [] {
    auto c = build();
    if (c.size() != FSR_P_COUNT) throw std::logic_error("probe catalog out of sync with enum fsr_probe_id");
    for (size_t i = 0; i < c.size(); ++i)
      if (c[i].id != int(i)) throw std::logic_error("probe catalog order differs from enum fsr_probe_id");
    return c;
  }();
  return v;
}

const ProbeSpec* find_probe(const std::string& name) {
  for (const auto& p : probe_catalog())
    if (p.name == name || (p.tracepoint && p.tp_event == name) || (!p.tracepoint && p.func == name)) return &p;
  return nullptr;
}

std::vector<std::string> probe_families() { return {"pagecache", "lock", "iomap", "ext4", "entry", "dax"}; }

std::vector<Candidate> plan_probe(const ProbeSpec& p, const KernelInfo& k, const std::map<AttachMode, std::string>& refused) {
  std::vector<Candidate> out;
  std::string bpf = k.bpf_unavailable();
  auto add = [&](AttachMode m, std::string skip) {
    if (!bpf.empty()) skip = bpf;  // nothing loads at all: that is the one reason
    if (skip.empty()) {
      auto it = refused.find(m);
      if (it != refused.end()) skip = it->second;
    }
    out.push_back({m, std::move(skip)});
  };
  if (p.tracepoint) {
    std::string stale;
    if (p.needs_iomap_stale && !k.iomap_f_stale())
      stale = "this kernel publishes no IOMAP_F_STALE flag (iomap print formats in tracefs have no STALE)";
    bool in_btf = k.has_btf() && k.btf_has_tracepoint(p.tp_event);
    auto in_tracefs = k.tracefs_has_event(p.tp_category, p.tp_event);
    std::string missing = fmt::format("tracepoint {} not in this kernel", p.name);
    add(AttachMode::kTpBtf, !stale.empty() ? stale
                            : !k.has_btf() ? "no kernel BTF (/sys/kernel/btf/vmlinux)"
                            : !in_btf      ? missing
                                           : "");
    // raw_tp needs no BTF, only the tracepoint: known from BTF or tracefs
    bool exists = in_btf || in_tracefs.value_or(false);
    add(AttachMode::kRawTp, !stale.empty() ? stale : exists ? "" : missing);
    std::string classic;
    if (!p.classic) classic = p.classic_missing;
    else if (!in_tracefs) classic = "tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)";
    else if (!*in_tracefs) classic = missing;
    add(AttachMode::kTracepoint, classic);
  } else {
    bool in_btf = k.has_btf() && k.btf_has_func(p.func);
    bool ksym = k.ksym_exists(p.func);
    std::string missing = fmt::format("function {} not in this kernel (or its module is not loaded)", p.func);
    add(AttachMode::kFentry, !k.has_btf() ? "no kernel BTF (/sys/kernel/btf/vmlinux)" : !in_btf ? (ksym ? fmt::format("function {} has no BTF", p.func) : missing) : "");
    std::string kp = k.kprobes_unavailable();
    add(AttachMode::kKprobe, !kp.empty() ? kp : !ksym ? missing : "");
  }
  return out;
}

std::string summarize_reasons(const std::vector<Candidate>& tried) {
  std::vector<std::pair<std::string, std::string>> groups;  // reason -> modes
  for (const auto& c : tried) {
    bool found = false;
    for (auto& g : groups)
      if (g.first == c.skip) {
        g.second += std::string(", ") + attach_mode_name(c.mode);
        found = true;
      }
    if (!found) groups.push_back({c.skip, attach_mode_name(c.mode)});
  }
  std::string s;
  for (const auto& [reason, modes] : groups) s += fmt::format("{}{}: {}", s.empty() ? "" : "; ", modes, reason);
  return s;
}

namespace {

DelayHook hook(ProbeSpec spec, const char* fs, const char* context) {
  spec.family = "delay";
  return DelayHook{std::move(spec), fs, fmt::format("{}; no spinlock held, interrupts enabled", context)};
}

// The tracepoint hooks: id, filesystem ("" = any), category, event, program stem, what it sees, and what
// the kernel holds where it fires (checked in Debian's 6.1 source, and against 6.18 where it differs).
struct TpHookRow {
  int id;
  const char *fs, *cat, *event, *prog, *what, *context;
};
const TpHookRow kTpHooks[] = {
    {FSR_DH_EXT4_REMOVE_SPACE, "ext4", "ext4", "ext4_ext_remove_space", "ext4_rm_space",
     "ext4 is about to remove the extents of a punched / truncated range",
     "ext4_ext_remove_space(), from ext4_punch_hole after truncate_pagecache_range: i_rwsem, invalidate_lock and "
     "i_data_sem (rw-semaphores) held, a jbd2 handle open"},
    {FSR_DH_XFS_FREE_FILE_SPACE, "xfs", "xfs", "xfs_free_file_space", "xfs_free_space",
     "XFS is about to unmap the blocks of a punched / zeroed range",
     "start of xfs_free_file_space(), from xfs_file_fallocate after xfs_flush_unmap_range dropped the range from the "
     "page cache: IOLOCK and MMAPLOCK (= invalidate_lock) held exclusive, no transaction yet"},
    {FSR_DH_FILL_ADDED, "", "filemap", "mm_filemap_add_to_page_cache", "fill_added",
     "a new folio entered the page cache, before its read I/O",
     "end of __filemap_add_folio(), after xas_unlock_irq: the new folio is locked and not uptodate; the caller "
     "(readahead, filemap_fault, filemap_read, write_begin) holds at most invalidate_lock shared"},
    {FSR_DH_IOMAP_DSTMAP, "", "iomap", "iomap_iter_dstmap", "iomap_dstmap",
     "iomap_iter got a mapping from ->iomap_begin, before the I/O uses it",
     "iomap_iter() after ->iomap_begin returned (the filesystem dropped ILOCK / i_data_sem) and before the actor "
     "(buffered write, direct I/O, zeroing) uses the mapping; i_rwsem / IOLOCK as the caller took it"},
    {FSR_DH_XFS_IOMAP_FOUND, "xfs", "xfs", "xfs_iomap_found", "xfs_iomap_found", "XFS iomap_begin found an existing mapping",
     "xfs_*_iomap_begin(): ILOCK dropped, except in the buffered-write path where ILOCK (an rw-semaphore) is still held"},
    {FSR_DH_XFS_IOMAP_ALLOC, "xfs", "xfs", "xfs_iomap_alloc", "xfs_iomap_alloc",
     "XFS iomap_begin reserved delalloc or allocated blocks for a write",
     "xfs_*_iomap_begin() after the reservation / allocation: ILOCK dropped, except on the COW-fork path (an rw-semaphore)"},
    {FSR_DH_XFS_MAP_BLOCKS_FOUND, "xfs", "xfs", "xfs_map_blocks_found", "xfs_mapb_found",
     "XFS writeback cached a mapping for the folios it writes",
     "xfs_map_blocks() after dropping ILOCK; the folio under writeback is locked"},
    {FSR_DH_XFS_MAP_BLOCKS_ALLOC, "xfs", "xfs", "xfs_map_blocks_alloc", "xfs_mapb_alloc",
     "XFS writeback converted delalloc blocks and cached the mapping",
     "xfs_map_blocks() after xfs_bmapi_convert_delalloc (ILOCK dropped); the folio under writeback is locked"},
};

std::vector<DelayHook> build_delay_hooks() {
  std::vector<DelayHook> v;
  for (const auto& r : kTpHooks) v.push_back(hook(tp(r.id, "delay", r.cat, r.event, r.prog, r.what), r.fs, r.context));
  ProbeSpec p = fn(FSR_DH_TRUNC_PC_EXIT, "delay", "truncate_pagecache_range", "trunc_pc", true,
                   "truncate_pagecache_range returned: the range's folios are gone, the blocks not yet freed");
  p.has_entry = false;  // fexit alone; kprobe mode: kprobe stashes the inode for the kretprobe
  v.push_back(hook(p, "", "return of truncate_pagecache_range() (ext4 and XFS punch / zero range / truncate): "
                          "invalidate_lock held exclusive; a sleeping function"));
  return v;
}

}  // namespace

const std::vector<DelayHook>& delay_hooks() {
  static const std::vector<DelayHook> v = [] {
    auto h = build_delay_hooks();
    if (h.size() != FSR_DH_COUNT || h.size() > FSR_DELAY_MAX_HOOKS)
      throw std::logic_error("delay hook catalog out of sync with enum fsr_delay_hook_id");
    for (size_t i = 0; i < h.size(); ++i)
      if (h[i].spec.id != int(i)) throw std::logic_error("delay hook order differs from enum fsr_delay_hook_id");
    return h;
  }();
  return v;
}

const std::vector<DelayPoint>& delay_points() {
  static const std::vector<DelayPoint> v = {
      {"punch-free",
       "hole punch / zero range: the page cache of the range was dropped, its blocks are not freed yet (seed 001: "
       "a fault or read that refills the cache now keeps stale data in a hole unless invalidate_lock holds it off)",
       {FSR_DH_EXT4_REMOVE_SPACE, FSR_DH_XFS_FREE_FILE_SPACE}},
      {"pagecache-dropped",
       "the same window from its start, on any filesystem: right after truncate_pagecache_range returned (function "
       "hook: needs fentry or kprobes)",
       {FSR_DH_TRUNC_PC_EXIT}},
      {"fill-added",
       "page-cache fill: a new folio is in the mapping, locked and not uptodate, before its read I/O (a punch or "
       "truncate racing the fill, the read I/O racing a write to the same blocks)",
       {FSR_DH_FILL_ADDED}},
      {"iomap-mapped",
       "iomap: the mapping was looked up and the inode lock dropped, the I/O has not used it yet (the "
       "xfs_iomap_valid / stale-iomap window of buffered writes, direct I/O vs punch)",
       {FSR_DH_IOMAP_DSTMAP}},
      {"xfs-write-mapped",
       "XFS buffered / direct write: iomap_begin found or allocated the mapping, the folios are not written yet "
       "(xfs/559's stale write iomap vs writeback and reclaim)",
       {FSR_DH_XFS_IOMAP_FOUND, FSR_DH_XFS_IOMAP_ALLOC}},
      {"xfs-wb-mapped",
       "XFS writeback: the writepage context cached a mapping, the folios are not submitted yet (stale writeback "
       "mapping vs a racing write, punch or unwritten conversion)",
       {FSR_DH_XFS_MAP_BLOCKS_FOUND, FSR_DH_XFS_MAP_BLOCKS_ALLOC}},
  };
  return v;
}

const DelayPoint* find_delay_point(const std::string& name) {
  for (const auto& p : delay_points())
    if (p.name == name) return &p;
  return nullptr;
}

std::vector<std::string> delay_point_names() {
  std::vector<std::string> v;
  for (const auto& p : delay_points()) v.push_back(p.name);
  return v;
}

std::vector<const DelayHook*> delay_hooks_for(const DelayPoint& point, const std::string& fs) {
  std::vector<const DelayHook*> v;
  for (int id : point.hooks) {
    const DelayHook& h = delay_hooks().at(size_t(id));
    if (fs.empty() || h.fs.empty() || h.fs == fs) v.push_back(&h);
  }
  return v;
}

const std::vector<std::pair<std::string, std::string>>& kernel_techniques() {
  static const std::vector<std::pair<std::string, std::string>> v = {
      {"override-return", "bpf_override_return from a kprobe on an error-injectable function (CONFIG_BPF_KPROBE_OVERRIDE)"},
      {"fail-function", "fault injection into error-injectable functions through debugfs (CONFIG_FAIL_FUNCTION)"},
      {"dm-delay", "device-mapper delay target under the filesystem: slow reads / writes / flushes"},
      {"dm-flakey", "device-mapper flakey target under the filesystem: a power cut after the race (writes dropped, journal replayed), then what fsync made durable is checked, and fsck"},
      {"xfs-errortag", "XFS error tags (/sys/fs/xfs/<dev>/errortag, CONFIG_XFS_DEBUG): XFS takes its debug paths at chosen sites"},
  };
  return v;
}

bool kernel_technique_driven(const std::string& name) {
  return name == "override-return" || name == "fail-function" || name == "dm-delay" || name == "dm-flakey" ||
         name == "xfs-errortag";
}

std::vector<std::string> kernel_technique_names() {
  std::vector<std::string> v;
  for (const auto& [n, w] : kernel_techniques()) v.push_back(n);
  return v;
}

}  // namespace fsrace::probes
