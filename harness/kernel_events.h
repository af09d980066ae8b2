// Analyzer for probe events (events.bin): attaches the kernel's side of the story to data findings
// (`kernel_events`: what happened to the same file range within the finding's time window) and finds
// what only the events show: reservation-leak, stale-iomap-seen (informational), dio-invalidate-failed.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/findings.h"
#include "core/oplog.h"
#include "probes/events.h"

namespace fsrace {

struct EventContext {
  std::string fs, scenario, case_name;
  uint64_t race_end_ns = 0;  // end of the race phase (0: unknown)
};

struct EventAnalysis {
  std::vector<Finding> findings;  // reservation-leak, dio-invalidate-failed, stale-iomap-seen
  nlohmann::json summary;         // counts per kind, drops, stale iomaps, reservation balance per inode
};

// Findings and summary from the events alone.
EventAnalysis analyze_events(const probes::EventsData& ev, const EventContext& ctx);

// Fills f.kernel_events for every finding with a file (and block) that the events cover: the events
// on that inode and range within [first op start - slack, last op end + slack], rendered as lines,
// led by an explanation of page-cache insertions relative to invalidations and the lock state.
void attach_kernel_events(std::vector<Finding>& findings, const probes::EventsData& ev, uint64_t slack_ns = 2000000);

// Data findings whose read was served a page the page cache got *inside* an O_DIRECT write: another
// path (a fault, read(2)) inserted the block's page after the write started (and after whatever the
// write invalidated) and before it completed — so with the pre-write data — and nothing removed it
// between then and the read. Such a finding gets explained_by = "dio-refill" and the sentence in its detail (still a
// failure: a filesystem must invalidate again after the write, as iomap and the generic DIO path do);
// the O_DIRECT write joins its ops. Needs the op log (the write) and events with nothing dropped.
// Returns how many findings it explained.
size_t explain_dio_refills(std::vector<Finding>& findings, const probes::EventsData& ev, const OpLogData& data);

// The explanation lines for block `block` of file `file` in [t0, t1] (exposed for tests).
std::vector<std::string> explain_range(const probes::EventsData& ev, const std::string& file, uint64_t first_block,
                                       uint64_t nblocks, uint64_t t0, uint64_t t1);

// The (dev, ino) pairs events.bin's trailer names `file` (a test file can be recreated: several).
std::set<std::pair<uint32_t, uint64_t>> inodes_of_file(const probes::EventsData& ev, const std::string& file);
// Page range [first, last] an event is about (last = ~0: to EOF); nullopt for events without one (locks).
std::optional<std::pair<uint64_t, uint64_t>> event_page_range(const fsr_event& e);
// Who did it, in the workload's words: "the fault path (mmap reader) (fsr-mmap2[7677])".
std::string event_actor(const fsr_event& e);

}  // namespace fsrace
