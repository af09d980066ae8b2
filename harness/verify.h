// After the race: coherence and on-disk verification reads (recorded in the op log, judged by the
// oracle) and the test-only corruption helper. The space checks are harness/space.h.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/findings.h"
#include "core/oplog.h"
#include "harness/space.h"
#include "harness/testbed.h"
#include "workloads/scenario.h"

namespace fsrace {

// Page cache warm: every block through read(2), through mmap, and with O_DIRECT (round `round`).
// Returns notes for the summary (e.g. O_DIRECT unsupported).
std::vector<std::string> verify_cached_round(ThreadLog& tl, const std::vector<TestFile>& files, uint32_t round);
// Cold cache (after remount): every block through read(2).
void verify_disk_round(ThreadLog& tl, const std::vector<TestFile>& files, uint32_t round);
// The op-log thread of the reads the boot after a [vm] power_cut appends to the crashed boot's ops.bin.
inline constexpr uint32_t kAfterCutThread = 999;
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

// After the race (no power cut, not interrupted): page cache vs O_DIRECT, fsync, the test-only
// corruption (recorded in info["injected"]), the space measurements with the files, a remount and the
// cold read of every block, then unlink and the free space after it and after another remount.
void verify_after_race(ThreadLog& tl, const std::vector<TestFile>& files, Testbed& tb, bool inject, SpaceMeasure& space,
                       nlohmann::json& info);

}  // namespace fsrace
