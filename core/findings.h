// Findings: what fsrace reports, one record per thing the kernel did wrong (or a kernel-log splat),
// and their JSON form (schema in results/README.md).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/oplog.h"
#include "core/stamp.h"

namespace fsrace {

struct FindingClassInfo {
  const char* name;
  const char* source;  // "data" (oracle), "kernel-log", "run"
  const char* meaning;
};

// Every finding class fsrace can report (for `fsrace list classes` and validation).
const std::vector<FindingClassInfo>& finding_classes();

struct Finding {
  std::string cls;
  std::string fs;
  std::string scenario;
  std::string case_name;
  std::string phase;          // race, verify-cache, verify-mmap, verify-direct, verify-disk, space, kernel-log
  std::string file;           // file name inside the test filesystem
  std::optional<uint64_t> block;
  uint64_t blocks = 1;        // consecutive blocks from `block` that one read got wrong alike (got: the first's)
  std::vector<std::string> expected;  // human-readable allowed values
  std::string got;
  std::optional<BlockValue> got_value;
  std::vector<OpRecord> ops;  // the read and the op(s) that decide it
  std::string detail;
  std::vector<std::string> kernel_log;  // matching line and its context
  uint64_t time_ns = 0;       // CLOCK_MONOTONIC of the event (read start, log line)
  // probes (issue 3): what the kernel did on the same range in the finding's window, as readable lines
  std::vector<std::string> kernel_events;
  bool informational = false;  // counted and listed, but not a failure (e.g. stale-iomap-seen)
  // A known kernel behaviour that accounts for this data finding (still a failure): "dio-collision" when
  // the kernel reported a DIO page-cache invalidation failure in the case and an O_DIRECT write is among
  // the finding's ops or hit the same blocks just before (colliding_dio_write; the kernel warns "Possible
  // data corruption" for exactly this).
  std::string explained_by;
};

// The fields every finding starts with: its class, the case it belongs to and the phase that found it.
Finding make_finding(std::string cls, std::string fs, std::string scenario, std::string case_name, std::string phase);

nlohmann::json op_to_json(const OpRecord& r);
nlohmann::json finding_to_json(const Finding& f);
// "block 12" or "blocks 12-15" for a finding's JSON form ("" without a block): how every report names it.
std::string finding_blocks_text(const nlohmann::json& f);

// Groups findings, keeps at most `keep` detailed records per (case, class), counts the rest.
struct FindingSet {
  std::vector<Finding> kept;
  std::map<std::string, uint64_t> total_by_class;
  std::map<std::string, uint64_t> suppressed_by_class;
  std::map<std::string, uint64_t> informational_by_class;  // not in total(): they do not fail a run
  void add(Finding f, size_t keep = 50);
  void merge(const FindingSet& other, size_t keep = 50);
  uint64_t total() const;
};

}  // namespace fsrace
