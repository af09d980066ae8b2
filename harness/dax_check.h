// DAX flush check (the dax-sync-vs-write-fault scenario's oracle beyond the data): every store through a
// shared mapping of a DAX file that ended before a successful msync(MS_SYNC) / fsync of its range began
// must have had its DAX entry flushed (fs_dax:dax_writeback_one covering the page) between the store's
// start and the sync's return. Under QEMU a missed flush loses nothing (its NVDIMM has no volatile
// cache), so a power cut cannot show this class of bug (seed 003: a dirty PTE entry replaced by a clean
// PMD entry makes fsync skip it); the flush events can. Lenient by construction: any flush of the page
// in that interval counts, and pages punched, zeroed, shifted or rewritten by pwrite in between are not
// judged. Pure function of the op log and the events.
#pragma once
#include <string>
#include <vector>

#include "core/findings.h"
#include "core/oplog.h"
#include "probes/events.h"

namespace fsrace {

struct DaxFlushStats {
  uint64_t stores_judged = 0;    // mmap-write ops with a later successful sync of some of their pages
  uint64_t pages_judged = 0;     // (store, page) pairs checked
  uint64_t flush_events = 0;     // dax_writeback_one events on the test files
  uint64_t pages_unflushed = 0;  // pairs with no flush in the interval
  std::string skipped;           // why nothing was judged ("" = judged)
};

// `flush_probe_attached`: fs_dax:dax_writeback_one was attached for the whole race (else nothing is
// judged: an absent event proves nothing). Dropped events also skip the check.
std::vector<Finding> check_dax_flushes(const OpLogData& ops, const probes::EventsData& ev, bool flush_probe_attached,
                                       const std::string& fs, const std::string& scenario, const std::string& case_name,
                                       DaxFlushStats* stats = nullptr);

}  // namespace fsrace
