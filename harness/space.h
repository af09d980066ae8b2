// Space accounting: what the runner measures (free space, st_blocks) and the check of those figures
// against the block model (space-leak). Slack per filesystem comes from the filesystem table.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/findings.h"
#include "core/oplog.h"

namespace fsrace {

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

nlohmann::json space_to_json(const SpaceMeasure& m);
SpaceMeasure space_from_json(const nlohmann::json& j);

}  // namespace fsrace
