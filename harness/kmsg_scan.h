// The kernel-log analyzer: the only code that interprets kernel messages. Fed by /dev/kmsg records
// (host mode) or a serial console log (VM mode, later), it turns splats and filesystem error lines into
// typed findings with the matching line and its context.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/findings.h"

namespace fsrace {

struct KmsgLine {
  uint64_t seq = 0;
  uint64_t ts_us = 0;  // printk timestamp (µs since boot)
  int level = 6;
  std::string text;
};

// Parses one /dev/kmsg record ("prio,seq,ts,flags;message\n KEY=val..."); false if malformed.
bool parse_kmsg_record(const std::string& rec, KmsgLine* out);
// Parses a dmesg-style / console text log ("[  12.345678] message" or bare lines).
std::vector<KmsgLine> parse_log_text(const std::string& text);
// "[   12.345678] message"
std::string format_kmsg_line(const KmsgLine& l);

struct KmsgScanOptions {
  // Block devices under test (e.g. "loop3"). When non-empty, ext4/XFS lines that name another device
  // are not findings (the host's own filesystems may print while a run is in progress).
  std::set<std::string> devices;
  std::string fs, scenario, case_name;
  size_t max_context = 80;
};

// Known kernel messages that are not bugs by themselves. Each is counted and shown; it becomes a
// finding (of class `escalates_to`) only when the same case also has data the oracle rejected.
// The table lives in kmsg_scan.cpp (kNoticeRules) and is documented in results/README.md.
struct KmsgNotice {
  std::string rule;          // e.g. "dio-invalidate-failure"
  std::string escalates_to;  // finding class when corroborated by bad data
  std::vector<std::string> lines;  // the message and its continuation lines
  uint64_t ts_us = 0;
};

struct KmsgScanResult {
  std::vector<Finding> findings;
  std::vector<KmsgNotice> notices;
  uint64_t dio_invalidate_failures = 0;  // "Page cache invalidation failure on direct I/O"
  uint64_t block_io_errors = 0;  // "I/O error, dev <dev>" / "Buffer I/O error on dev <dev>" for a device under test
  uint64_t lines = 0;
};

// dio_warn_stale_pagecache() sets the mapping's writeback error to -EIO whenever a direct write cannot
// invalidate the cached range (its message is rate-limited to 10 a day, the EIO is not), so later fsync /
// sync_file_range / O_DIRECT calls on that file report EIO: expected, not a finding, when the log shows
// the collision or the case mixed O_DIRECT writes with cached writes or mappings (`dio_mixed`), and the
// device under test logged no I/O error (a real one is the other source of such an EIO).
bool eio_expected_after_dio_collision(const std::string& op_kind, int64_t result, const KmsgScanResult& ks,
                                      bool dio_mixed);

// How a case showed that a direct write could not invalidate the page cache (dio_warn_stale_pagecache):
// its kernel message, or -- the message is rate-limited to 10 a day, so on a host that ran fsrace earlier
// the same day it is usually gone -- the -EIO it leaves in the file's writeback error, which a later
// fsync / sync_file_range / O_DIRECT call returns (never rate-limited; see eio_expected_after_dio_collision).
struct DioCollisionShown {
  bool logged = false;     // the kernel printed the warning
  bool wb_error = false;   // an EIO that only the collision explains came back from a syscall
  bool any() const { return logged || wb_error; }
  // The sentence appended to a data finding the collision explains.
  std::string explanation() const;
};
struct FailedSyscall {
  std::string op_kind;
  int64_t result;
};
DioCollisionShown dio_collision_shown(const KmsgScanResult& ks, const std::vector<FailedSyscall>& failed,
                                      bool dio_mixed);

// Data-finding classes that corroborate a notice.
bool is_data_finding_class(const std::string& cls);
// What the oracle rejected in a case, for corroborating notices: data findings that involve an O_DIRECT
// write while the kernel reported a DIO page-cache invalidation failure (`dio`), and any other data
// findings (`other`).
struct DataCorroboration {
  bool dio = false;
  bool other = false;
};
// Notices that become findings: the DIO collision messages when data involving an O_DIRECT write was
// rejected; every other known message when other data was rejected.
std::vector<Finding> escalate_notices(const std::vector<KmsgNotice>& notices, DataCorroboration data,
                                      const KmsgScanOptions& opt);
// The DIO page-cache invalidation failure / collision messages; whether the notices include one.
bool is_dio_notice(const std::string& rule);
bool dio_collision_reported(const std::vector<KmsgNotice>& notices);
// For a data finding whose own ops hold no O_DIRECT write: an O_DIRECT write to the same file and blocks
// as one of those ops (the read, or the write whose data went missing) that ended at most
// kDioCollisionWindowNs before the finding's read started (or overlapped it), if any. In a case where the
// kernel reported the collision this is the write it warned about: the colliding write sits between the
// finding's ops, e.g. an O_DIRECT write, then a buffered write of the same block into a folio the DIO
// could not invalidate, whose data a later read no longer sees (seen on XFS 6.18 in `mixed`).
inline constexpr uint64_t kDioCollisionWindowNs = 100'000'000;
const OpRecord* colliding_dio_write(const OpLogData& data, const Finding& f);

// The class a line starts, or "" for none (exposed for tests).
std::string classify_kmsg_line(const std::string& text);

KmsgScanResult scan_kmsg(const std::vector<KmsgLine>& lines, const KmsgScanOptions& opt);

}  // namespace fsrace
