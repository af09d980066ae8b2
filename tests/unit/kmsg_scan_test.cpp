// The kernel-log analyzer on real-format log excerpts (tests/data/kmsg/*.log).
#include "harness/kmsg_scan.h"

#include <gtest/gtest.h>

#include "core/util.h"

using namespace fsrace;

namespace {
std::vector<std::string> scan_file(const std::string& name, std::set<std::string> devices = {}, KmsgScanResult* res = nullptr) {
  auto lines = parse_log_text(read_file(std::string(FSRACE_TEST_DATA) + "/kmsg/" + name));
  KmsgScanOptions o;
  o.devices = std::move(devices);
  KmsgScanResult r = scan_kmsg(lines, o);
  std::vector<std::string> out;
  for (const auto& f : r.findings) out.push_back(f.cls);
  if (res) *res = r;
  return out;
}
using V = std::vector<std::string>;
}  // namespace

TEST(KmsgScan, Ext4ReservationLeakLine) {
  KmsgScanResult r;
  EXPECT_EQ(scan_file("ext4_reservation.log", {}, &r), V{"ext4-reservation"});
  ASSERT_EQ(r.findings[0].kernel_log.size(), 1u);  // a one-line message: no unrelated context
  EXPECT_NE(r.findings[0].kernel_log[0].find("i_reserved_data_blocks(1) not cleared!"), std::string::npos);
}

TEST(KmsgScan, Ext4ReleaseSpaceWarningAndMessage) {
  KmsgScanResult r;
  EXPECT_EQ(scan_file("ext4_release_space.log", {}, &r), (V{"kernel-warning", "ext4-reservation"}));
  const auto& ctx = r.findings[0].kernel_log;
  EXPECT_NE(ctx.front().find("[ cut here ]"), std::string::npos);
  EXPECT_NE(ctx.back().find("---[ end trace"), std::string::npos);
  EXPECT_NE(r.findings[0].got.find("ext4_da_release_space"), std::string::npos);
}

TEST(KmsgScan, GenericWarningKeepsItsTraceOnly) {
  KmsgScanResult r;
  EXPECT_EQ(scan_file("warning.log", {}, &r), V{"kernel-warning"});
  EXPECT_EQ(r.findings[0].kernel_log.size(), 15u);  // cut here .. end trace, not the later mount line
}

TEST(KmsgScan, Lockdep) {
  EXPECT_EQ(scan_file("lockdep.log"), V{"lockdep"});
  EXPECT_EQ(scan_file("recursive_locking.log"), V{"lockdep"});
}

TEST(KmsgScan, KasanIsNotAlsoAKernelBug) { EXPECT_EQ(scan_file("kasan.log"), V{"kasan"}); }
TEST(KmsgScan, Ubsan) { EXPECT_EQ(scan_file("ubsan.log"), V{"ubsan"}); }
TEST(KmsgScan, KernelBugAt) { EXPECT_EQ(scan_file("kernel_bug.log"), V{"kernel-bug"}); }
TEST(KmsgScan, SleepingInAtomicIsABug) { EXPECT_EQ(scan_file("sleeping_in_atomic.log"), V{"kernel-bug"}); }
TEST(KmsgScan, NullDerefOopsIsOneFinding) { EXPECT_EQ(scan_file("oops.log"), V{"kernel-oops"}); }
TEST(KmsgScan, GeneralProtectionFault) { EXPECT_EQ(scan_file("gpf.log"), V{"kernel-oops"}); }
TEST(KmsgScan, HungTask) { EXPECT_EQ(scan_file("hung_task.log"), V{"hung-task"}); }
TEST(KmsgScan, SoftLockup) { EXPECT_EQ(scan_file("soft_lockup.log"), V{"soft-lockup"}); }
TEST(KmsgScan, SuspiciousRcu) { EXPECT_EQ(scan_file("rcu.log"), V{"rcu"}); }

TEST(KmsgScan, XfsAssertionSwallowsItsWarning) { EXPECT_EQ(scan_file("xfs_assert.log"), V{"xfs-error"}); }

TEST(KmsgScan, XfsCorruption) { EXPECT_EQ(scan_file("xfs_corruption.log"), V{"xfs-error"}); }

TEST(KmsgScan, XfsInternalErrorAndShutdown) {
  EXPECT_EQ(scan_file("xfs_shutdown.log"), (V{"xfs-error", "xfs-error", "xfs-error", "xfs-error"}));
}

TEST(KmsgScan, Ext4ErrorAndReadOnlyRemount) {
  EXPECT_EQ(scan_file("ext4_error.log"), (V{"ext4-error", "ext4-error"}));
}

TEST(KmsgScan, CleanRunHasNoFinding) { EXPECT_EQ(scan_file("clean_run.log"), V{}); }

TEST(KmsgScan, DioInvalidationFailureIsCountedNotAFinding) {
  KmsgScanResult r;
  EXPECT_EQ(scan_file("dio_invalidate.log", {}, &r), V{});
  EXPECT_EQ(r.dio_invalidate_failures, 2u);
  ASSERT_EQ(r.notices.size(), 2u);
  EXPECT_EQ(r.notices[0].rule, "dio-invalidate-failure");
  EXPECT_EQ(r.notices[0].lines.size(), 2u);  // the message and its File: line
  KmsgScanOptions o;
  EXPECT_TRUE(escalate_notices(r.notices, {}, o).empty());
  // Data findings that do not involve an O_DIRECT write do not corroborate the DIO messages.
  EXPECT_TRUE(escalate_notices(r.notices, {.dio = false, .other = true}, o).empty());
  auto esc = escalate_notices(r.notices, {.dio = true, .other = false}, o);
  ASSERT_EQ(esc.size(), 2u);
  EXPECT_EQ(esc[0].cls, "kernel-warning");
  EXPECT_EQ(esc[0].kernel_log.size(), 2u);
}

TEST(KmsgScan, Ext4EvictDirtyTagNeedsCorroboration) {
  KmsgScanResult r;
  EXPECT_EQ(scan_file("ext4_evict_dirty.log", {"loop0"}, &r), V{});
  ASSERT_EQ(r.notices.size(), 1u);
  EXPECT_EQ(r.notices[0].rule, "ext4-evict-dirty-tag");
  KmsgScanOptions o;
  EXPECT_TRUE(escalate_notices(r.notices, {.dio = true, .other = false}, o).empty());
  auto esc = escalate_notices(r.notices, {.dio = false, .other = true}, o);
  ASSERT_EQ(esc.size(), 1u);
  EXPECT_EQ(esc[0].cls, "ext4-error");
  // On another device it is neither a notice nor a finding.
  EXPECT_EQ(scan_file("ext4_evict_dirty.log", {"loop7"}, &r), V{});
  EXPECT_TRUE(r.notices.empty());
}

TEST(KmsgScan, DataFindingClasses) {
  for (const char* c : {"stale", "stale-after-punch", "lost-write", "foreign", "torn", "cache-incoherent"})
    EXPECT_TRUE(is_data_finding_class(c)) << c;
  for (const char* c : {"space-leak", "kernel-warning", "ext4-error"}) EXPECT_FALSE(is_data_finding_class(c)) << c;
}

TEST(KmsgScan, OtherDevicesAreIgnoredWhenDevicesAreKnown) {
  EXPECT_EQ(scan_file("other_device.log", {"loop3"}), V{"ext4-reservation"});
  EXPECT_EQ(scan_file("other_device.log"), (V{"ext4-error", "ext4-reservation"}));
}

TEST(KmsgScan, ParsesKmsgRecords) {
  KmsgLine l;
  ASSERT_TRUE(parse_kmsg_record("3,1234,815402118,-;EXT4-fs (loop3): Inode 13: i_reserved_data_blocks(1) not cleared!\n"
                                " SUBSYSTEM=block\n DEVICE=b7:3\n",
                                &l));
  EXPECT_EQ(l.level, 3);
  EXPECT_EQ(l.seq, 1234u);
  EXPECT_EQ(l.ts_us, 815402118u);
  EXPECT_EQ(l.text, "EXT4-fs (loop3): Inode 13: i_reserved_data_blocks(1) not cleared!");
  EXPECT_EQ(format_kmsg_line(l), "[  815.402118] EXT4-fs (loop3): Inode 13: i_reserved_data_blocks(1) not cleared!");
  EXPECT_FALSE(parse_kmsg_record("garbage without separator", &l));
}

TEST(KmsgScan, ParsesConsoleTextWithAndWithoutTimestamps) {
  auto v = parse_log_text("[    1.234567] hello\nplain line\r\n[12345.000001] x");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].ts_us, 1234567u);
  EXPECT_EQ(v[0].text, "hello");
  EXPECT_EQ(v[1].text, "plain line");
  EXPECT_EQ(v[2].ts_us, 12345000001u);
}

// VM mode: a real serial console of a Debian 6.1 guest that panicked (sysrq-c) in the middle of a
// race, agent progress lines interleaved. The panic is a kernel-crash with its stack; nothing else is.
TEST(KmsgScan, GuestConsolePanicIsKernelCrash) {
  KmsgScanResult r;
  EXPECT_EQ(scan_file("panic_console.log", {}, &r), V{"kernel-crash"});
  const auto& f = r.findings[0];
  EXPECT_EQ(f.got, "Kernel panic - not syncing: sysrq triggered crash");
  ASSERT_GE(f.kernel_log.size(), 10u);
  bool has_frame = false;
  for (const auto& l : f.kernel_log) has_frame |= l.find("sysrq_handle_crash") != std::string::npos;
  EXPECT_TRUE(has_frame);
  EXPECT_EQ(classify_kmsg_line("Kernel panic - not syncing: Fatal exception"), "kernel-crash");
}

TEST(KmsgScan, RatelimitedNoticeStaysANotice) {
  // "EXT4-fs warning: 4 callbacks suppressed" between CONFIG_EXT4_DEBUG extent-split notes (6.18 host).
  KmsgScanResult r;
  EXPECT_EQ(scan_file("ext4_ratelimited_notice.log", {"loop0"}, &r), V{});
  ASSERT_EQ(r.notices.size(), 4u);
  EXPECT_EQ(r.notices[2].lines.size(), 2u);  // the note and the suppressed-callbacks line after it
  EXPECT_NE(r.notices[2].lines[1].find("callbacks suppressed"), std::string::npos);
}

TEST(KmsgScan, RatelimitedWarningIsNotCountedTwice) {
  auto cls = scan_file("ext4_ratelimited_warning.log", {"loop0"});
  EXPECT_EQ(cls.size(), 2u);  // the two warnings; the suppressed lines belong to them
  // Suppressed messages of a family never seen before are unknown: a finding of their own.
  auto lines = parse_log_text("[ 5.000001] EXT4-fs warning: 7 callbacks suppressed\n");
  EXPECT_EQ(scan_kmsg(lines, {}).findings.size(), 1u);
}

// The O_DIRECT write a data finding's ops do not name: same file and blocks as the read or the lost write,
// ended within kDioCollisionWindowNs before the read; the latest such one.
TEST(KmsgScan, CollidingDioWriteIsTheLatestNearbyOneOnTheSameBlocks) {
  auto op = [](uint64_t id, OpKind k, uint16_t file, uint64_t blk, uint64_t n, uint64_t s, uint64_t e) {
    return OpRecord{id, s, e, blk * 4096, n * 4096, int64_t(n * 4096), 1, uint16_t(k), file, 0, 0};
  };
  const uint64_t ms = 1'000'000;
  OpLogData d;
  d.ops = {op(1, OpKind::kDioWrite, 0, 24, 7, 10 * ms, 11 * ms),   // blocks 24-30, 90 ms before the read
           op(2, OpKind::kDioWrite, 0, 24, 7, 50 * ms, 51 * ms),   // the latest on the same blocks
           op(3, OpKind::kDioWrite, 1, 24, 7, 60 * ms, 61 * ms),   // another file
           op(4, OpKind::kDioWrite, 0, 40, 2, 70 * ms, 71 * ms),   // other blocks
           op(5, OpKind::kWrite, 0, 24, 6, 80 * ms, 81 * ms),      // the write whose data went missing
           op(6, OpKind::kMmapRead, 0, 33, 4, 100 * ms, 101 * ms), // the read (other blocks than the DIO)
           op(7, OpKind::kDioWrite, 0, 24, 1, 102 * ms, 103 * ms)}; // after the read
  Finding f = make_finding("lost-write", "xfs", "mixed", "xfs-mixed", "race");
  f.ops = {d.ops[5], d.ops[4]};
  const OpRecord* w = colliding_dio_write(d, f);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->id, 2u);
  f.ops = {d.ops[5]};  // only the read: no DIO write on its blocks
  EXPECT_EQ(colliding_dio_write(d, f), nullptr);
  for (int i : {4, 5}) {  // the write and the read 200 ms later: both DIO writes beyond the window
    d.ops[i].start_ns += 200 * ms;
    d.ops[i].end_ns += 200 * ms;
  }
  f.ops = {d.ops[5], d.ops[4]};
  EXPECT_EQ(colliding_dio_write(d, f), nullptr);
}

// The DIO invalidation failure shows as its warning, or -- the warning is rate-limited to 10 a day -- as
// the EIO it leaves in the file's writeback error; not when the device itself logged an I/O error, nor
// from a syscall that does not report writeback errors, nor in a case without O_DIRECT and cached I/O.
TEST(KmsgScan, DioCollisionShownByItsWarningOrByTheWritebackEio) {
  KmsgScanOptions opt;
  opt.devices = {"loop3", "dm-0"};
  auto scan = [&](std::vector<std::string> texts) {
    std::vector<KmsgLine> lines;
    for (auto& t : texts) lines.push_back({lines.size() + 1, 1000 * (lines.size() + 1), 2, t});
    return scan_kmsg(lines, opt);
  };
  KmsgScanResult quiet = scan({"loop3: detected capacity change from 0 to 524288"});
  const std::vector<FailedSyscall> eio_sync{{"sync-file-range", -EIO}};
  EXPECT_FALSE(dio_collision_shown(quiet, {}, true).any());
  DioCollisionShown wb = dio_collision_shown(quiet, eio_sync, true);
  EXPECT_TRUE(wb.wb_error);
  EXPECT_FALSE(wb.logged);
  EXPECT_NE(wb.explanation().find("rate-limited"), std::string::npos);
  EXPECT_FALSE(dio_collision_shown(quiet, eio_sync, false).any());            // no O_DIRECT + cached I/O mix
  EXPECT_FALSE(dio_collision_shown(quiet, {{"read", -EIO}}, true).any());     // reads do not report wb errors
  EXPECT_FALSE(dio_collision_shown(quiet, {{"fsync", -ENOSPC}}, true).any());
  KmsgScanResult ioerr = scan({"I/O error, dev loop3, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 2"});
  EXPECT_EQ(ioerr.block_io_errors, 1u);
  EXPECT_FALSE(dio_collision_shown(ioerr, eio_sync, true).any());  // a real I/O error explains the EIO
  EXPECT_FALSE(eio_expected_after_dio_collision("fsync", -EIO, ioerr, true));
  EXPECT_EQ(scan({"Buffer I/O error on dev dm-0, logical block 12, lost async page write"}).block_io_errors, 1u);
  EXPECT_EQ(scan({"I/O error, dev sda, sector 2048 op 0x0:(READ)"}).block_io_errors, 0u);  // not under test
  KmsgScanResult logged = scan({"Page cache invalidation failure on direct I/O.  Possible data corruption due to collision with buffered I/O!"});
  DioCollisionShown lg = dio_collision_shown(logged, {}, true);
  EXPECT_TRUE(lg.logged);
  EXPECT_NE(lg.explanation().find("Possible data corruption"), std::string::npos);
}

// The ceph client (libceph: / ceph:): info lines (module load, session established, fsid) are not
// findings; a closed OSD socket, stale caps and a WARN in fs/ceph are, one finding each.
TEST(KmsgScan, CephClientErrorsNotItsInfoLines) {
  KmsgScanResult r;
  EXPECT_EQ(scan_file("ceph_client.log", {}, &r), (V{"ceph-error", "ceph-error", "ceph-error"}));
  ASSERT_EQ(r.findings.size(), 3u);
  EXPECT_NE(r.findings[0].kernel_log[0].find("socket closed"), std::string::npos);
  EXPECT_EQ(r.findings[0].kernel_log.size(), 1u);
  EXPECT_NE(r.findings[1].kernel_log[0].find("caps stale"), std::string::npos);
  EXPECT_GT(r.findings[2].kernel_log.size(), 3u);  // the WARN keeps its trace
  EXPECT_EQ(classify_kmsg_line("libceph: mon0 (1)127.0.0.1:6789 session established"), "");
  EXPECT_EQ(classify_kmsg_line("ceph: loaded (mds proto 32)"), "");
}
