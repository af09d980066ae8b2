#include "core/findings.h"

#include <fmt/core.h>

namespace fsrace {

const std::vector<FindingClassInfo>& finding_classes() {
  static const std::vector<FindingClassInfo> v = {
      {"stale", "data", "a read returned an older generation than one that was definitely current"},
      {"stale-after-punch", "data", "old data where a completed hole punch left zeroes"},
      {"lost-write", "data", "zeroes or older data where a completed write must be"},
      {"foreign", "data", "a stamp of another file, another block, or an op that never wrote here (data exposure)"},
      {"torn", "data", "bad checksum or mixed stamps in one block while the file was quiescent"},
      {"cache-incoherent", "data", "page cache (read(2) or mmap) and O_DIRECT disagree after the race"},
      {"space-leak", "data", "st_blocks or free space differ from what the model allows (leaked block or reservation)"},
      {"kernel-warning", "kernel-log", "WARNING: ... (WARN_ON and friends)"},
      {"kernel-bug", "kernel-log", "kernel BUG at / BUG: (including sleeping-in-atomic, bad page state)"},
      {"kernel-oops", "kernel-log", "Oops / general protection fault / unable to handle page fault"},
      {"kasan", "kernel-log", "KASAN report"},
      {"ubsan", "kernel-log", "UBSAN report"},
      {"lockdep", "kernel-log", "lockdep: circular or recursive locking, held-lock problems"},
      {"rcu", "kernel-log", "suspicious RCU usage / RCU stall"},
      {"hung-task", "kernel-log", "task blocked for more than N seconds"},
      {"soft-lockup", "kernel-log", "soft or hard lockup"},
      {"ext4-error", "kernel-log", "EXT4-fs error / warning lines for the test device"},
      {"ext4-reservation", "kernel-log", "ext4 delalloc reservation messages, e.g. i_reserved_data_blocks(N) not cleared!"},
      {"xfs-error", "kernel-log", "XFS assertion, corruption, Internal error or shutdown"},
      {"ceph-error", "kernel-log", "ceph kernel client (ceph: / libceph:) error lines and WARNs in fs/ceph, net/ceph"},
      // probes (issue 3): from kernel events alone
      {"reservation-leak", "events", "ext4 i_reserved_data_blocks not back to zero after fsync following the race, or at eviction"},
      {"stale-iomap-seen", "events", "informational: the kernel detected and handled a stale cached iomap (counted per run, not a failure)"},
      {"dax-unflushed", "events", "a store through a DAX mapping ended before an msync / fsync of its page began, and the sync returned without flushing the page's DAX entry (fs_dax:dax_writeback_one): not durable on real pmem"},
      {"dio-invalidate-failed", "events", "direct I/O could not invalidate the page cache over its range (stale cache may remain)"},
      {"fsck-error", "run", "kwiden dm-flakey: the read-only fsck (e2fsck -fn / xfs_repair -n) after the power cut and journal replay found the filesystem inconsistent"},
      {"workload-error", "run", "a workload syscall failed in a way the scenario does not allow (e.g. EIO)"},
      // VM mode (vm/, ./fsrace run --kernel K)
      {"kernel-crash", "console", "the guest kernel panicked (panic, or an oops/BUG with oops=panic): console excerpt + ops in flight"},
      {"hang", "vm", "the guest agent made no progress for [vm] hang_timeout_s: task states (sysrq-w, sysrq-t) kept"},
      {"boot-failed", "vm-error", "not a finding, an error (exit 2): the guest never started the agent; console tail shown"},
      {"vm-error", "vm-error", "not a finding, an error (exit 2): QEMU failed or died, or the guest agent could not run"},
  };
  return v;
}

Finding make_finding(std::string cls, std::string fs, std::string scenario, std::string case_name, std::string phase) {
  Finding f;
  f.cls = std::move(cls);
  f.fs = std::move(fs);
  f.scenario = std::move(scenario);
  f.case_name = std::move(case_name);
  f.phase = std::move(phase);
  return f;
}

nlohmann::json op_to_json(const OpRecord& r) {
  return {{"id", r.id},           {"thread", r.thread}, {"kind", op_kind_name(OpKind(r.kind))},
          {"file", r.file},       {"offset", r.offset}, {"length", r.length},
          {"start_ns", r.start_ns}, {"end_ns", r.end_ns}, {"result", r.result}};
}

nlohmann::json finding_to_json(const Finding& f) {
  nlohmann::json j = {{"class", f.cls}, {"fs", f.fs}, {"scenario", f.scenario}, {"case", f.case_name},
                      {"phase", f.phase}};
  if (!f.file.empty()) j["file"] = f.file;
  if (f.block) {
    j["block"] = *f.block;
    j["offset"] = *f.block * kBlockSize;
    if (f.blocks > 1) j["blocks"] = f.blocks;
  }
  if (!f.expected.empty()) j["expected"] = f.expected;
  if (!f.got.empty()) j["got"] = f.got;
  if (f.got_value) {
    const auto& v = *f.got_value;
    j["got_value"] = {{"class", block_class_name(v.cls)}, {"file_id", v.file_id}, {"block", v.block},
                      {"op", v.gen}};
    if (v.cls == BlockClass::kMixed) j["got_value"]["op2"] = v.gen2;
  }
  if (!f.ops.empty()) {
    j["ops"] = nlohmann::json::array();
    for (auto& o : f.ops) j["ops"].push_back(op_to_json(o));
  }
  if (!f.detail.empty()) j["detail"] = f.detail;
  if (!f.kernel_log.empty()) j["kernel_log"] = f.kernel_log;
  if (f.time_ns) j["time_ns"] = f.time_ns;
  if (!f.kernel_events.empty()) j["kernel_events"] = f.kernel_events;
  if (f.informational) j["informational"] = true;
  if (!f.explained_by.empty()) j["explained_by"] = f.explained_by;
  return j;
}

std::string finding_blocks_text(const nlohmann::json& f) {
  if (!f.is_object() || !f.contains("block") || !f["block"].is_number_unsigned()) return "";
  uint64_t b = f["block"].get<uint64_t>();
  uint64_t n = f.contains("blocks") && f["blocks"].is_number_unsigned() ? f["blocks"].get<uint64_t>() : 1;
  return n > 1 ? fmt::format("blocks {}-{}", b, b + n - 1) : fmt::format("block {}", b);
}

void FindingSet::add(Finding f, size_t keep) {
  std::string key = f.case_name + "\x1f" + f.cls;
  uint64_t n = ++(f.informational ? informational_by_class : total_by_class)[f.cls];
  (void)n;
  size_t same = 0;
  for (const auto& k : kept)
    if (k.case_name == f.case_name && k.cls == f.cls) ++same;
  if (same >= keep) {
    if (!f.informational) ++suppressed_by_class[f.cls];
    return;
  }
  kept.push_back(std::move(f));
}

void FindingSet::merge(const FindingSet& other, size_t keep) {
  for (const auto& f : other.kept) add(f, keep);
  for (const auto& [c, n] : other.informational_by_class) {
    uint64_t kept_n = 0;
    for (const auto& f : other.kept) kept_n += f.informational && f.cls == c;
    informational_by_class[c] += n - kept_n;  // the kept ones were counted by add()
  }
  for (const auto& [c, n] : other.suppressed_by_class) {
    suppressed_by_class[c] += n;
    total_by_class[c] += n;
  }
}

uint64_t FindingSet::total() const {
  uint64_t t = 0;
  for (const auto& [c, n] : total_by_class) t += n;
  return t;
}

}  // namespace fsrace
