// How often the racing ops actually raced: the share of modifying ops (writes of every kind, punch,
// zero range; fallocate counts as an attempt too) that overlapped in time a read or fault of the same
// file blocks by another thread. The figure widening is meant to raise (bench and run summary).
#pragma once
#include <cstdint>

#include "core/oplog.h"

namespace fsrace {

struct OverlapStats {
  uint64_t attempts = 0;    // modifying ops in the race phase
  uint64_t overlapped = 0;  // of those, the ones a read on intersecting blocks overlapped in time
  double share() const { return attempts ? double(overlapped) / double(attempts) : 0.0; }
};

OverlapStats overlap_stats(const OpLogData& d);

}  // namespace fsrace
