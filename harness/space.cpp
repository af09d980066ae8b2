#include "harness/space.h"

#include <algorithm>
#include <fmt/core.h>
#include <map>
#include <optional>

#include "core/filesystems.h"
#include "harness/oracle.h"

namespace fsrace {

nlohmann::json space_to_json(const SpaceMeasure& m) {
  return {{"fs", m.fs}, {"fs_block", m.fs_block}, {"baseline_free", m.baseline_free}, {"free_with_files", m.free_with_files},
          {"allocated", m.allocated}, {"free_after_delete", m.free_after_delete}, {"free_after_remount", m.free_after_remount},
          {"have_after_delete", m.have_after_delete}};
}

SpaceMeasure space_from_json(const nlohmann::json& j) {
  SpaceMeasure m;
  m.fs = j.value("fs", "");
  m.fs_block = j.value("fs_block", uint64_t(4096));
  m.baseline_free = j.value("baseline_free", uint64_t(0));
  m.free_with_files = j.value("free_with_files", uint64_t(0));
  m.allocated = j.value("allocated", std::vector<uint64_t>{});
  m.free_after_delete = j.value("free_after_delete", uint64_t(0));
  m.free_after_remount = j.value("free_after_remount", uint64_t(0));
  m.have_after_delete = j.value("have_after_delete", false);
  return m;
}

std::vector<Finding> check_space(const OpLogData& d, const SpaceMeasure& m, const std::string& scenario,
                                 const std::string& case_name) {
  std::vector<Finding> out;
  BlockModel model(d);
  // After a power cut the final measurements see what survived it: ops no fsync made durable may or may
  // not have happened (a lost punch leaves its blocks allocated).
  const OpRecord* cut = find_power_cut(d);
  std::optional<BlockModel> after;
  if (cut) after.emplace(d, cut->start_ns);
  const BlockModel& final_model = after ? *after : model;
  uint64_t per_fs = std::max<uint64_t>(1, m.fs_block / kBlockSize);
  (void)per_fs;
  // Blocks rewritten behind the model's back by the corruption helper may be allocated either way.
  std::map<uint16_t, uint64_t> corrupted;
  for (const auto& r : d.ops)
    if (OpKind(r.kind) == OpKind::kTestCorrupt) ++corrupted[r.file];
  auto mk = [&](const std::string& file, const std::string& detail) {
    Finding f = make_finding("space-leak", m.fs, scenario, case_name, "space");
    f.file = file;
    f.detail = detail;
    return f;
  };
  // Metadata the filesystems may count in st_blocks / take from free space (extent tree and btree
  // blocks); measured slack, see results/README.md.
  const FilesystemInfo* fi = find_filesystem(m.fs);
  const FsSpaceSlack sl = fi ? fi->slack : FsSpaceSlack{};
  uint64_t total_alloc = 0;
  const auto& files = d.meta.contains("files") ? d.meta["files"] : nlohmann::json::array();
  for (size_t fi = 0; fi < files.size() && fi < m.allocated.size(); ++fi) {
    uint64_t blocks = files[fi].value("blocks", uint64_t(0));
    uint64_t max_data = 0;
    for (uint64_t b = 0; b < blocks; ++b) max_data += final_model.may_be_allocated(uint16_t(fi), b, UINT64_MAX);
    uint64_t alloc = m.allocated[fi];
    total_alloc += alloc;
    uint64_t meta = sl.meta_base + blocks / sl.meta_per_blocks;
    uint64_t allowed = max_data + meta + corrupted[uint16_t(fi)];
    if (alloc > allowed)
      out.push_back(mk(files[fi].value("name", ""),
                       fmt::format("{} blocks allocated (st_blocks) but at most {} blocks can still be allocated "
                                   "after the last ops (+{} for metadata): punched blocks were not freed",
                                   alloc, max_data, meta)));
  }
  // the filesystem table's measured slack (core/filesystems.cpp), plus, for large files, the free-space
  // (and rmap) btree blocks their fragmentation may need: as much as the per-file metadata bound (0 for
  // files under meta_per_blocks; measured: XFS 16 MiB files with large ops took 9-10 blocks beyond 8)
  uint64_t slack = sl.free_slack;
  for (size_t i = 0; i < files.size(); ++i) slack += files[i].value("blocks", uint64_t(0)) / sl.meta_per_blocks;
  // Quiescent points during the race: same per-file bound at that instant, and free space.
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> round_alloc;  // stat time (first) -> {sum alloc, free}
  uint64_t last_round = 0;
  for (const auto& r : d.ops) {
    if (OpKind(r.kind) != OpKind::kStatBlocks || r.result < 0) continue;
    uint64_t t = r.start_ns;
    if (t - last_round > 1000000000ull / 2 || round_alloc.empty()) last_round = t;  // files of one round are adjacent
    auto& ra = round_alloc[last_round];
    ra.first += uint64_t(r.result);
    ra.second = r.length;
    uint64_t blocks = r.file < files.size() ? files[r.file].value("blocks", uint64_t(0)) : 0;
    uint64_t max_data = 0;
    for (uint64_t b = 0; b < blocks; ++b) max_data += model.may_be_allocated(r.file, b, t);
    uint64_t meta = sl.meta_base + blocks / sl.meta_per_blocks;
    if (uint64_t(r.result) > max_data + meta) {
      Finding f = mk(r.file < files.size() ? files[r.file].value("name", "") : "",
                     fmt::format("at a quiescent point during the race (fsync'ed): {} blocks allocated but at most {} "
                                 "can be allocated at that instant (+{} for metadata)",
                                 r.result, max_data, meta));
      f.ops.push_back(r);
      f.time_ns = t;
      out.push_back(std::move(f));
    }
  }
  for (const auto& [t, ra] : round_alloc)
    if (m.baseline_free >= ra.second && m.baseline_free - ra.second > ra.first + slack) {
      Finding f = mk("", fmt::format("at a quiescent point during the race (fsync'ed): free space dropped by {} blocks "
                                     "but the test files hold only {} (slack {}): blocks or reservations leaked",
                                     m.baseline_free - ra.second, ra.first, slack));
      f.time_ns = t;
      out.push_back(std::move(f));
    }
  if (m.baseline_free >= m.free_with_files) {
    uint64_t used = m.baseline_free - m.free_with_files;
    if (used > total_alloc + slack)
      out.push_back(mk("", fmt::format("free space dropped by {} blocks but the test files hold only {} (slack {}): "
                                       "blocks or delalloc reservations leaked",
                                       used, total_alloc, slack)));
  }
  if (m.have_after_delete) {
    // ext4 returns blocks and reservations at unlink; XFS inactivates unlinked inodes in the background,
    // so only the value after remount counts there.
    if (!sl.frees_lazily && m.baseline_free > m.free_after_delete + slack)
      out.push_back(mk("", fmt::format("{} blocks did not come back after the test files were deleted (slack {}): "
                                       "leaked blocks or delalloc reservations",
                                       m.baseline_free - m.free_after_delete, slack)));
    if (m.baseline_free > m.free_after_remount + slack)
      out.push_back(mk("", fmt::format("{} blocks are still in use after deleting the test files and remounting "
                                       "(slack {}): leaked blocks",
                                       m.baseline_free - m.free_after_remount, slack)));
  }
  return out;
}

}  // namespace fsrace
