#include "harness/kmsg_scan.h"

#include <algorithm>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/core.h>
#include <optional>
#include <regex>

namespace fsrace {
namespace {

struct Pattern {
  const char* cls;
  const char* needle;  // substring match, checked in table order
};

// Order matters: specific reports before the generic WARNING:/BUG: prefixes they also carry.
const Pattern kPatterns[] = {
    {"kernel-crash", "Kernel panic - not syncing"},
    {"ext4-reservation", "i_reserved_data_blocks"},
    {"ext4-reservation", "i_reserved_meta_blocks"},
    {"ext4-reservation", "reserved data blocks"},  // ext4_da_release_space / update_reserve_space
    {"ext4-reservation", "Delayed block allocation failed"},
    {"ext4-reservation", "This should not happen!! Data will be lost"},
    {"kasan", "BUG: KASAN:"},
    {"kasan", "KASAN: "},
    {"ubsan", "UBSAN:"},
    {"lockdep", "possible circular locking dependency detected"},
    {"lockdep", "possible recursive locking detected"},
    {"lockdep", "inconsistent lock state"},
    {"lockdep", "possible irq lock inversion dependency detected"},
    {"lockdep", "bad unlock balance detected"},
    {"lockdep", "held lock freed"},
    {"lockdep", "lock held when returning to user space"},
    {"lockdep", "suspicious unlock"},
    {"rcu", "suspicious RCU usage"},
    {"rcu", "self-detected stall on CPU"},
    {"rcu", "detected stalls on CPUs/tasks"},
    {"hung-task", "blocked for more than"},
    {"soft-lockup", "soft lockup - CPU#"},
    {"soft-lockup", "Watchdog detected hard LOCKUP"},
    {"kernel-oops", "BUG: unable to handle"},
    {"kernel-oops", "BUG: kernel NULL pointer dereference"},
    {"kernel-oops", "general protection fault"},
    {"kernel-oops", "Oops: "},
    {"kernel-bug", "kernel BUG at"},
    {"kernel-bug", "BUG: "},
    {"xfs-error", "XFS: Assertion failed"},
    {"xfs-error", "Internal error"},
    {"xfs-error", "Corruption detected"},
    {"xfs-error", "Metadata corruption detected"},
    {"xfs-error", "Metadata CRC error"},
    {"xfs-error", "Corruption of in-memory data"},
    {"xfs-error", "Filesystem has been shut down"},
    {"xfs-error", "xfs_do_force_shutdown"},
    {"xfs-error", "log I/O error"},
    {"ext4-error", "EXT4-fs error"},
    {"ext4-error", "EXT4-fs warning"},
    {"ext4-error", "EXT4-fs critical"},
    {"ext4-error", "Remounting filesystem read-only"},
    {"ext4-error", "Detected aborted journal"},
    {"kernel-warning", "WARNING: "},
};

// Known messages that are not bugs by themselves (see KmsgNotice). Checked before kPatterns.
struct NoticeRule {
  const char* rule;
  const char* needle;
  const char* escalates_to;
  const char* why;
};
const NoticeRule kNoticeRules[] = {
    // Printed by the iomap / generic DIO paths whenever O_DIRECT collides with buffered or mmap I/O on
    // the same range; stock kernels print it under fstests generic/095, which filters it on purpose.
    {"dio-invalidate-failure", "Page cache invalidation failure on direct I/O", "kernel-warning",
     "O_DIRECT collided with cached I/O; only a bug if data went wrong"},
    // ext4_evict_inode() warns when an inode with a page still tagged dirty is evicted (added in 2026,
    // backported to stable). Seen here on 6.18 at unmount after fsync + sync with all data verified on
    // disk, so it is corroborated by the oracle before it counts.
    {"ext4-evict-dirty-tag", "data will be lost", "ext4-error",
     "inode evicted with a page tagged dirty; a finding when the oracle also sees lost or stale data"},
    // Printed alongside the DIO invalidation failure when buffered writes raced the direct write.
    {"dio-collision", "Direct I/O collision with buffered writes", "kernel-warning",
     "O_DIRECT raced buffered writes on the same range; only a bug if data went wrong"},
    // ext4_convert_unwritten_extents_endio() with CONFIG_EXT4_DEBUG: the written range is smaller than
    // the unwritten extent, which ext4 then splits ("TODO: ... should be illegal" in the source).
    {"ext4-debug-extent-split", "finished: extent logical block", "ext4-error",
     "CONFIG_EXT4_DEBUG-only note; ext4 splits the extent and continues"},
};

const NoticeRule* notice_rule(const std::string& t) {
  for (const auto& r : kNoticeRules)
    if (t.find(r.needle) != std::string::npos) return &r;
  return nullptr;
}

// Lines that belong to a report already open and never start one of their own.
bool is_trace_end(const std::string& t) {
  return t.find("---[ end trace") != std::string::npos || t.find("---[ end Kernel panic") != std::string::npos;
}

// "EXT4-fs (loop3)", "EXT4-fs error (device loop3)", "XFS (loop3)": the device a line names, if any.
std::string device_of(const std::string& t) {
  static const std::regex re(R"((?:EXT4-fs|XFS)[^(]*\((?:device )?([A-Za-z0-9_.-]+)\))");
  std::smatch m;
  if (std::regex_search(t, m, re)) return m[1];
  return "";
}

// The device a block-layer I/O error line names ("I/O error, dev loop0, sector ...", "Buffer I/O error on
// dev dm-0, logical block ..."), or "" for another line.
std::string io_error_device(const std::string& t) {
  if (t.find("I/O error") == std::string::npos) return "";
  static const std::regex re(R"((?:I/O error, dev |Buffer I/O error on dev(?:ice)? )([A-Za-z0-9_.-]+))");
  std::smatch m;
  if (std::regex_search(t, m, re)) return m[1];
  return "";
}

// Classes whose report is a single line unless a stack trace follows it.
bool single_line(const std::string& cls, const std::string& t) {
  if (cls == "ceph-error") return t.find("WARNING: ") == std::string::npos;
  if (cls == "ext4-error" || cls == "ext4-reservation") return true;
  if (cls == "xfs-error") return t.find("Assertion failed") == std::string::npos && t.find("Internal error") == std::string::npos;
  return false;
}

// A line that continues a stack dump or register dump.
bool trace_continuation(const std::string& u) {
  if (!u.empty() && (u[0] == ' ' || u[0] == '\t')) return true;
  static const char* kPrefixes[] = {"CPU: ", "Hardware name:", "Call Trace:", "RIP: ", "RSP: ", "RAX: ", "RDX: ",
                                    "RBP: ", "R10: ", "R13: ", "FS: ", "CS: ", "CR2: ", "Code: ", "Modules linked in",
                                    "<TASK>", "</TASK>", "? ", "---[ end trace", "Workqueue:"};
  for (const char* p : kPrefixes)
    if (u.rfind(p, 0) == 0) return true;
  return false;
}

}  // namespace

bool parse_kmsg_record(const std::string& rec, KmsgLine* out) {
  size_t semi = rec.find(';');
  if (semi == std::string::npos) return false;
  unsigned long long prio, seq, ts;
  if (std::sscanf(rec.c_str(), "%llu,%llu,%llu", &prio, &seq, &ts) != 3) return false;
  out->level = int(prio & 7);
  out->seq = seq;
  out->ts_us = ts;
  size_t end = rec.find('\n', semi + 1);
  std::string msg = rec.substr(semi + 1, end == std::string::npos ? std::string::npos : end - semi - 1);
  // /dev/kmsg escapes non-printable bytes as \xNN; keep them as they are.
  out->text = std::move(msg);
  return true;
}

std::vector<KmsgLine> parse_log_text(const std::string& text) {
  std::vector<KmsgLine> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    KmsgLine l;
    unsigned long sec = 0, usec = 0;
    int n = 0;
    if (line.size() > 2 && line[0] == '[' && std::sscanf(line.c_str(), "[%lu.%lu]%n", &sec, &usec, &n) == 2 && n > 0) {
      l.ts_us = uint64_t(sec) * 1000000 + usec;
      size_t s = size_t(n);
      if (s < line.size() && line[s] == ' ') ++s;
      l.text = line.substr(s);
    } else {
      l.text = line;
    }
    l.seq = out.size();
    out.push_back(std::move(l));
  }
  return out;
}

std::string format_kmsg_line(const KmsgLine& l) {
  return fmt::format("[{:5}.{:06}] {}", l.ts_us / 1000000, l.ts_us % 1000000, l.text);
}

// The ceph kernel client (fs/ceph, net/ceph) prefixes its messages "ceph: " / "libceph: " and prints
// session and map changes at info level too ("mon0 ... session established"): only lines that say
// something went wrong are errors.
static bool ceph_error_line(const std::string& t) {
  size_t at = t.rfind("libceph: ", 0) == 0 ? 9 : t.rfind("ceph: ", 0) == 0 ? 6 : std::string::npos;
  if (at == std::string::npos) return false;
  static const char* kWords[] = {"error", "corrupt", "bad ", "badness", "failed", "fail ", "hung", "caps stale", "denied",
                                 "wrong", "session lost", "socket closed", "problem", "invalid", "unable", "rejected",
                                 "closed our session", "blocklisted", "blacklisted", "full"};
  for (const char* w : kWords)
    if (t.find(w, at) != std::string::npos) return true;
  return false;
}

std::string classify_kmsg_line(const std::string& text) {
  if (ceph_error_line(text)) return "ceph-error";
  // A WARN_ON in the ceph client: "WARNING: CPU: 0 PID: 12 at fs/ceph/caps.c:1234 ..."
  if (text.find("WARNING: ") != std::string::npos &&
      (text.find(" at fs/ceph/") != std::string::npos || text.find(" at net/ceph/") != std::string::npos))
    return "ceph-error";
  for (const auto& p : kPatterns)
    if (text.find(p.needle) != std::string::npos) return p.cls;
  return "";
}

bool eio_expected_after_dio_collision(const std::string& op_kind, int64_t result, const KmsgScanResult& ks,
                                      bool dio_mixed) {
  if (result != -EIO || ks.block_io_errors) return false;
  bool collision = dio_mixed || dio_collision_reported(ks.notices);
  return collision && (op_kind == "fsync" || op_kind == "sync-file-range" || op_kind == "dio-read" ||
                       op_kind == "dio-write");
}

std::string DioCollisionShown::explanation() const {
  if (logged)
    return "the kernel reported a page-cache invalidation failure on direct I/O in this case (\"Possible data "
           "corruption due to collision with buffered I/O\"): cached reads after a colliding O_DIRECT write may "
           "keep stale data";
  return "fsync / sync_file_range / O_DIRECT returned EIO in this case with no I/O error on the device: the "
         "writeback error the kernel sets when a direct write cannot invalidate the page cache (its warning, "
         "rate-limited to 10 a day, was not printed): cached reads after a colliding O_DIRECT write may keep "
         "stale data";
}

DioCollisionShown dio_collision_shown(const KmsgScanResult& ks, const std::vector<FailedSyscall>& failed,
                                      bool dio_mixed) {
  DioCollisionShown s;
  s.logged = dio_collision_reported(ks.notices);
  s.wb_error = dio_mixed && std::any_of(failed.begin(), failed.end(), [&](const FailedSyscall& f) {
                 return eio_expected_after_dio_collision(f.op_kind, f.result, ks, dio_mixed);
               });
  return s;
}

bool is_data_finding_class(const std::string& cls) {
  return cls == "stale" || cls == "stale-after-punch" || cls == "lost-write" || cls == "foreign" || cls == "torn" ||
         cls == "cache-incoherent";
}

bool is_dio_notice(const std::string& rule) { return rule == "dio-invalidate-failure" || rule == "dio-collision"; }

bool dio_collision_reported(const std::vector<KmsgNotice>& notices) {
  for (const auto& n : notices)
    if (is_dio_notice(n.rule)) return true;
  return false;
}

const OpRecord* colliding_dio_write(const OpLogData& data, const Finding& f) {
  if (f.ops.empty()) return nullptr;
  const OpRecord& read = f.ops.front();
  uint64_t from = read.start_ns > kDioCollisionWindowNs ? read.start_ns - kDioCollisionWindowNs : 0;
  const OpRecord* best = nullptr;
  for (const auto& w : data.ops) {
    if (OpKind(w.kind) != OpKind::kDioWrite || w.file != read.file || w.result <= 0) continue;
    if (w.end_ns < from || w.start_ns >= read.end_ns) continue;
    bool same_blocks = std::any_of(f.ops.begin(), f.ops.end(), [&](const OpRecord& o) {
      return o.file == w.file && o.offset < w.offset + w.length && w.offset < o.offset + o.length;
    });
    if (same_blocks && (!best || w.end_ns > best->end_ns)) best = &w;
  }
  return best;
}

std::vector<Finding> escalate_notices(const std::vector<KmsgNotice>& notices, DataCorroboration data,
                                      const KmsgScanOptions& opt) {
  std::vector<Finding> out;
  for (const auto& n : notices) {
    if (!(is_dio_notice(n.rule) ? data.dio : data.other)) continue;
    Finding f = make_finding(n.escalates_to, opt.fs, opt.scenario, opt.case_name, "kernel-log");
    f.got = n.lines.front();
    f.detail = fmt::format("known message '{}' together with data the oracle rejected in this case", n.rule);
    f.kernel_log = n.lines;
    f.time_ns = n.ts_us * 1000;
    out.push_back(std::move(f));
  }
  return out;
}

// "EXT4-fs warning: 4 callbacks suppressed": the ratelimit of a message family dropped some of its
// messages. They are taken to be like the last message of that family printed before: part of the same
// notice (a known message) or of the same finding. With no earlier message of the family the line is
// classified on its own (the suppressed messages are unknown).
std::optional<std::string> suppressed_family(const std::string& t) {
  static const std::regex re(R"(^(.+): [0-9]+ callbacks suppressed$)");
  std::smatch m;
  if (std::regex_match(t, m, re)) return m[1].str();
  return std::nullopt;
}

KmsgScanResult scan_kmsg(const std::vector<KmsgLine>& lines, const KmsgScanOptions& opt) {
  KmsgScanResult r;
  r.lines = lines.size();
  size_t i = 0;
  for (const auto& l : lines) {
    std::string dev = io_error_device(l.text);
    if (!dev.empty() && (opt.devices.empty() || opt.devices.count(dev))) ++r.block_io_errors;
  }
  while (i < lines.size()) {
    const std::string& t = lines[i].text;
    if (auto fam = suppressed_family(t)) {
      const std::string* prev = nullptr;
      for (size_t k = i; k-- > 0;)
        if (lines[k].text.find(*fam) != std::string::npos && !suppressed_family(lines[k].text)) {
          prev = &lines[k].text;
          break;
        }
      if (prev) {
        if (const NoticeRule* nr = notice_rule(*prev)) {
          for (size_t k = r.notices.size(); k-- > 0;)
            if (r.notices[k].rule == nr->rule) {
              r.notices[k].lines.push_back(format_kmsg_line(lines[i]));
              break;
            }
          ++i;
          continue;
        }
        if (!classify_kmsg_line(*prev).empty()) {  // the finding of that message stands for them
          ++i;
          continue;
        }
      }
    }
    if (const NoticeRule* nr = notice_rule(t)) {
      std::string dev = device_of(t);
      if (opt.devices.empty() || dev.empty() || opt.devices.count(dev)) {
        KmsgNotice n{nr->rule, nr->escalates_to, {format_kmsg_line(lines[i])}, lines[i].ts_us};
        size_t j = i + 1;
        // "File: ... PID: ... Comm: ..." follows the DIO message.
        for (; j < lines.size() && n.lines.size() < 4 && (lines[j].text.rfind("File: ", 0) == 0 || trace_continuation(lines[j].text)); ++j)
          n.lines.push_back(format_kmsg_line(lines[j]));
        if (std::string(nr->rule) == "dio-invalidate-failure") ++r.dio_invalidate_failures;
        r.notices.push_back(std::move(n));
        i = j;
        continue;
      }
    }
    std::string cls = classify_kmsg_line(t);
    if (cls.empty()) {
      ++i;
      continue;
    }
    if (!opt.devices.empty() && (cls == "ext4-error" || cls == "ext4-reservation" || cls == "xfs-error")) {
      std::string dev = device_of(t);
      if (!dev.empty() && !opt.devices.count(dev)) {
        ++i;
        continue;
      }
    }
    Finding f = make_finding(cls, opt.fs, opt.scenario, opt.case_name, "kernel-log");
    f.got = t;
    f.time_ns = lines[i].ts_us * 1000;
    if (i > 0 && lines[i - 1].text.find("[ cut here ]") != std::string::npos)
      f.kernel_log.push_back(format_kmsg_line(lines[i - 1]));
    f.kernel_log.push_back(format_kmsg_line(lines[i]));
    size_t j = i + 1;
    for (; j < lines.size() && f.kernel_log.size() < opt.max_context; ++j) {
      const std::string& u = lines[j].text;
      // An XFS assertion is followed by the WARNING that assfail() raises: same report.
      if (u.find("[ cut here ]") != std::string::npos && cls != "xfs-error") break;
      if (single_line(cls, t) && !trace_continuation(u)) break;
      std::string c2 = classify_kmsg_line(u);
      // A new report starts: stop (the Oops line after "BUG: unable to handle" belongs to it, though).
      if (!c2.empty() && !(cls == "kernel-oops" && c2 == "kernel-oops") && c2 != "kernel-warning") break;
      f.kernel_log.push_back(format_kmsg_line(lines[j]));
      if (is_trace_end(u)) {
        ++j;
        break;
      }
    }
    r.findings.push_back(std::move(f));
    i = j;
  }
  return r;
}

}  // namespace fsrace
