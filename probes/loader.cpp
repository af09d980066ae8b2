#include "probes/loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>
#include <thread>

#include "probes/attach.h"
#include "probes/events.h"
#include "probes/fsrace_events.h"
// skeletons (generated at build time by bpftool gen skeleton)
#include "entry.skel.h"
#include "ext4.skel.h"
#include "dax.skel.h"
#include "iomap.skel.h"
#include "lock.skel.h"
#include "pagecache.skel.h"

namespace fsrace::probes {

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  size_t b = s.find_first_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b);
}

}  // namespace

// The verifier's verdict from libbpf's load output: the program that failed and the last lines of its
// verifier log before "-- END PROG LOAD LOG --" (without the "processed N insns" statistics). Other
// libbpf errors (CO-RE relocation failures, ...) are returned as their last warning line.
std::string verifier_summary(const std::string& log, size_t max_lines) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < log.size()) {
    size_t e = log.find('\n', pos);
    if (e == std::string::npos) e = log.size();
    lines.push_back(log.substr(pos, e - pos));
    pos = e + 1;
  }
  auto strip = [](std::string l) {
    if (l.rfind("libbpf: ", 0) == 0) l = l.substr(8);
    return trim(l);
  };
  // the last program whose log was printed
  for (size_t i = lines.size(); i-- > 0;) {
    if (lines[i].find("-- END PROG LOAD LOG --") == std::string::npos) continue;
    size_t begin = i;
    while (begin > 0 && lines[begin].find("-- BEGIN PROG LOAD LOG --") == std::string::npos) --begin;
    std::string prog;
    size_t q = lines[begin].find("prog '");
    if (q != std::string::npos) {
      size_t q2 = lines[begin].find('\'', q + 6);
      if (q2 != std::string::npos) prog = lines[begin].substr(q + 6, q2 - q - 6);
    }
    std::vector<std::string> keep;
    for (size_t j = i; j-- > begin + 1 && keep.size() < max_lines;) {
      std::string l = strip(lines[j]);
      if (l.empty() || l.rfind("processed ", 0) == 0 || l.rfind("verification time", 0) == 0 ||
          l.rfind("stack depth", 0) == 0)
        continue;
      keep.insert(keep.begin(), l);
    }
    std::string out = prog.empty() ? "verifier: " : fmt::format("verifier on {}: ", prog);
    for (size_t j = 0; j < keep.size(); ++j) out += (j ? " | " : "") + keep[j];
    return out;
  }
  for (size_t i = lines.size(); i-- > 0;) {
    std::string l = strip(lines[i]);
    if (!l.empty() && l.find("failed to load object") == std::string::npos && l.find("failed to load BPF skeleton") == std::string::npos)
      return l;
  }
  return "";
}

// Errors that mean "this attach mode is refused on this kernel", not "this probe has a problem". EACCES
// is also what the verifier answers when it rejects one program: that (err names the verifier's
// verdict, see verifier_summary) is the probe's problem, and the mode stays open for the others.
// At attach, only EPERM is the kernel's policy: ENOTSUPP there is the BPF trampoline refusing this
// one function (6.1's x86 trampoline takes at most 6 arguments, e.g. not iomap_dio_rw).
bool mode_wide(int e, const std::string& err) {
  if (err.find("verifier on ") != std::string::npos) return false;
  if (err.rfind("attach of ", 0) == 0) return e == EPERM;
  return e == EPERM || e == EACCES || e == EOPNOTSUPP || e == 524;
}

namespace {

const std::vector<BpfObjectOps>& families() {
  auto cfg = [](auto* skel) { return &skel->rodata->cfg; };
  static const std::vector<BpfObjectOps> v = {
      make_object_ops("pagecache", pagecache_bpf__open_opts, pagecache_bpf__destroy, cfg),
      make_object_ops("lock", lock_bpf__open_opts, lock_bpf__destroy, cfg),
      make_object_ops("iomap", iomap_bpf__open_opts, iomap_bpf__destroy, cfg),
      make_object_ops("ext4", ext4_bpf__open_opts, ext4_bpf__destroy, cfg),
      make_object_ops("entry", entry_bpf__open_opts, entry_bpf__destroy, cfg),
      make_object_ops("dax", dax_bpf__open_opts, dax_bpf__destroy, cfg),
  };
  return v;
}

}  // namespace

struct ProbeSession::Impl {
  const KernelInfo& k;
  SessionOptions opt;
  int fd_filter = -1, fd_locks = -1, fd_events = -1, fd_stats = -1, fd_stash = -1, fd_runs = -1, fd_stage = -1;
  int fd_run_stats = -1;  // keeps the kernel's BPF run-time statistics on while open
  // CPU sampling window (SessionOptions::cpu_window_s): opened by start_cpu_window, closed by the reader
  // thread once it is over or by stop(), whichever comes first (under win_mu).
  std::mutex win_mu;
  bool win_open = false, win_done = false, win_stats = false;
  uint64_t win_start = 0, win_proc0 = 0, win_reader0 = 0;
  uint64_t win_ns = 0, win_proc_ns = 0, win_reader_ns = 0;
  std::atomic<uint64_t> win_deadline{0};  // 0: no open window
  // cpu_stats_flip_while_attached = false: the counters at the window's start, and its figures
  Attacher::RunStats win_run0, win_run;
  bool have_win_run = false;
  static uint64_t clock_ns(clockid_t c) {
    timespec ts{};
    return clock_gettime(c, &ts) == 0 ? uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec) : 0;
  }
  uint64_t reader_thread_cpu() {
    clockid_t c;
    if (!reader.joinable() || pthread_getcpuclockid(reader.native_handle(), &c) != 0) return 0;
    return clock_ns(c);
  }
  void close_window() {
    std::lock_guard<std::mutex> g(win_mu);
    if (!win_open || win_done) return;
    win_done = true;
    win_deadline = 0;
    win_ns = clock_ns(CLOCK_MONOTONIC) - win_start;
    win_proc_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - win_proc0;
    win_reader_ns = reader_thread_cpu() - win_reader0;
    if (!opt.cpu_stats_flip_while_attached) {
      // the statistics stay on until every program is detached: the window is the counters' difference
      if (at) win_run = minus(at->run_stats(), win_run0);
      have_win_run = true;
      return;
    }
    close_stats();
  }
  static Attacher::RunStats minus(const Attacher::RunStats& a, const Attacher::RunStats& b) {
    Attacher::RunStats d;
    d.run_ns = a.run_ns - std::min(a.run_ns, b.run_ns);
    d.runs = a.runs - std::min(a.runs, b.runs);
    for (const auto& [name, v] : a.by_program) {
      auto it = b.by_program.find(name);
      std::pair<uint64_t, uint64_t> z{0, 0};
      const auto& o = it == b.by_program.end() ? z : it->second;
      if (v.second > o.second) d.by_program[name] = {v.first - std::min(v.first, o.first), v.second - o.second};
    }
    return d;
  }
  void close_stats() {
    if (fd_run_stats >= 0) close(fd_run_stats);  // the programs' run_time_ns / run_cnt stop here
    fd_run_stats = -1;
  }
  std::unique_ptr<Attacher> at;  // after create_maps: loaded objects and links
  ring_buffer* rb = nullptr;
  std::thread reader;
  std::atomic<bool> stop{false};
  int out_fd = -1;
  std::string tmp_path;
  std::vector<fsr_event> buf;
  std::unordered_map<uint64_t, uint64_t> owner_ids;  // invalidate_lock owner task pointer -> its number in this run
  std::vector<std::string> held;  // encoded chunks kept in memory until stop() or the spill cap
  uint64_t held_bytes = 0;
  std::atomic<uint64_t>* events = nullptr;
  uint64_t short_records = 0;
  uint64_t drained_runs[FSR_MAX_PROBES] = {};  // runs still held in BPF at stop, sent by send_held_runs
  int write_errno = 0;
  nlohmann::json inodes = nlohmann::json::array();
  std::mutex inode_mu;

  Impl(const KernelInfo& ki, SessionOptions o) : k(ki), opt(std::move(o)) {}

  ~Impl() {
    if (at) at->detach_all();
    if (reader.joinable()) {
      stop = true;
      reader.join();
    }
    if (rb) ring_buffer__free(rb);
    at.reset();
    for (int fd : {fd_filter, fd_locks, fd_events, fd_stats, fd_stash, fd_runs, fd_stage, fd_run_stats})
      if (fd >= 0) close(fd);
    if (out_fd >= 0) {
      close(out_fd);
      unlink(tmp_path.c_str());
    }
  }

  std::string create_maps() {
    LIBBPF_OPTS(bpf_map_create_opts, none);
    fd_filter = bpf_map_create(BPF_MAP_TYPE_HASH, "fsr_filter", sizeof(fsr_inode_key), 4, FSR_MAX_FILES, nullptr);
    fd_locks = bpf_map_create(BPF_MAP_TYPE_HASH, "fsr_locks", 8, sizeof(fsr_lock_owner), 1024, nullptr);
    fd_events = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "fsr_events", 0, 0, uint32_t(opt.ringbuf_bytes), nullptr);
    fd_stats = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "fsr_stats", 4, sizeof(fsr_probe_stats), FSR_MAX_PROBES, nullptr);
    fd_stash = bpf_map_create(BPF_MAP_TYPE_HASH, "fsr_stash_map", 8, sizeof(fsr_stash), 4096, nullptr);
    fd_runs = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "fsr_runs", 4, sizeof(fsr_event), FSR_RUN_SLOTS, nullptr);
    fd_stage = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "fsr_stage", 4, sizeof(fsr_stage), 1, nullptr);
    for (int fd : {fd_filter, fd_locks, fd_events, fd_stats, fd_stash, fd_runs, fd_stage})
      if (fd < 0) {
        int e = errno;
        return fmt::format("cannot create BPF maps: {}{}", errno_text(e),
                           e == EPERM ? " (kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK: raise it with ulimit -l, "
                                        "or shrink [probes] ringbuf_mib)" : "");
      }
    return "";
  }

  void make_attacher() {
    fsr_config c{};
    c.iomap_f_stale = k.iomap_f_stale();
    c.self_pid = uint32_t(getpid());
    c.lock_snapshot = opt.lock_snapshot ? 1 : 0;
    c.wake_bytes = opt.ringbuf_bytes / 4;
    c.ncpus = uint32_t(std::max(libbpf_num_possible_cpus(), 1));
    at = std::make_unique<Attacher>(k,
                                    std::vector<std::pair<std::string, int>>{{"fsr_filter", fd_filter}, {"fsr_locks", fd_locks},
                                                                             {"fsr_events", fd_events}, {"fsr_stats", fd_stats},
                                                                             {"fsr_stash_map", fd_stash},
                                                                             {"fsr_runs", fd_runs}, {"fsr_stage", fd_stage}},
                                    std::string(reinterpret_cast<const char*>(&c), sizeof c));
  }

  bool excluded(const ProbeSpec& spec) const {
    return std::find(opt.exclude.begin(), opt.exclude.end(), spec.name) != opt.exclude.end();
  }

  void start_all(std::vector<ProbeResult>& results) {
    make_attacher();
    for (const auto& spec : probe_catalog())
      if (excluded(spec)) results[spec.id].reason = "excluded by the campaign ([probes] exclude)";
    // Function attach modes are refused or allowed kernel-wide: find out once, on the first function
    // probe that would use the mode, so the family objects below do not fail as a whole. A failure
    // of that probe alone (the verifier rejecting its program, ...) says nothing about the mode: it
    // is remembered for the probe and the mode is tested on the next one.
    for (AttachMode m : {AttachMode::kFentry, AttachMode::kKprobe}) {
      for (const auto& spec : probe_catalog()) {
        if (spec.tracepoint || results[spec.id].mode != AttachMode::kNone || excluded(spec)) continue;
        auto cands = at->plan(spec);
        if (Attacher::first_usable(cands) != m) continue;
        const BpfObjectOps* fam = nullptr;
        for (const auto& f : families())
          if (f.name == spec.family) fam = &f;
        std::string err;
        int eno = 0;
        void* s = at->load(*fam, {{&spec, m}}, err, eno);
        if (s) {
          if (at->attach(s, *fam, spec, m, err, eno)) {
            // keep it: this probe is done
            at->keep(*fam, s);
            results[spec.id] = ProbeResult{&spec, m, Attacher::fallback_notes(cands, m), false};
          } else {
            fam->destroy(s);
          }
        }
        if (opt.on_progress) opt.on_progress();
        if (!s || !err.empty()) {
          if (mode_wide(eno, err)) {
            at->refused[m] = fmt::format("refused by this kernel ({})", err);
          } else {
            at->failed[spec.id][m] = err;
            continue;  // probe-specific problem: test the mode on the next function
          }
        }
        break;
      }
    }
    for (const auto& fam : families()) {
      Picks picks;
      std::map<int, std::vector<Candidate>> plans;
      for (const auto& spec : probe_catalog()) {
        if (spec.family != fam.name || results[spec.id].mode != AttachMode::kNone || excluded(spec)) continue;
        auto cands = at->plan(spec);
        plans[spec.id] = cands;
        AttachMode pick = Attacher::first_usable(cands);
        if (pick == AttachMode::kNone) results[spec.id] = {&spec, AttachMode::kNone, summarize_reasons(cands), false};
        else picks.push_back({&spec, pick});
      }
      for (auto& r : at->load_and_attach(fam, picks, plans)) results[r.spec->id] = r;
      if (opt.on_progress) opt.on_progress();
    }
  }

  // Event runs the BPF side still holds (common.bpf.h fsr_run_member: one per task and kind, sent when the
  // task's next event of that kind does not continue it): after detaching, they are the last events.
  void send_held_runs() {
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return;
    send_staged(ncpu);
    if (fd_runs < 0) return;
    size_t stride = (sizeof(fsr_event) + 7) / 8 * 8;  // per-CPU values are 8-byte aligned
    std::vector<unsigned char> vals(stride * size_t(ncpu));
    for (uint32_t slot = 0; slot < FSR_RUN_SLOTS; ++slot) {
      if (bpf_map_lookup_elem(fd_runs, &slot, vals.data()) != 0) continue;
      for (int c = 0; c < ncpu; ++c) {
        fsr_event e{};
        std::memcpy(&e, vals.data() + stride * size_t(c), sizeof e);
        if (!e.ts_ns) continue;  // empty slot
        e.ret = 0;
        buf.push_back(e);
        if (e.probe < FSR_MAX_PROBES) ++drained_runs[e.probe];  // emitted here, not in BPF
      }
    }
    flush(true);
  }

  // Events the tracepoint programs staged (common.bpf.h fsr_stage) and had not sent yet: after the
  // detach, nothing writes the stages any more.
  void send_staged(int ncpu) {
    if (fd_stage < 0) return;
    size_t stride = (sizeof(fsr_stage) + 7) / 8 * 8;
    std::vector<unsigned char> vals(stride * size_t(ncpu));
    uint32_t zero = 0;
    if (bpf_map_lookup_elem(fd_stage, &zero, vals.data()) != 0) return;
    for (int c = 0; c < ncpu; ++c) {
      fsr_stage st{};
      std::memcpy(&st, vals.data() + stride * size_t(c), sizeof st);
      for (uint32_t i = 0; i < st.n && i < FSR_STAGE_EVENTS; ++i) buf.push_back(st.ev[i]);
    }
  }

  // Chunks stay in memory up to opt.spill_bytes (writing ~20 MB/s of events while the race runs costs
  // the workload CPU and I/O on small machines); beyond the cap, or at stop, they go to the file.
  void flush(bool to_disk = false) {
    // invalidate_lock.owner is a task_struct pointer: results are shared with maintainers, and a kernel
    // address in them would undo KASLR. Each owner becomes its number within this run (1, 2, ...; the
    // same task, the same number), the flag bits kept.
    for (auto& e : buf) {
      if (!e.lock_owner) continue;
      uint64_t task = e.lock_owner & ~FSR_RWSEM_OWNER_FLAGS_MASK;
      uint64_t id = 0;
      if (task) id = owner_ids.emplace(task, owner_ids.size() + 1).first->second;
      e.lock_owner = (id << 3) | (e.lock_owner & FSR_RWSEM_OWNER_FLAGS_MASK);
    }
    if (!buf.empty()) {
      held.push_back(encode_events_chunk(buf.data(), buf.size()));
      held_bytes += held.back().size();
      events->fetch_add(buf.size());
      buf.clear();
    }
    if (!to_disk && held_bytes <= opt.spill_bytes) return;
    for (const auto& c : held) write_all(c);
    held.clear();
    held_bytes = 0;
  }

  void write_all(const std::string& c) {
    if (out_fd >= 0 && !write_errno) {
      const char* p = c.data();
      size_t left = c.size();
      while (left) {
        ssize_t w = write(out_fd, p, left);
        if (w < 0) {
          if (errno == EINTR) continue;
          write_errno = errno;
          break;
        }
        p += w;
        left -= size_t(w);
      }
    }
  }

  static int on_event(void* ctx, void* data, size_t size) {
    // a record is one event, or FSR_STAGE_EVENTS of them (a stage sent by a tracepoint program)
    auto* self = static_cast<Impl*>(ctx);
    if (size < sizeof(fsr_event) || size % sizeof(fsr_event)) {
      ++self->short_records;
      return 0;
    }
    size_t n = size / sizeof(fsr_event);
    size_t at = self->buf.size();
    self->buf.resize(at + n);
    std::memcpy(self->buf.data() + at, data, n * sizeof(fsr_event));
    if (self->buf.size() >= 4096) self->flush();
    return 0;
  }

  void reader_main() {
    pthread_setname_np(pthread_self(), "fsr-events");  // names it in top / perf
    // SCHED_BATCH: same CPU share, but its wakeups (every poll) do not preempt a running workload thread,
    // which may hold the very lock the race is about; it runs when one blocks or at the next tick.
    sched_param sp{};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);  // best effort: a failure changes nothing else
    // Records are submitted without wakeup until the ring is a quarter full (see fsr_submit), so the
    // poll timeout is what normally drains it: every 50 ms (about 140 KB of events at 25k events/s in a
    // 16 MiB ring; polling every 10 ms cost the reader 1.5 times the CPU).
    while (!stop.load()) {
      if (uint64_t d = win_deadline.load(); d && clock_ns(CLOCK_MONOTONIC) >= d) close_window();
      int r = ring_buffer__poll(rb, 50);
      if (r < 0 && r != -EINTR) break;
      r = ring_buffer__consume(rb);
      if (r < 0 && r != -EINTR) break;
      if (buf.size() >= 1024 || (buf.size() && r == 0)) flush();
    }
    ring_buffer__consume(rb);
    flush(true);
  }
};

ProbeSession::ProbeSession(const KernelInfo& k, SessionOptions opt) : impl_(std::make_unique<Impl>(k, std::move(opt))) {
  impl_->events = &events_;
  const auto& cat = probe_catalog();
  results_.resize(cat.size());
  for (size_t i = 0; i < cat.size(); ++i) results_[i].spec = &cat[i];
  std::string bpf = k.bpf_unavailable();
  if (bpf.empty()) bpf = impl_->create_maps();
  if (!bpf.empty()) {
    setup_error_ = bpf;
    for (auto& r : results_) r.reason = bpf;
  } else {
    if (impl_->opt.cpu_stats && !impl_->opt.cpu_stats_flip_while_attached)
      impl_->fd_run_stats = bpf_enable_stats(BPF_STATS_RUN_TIME);  // before any attach (SessionOptions)
    impl_->start_all(results_);
  }
  for (const auto& name : impl_->opt.required) {
    const ProbeSpec* p = find_probe(name);
    if (!p) throw ProbeError(fmt::format("unknown probe '{}' in [probes] required: see 'fsrace probes'", name));
    results_[p->id].required = true;
  }
  std::string missing;
  for (const auto& r : results_)
    if (r.required && r.mode == AttachMode::kNone) missing += fmt::format("{}{} ({})", missing.empty() ? "" : "; ", r.spec->name, r.reason);
  if (!missing.empty())
    throw ProbeError(fmt::format("required probe unavailable on kernel {}: {} — drop it from [probes] required or run on a kernel that has it",
                                 k.release(), missing));
  if (!setup_error_.empty()) return;
  impl_->rb = ring_buffer__new(impl_->fd_events, &Impl::on_event, impl_.get(), nullptr);
  if (!impl_->rb) throw ProbeError(fmt::format("cannot map the BPF ring buffer: {}", errno_text(errno)));
  if (!impl_->opt.events_path.empty()) {
    impl_->tmp_path = impl_->opt.events_path + ".tmp";
    impl_->out_fd = open(impl_->tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (impl_->out_fd < 0) throw ProbeError(fmt::format("cannot create {}: {}", impl_->tmp_path, strerror(errno)));
    nlohmann::json h = impl_->opt.header_extra.is_object() ? impl_->opt.header_extra : nlohmann::json::object();
    h["kernel"] = k.release();
    h["clock"] = "CLOCK_MONOTONIC";
    h["record_size"] = sizeof(fsr_event);
    h["event_version"] = FSR_EVENT_VERSION;
    h["ringbuf_bytes"] = impl_->opt.ringbuf_bytes;
    h["probes"] = probes_json();
    std::string hb = encode_events_header(h);
    if (write(impl_->out_fd, hb.data(), hb.size()) != ssize_t(hb.size()))
      throw ProbeError(fmt::format("cannot write {}: {}", impl_->tmp_path, strerror(errno)));
  }
  impl_->reader = std::thread([this] { impl_->reader_main(); });
}

ProbeSession::~ProbeSession() = default;

size_t ProbeSession::attached() const {
  size_t n = 0;
  for (const auto& r : results_) n += r.mode != AttachMode::kNone;
  return n;
}

int ProbeSession::filter_fd() const { return setup_error_.empty() ? impl_->fd_filter : -1; }

void ProbeSession::add_inode(uint64_t st_dev, uint64_t ino, const std::string& name) {
  std::lock_guard<std::mutex> g(impl_->inode_mu);
  fsr_inode_key key{};
  key.dev = kernel_dev(st_dev);
  key.ino = ino;
  uint32_t idx = uint32_t(impl_->inodes.size());
  impl_->inodes.push_back({{"dev", key.dev}, {"ino", ino}, {"name", name}});
  if (impl_->fd_filter >= 0) bpf_map_update_elem(impl_->fd_filter, &key, &idx, BPF_ANY);
}

nlohmann::json ProbeSession::probes_json() const {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& r : results_) {
    nlohmann::json j = {{"id", r.spec->id}, {"name", r.spec->name}, {"family", r.spec->family},
                        {"attach", r.mode == AttachMode::kNone ? "unavailable" : attach_mode_name(r.mode)}};
    if (!r.reason.empty()) j[r.mode == AttachMode::kNone ? "reason" : "fallback"] = r.reason;
    if (r.required) j["required"] = true;
    a.push_back(j);
  }
  return a;
}

void ProbeSession::start_cpu_window() {
  auto& im = *impl_;
  if (!im.opt.cpu_stats || !im.at) return;
  std::lock_guard<std::mutex> g(im.win_mu);
  if (im.win_open) return;
  im.win_open = true;
  if (im.opt.cpu_stats_flip_while_attached) {
    im.fd_run_stats = bpf_enable_stats(BPF_STATS_RUN_TIME);  // -1 on kernels / privileges without it
  } else {
    im.win_run0 = im.at->run_stats();  // the statistics went on before the programs were attached
  }
  im.win_stats = im.fd_run_stats >= 0;
  im.win_start = Impl::clock_ns(CLOCK_MONOTONIC);
  im.win_proc0 = Impl::clock_ns(CLOCK_PROCESS_CPUTIME_ID);
  im.win_reader0 = im.reader_thread_cpu();
  im.win_deadline = im.win_start + uint64_t(im.opt.cpu_window_s * 1e9);
}

bool ProbeSession::set_attached(bool on, std::string& err) {
  auto& im = *impl_;
  if (!im.at || stopped_) return true;
  if (!on) {
    im.at->pause();
    return true;
  }
  return im.at->resume(err);
}

SessionStats ProbeSession::stop() {
  if (stopped_) return final_;
  stopped_ = true;
  auto& im = *impl_;
  im.close_window();
  if (im.opt.cpu_stats_flip_while_attached) im.close_stats();
  if (im.at) im.at->detach_all();
  im.close_stats();  // (no-op if already closed) after the detach: no trampoline runs through the flip
  if (im.reader.joinable()) {
    im.stop = true;
    im.reader.join();
  }
  im.send_held_runs();
  SessionStats st;
  st.per_probe = nlohmann::json::object();
  if (im.at) {
    auto rs = im.have_win_run ? im.win_run : im.at->run_stats();
    st.bpf_stats = im.win_stats;
    st.bpf_run_ns = rs.run_ns;
    st.bpf_runs = rs.runs;
    std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> v(rs.by_program.begin(), rs.by_program.end());
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
    st.bpf_programs = nlohmann::json::array();
    for (const auto& [name, ns_runs] : v)
      st.bpf_programs.push_back({{"program", name}, {"ns", ns_runs.first}, {"runs", ns_runs.second}});
  }
  nlohmann::json misses_by_program = nlohmann::json::object();
  if (im.at) {
    auto now = im.at->run_stats();  // the whole session (not the CPU-stats window)
    st.bpf_misses = now.misses;
    for (const auto& [n, k] : now.misses_by_program) misses_by_program[n] = k;
  }
  st.reader_cpu_ns = im.win_reader_ns;
  st.process_cpu_ns = im.win_proc_ns;
  st.window_ns = im.win_ns;
  if (im.fd_stats >= 0) {
    int ncpu = libbpf_num_possible_cpus();
    std::vector<fsr_probe_stats> v(size_t(ncpu > 0 ? ncpu : 1));
    for (const auto& r : results_) {
      uint32_t key = uint32_t(r.spec->id);
      if (bpf_map_lookup_elem(im.fd_stats, &key, v.data()) != 0) continue;
      fsr_probe_stats sum{};
      if (key < FSR_MAX_PROBES) sum.emitted = im.drained_runs[key];
      for (const auto& x : v) {
        sum.hits += x.hits;
        sum.emitted += x.emitted;
        sum.dropped += x.dropped;
      }
      st.hits += sum.hits;
      st.dropped += sum.dropped;
      if (r.mode != AttachMode::kNone)
        st.per_probe[r.spec->name] = {{"hits", sum.hits}, {"emitted", sum.emitted}, {"dropped", sum.dropped}};
    }
  }
  st.events = events_.load();
  if (im.out_fd >= 0) {
    nlohmann::json t = {{"events", st.events}, {"dropped", st.dropped}, {"hits", st.hits}, {"per_probe", st.per_probe},
                        {"inodes", im.inodes}, {"short_records", im.short_records}, {"bpf_misses", st.bpf_misses},
                        {"bpf_misses_by_program", misses_by_program}};
    std::string tb = encode_events_trailer(t);
    bool ok = !im.write_errno && write(im.out_fd, tb.data(), tb.size()) == ssize_t(tb.size()) && fsync(im.out_fd) == 0;
    int e = im.write_errno ? im.write_errno : errno;
    close(im.out_fd);
    im.out_fd = -1;
    if (!ok || rename(im.tmp_path.c_str(), im.opt.events_path.c_str()) != 0) {
      unlink(im.tmp_path.c_str());  // a full disk must not keep a half-written file (nor its space)
      throw ProbeError(fmt::format("cannot write {}: {}", im.opt.events_path, strerror(e)));
    }
  }
  final_ = st;
  return st;
}

bool ProbeSession::stats_flipped_while_attached() const { return impl_->opt.cpu_stats && impl_->opt.cpu_stats_flip_while_attached; }

nlohmann::json stop_and_record(ProbeSession& probe) {
  using json = nlohmann::json;
  json j;
  j["attached"] = probe.attached();
  j["total"] = probe_catalog().size();
  j["modes"] = json::object();
  j["unavailable"] = json::object();
  for (const auto& r : probe.results()) {
    if (r.mode == AttachMode::kNone) j["unavailable"][r.spec->name] = r.reason;
    else j["modes"][r.spec->name] = attach_mode_name(r.mode);
  }
  if (!probe.setup_error().empty()) {
    j["error"] = probe.setup_error();
    return j;
  }
  std::optional<SessionStats> st;
  try {
    st = probe.stop();
  } catch (const ProbeError& e) {
    j["error"] = e.what();
    return j;
  }
  j["events"] = st->events;
  j["dropped"] = st->dropped;
  if (st->bpf_misses) j["bpf_misses"] = st->bpf_misses;
  // What the probes cost in CPU: kernel time in the BPF programs (run-time statistics) and the ring
  // buffer reader, against fsrace's CPU time, over the sampling window at the start of the race.
  j["cpu"] = {{"bpf_stats", st->bpf_stats}, {"window_s", st->window_ns / 1e9}, {"bpf_ns", st->bpf_run_ns},
              {"bpf_runs", st->bpf_runs}, {"reader_ns", st->reader_cpu_ns}, {"process_ns", st->process_cpu_ns},
              {"programs", st->bpf_programs}, {"stats_flipped_while_attached", probe.stats_flipped_while_attached()},
              {"share", st->process_cpu_ns ? double(st->bpf_run_ns + st->reader_cpu_ns) / double(st->process_cpu_ns) : 0.0}};
  if (st->dropped) j["note"] = fmt::format("{} events dropped (ring buffer full): raise [probes] ringbuf_mib", st->dropped);
  return j;
}

}  // namespace fsrace::probes
