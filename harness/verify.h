// After the race: coherence and on-disk verification reads (recorded in the op log, judged by the
// oracle), the test-only corruption helper, and the space accounting checks.
#pragma once
#include <string>
#include <vector>

#include "harness/findings.h"
#include "harness/oplog.h"
#include "workloads/scenario.h"

namespace fsrace {

// Page cache warm: every block through read(2), through mmap, and with O_DIRECT (round `round`).
// Returns notes for the summary (e.g. O_DIRECT unsupported).
std::vector<std::string> verify_cached_round(ThreadLog& tl, const std::vector<TestFile>& files, uint32_t round);
// Cold cache (after remount): every block through read(2).
void verify_disk_round(ThreadLog& tl, const std::vector<TestFile>& files, uint32_t round);
void fsync_files(ThreadLog& tl, const std::vector<TestFile>& files);
// fsync of a directory (its entries durable); not logged.
void fsync_path(const std::string& dir);
// Quiescent point: records per file a stat-blocks op (result = allocated fs blocks, length = the
// filesystem's free blocks at that moment), compared with the model by check_space.
void record_stat_blocks(ThreadLog& tl, const std::vector<TestFile>& files, const std::string& dir, uint64_t fs_block);

// Test-only: makes blocks 1, 3, 5 and 7 of the first file wrong on disk in four known ways, after
// sealing their expected state with logged ops: block 1 holds an overwritten generation (stale),
// block 3 pre-punch data (stale-after-punch), block 5 zeroes where a write completed (lost-write),
// block 7 a stamp of another file (foreign). Returns the block -> class it must produce.
std::vector<std::pair<uint64_t, std::string>> inject_corruption(ThreadLog& tl, const std::vector<TestFile>& files);

struct SpaceMeasure {
  std::string fs;
  uint64_t fs_block = 4096;
  uint64_t baseline_free = 0;       // statfs after mkdir, before the files exist
  uint64_t free_with_files = 0;     // after the race, fsync, while mounted
  std::vector<uint64_t> allocated;  // per file: st_blocks in fs blocks, same moment
  uint64_t free_after_delete = 0;   // after unlinking the files (and syncfs), before unmount
  uint64_t free_after_remount = 0;  // the same after unmount + mount (XFS frees unlinked inodes lazily)
  bool have_after_delete = false;
};

// Compares the measurements with the block model's final states. Slack per filesystem is
// documented in results/README.md.
std::vector<Finding> check_space(const OpLogData& d, const SpaceMeasure& m, const std::string& scenario,
                                 const std::string& case_name);

}  // namespace fsrace
