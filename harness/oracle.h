// The oracle: decides from the op log alone whether every value read back was allowed.
//
// Rule (per block b, read R over [R.start, R.end] that saw value v): v is allowed iff it was produced
// by an op X on b (a write's stamp, a punch's zeroes, the initial state) with X.start < R.end, and no
// other successful op Y on b has Y.start > X.end and Y.end < R.start — i.e. v was current at some
// instant of the read under some order consistent with the op intervals. Tearing (mixed stamps,
// partial sectors) is legal only while a modifying op on b overlapped the read.
//
// Collapse / insert range move every block after their offset. A shift S over [S.start, S.end] reads each
// source block q exactly as a read over that interval would (the values q may hold at some instant of S:
// every mod on q that started before S.end and was not superseded before S.start) and puts that set at q's
// new position p as values "produced" by S over [S.start, S.end], each keeping the block it was written at
// (a collapse drops its range and leaves holes past the new EOF; an insert leaves a hole at its range; a
// truncate leaves holes from the new size on). Stamps keep the block they were written at, so values are
// matched by (generation, stamp block) in such files. Shifts are taken one at a time, in end order (the
// workload orders them against each other; overlapping pairs are counted in shift_conflicts).
//
// Modifying ops race shifts (a write, an mmap store, an O_DIRECT write, punch, zero range, fallocate
// overlapping S in time). Such an op X is modelled with two outcomes: X came first, so its data is among
// the values S read at q and moved to p; or S came first, so X lands at its own offset in the shifted file
// (X is not superseded there: S started before X ended). The oracle lets each block take either outcome
// independently. Why per block: collapse / insert take i_rwsem and the invalidate_lock exclusive and wait
// for DIO (inode_dio_wait), so write(2), O_DIRECT, punch and fallocate are atomic against the shift as a
// whole — the kernel gives all of X's blocks the same outcome — but stores through an existing mapping do
// not enter the kernel: each page is stored before the shift's flush + page-cache truncation (then moved)
// or faults after it and waits on the invalidate_lock (then lands in the shifted file), and a page stored
// across the flush is a mixture of both (torn, legal for mmap stores as everywhere). Per-block choice is
// therefore exact for mmap stores and a superset for syscalls: it never reports a stock kernel, and it
// still rejects every value neither order can give (data moved by the wrong distance, a block's old value
// left in place, data lost, data of a write that started after the shift ended moved by it). What it gives
// up is the all-blocks-alike check for syscalls (a write split by a shift is not detected).
// Sizes: in such files the size is modelled, as a range when writes race a shift (a write may extend the
// file before the shift, then be shifted, or after it): a read may end short (EOF) only at a size the file
// can have had at some instant of the read.
//
// A power cut (kwiden dm-flakey: an OpKind::kPowerCut op, every write to the device dropped from then on,
// the journal replayed at the next mount) changes the rule for the reads after it: an op survives for
// certain only if it was durable — an fsync of its file that succeeded started after the op ended and
// ended before the cut. Reads after the cut are judged against a second model in which every op that was
// not durable counts as one that may or may not have happened (like a failed op: its value is allowed,
// but it supersedes nothing). So such a read may see the last durable value of a block or any later one,
// and never a value a durable op had replaced: an fsync'ed write read back as older data or zeroes after
// the cut is a lost-write / stale finding. Files a collapse / insert / truncate changed after their last
// fsync are not judged after a cut (a crash inside a shift is not modelled; the runner fsyncs such files
// before cutting).
#pragma once
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/findings.h"
#include "core/oplog.h"

namespace fsrace {

struct OracleContext {
  std::string fs;
  std::string scenario;
  std::string case_name;
  size_t keep_per_class = 50;
  // Error injection (ENOMEM into page-cache insertions) was armed: a read may legally stop short of EOF
  // (read(2) returns what it copied before the failed insertion). Reads past every EOF still count.
  bool short_reads_legal = false;
};

struct OracleStats {
  uint64_t reads_checked = 0;   // read ops
  uint64_t power_cut_ns = 0;        // the power cut (0: none)
  uint64_t non_durable_ops = 0;     // modifying ops before it that no fsync made durable
  uint64_t reads_after_cut = 0;     // read ops judged by the power-cut model
  uint64_t unjudged_after_cut = 0;  // read ops after the cut of files a non-durable shift changed
  uint64_t blocks_checked = 0;  // observations
  uint64_t torn_legal = 0;      // torn blocks seen while a write/punch overlapped (allowed)
  uint64_t modifying_ops = 0;
  uint64_t shifts = 0;           // successful collapse / insert range ops modelled
  uint64_t shift_races = 0;      // modifying ops that overlapped a successful shift of the same file
                                 // (modelled: each block before or after it)
  std::map<std::string, uint64_t> shift_races_by_kind;  // the same, per op kind name
  uint64_t shift_conflicts = 0;  // pairs of shifts of one file that overlapped (the model takes them in end
                                 // order; the workload orders shifts against each other)
};

// The per-block history the rule is evaluated against (exposed for tests and kernel-event matching).
// The largest page-cache folio an mmap write can dirty at once on x86-64 (MAX_PAGECACHE_ORDER: a PMD,
// 2 MiB with 4 KiB pages); see BlockModel::may_be_allocated.
inline constexpr uint64_t kFolioWindow = 2ull << 20;

class BlockModel {
 public:
  struct Mod {
    uint64_t start, end, id;
    bool punch;
    bool ok;  // completed successfully: only such ops can supersede another
    bool mmap = false;  // a store through a mapping (not atomic per block)
    uint32_t origin = 0;  // shifted files: the block the value was written at (its stamp block)
    uint64_t via = 0;     // shifted files: the collapse / insert op that moved the value here (0: none)
  };
  // power_cut_ns != 0: the model for reads after a power cut at that instant (see above).
  explicit BlockModel(const OpLogData& d, uint64_t power_cut_ns = 0);

  // Is the value produced by op `id` on (file, block) allowed for a read over [rs, re]?
  bool allowed_data(uint16_t file, uint64_t block, uint64_t id, uint64_t rs, uint64_t re) const;
  bool allowed_zero(uint16_t file, uint64_t block, uint64_t rs, uint64_t re) const;

  struct Hist {
    std::vector<Mod> mods;             // sorted by start; mods[0] is the initial hole (id 0)
    std::vector<uint64_t> suffix_min_end;  // over ok mods, UINT64_MAX otherwise
    std::vector<size_t> punch_idx;     // indexes of punches (and the initial hole), by start
    std::vector<size_t> punch_prefix_best;  // per punch prefix: index of the punch with the latest end
    bool shifted = false;              // the file saw collapse / insert: match values by (id, origin)
    uint64_t max_dur = 0;              // longest mod (bounds find_value's backward scan)
  };
  const Hist* hist(uint16_t file, uint64_t block) const;
  // Allocation: can block b hold allocated space at instant t (every op before t finished)? Allocating ops
  // are writes of any kind, zero-range and fallocate (unwritten extents); only a punch frees. A store
  // through a mapping may also allocate every other block of its (possibly large) folio: page_mkwrite
  // prepares the whole folio (ext4_page_mkwrite / iomap_page_mkwrite), so after an mmap write any hole of
  // the same 2 MiB window may be written back as zeroes until a punch of it that started after the
  // write (and after any later shift) ended.
  bool may_be_allocated(uint16_t file, uint64_t block, uint64_t t) const;
  const OpRecord* op(uint64_t id) const;
  uint64_t file_id(uint16_t file) const { return file < file_ids_.size() ? file_ids_[file] : 0; }
  const std::string& file_name(uint16_t file) const;

  bool allowed(const Hist& h, const Mod& x, uint64_t rs, uint64_t re) const;
  const Mod* find(const Hist& h, uint64_t id) const;
  // The mod that produced data (generation `id`, stamp block `origin`) at this block: one allowed for a read
  // over [rs, re] if there is one, else the latest such mod (nullptr: no op can have put it here).
  const Mod* find_value(const Hist& h, uint64_t id, uint32_t origin, uint64_t block, uint64_t rs, uint64_t re) const;
  uint64_t shifts() const { return shifts_; }
  // Sizes: the byte counts a read of [off, off+len) over [rs, re] may return (EOF at a size the file had
  // at some instant of the read; only files whose size changed, else {len}), ascending.
  std::vector<uint64_t> allowed_read_results(uint16_t file, uint64_t off, uint64_t len, uint64_t rs, uint64_t re) const;
  bool size_changes(uint16_t file) const {
    auto it = sizes_.find(file);
    return it != sizes_.end() && !it->second.empty();
  }
  uint64_t shift_conflicts() const { return shift_conflicts_; }
  uint64_t shift_races() const { return shift_races_; }
  const std::map<std::string, uint64_t>& shift_races_by_kind() const { return shift_races_by_kind_; }
  // Power-cut model: was op r (an op before the cut) made durable by an fsync of its file? Always true
  // without a cut.
  bool durable(const OpRecord& r) const;
  // Power-cut model: the first fsync of r's file that made r durable (nullptr: none, or no cut).
  const OpRecord* durable_by(const OpRecord& r) const;
  // Power-cut model: modifying ops (writes, punches, zero-range, falloc, shifts) that were not durable.
  uint64_t non_durable_ops() const { return non_durable_; }
  // Power-cut model: a file whose reads after the cut cannot be judged (a shift that was not durable).
  bool unjudged_after_cut(uint16_t file) const { return unjudged_.count(file) > 0; }
  // The successful op that ended last before `rs` among those that started after `after_end`.
  const Mod* superseder(const Hist& h, uint64_t after_end, uint64_t rs) const;
  // Every value allowed for a read over [rs, re], described.
  std::vector<std::string> allowed_values(const Hist& h, uint64_t rs, uint64_t re) const;
  bool overlapped(const Hist& h, uint64_t rs, uint64_t re) const;
  // A torn block is a legal outcome of an mmap store that overlapped another modifying op.
  bool mmap_tear_possible(const Hist& h, uint64_t rs, uint64_t re) const;

 private:
  const OpLogData& d_;
  std::unordered_map<uint64_t, Hist> hist_;   // key: file << 40 | block
  std::unordered_map<uint64_t, Hist> alloc_;  // allocation history (punch = frees)
  struct SizeChange {
    uint64_t start, end;           // the change's span (a shift with the writes racing it: their union)
    uint64_t from_lo, from_hi, to_lo, to_hi;  // sizes in blocks, before and after (ranges: racing writes)
  };
  std::unordered_map<uint16_t, std::vector<SizeChange>> sizes_;  // per shifted file, in op order
  std::unordered_map<uint16_t, uint64_t> initial_size_;
  // Per (file, 2 MiB window): starts of the mmap writes into it (sorted) and the running max of their
  // ends; per file: the same for successful shifts (may_be_allocated's folio rule).
  struct Intervals {
    std::vector<uint64_t> starts, max_end;
    void add(uint64_t s, uint64_t e) { starts.push_back(s), max_end.push_back(e); }
    void finish();
    uint64_t latest_end_before(uint64_t t) const;  // 0: none started before t
  };
  std::unordered_map<uint64_t, Intervals> mmap_writes_;  // key: file << 40 | window
  std::unordered_map<uint16_t, Intervals> shift_spans_;
  std::unordered_map<uint64_t, size_t> op_index_;
  std::vector<uint64_t> file_ids_;
  std::vector<std::string> file_names_;
  uint64_t shifts_ = 0, shift_conflicts_ = 0, shift_races_ = 0;
  std::map<std::string, uint64_t> shift_races_by_kind_;
  uint64_t power_cut_ = 0, non_durable_ = 0;
  std::unordered_map<uint16_t, uint64_t> fsync_start_;  // per file: latest start of a good fsync before the cut
  std::unordered_map<uint16_t, bool> unjudged_;
  void add_op_mods(const OpRecord& r);
  void build_shifted(uint16_t file, uint64_t blocks, const std::vector<size_t>& ops);
};

FindingSet run_oracle(const OpLogData& d, const OracleContext& ctx, OracleStats* stats = nullptr);
// The log's power-cut op (kwiden dm-flakey), nullptr if there was none.
const OpRecord* find_power_cut(const OpLogData& d);

}  // namespace fsrace
