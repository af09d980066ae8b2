// Analysis as a function of a case directory: everything fsrace decides about a case — the oracle
// over ops.bin, the space checks, the kernel log (kmsg.log), fsck results, workload errors, probe
// events (events.bin) and the rules that combine them — computed from the files the run wrote. The
// runner calls it on the directory it has just written, so a run's findings ARE analyze(its
// directory), and `fsrace analyze` re-judges a stored run after the judge improved.
//
// A case directory holds ops.bin, events.bin (probes on), kmsg.log and race.json: what only the run
// knows (schema below, documented in results/README.md).
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/findings.h"
#include "core/oplog.h"
#include "harness/kmsg_scan.h"

namespace fsrace {

inline constexpr const char* kRaceSchema = "fsrace-race/1";

// race.json: {"schema", "run": run record, "case": the case record as the run knows it (what ran, the
// measurements, the widening records, timings), "inputs": what the analysis needs besides the files
// (op_logging, interrupted, test_devices, device_name, space, fatal_errors, tolerated_errno, fsck,
// kmsg {captured, error, lost}, race_end_ns, probes_stopped)}.
struct CaseAnalysis {
  nlohmann::json run;   // the run record (race.json "run")
  nlohmann::json info;  // the case record with the analysis' results added
  FindingSet findings;
  std::string kmsg_text;            // kmsg.log as read
  std::vector<std::string> notes;   // what analysis could not do (a missing events.bin), for the terminal
};

// Reads and judges one case directory. Throws Fatal (one line naming the file and what to do) when a
// needed file is missing or malformed; a missing events.bin is a note, not an error.
// A case directory's race.json (Fatal with one line when it is missing or not one).
nlohmann::json read_race_json(const std::string& dir);
CaseAnalysis analyze_case(const std::string& case_dir);

// ---- the rules, exposed for their own tests ----------------------------------------------------------

struct InjectedBlock {
  std::string file;
  uint64_t block = 0;
};
// Data findings the kernel's DIO page-cache invalidation failure accounts for are marked
// (explained_by = "dio-collision", the colliding O_DIRECT write added to their ops); returns which kinds
// of rejected data the case has, for escalating notices. Blocks the test helper corrupted on purpose
// corroborate nothing.
DataCorroboration corroborate(FindingSet& findings, const OpLogData& data, const DioCollisionShown& dio,
                              const std::vector<InjectedBlock>& injected);

// Whether the case mixed O_DIRECT writes with cached writes or mappings (ops_by_kind of the race).
bool dio_mixed(const nlohmann::json& ops_by_kind);

// Blind spot of a broken revalidation: on XFS, in a scenario whose stock cases revalidate
// (writeback-vs-write), with a revalidation probe attached (xfs:xfs_iomap_invalid,
// xfs:xfs_wb_data_iomap_invalid, iomap:iomap_iter or xfs_iomap_valid()) and the XFS write / writeback
// mapping delays armed and delaying, a case that saw no stale-iomap revalidation gets this note ("" otherwise). A note, never a
// finding: zero revalidations also happen on a healthy kernel, just more rarely. `info`: the case record
// after the probe analysis.
std::string revalidation_note(const nlohmann::json& info);

}  // namespace fsrace

namespace fsrace {

// `fsrace analyze DIR`: a case directory, or a run directory (every case in it, then the run's merge —
// VM runs with their consoles and vm.json). Writes findings.json / summary.txt (and the run's kmsg.log)
// to `out` (default DIR/reanalysis, mirroring the case directories), or over the originals with
// in_place. Never modifies ops.bin, events.bin, kmsg.log of a case or race.json.
struct AnalyzeResult {
  std::string out;
  nlohmann::json doc;
  std::vector<std::string> notes;
  int exit_code = 0;  // of the document: 0, 1, or 2 / 130 for a run that did not complete
};
AnalyzeResult analyze_path(const std::string& dir, const std::string& out, bool in_place);

}  // namespace fsrace
