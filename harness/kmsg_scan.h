// The kernel-log analyzer: the only code that interprets kernel messages. Fed by /dev/kmsg records
// (host mode) or a serial console log (VM mode, later), it turns splats and filesystem error lines into
// typed findings with the matching line and its context.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "harness/findings.h"

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

struct KmsgScanResult {
  std::vector<Finding> findings;
  // Known messages that are not bugs by themselves (counted and shown, not findings).
  uint64_t dio_invalidate_failures = 0;  // "Page cache invalidation failure on direct I/O"
  uint64_t lines = 0;
};

// The class a line starts, or "" for none (exposed for tests).
std::string classify_kmsg_line(const std::string& text);

KmsgScanResult scan_kmsg(const std::vector<KmsgLine>& lines, const KmsgScanOptions& opt);

}  // namespace fsrace
