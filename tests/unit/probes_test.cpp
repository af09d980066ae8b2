// Probes (issue 3): attach planning over mocked and recorded kernel facts, the events.bin decoder, and
// the event analyzer on recorded streams (tests/data/events, recorded on 6.18 with
// tools/record-event-fixtures.sh) and on hand-built ones for what a healthy kernel never shows.
#include <gtest/gtest.h>

#include <random>
#include <sys/sysmacros.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "core/campaign.h"
#include "harness/kernel_events.h"
#include "core/oplog.h"
#include "harness/probe_toggle.h"
#include "core/util.h"
#include "probes/catalog.h"
#include "probes/events.h"
#include "probes/kernel_info.h"
#include "probes/loader.h"
#include "tests/unit/mock_kernel.h"

using namespace fsrace;
using namespace fsrace::probes;

namespace {

std::string data(const std::string& rel) { return std::string(FSRACE_TEST_DATA) + "/" + rel; }

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

RecordedKernelInfo recorded(const std::string& name) {
  return RecordedKernelInfo(nlohmann::json::parse(slurp(data("kernels/" + name))));
}

const ProbeSpec& probe(const std::string& n) {
  const ProbeSpec* p = find_probe(n);
  if (!p) throw std::runtime_error("no probe " + n);
  return *p;
}

AttachMode first_usable(const std::vector<Candidate>& c) {
  for (const auto& x : c)
    if (x.skip.empty()) return x.mode;
  return AttachMode::kNone;
}

}  // namespace

// ---------- catalog ----------

TEST(ProbeCatalog, MatchesEnumAndHasProgramsForEveryProbe) {
  const auto& c = probe_catalog();
  ASSERT_EQ(c.size(), size_t(FSR_P_COUNT));
  std::set<std::string> names;
  for (const auto& p : c) {
    EXPECT_TRUE(names.insert(p.name).second) << p.name;
    if (p.tracepoint) {
      EXPECT_EQ(p.programs(AttachMode::kTpBtf), std::vector<std::string>{"btf__" + p.prog});
      EXPECT_EQ(p.programs(AttachMode::kRawTp), std::vector<std::string>{"raw__" + p.prog});
      EXPECT_TRUE(p.programs(AttachMode::kFentry).empty());
    } else {
      EXPECT_FALSE(p.programs(AttachMode::kFentry).empty()) << p.name;
      EXPECT_FALSE(p.programs(AttachMode::kKprobe).empty()) << p.name;
      EXPECT_TRUE(p.programs(AttachMode::kTpBtf).empty());
    }
  }
  // the 6.1 fallback for stale iomaps reads the return value only: fexit alone, kprobe + kretprobe
  EXPECT_EQ(probe("xfs_iomap_valid").programs(AttachMode::kFentry), std::vector<std::string>{"fexit__xfs_iomap_valid"});
  EXPECT_EQ(probe("xfs_iomap_valid").programs(AttachMode::kKprobe),
            (std::vector<std::string>{"kprobe__xfs_iomap_valid", "kretprobe__xfs_iomap_valid"}));
  EXPECT_TRUE(probe("iomap:iomap_iter").programs(AttachMode::kTracepoint).empty());
  EXPECT_EQ(find_probe("mm_filemap_add_to_page_cache"), find_probe("filemap:mm_filemap_add_to_page_cache"));
  EXPECT_EQ(find_probe("nope"), nullptr);
}

// ---------- planning ----------

TEST(ProbePlan, TracepointOrderIsTpBtfRawTpClassic) {
  MockKernelInfo k;
  k.btf_tps = {"mm_filemap_add_to_page_cache"};
  k.events = {"filemap:mm_filemap_add_to_page_cache"};
  auto c = plan_probe(probe("filemap:mm_filemap_add_to_page_cache"), k);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].mode, AttachMode::kTpBtf);
  EXPECT_EQ(c[1].mode, AttachMode::kRawTp);
  EXPECT_EQ(c[2].mode, AttachMode::kTracepoint);
  for (auto& x : c) EXPECT_EQ(x.skip, "") << attach_mode_name(x.mode);
}

TEST(ProbePlan, NoBtfFallsBackToRawTpThenClassic) {
  MockKernelInfo k;
  k.btf = false;
  k.events = {"ext4:ext4_punch_hole"};
  auto c = plan_probe(probe("ext4:ext4_punch_hole"), k);
  EXPECT_EQ(c[0].skip, "no kernel BTF (/sys/kernel/btf/vmlinux)");
  EXPECT_EQ(first_usable(c), AttachMode::kRawTp);
  k.tracefs = false;  // cannot even tell whether the tracepoint exists
  c = plan_probe(probe("ext4:ext4_punch_hole"), k);
  EXPECT_EQ(first_usable(c), AttachMode::kNone);
  EXPECT_NE(summarize_reasons(c).find("tracefs is not mounted"), std::string::npos) << summarize_reasons(c);
}

TEST(ProbePlan, MissingTracepointMergesReasons) {
  MockKernelInfo k;
  auto c = plan_probe(probe("ext4:ext4_es_insert_delayed_block"), k);
  EXPECT_EQ(first_usable(c), AttachMode::kNone);
  EXPECT_EQ(summarize_reasons(c), "tp_btf, raw_tp, tracepoint: tracepoint ext4:ext4_es_insert_delayed_block not in this kernel");
}

TEST(ProbePlan, FunctionOrderFentryThenKprobeAndRefusedModes) {
  MockKernelInfo k;
  k.btf_funcs = {"truncate_pagecache_range"};
  k.ksyms = {"truncate_pagecache_range"};
  const auto& p = probe("truncate_pagecache_range");
  auto c = plan_probe(p, k);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(first_usable(c), AttachMode::kFentry);
  // fentry refused at runtime (this machine: EPERM at load) -> kprobe
  std::map<AttachMode, std::string> refused = {{AttachMode::kFentry, "refused by this kernel (load failed: EPERM)"}};
  c = plan_probe(p, k, refused);
  EXPECT_EQ(first_usable(c), AttachMode::kKprobe);
  // and kprobes not configured either -> unavailable, both reasons named
  k.kprobes = "kprobes not configured in this kernel";
  c = plan_probe(p, k, refused);
  EXPECT_EQ(first_usable(c), AttachMode::kNone);
  EXPECT_EQ(summarize_reasons(c),
            "fentry/fexit: refused by this kernel (load failed: EPERM); kprobe/kretprobe: kprobes not configured in this kernel");
  // a symbol without BTF: fentry impossible, kprobe fine
  MockKernelInfo k2;
  k2.ksyms = {"ceph_direct_read_write"};
  c = plan_probe(probe("ceph_direct_read_write"), k2);
  EXPECT_EQ(c[0].skip, "function ceph_direct_read_write has no BTF");
  EXPECT_EQ(first_usable(c), AttachMode::kKprobe);
}

TEST(ProbePlan, BpfUnusableSkipsEverythingWithThatReason) {
  MockKernelInfo k;
  k.bpf = "BPF needs root";
  k.btf_tps = {"mm_filemap_add_to_page_cache"};
  for (const auto& p : probe_catalog()) {
    auto c = plan_probe(p, k);
    EXPECT_EQ(first_usable(c), AttachMode::kNone) << p.name;
  }
  EXPECT_EQ(summarize_reasons(plan_probe(probe("filemap:mm_filemap_add_to_page_cache"), k)), "tp_btf, raw_tp, tracepoint: BPF needs root");
}

TEST(ProbePlan, StaleFlagGatesIomapIter) {
  MockKernelInfo k;
  k.btf_tps = {"iomap_iter"};
  k.events = {"iomap:iomap_iter"};
  EXPECT_EQ(first_usable(plan_probe(probe("iomap:iomap_iter"), k)), AttachMode::kNone);
  k.stale = 1u << 15;
  EXPECT_EQ(first_usable(plan_probe(probe("iomap:iomap_iter"), k)), AttachMode::kTpBtf);
}

TEST(ProbePlan, RecordedHost618) {
  auto k = recorded("host-6.18.44.json");
  EXPECT_EQ(k.iomap_f_stale(), 1ull << 15);
  EXPECT_EQ(first_usable(plan_probe(probe("ext4:ext4_es_insert_delayed_extent"), k)), AttachMode::kTpBtf);
  EXPECT_EQ(first_usable(plan_probe(probe("ext4:ext4_es_insert_delayed_block"), k)), AttachMode::kNone);
  EXPECT_EQ(first_usable(plan_probe(probe("xfs:xfs_iomap_invalid"), k)), AttachMode::kTpBtf);
  EXPECT_EQ(first_usable(plan_probe(probe("iomap:iomap_iter"), k)), AttachMode::kTpBtf);
  // kprobes are not configured here; fentry is planned but refused at load (EPERM) by the loader
  auto c = plan_probe(probe("down_write"), k);
  EXPECT_EQ(c[0].skip, "");
  EXPECT_NE(c[1].skip.find("kprobes not configured"), std::string::npos);
}

TEST(ProbePlan, RecordedDebian61) {
  auto k = recorded("debian-6.1.0-50-amd64.json");
  EXPECT_EQ(first_usable(plan_probe(probe("ext4:ext4_es_insert_delayed_block"), k)), AttachMode::kTpBtf);
  EXPECT_EQ(first_usable(plan_probe(probe("ext4:ext4_es_insert_delayed_extent"), k)), AttachMode::kNone);
  EXPECT_EQ(first_usable(plan_probe(probe("xfs:xfs_iomap_invalid"), k)), AttachMode::kNone);
  EXPECT_EQ(first_usable(plan_probe(probe("filemap:mm_filemap_fault"), k)), AttachMode::kNone);
  // 6.1 has no STALE flag to read: iomap_iter is out, xfs_iomap_valid()'s return value is the fallback
  EXPECT_EQ(first_usable(plan_probe(probe("iomap:iomap_iter"), k)), AttachMode::kNone);
  EXPECT_EQ(first_usable(plan_probe(probe("xfs_iomap_valid"), k)), AttachMode::kFentry);
  std::map<AttachMode, std::string> refused = {{AttachMode::kFentry, "refused"}};
  EXPECT_EQ(first_usable(plan_probe(probe("xfs_iomap_valid"), k, refused)), AttachMode::kKprobe);
  EXPECT_EQ(first_usable(plan_probe(probe("down_write"), k)), AttachMode::kFentry);
}

// libbpf's output of a failed load as the loader captures it (shape of libbpf 1.1 on the 6.1 guest,
// where the entry stash was read after bpf_ringbuf_submit): the reason keeps the verifier's verdict.
TEST(ProbeLoader, VerifierSummaryKeepsTheVerdict) {
  const std::string log =
      "libbpf: prog 'fentry__trunc_pc': BPF program load failed: Permission denied\n"
      "libbpf: prog 'fentry__trunc_pc': -- BEGIN PROG LOAD LOG --\n"
      "0: R1=ctx(off=0,imm=0) R10=fp0\n"
      "; int BPF_PROG(fentry__trunc_pc, struct inode *inode, long long lstart, long long lend)\n"
      "0: (79) r7 = *(u64 *)(r1 +8)         ; R1=ctx(off=0,imm=0) R7_w=scalar()\n"
      "; struct fsr_stash s = {.ino = e->ino, .dev = e->dev};\n"
      "193: (79) r1 = *(u64 *)(r6 +8)\n"
      "R6 invalid mem access 'scalar'\n"
      "processed 180 insns (limit 1000000) max_states_per_insn 0 total_states 10 peak_states 10 mark_read 6\n"
      "-- END PROG LOAD LOG --\n"
      "libbpf: prog 'fentry__trunc_pc': failed to load: -13\n"
      "libbpf: failed to load object 'pagecache_bpf'\n";
  EXPECT_EQ(verifier_summary(log),
            "verifier on fentry__trunc_pc: ; struct fsr_stash s = {.ino = e->ino, .dev = e->dev}; | "
            "193: (79) r1 = *(u64 *)(r6 +8) | R6 invalid mem access 'scalar'");
  EXPECT_EQ(verifier_summary(log, 1), "verifier on fentry__trunc_pc: R6 invalid mem access 'scalar'");
  // refused before verification (no log): libbpf's last useful line
  EXPECT_EQ(verifier_summary("libbpf: prog 'fentry__trunc_pc': failed to load: -1\n"
                             "libbpf: failed to load object 'pagecache_bpf'\n"
                             "libbpf: failed to load BPF skeleton 'pagecache_bpf': -1\n"),
            "prog 'fentry__trunc_pc': failed to load: -1");
  EXPECT_EQ(verifier_summary(""), "");
}

TEST(ProbeLoader, VerifierRejectionIsNotAModeRefusal) {
  EXPECT_TRUE(mode_wide(EPERM, "load failed: EPERM (Operation not permitted) — prog 'fentry__trunc_pc': failed to load: -1"));
  EXPECT_TRUE(mode_wide(EACCES, "load failed: EACCES (Permission denied)"));
  EXPECT_FALSE(mode_wide(EACCES, "load failed: EACCES (Permission denied) — verifier on kprobe__trunc_pc: R6 invalid mem access 'scalar'"));
  // 6.1's trampoline refuses iomap_dio_rw (7 arguments) at attach: that function only
  EXPECT_FALSE(mode_wide(524, "attach of fentry__iomap_dio_rw failed: ENOTSUPP (not supported)"));
  EXPECT_TRUE(mode_wide(EPERM, "attach of fentry__down_write failed: EPERM (Operation not permitted)"));
}

TEST(ProbePlan, ParseStaleFlag) {
  EXPECT_EQ(parse_stale_flag(R"(__print_flags(REC->flags, "|", { (1U << 0), "NEW" }, { (1U << 14), "SIZE_CHANGED" }, { (1U << 15), "STALE" }), REC->flags)"),
            1ull << 15);
  EXPECT_EQ(parse_stale_flag(R"(__print_flags(REC->flags, "|", { (1U << 0), "NEW" }, { (1U << 8), "SIZE_CHANGED" }))"), 0u);
  EXPECT_EQ(parse_stale_flag(R"({ 0x200, "STALE" })"), 0x200u);
}

TEST(ProbeEvents, KernelDevEncoding) {
  EXPECT_EQ(kernel_dev(makedev(7, 0)), 7u << 20);
  EXPECT_EQ(kernel_dev(makedev(259, 3)), (259u << 20) | 3u);
  EXPECT_EQ(kernel_dev(makedev(8, 300)), (8u << 20) | 300u);
}

// ---------- decoder ----------

TEST(EventsDecoder, RecordedFixturesDecode) {
  for (const char* fs : {"ext4", "xfs"}) {
    EventsData d = load_events(data(std::string("events/") + fs + ".events.bin"));
    EXPECT_EQ(d.header.value("clock", ""), "CLOCK_MONOTONIC");
    EXPECT_EQ(d.header.value("fs", ""), fs);
    EXPECT_LE(d.header["probes"].size(), probe_catalog().size());  // recorded by an older build: probe ids are append-only
    EXPECT_EQ(d.trailer.value("events", uint64_t(0)), d.events.size());
    EXPECT_EQ(d.trailer.value("dropped", 1), 0);
    ASSERT_EQ(d.trailer["inodes"].size(), 1u);
    uint64_t ino = d.trailer["inodes"][0]["ino"];
    ASSERT_GT(d.events.size(), 50u);
    for (const auto& e : d.events) EXPECT_EQ(e.ino, ino);  // the kernel-side filter let nothing else through
    for (size_t i = 1; i < d.events.size(); ++i) EXPECT_LE(d.events[i - 1].ts_ns, d.events[i].ts_ns + 1000000);
  }
}

TEST(EventsDecoder, RoundTripAndEveryMalformation) {
  fsr_event e{};
  e.ts_ns = 5;
  e.kind = FSR_EV_PC_ADD;
  e.probe = FSR_P_PC_ADD;
  e.a[0] = 16;
  nlohmann::json h = {{"record_size", sizeof(fsr_event)}, {"kernel", "k"}};
  std::string good = encode_events_header(h) + encode_events_chunk(&e, 1) + encode_events_chunk(&e, 0) +
                     encode_events_trailer({{"events", 1}});
  EventsData d = decode_events(good, "x");
  ASSERT_EQ(d.events.size(), 1u);
  EXPECT_EQ(d.events[0].a[0], 16u);
  auto err = [](const std::string& b) {
    try {
      decode_events(b, "f");
    } catch (const std::runtime_error& ex) {
      return std::string(ex.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(err(good.substr(0, good.size() - 3)).find("trailer runs past the end"), std::string::npos);
  std::string no_trailer = encode_events_header(h) + encode_events_chunk(&e, 1);
  EXPECT_NE(err(no_trailer).find("truncated"), std::string::npos);
  EXPECT_NE(err(no_trailer.substr(0, no_trailer.size() - 10)).find("runs past the end"), std::string::npos);
  std::string bad = good;
  bad[0] = 'X';
  EXPECT_NE(err(bad).find("bad magic"), std::string::npos);
  bad = good;
  bad[8] = 9;
  EXPECT_NE(err(bad).find("unsupported version 9"), std::string::npos);
  EXPECT_NE(err(encode_events_header({{"record_size", 100}}) + encode_events_trailer(nlohmann::json::object())).find("record_size must be 112"),
            std::string::npos);
  EXPECT_NE(err(good + "zz").find("data after the trailer"), std::string::npos);
  fsr_event b = e;
  b.kind = 999;
  EXPECT_NE(err(encode_events_header(h) + encode_events_chunk(&b, 1) + encode_events_trailer(nlohmann::json::object())).find("outside the known range"),
            std::string::npos);
  std::string tag = encode_events_header(h) + std::string("ABCD\0\0\0\0", 8);
  EXPECT_NE(err(tag).find("unknown chunk tag"), std::string::npos);
  EXPECT_NE(err("FSR").find("too short"), std::string::npos);
}

// The file holds events in transport order (per-CPU stages of 16, runs sent when they end, drained
// stages and runs last); decoding hands them out in time order, ties in file order.
TEST(EventsDecoder, EventsComeOutInTimeOrder) {
  nlohmann::json h = {{"record_size", sizeof(fsr_event)}, {"kernel", "k"}};
  std::vector<fsr_event> cpu0(3), cpu1(2);
  uint64_t ts0[] = {10, 40, 70}, ts1[] = {20, 40};
  for (size_t i = 0; i < cpu0.size(); ++i) cpu0[i] = fsr_event{}, cpu0[i].ts_ns = ts0[i], cpu0[i].kind = FSR_EV_PC_ADD, cpu0[i].a[0] = i;
  for (size_t i = 0; i < cpu1.size(); ++i) cpu1[i] = fsr_event{}, cpu1[i].ts_ns = ts1[i], cpu1[i].kind = FSR_EV_PC_DELETE, cpu1[i].a[0] = 10 + i;
  std::string f = encode_events_header(h) + encode_events_chunk(cpu1.data(), cpu1.size()) + encode_events_chunk(cpu0.data(), cpu0.size()) +
                  encode_events_trailer({{"events", 5}});
  EventsData d = decode_events(f, "x");
  ASSERT_EQ(d.events.size(), 5u);
  std::vector<uint64_t> got;
  for (const auto& e : d.events) got.push_back(e.ts_ns * 100 + e.a[0]);
  EXPECT_EQ(got, (std::vector<uint64_t>{1000, 2010, 4011, 4001, 7002}));  // the tie at 40: file order (cpu1 first)
}

// The in-place permutation behind the time order, and load_events' pread path, against std::stable_sort on
// a shuffled stream with many ties, in several chunks.
TEST(EventsDecoder, FileAndMemoryDecodeAgreeWithAStableSort) {
  nlohmann::json h = {{"record_size", sizeof(fsr_event)}, {"kernel", "k"}};
  std::mt19937_64 rng(7);
  std::vector<fsr_event> ev(5000);
  for (size_t i = 0; i < ev.size(); ++i) ev[i] = fsr_event{}, ev[i].ts_ns = rng() % 600, ev[i].kind = FSR_EV_PC_ADD, ev[i].a[0] = i;
  std::string f = encode_events_header(h);
  for (size_t at = 0; at < ev.size(); at += 700) f += encode_events_chunk(ev.data() + at, std::min<size_t>(700, ev.size() - at));
  f += encode_events_trailer({{"events", ev.size()}});
  std::vector<fsr_event> want = ev;
  std::stable_sort(want.begin(), want.end(), [](const fsr_event& x, const fsr_event& y) { return x.ts_ns < y.ts_ns; });
  char tmpl[] = "/tmp/fsrace-events-test.XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, f.data(), f.size()), ssize_t(f.size()));
  close(fd);
  EventsData fromfile = load_events(tmpl);
  unlink(tmpl);
  EventsData frommem = decode_events(f, "x");
  ASSERT_EQ(fromfile.events.size(), want.size());
  ASSERT_EQ(frommem.events.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(fromfile.events[i].a[0], want[i].a[0]) << i;
    ASSERT_EQ(frommem.events[i].a[0], want[i].a[0]) << i;
  }
  EXPECT_EQ(fromfile.trailer, frommem.trailer);
  EXPECT_THROW(load_events("/nonexistent/events.bin"), std::runtime_error);
}

// ---------- analyzer on recorded streams ----------

TEST(KernelEventsAnalyzer, RecordedStreamInterleavesWithOpsAndExplainsInsertions) {
  for (const char* fs : {"ext4", "xfs"}) {
    EventsData ev = load_events(data(std::string("events/") + fs + ".events.bin"));
    OpLogData ops = load_oplog(data(std::string("events/") + fs + ".ops.bin"));
    uint64_t t0 = UINT64_MAX, t1 = 0;
    for (const auto& o : ops.ops)
      if (OpKind(o.kind) != OpKind::kInit && o.kind < uint16_t(OpKind::kVerifyCached)) {
        t0 = std::min(t0, o.start_ns);
        t1 = std::max(t1, o.end_ns);
      }
    // same clock: the race's page-cache events lie inside the race's op window
    size_t inside = 0;
    for (const auto& e : ev.events) inside += e.ts_ns >= t0 && e.ts_ns <= t1;
    EXPECT_GT(inside, 20u) << fs;
    // every punch deletes folios inside its own range, with the lock held exclusive by the punching task
    size_t checked = 0;
    for (const auto& o : ops.ops) {
      if (OpKind(o.kind) != OpKind::kPunch) continue;
      for (const auto& e : ev.events)
        if (e.kind == FSR_EV_PC_DELETE && e.ts_ns >= o.start_ns && e.ts_ns <= o.end_ns &&
            std::string(e.comm).rfind("fsr-punch", 0) == 0) {
          EXPECT_GE(e.a[0] + std::max<uint64_t>(e.a[1], 1), o.offset / 4096) << fs;
          EXPECT_LT(e.a[0], (o.offset + o.length) / 4096) << fs;
          EXPECT_EQ(lock_state(e), "held exclusive by this task") << fs;
          ++checked;
        }
    }
    EXPECT_GT(checked, 5u) << fs;
    // a finding on f0 gets the kernel's story; one on another file gets nothing
    Finding f;
    f.cls = "stale";
    f.file = "f0";
    f.block = 7;
    OpRecord r{};
    r.start_ns = t0;
    r.end_ns = t1;
    f.ops = {r};
    Finding other = f;
    other.file = "f1";
    std::vector<Finding> v = {f, other};
    attach_kernel_events(v, ev);
    ASSERT_FALSE(v[0].kernel_events.empty()) << fs;
    EXPECT_NE(v[0].kernel_events[0].find("folio index 7"), std::string::npos) << v[0].kernel_events[0];
    EXPECT_TRUE(v[1].kernel_events.empty());
    EventAnalysis an = analyze_events(ev, {fs, "punch-vs-fault", "c", t1});
    EXPECT_TRUE(an.findings.empty()) << an.findings[0].detail;  // a healthy 6.18 run
    EXPECT_EQ(an.summary["dropped"], 0);
  }
}

TEST(KernelEventsAnalyzer, ReaderWaitingOnThePunchIsExplained) {
  EventsData ev = load_events(data("events/xfs.events.bin"));
  bool contended = false;
  for (const auto& e : ev.events) contended |= e.kind == FSR_EV_CONTENTION_BEGIN;
  ASSERT_TRUE(contended) << "fixture lost its invalidate_lock contention: re-record";
  auto lines = explain_range(ev, "f0", 0, 16, 0, UINT64_MAX);
  bool shared = false, after = false;
  for (const auto& l : lines) {
    shared |= l.find("the fault path (mmap reader)") != std::string::npos && l.find("held shared") != std::string::npos;
    after |= l.find(" after ") != std::string::npos;
  }
  EXPECT_TRUE(shared);
  EXPECT_TRUE(after);
}

// ---------- analyzer on hand-built streams (what a healthy kernel never shows) ----------

namespace {
fsr_event ev(uint64_t ts, uint16_t kind, uint16_t probe, uint64_t a0 = 0, uint64_t a1 = 0, int64_t ret = 0) {
  fsr_event e{};
  e.ts_ns = ts;
  e.dev = 7u << 20;
  e.ino = 12;
  e.kind = kind;
  e.probe = probe;
  e.a[0] = a0;
  e.a[1] = a1;
  e.ret = ret;
  std::strcpy(e.comm, "fsr-punch1");
  return e;
}
EventsData stream(std::vector<fsr_event> v) {
  EventsData d;
  d.header = {{"record_size", sizeof(fsr_event)}};
  d.trailer = {{"dropped", 0}, {"inodes", {{{"dev", 7u << 20}, {"ino", 12}, {"name", "f0"}}}}};
  d.events = std::move(v);
  return d;
}
}  // namespace

TEST(KernelEventsAnalyzer, ReservationLeak) {
  // reserved 2, one converted, nothing released: 1 left at fsync after the race and at eviction
  auto d = stream({ev(10, FSR_EV_EXT4_DA_RESERVE, FSR_P_EXT4_DA_RESERVE, 1), ev(11, FSR_EV_EXT4_DA_RESERVE, FSR_P_EXT4_DA_RESERVE, 2),
                   ev(20, FSR_EV_EXT4_DA_UPDATE, FSR_P_EXT4_DA_UPDATE, 2, 1), ev(200, FSR_EV_EXT4_SYNC_EXIT, FSR_P_EXT4_SYNC_EXIT, 1),
                   ev(300, FSR_EV_EXT4_EVICT, FSR_P_EXT4_EVICT, 1)});
  EventAnalysis an = analyze_events(d, {"ext4", "s", "c", 100});
  ASSERT_EQ(an.findings.size(), 1u);
  EXPECT_EQ(an.findings[0].cls, "reservation-leak");
  EXPECT_EQ(an.findings[0].file, "f0");
  EXPECT_EQ(an.findings[0].time_ns, 200u);  // seen at fsync, before eviction
  EXPECT_NE(an.findings[0].detail.find("i_reserved_data_blocks = 1 after fsync"), std::string::npos) << an.findings[0].detail;
  EXPECT_NE(an.findings[0].detail.find("at eviction: 1"), std::string::npos);
  // balanced: no finding
  d = stream({ev(10, FSR_EV_EXT4_DA_RESERVE, FSR_P_EXT4_DA_RESERVE, 1), ev(20, FSR_EV_EXT4_DA_UPDATE, FSR_P_EXT4_DA_UPDATE, 1, 1),
              ev(200, FSR_EV_EXT4_SYNC_EXIT, FSR_P_EXT4_SYNC_EXIT, 0), ev(300, FSR_EV_EXT4_EVICT, FSR_P_EXT4_EVICT, 0)});
  EXPECT_TRUE(analyze_events(d, {"ext4", "s", "c", 100}).findings.empty());
  // an fsync during the race with blocks reserved is normal (writers still running)
  d = stream({ev(10, FSR_EV_EXT4_DA_RESERVE, FSR_P_EXT4_DA_RESERVE, 1), ev(50, FSR_EV_EXT4_SYNC_EXIT, FSR_P_EXT4_SYNC_EXIT, 1),
              ev(300, FSR_EV_EXT4_EVICT, FSR_P_EXT4_EVICT, 0)});
  EXPECT_TRUE(analyze_events(d, {"ext4", "s", "c", 100}).findings.empty());
  // classic tracepoints cannot read the counter at eviction: unknown is not a leak
  d = stream({ev(300, FSR_EV_EXT4_EVICT, FSR_P_EXT4_EVICT, ~0ull)});
  EXPECT_TRUE(analyze_events(d, {"ext4", "s", "c", 100}).findings.empty());
}

TEST(KernelEventsAnalyzer, ReservationLeakFromBpfTotals) {
  // current probes: no individual reserve/release/update events, a totals record before each fsync / evict
  auto totals = [](uint64_t ts, uint16_t probe, uint64_t reserves, uint64_t released, uint64_t used, uint64_t now) {
    fsr_event e = ev(ts, FSR_EV_EXT4_RESV_SUMMARY, probe, reserves, released);
    e.a[2] = used;
    e.a[3] = now;
    return e;
  };
  auto d = stream({totals(199, FSR_P_EXT4_SYNC_EXIT, 5, 3, 1, 1), ev(200, FSR_EV_EXT4_SYNC_EXIT, FSR_P_EXT4_SYNC_EXIT, 1),
                   totals(299, FSR_P_EXT4_EVICT, 6, 4, 1, 1), ev(300, FSR_EV_EXT4_EVICT, FSR_P_EXT4_EVICT, 1)});
  EventAnalysis an = analyze_events(d, {"ext4", "s", "c", 100});
  ASSERT_EQ(an.findings.size(), 1u);
  EXPECT_EQ(an.findings[0].cls, "reservation-leak");
  EXPECT_EQ(an.findings[0].time_ns, 200u);
  EXPECT_NE(an.findings[0].detail.find("6 reserve, 4 blocks released, 1 blocks converted"), std::string::npos) << an.findings[0].detail;
  ASSERT_EQ(an.summary["reservations"].size(), 1u);
  EXPECT_EQ(an.summary["reservations"][0]["reserve_events"], 6u);
  EXPECT_EQ(an.summary["reservations"][0]["last_reserved"], 1);
  EXPECT_EQ(an.summary["by_kind"]["ext4-reservation-totals"], 2u);
  // balanced totals: no finding
  d = stream({totals(199, FSR_P_EXT4_SYNC_EXIT, 5, 4, 1, 0), ev(200, FSR_EV_EXT4_SYNC_EXIT, FSR_P_EXT4_SYNC_EXIT, 0),
              totals(299, FSR_P_EXT4_EVICT, 5, 4, 1, 0), ev(300, FSR_EV_EXT4_EVICT, FSR_P_EXT4_EVICT, 0)});
  EXPECT_TRUE(analyze_events(d, {"ext4", "s", "c", 100}).findings.empty());
  EXPECT_NE(probes::describe_event(d.events[0]).find("5 reserve events, 4 blocks released, 1 converted, reserved now 0"), std::string::npos)
      << probes::describe_event(d.events[0]);
}

TEST(KernelEventsAnalyzer, DioInvalidateFailedAndStaleIomap) {
  auto d = stream({ev(10, FSR_EV_DIO_INVALIDATE_FAIL, FSR_P_DIO_INVALIDATE_FAIL, 65536, 8192),
                   ev(20, FSR_EV_INVAL2_EXIT, FSR_P_INVAL2, 3, 4, -16), ev(21, FSR_EV_INVAL2_EXIT, FSR_P_INVAL2, 3, 4, 0),
                   ev(30, FSR_EV_XFS_IOMAP_INVALID, FSR_P_XFS_IOMAP_INVALID, 0, 4096),
                   ev(31, FSR_EV_IOMAP_STALE, FSR_P_IOMAP_ITER, 0, 4096, 0)});
  EventAnalysis an = analyze_events(d, {"xfs", "s", "c", 0});
  ASSERT_EQ(an.findings.size(), 3u);
  EXPECT_EQ(an.findings[0].cls, "dio-invalidate-failed");
  EXPECT_EQ(*an.findings[0].block, 16u);
  EXPECT_EQ(an.findings[1].cls, "dio-invalidate-failed");
  EXPECT_NE(an.findings[1].detail.find("-EBUSY"), std::string::npos);
  EXPECT_EQ(an.findings[2].cls, "stale-iomap-seen");
  EXPECT_TRUE(an.findings[2].informational);
  EXPECT_EQ(an.summary["stale_iomap_seen"], 2);
  FindingSet fs;
  for (auto& f : an.findings) fs.add(f);
  EXPECT_EQ(fs.total(), 2u);  // informational findings do not fail a run
  EXPECT_EQ(fs.informational_by_class["stale-iomap-seen"], 1u);
}

TEST(KernelEventsAnalyzer, InsertionDuringExclusiveInvalidationIsCalledOut) {
  fsr_event trunc = ev(100, FSR_EV_TRUNC_PC_ENTER, FSR_P_TRUNC_PC, 16 * 4096, 20 * 4096 - 1);
  fsr_event add = ev(112100, FSR_EV_PC_ADD, FSR_P_PC_ADD, 16, 1);
  std::strcpy(add.comm, "fsr-mmap2");
  add.flags = FSR_F_LOCK_VALID;
  add.lock_count = FSR_RWSEM_WRITER_LOCKED;
  add.lock_owner = 0xffff888000001000ull;
  auto lines = explain_range(stream({trunc, add}), "f0", 16, 1, 0, 1000000);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0],
            "folio index 16 added by the fault path (mmap reader) (fsr-mmap2[0]) 112 µs after truncate_pagecache_range (pages 16..19) "
            "by the punch/write thread (fsr-punch1[0]), while another task held invalidate_lock exclusive — a page-cache fill inside "
            "an invalidation (the race invalidate_lock exists to close)");
  // The filesystem side: the punch's truncate_pagecache_range ran without invalidate_lock exclusive (the
  // fill then only holds it shared): said, with the removal; not said when the punch held it.
  fsr_event t2 = trunc, del = ev(150, FSR_EV_PC_DELETE, FSR_P_PC_DELETE, 16, 1), add2 = add;
  t2.flags = del.flags = FSR_F_LOCK_VALID;  // lock_count 0: not held
  t2.tid = del.tid = 5;
  add2.lock_count = uint64_t(1) << FSR_RWSEM_READER_SHIFT;
  add2.tid = 6;
  lines = explain_range(stream({t2, del, add2}), "f0", 16, 1, 0, 1000000);
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines[0].find("while invalidate_lock was held shared (1 reader); that removal ran inside truncate_pagecache_range while "
                          "invalidate_lock was not held — the invalidating thread did not hold it exclusive"),
            std::string::npos) << lines[0];
  t2.lock_count = del.lock_count = FSR_RWSEM_WRITER_LOCKED;
  t2.flags = del.flags = FSR_F_LOCK_VALID | FSR_F_LOCK_SELF;
  lines = explain_range(stream({t2, del, add2}), "f0", 16, 1, 0, 1000000);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0].find("did not hold it exclusive"), std::string::npos) << lines[0];
  // outside the range or the window: nothing
  EXPECT_TRUE(explain_range(stream({trunc, add}), "f0", 30, 1, 0, 1000000).empty());
  EXPECT_TRUE(explain_range(stream({trunc, add}), "f0", 16, 1, 200000, 300000).empty());
}

// The ceph client's O_DIRECT write drops the page cache before its OSD write and never again after
// (fs/ceph/file.c ceph_direct_read_write, 6.1): a fault inside the write puts the old data back and the
// read after the write gets it. Seen on stock 6.1 cephfs (tests/vm/ceph.sh); the rule is the events'.
TEST(KernelEventsAnalyzer, PageRefilledInsideADioWriteExplainsTheStaleRead) {
  auto op = [](uint64_t id, OpKind k, uint64_t s, uint64_t e, uint64_t off, uint64_t len) {
    OpRecord r{};
    r.id = id, r.kind = uint16_t(k), r.start_ns = s, r.end_ns = e, r.offset = off, r.length = len, r.result = int64_t(len);
    return r;
  };
  OpLogData data;
  data.ops = {op(1, OpKind::kDioWrite, 1000, 90000, 32 * 4096, 4 * 4096), op(2, OpKind::kMmapRead, 150000, 151000, 34 * 4096, 4096)};
  fsr_event del = ev(2000, FSR_EV_PC_DELETE, FSR_P_PC_DELETE, 34, 4);
  std::strcpy(del.comm, "fsr-dio1");
  fsr_event add = ev(5000, FSR_EV_PC_ADD, FSR_P_PC_ADD, 34, 4);
  std::strcpy(add.comm, "fsr-mmap2");
  auto finding = [&] {
    Finding f = make_finding("stale", "ceph", "dio-vs-mmap", "c", "race");
    f.file = "f0";
    f.block = 35;
    f.ops = {data.ops[1]};
    return f;
  };
  std::vector<Finding> v = {finding()};
  EXPECT_EQ(explain_dio_refills(v, stream({del, add}), data), 1u);
  EXPECT_EQ(v[0].explained_by, "dio-refill");
  EXPECT_EQ(v[0].ops.size(), 2u);  // the O_DIRECT write joins the finding's ops
  EXPECT_NE(v[0].detail.find("put page 35 into the page cache 3 µs after the O_DIRECT write (T0 dio-write #1, bytes 131072+16384) dropped it"),
            std::string::npos) << v[0].detail;
  // Nothing cached when the write started (nothing to drop): the insertion inside it is the same story.
  v = {finding()};
  EXPECT_EQ(explain_dio_refills(v, stream({add}), data), 1u);
  EXPECT_NE(v[0].detail.find("4 µs after the O_DIRECT write (T0 dio-write #1, bytes 131072+16384) started"), std::string::npos) << v[0].detail;
  // Not this mechanism: the page removed again after the insertion, filled after the write completed,
  // filled by the O_DIRECT thread itself, filled before the write began, or events were dropped.
  fsr_event early = add;
  early.ts_ns = 500;
  fsr_event del2 = ev(95000, FSR_EV_PC_DELETE, FSR_P_PC_DELETE, 35, 1);
  fsr_event late = ev(100000, FSR_EV_PC_ADD, FSR_P_PC_ADD, 34, 4);
  fsr_event own = add;
  std::strcpy(own.comm, "fsr-dio1");
  fsr_event other_del = del;
  std::strcpy(other_del.comm, "fsr-punch1");
  for (const auto& evs : std::vector<std::vector<fsr_event>>{{del, add, del2}, {del, late}, {del, own}, {early}, {other_del, early}}) {
    v = {finding()};
    EXPECT_EQ(explain_dio_refills(v, stream(evs), data), 0u);
    EXPECT_EQ(v[0].explained_by, "");
  }
  EventsData dropped = stream({del, add});
  dropped.trailer["dropped"] = 3;
  v = {finding()};
  EXPECT_EQ(explain_dio_refills(v, dropped, data), 0u);
}

// ---------- campaign [probes] ----------

TEST(CampaignProbes, ValidatedLikeTheRest) {
  std::vector<ScenarioSpec> cat = {{"punch-vs-fault", "", {}}};
  auto err = [&](const std::string& t) {
    try {
      parse_campaign(t, "c.toml", cat);
    } catch (const Fatal& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Campaign c = parse_campaign("[probes]\nrequired = [\"filemap:mm_filemap_add_to_page_cache\"]\nringbuf_mib = 4\n", "c.toml", cat);
  EXPECT_TRUE(c.probes.enabled);
  EXPECT_EQ(c.probes.required, std::vector<std::string>{"filemap:mm_filemap_add_to_page_cache"});
  EXPECT_EQ(c.probes.ringbuf_mib, 4u);
  EXPECT_EQ(err("[probes]\nrequired = [\"bogus\"]\n").substr(0, 77),
            "c.toml:2:12: unknown probe 'bogus' in 'required'; allowed: filemap:mm_filemap");
  EXPECT_EQ(err("[probes]\nringbuf_mib = 3\n"), "c.toml:2:15: 'ringbuf_mib' = 3 must be a power of two (1, 2, 4, ... 1024)");
  EXPECT_EQ(err("[probes]\nringbuf_mib = 2048\n"), "c.toml:2:15: 'ringbuf_mib' = 2048 is out of range; allowed: 1 to 1024");
  EXPECT_EQ(err("[probes]\nenabled = 1\n"), "c.toml:2:11: 'enabled' must be true or false");
  EXPECT_EQ(err("[probes]\nrequire = []\n"),
            "c.toml:2:1: unknown key 'require' in [probes]; allowed: enabled, required, exclude, ringbuf_mib, cpu_stats, toggle_ms, lock_snapshot");
  EXPECT_EQ(err("[probes]\ncpu_stats = \"no\"\n"), "c.toml:2:13: 'cpu_stats' must be true or false");
  EXPECT_TRUE(c.probes.cpu_stats);
  Campaign back = parse_campaign(campaign_to_toml(c), "r.toml", cat);
  EXPECT_EQ(back.probes.required, c.probes.required);
  Campaign off = parse_campaign("[probes]\ncpu_stats = false\n", "c.toml", cat);
  EXPECT_FALSE(off.probes.cpu_stats);
  EXPECT_FALSE(parse_campaign(campaign_to_toml(off), "r.toml", cat).probes.cpu_stats);
  EXPECT_EQ(c.probes.toggle_ms, 0u);
  EXPECT_TRUE(c.probes.lock_snapshot);
  Campaign nosnap = parse_campaign("[probes]\nlock_snapshot = false\n", "c.toml", cat);
  EXPECT_FALSE(nosnap.probes.lock_snapshot);
  EXPECT_FALSE(parse_campaign(campaign_to_toml(nosnap), "r.toml", cat).probes.lock_snapshot);
  Campaign ex = parse_campaign("[probes]\nexclude = [\"lock:contention_begin\", \"lock:contention_end\"]\n", "c.toml", cat);
  EXPECT_EQ(ex.probes.exclude, (std::vector<std::string>{"lock:contention_begin", "lock:contention_end"}));
  EXPECT_EQ(parse_campaign(campaign_to_toml(ex), "r.toml", cat).probes.exclude, ex.probes.exclude);
  EXPECT_EQ(err("[probes]\nexclude = [\"bogus\"]\n").substr(0, 76),
            "c.toml:2:11: unknown probe 'bogus' in 'exclude'; allowed: filemap:mm_filemap");
  EXPECT_EQ(err("[probes]\nrequired = [\"lock:contention_end\"]\nexclude = [\"lock:contention_end\"]\n"),
            "c.toml:3:11: probe 'lock:contention_end' is both required and excluded: drop it from one of the two");
  Campaign tog = parse_campaign("[probes]\ntoggle_ms = 500\n", "c.toml", cat);
  EXPECT_EQ(tog.probes.toggle_ms, 500u);
  EXPECT_EQ(parse_campaign(campaign_to_toml(tog), "r.toml", cat).probes.toggle_ms, 500u);
  EXPECT_EQ(err("[probes]\ntoggle_ms = 10\n"),
            "c.toml:2:13: 'toggle_ms' = 10 is too short to attach and detach in; allowed: 0 (off) or 50 to 60000");
  EXPECT_EQ(err("[probes]\ntoggle_ms = 0.5\n"), "c.toml:2:13: 'toggle_ms' must be an integer");
}

// The benchmark's in-race toggle: each attached stretch is compared with the mean of its detached
// neighbours, in ops/s and in ops per CPU-second; a stretch without a detached neighbour has no ratio.
TEST(ProbeToggle, PairsEachAttachedStretchWithItsDetachedNeighbours) {
  std::vector<ToggleSegment> segs = {
      {true, 1000000000, 900, 2000000000},   // 900 ops/s vs 1000 -> 90 %; 450 ops per CPU-s vs 500 -> 90 %
      {false, 1000000000, 1000, 2000000000},
      {true, 500000000, 475, 1000000000},    // 950 ops/s vs mean(1000, 1100) = 1050 -> 90.5 %
      {false, 1000000000, 1100, 2000000000},
      {true, 1000000000, 0, 0},              // nothing ran: ratio 0
  };
  nlohmann::json j = toggle_summary(segs, 1000);
  EXPECT_EQ(j["period_ms"], 1000);
  EXPECT_EQ(j["attached"]["ops"], 1375u);
  EXPECT_EQ(j["detached"]["ops"], 2100u);
  EXPECT_DOUBLE_EQ(j["detached"]["ops_per_s"].get<double>(), 1050.0);
  auto r = j["pair_ratios_ops"].get<std::vector<double>>();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_DOUBLE_EQ(r[0], 0.9);
  EXPECT_NEAR(r[1], 950.0 / 1050.0, 1e-12);
  EXPECT_DOUBLE_EQ(r[2], 0.0);
  EXPECT_NEAR(j["median_ratio_ops"].get<double>(), 0.9, 1e-12);
  auto c = j["pair_ratios_ops_per_cpu"].get<std::vector<double>>();
  ASSERT_EQ(c.size(), 3u);
  EXPECT_DOUBLE_EQ(c[0], 450.0 / 500.0);
  EXPECT_EQ(j["segments"].size(), 5u);
  EXPECT_EQ(toggle_summary({}, 100)["median_ratio_ops"], 0.0);
  EXPECT_TRUE(toggle_summary({{true, 1, 1, 1}}, 100)["pair_ratios_ops"].empty());  // no detached neighbour
}
