/* Shared BPF-side code for every probe family: the maps (created once by the loader and shared between
 * the family objects with bpf_map__reuse_fd), the inode filter, the invalidate_lock snapshot and the
 * event emitter. Everything that touches kernel structs goes through CO-RE (BPF_CORE_READ,
 * bpf_core_field_exists) so one object loads on 6.1 and 6.18. */
#ifndef FSRACE_COMMON_BPF_H
#define FSRACE_COMMON_BPF_H

#include "filter.bpf.h"

const volatile struct fsr_config cfg = {};

/* &inode->i_mapping->invalidate_lock of test inodes seen so far -> inode. Filled by the BPF side
 * the first time an event with an inode pointer matches the filter. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct fsr_lock_owner);
} fsr_locks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* resized by the loader before load */
} fsr_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FSR_MAX_PROBES);
	__type(key, __u32);
	__type(value, struct fsr_probe_stats);
} fsr_stats SEC(".maps");

/* entry -> return stash for kretprobes / probes whose exit has no arguments: key tid << 8 | probe */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct fsr_stash);
} fsr_stash_map SEC(".maps");

/* Event runs: some events come in bursts from one task over consecutive indexes (a readahead or a
 * fault adding folio after folio, a truncation removing them, ext4 inserting one delayed extent per
 * block of a write). One event stands for the run (a[0] first index, a[1] count; time, task and lock
 * state of the first member). It is held here per CPU and slot — ts_ns 0: empty; ret: time of its last
 * member — and sent when the next event of that slot on this CPU does not continue it (another task,
 * inode or index, another invalidate_lock state, or more than the gap later); the loader sends the runs
 * still held when the session stops. A per-CPU slot instead of a (task, kind) hash costs an array load
 * instead of a hash lookup per event; it is safe because only tracepoint programs (tp_btf / raw_tp /
 * tracepoint: preemption disabled, and BPF does not nest a program on its CPU) use it. */
enum { FSR_RUN_PC_ADD = 0, FSR_RUN_PC_DELETE = 1, FSR_RUN_ES_DELAYED = 2 };
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FSR_RUN_SLOTS);
	__type(key, __u32);
	__type(value, struct fsr_event);
} fsr_runs SEC(".maps");
/* Staging (tracepoint programs only): a ring-buffer reservation and commit costs about 0.5 us under a
 * race on two CPUs (the ring's lock and producer position bounce between the CPUs, and the reader
 * updates the consumer position per record), more than building the event. So tracepoint programs
 * build their events in this CPU's fsr_stage and send FSR_STAGE_EVENTS of them as one ring record;
 * the loader drains what is left after detaching. Safe because tracepoint programs run with
 * preemption disabled: the only thing that can interleave on this CPU is an interrupt running another
 * tracepoint program, which finds `busy` set and builds its event in `nest`, sent straight to the ring
 * (one level deeper, counted as a drop). Function probes (fentry: preemptible) never use it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fsr_stage);
} fsr_stage SEC(".maps");

static __always_inline struct fsr_probe_stats *fsr_stat(__u32 probe)
{
	return bpf_map_lookup_elem(&fsr_stats, &probe);
}

/* Address of mapping->invalidate_lock, 0 if this kernel's address_space has none. */
static __always_inline __u64 fsr_lock_addr(struct address_space *mapping)
{
	if (!mapping || !bpf_core_field_exists(mapping->invalidate_lock))
		return 0;
	return (__u64)(void *)&mapping->invalidate_lock;
}

/* Per CPU: the lock address fsr_remember_lock saw last, so the common case (one test inode, event
 * after event) costs an array load instead of a hash lookup. Private to each object (a cache). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} fsr_lock_seen SEC(".maps");

static __always_inline void fsr_remember_lock(__u64 lock, __u32 dev, __u64 ino)
{
	if (!lock)
		return;
	__u32 zero = 0;
	__u64 *seen = bpf_map_lookup_elem(&fsr_lock_seen, &zero);
	if (seen && *seen == lock)
		return;
	if (seen)
		*seen = lock;
	if (bpf_map_lookup_elem(&fsr_locks, &lock))
		return;
	struct fsr_lock_owner o = {.dev = dev, .pad = 0, .ino = ino};
	bpf_map_update_elem(&fsr_locks, &lock, &o, BPF_NOEXIST);
}

/* Every field of a fresh event at time `now` by the task `pt` (bpf_get_current_pid_tgid). */
static __always_inline void fsr_fill_at(struct fsr_event *e, __u32 probe, __u16 kind, __u32 dev, __u64 ino, __u64 now, __u64 pt)
{
	e->ts_ns = now;
	e->ino = ino;
	e->dev = dev;
	e->kind = kind;
	e->probe = probe;
	e->pid = pt >> 32;
	e->tid = (__u32)pt;
	e->flags = 0;
	e->pad = 0;
	e->a[0] = e->a[1] = e->a[2] = e->a[3] = 0;
	e->ret = 0;
	e->lock_count = 0;
	e->lock_owner = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

static __always_inline void fsr_fill(struct fsr_event *e, __u32 probe, __u16 kind, __u32 dev, __u64 ino)
{
	fsr_fill_at(e, probe, kind, dev, ino, bpf_ktime_get_ns(), bpf_get_current_pid_tgid());
}

/* Reserves an event; on a full ring buffer counts the drop for `probe` and returns NULL. */
static __always_inline struct fsr_event *fsr_reserve(__u32 probe, __u16 kind, __u32 dev, __u64 ino)
{
	struct fsr_probe_stats *st = fsr_stat(probe);
	if (st)
		st->hits++;
	struct fsr_event *e = bpf_ringbuf_reserve(&fsr_events, sizeof(*e), 0);
	if (!e) {
		if (st)
			st->dropped++;
		return NULL;
	}
	fsr_fill(e, probe, kind, dev, ino);
	return e;
}

static __always_inline void fsr_submit(struct fsr_event *e)
{
	struct fsr_probe_stats *st = fsr_stat(e->probe);
	if (st)
		st->emitted++;
	/* Waking the reader for every record costs a context switch per event on the hot path; wake it
	 * only once a quarter of the ring is filled (the reader also polls every few ms). */
	__u64 avail = bpf_ringbuf_query(&fsr_events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(e, avail > cfg.wake_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline __u64 fsr_wake_flag(void)
{
	return bpf_ringbuf_query(&fsr_events, BPF_RB_AVAIL_DATA) > cfg.wake_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* One event copied to the ring (not staged), counted as emitted or dropped for its probe. */
static __always_inline void fsr_output_one(struct fsr_event *e, struct fsr_probe_stats *st, __u64 flags)
{
	if (bpf_ringbuf_output(&fsr_events, e, sizeof(*e), flags) == 0) {
		if (st)
			st->emitted++;
	} else if (st) {
		st->dropped++;
	}
}

/* A staged event was completed (the caller holds busy = 1): counts it; a full stage goes to the ring
 * as one record, and its events count as dropped if the ring has no room. */
static __always_inline void fsr_stage_commit(struct fsr_stage *s, struct fsr_probe_stats *st)
{
	if (st)
		st->emitted++;
	__u32 n = s->n + 1;
	if (n < FSR_STAGE_EVENTS) {
		s->n = n;
		return;
	}
	s->n = 0;
	if (bpf_ringbuf_output(&fsr_events, s->ev, sizeof(s->ev), fsr_wake_flag()) == 0)
		return;
	for (int i = 0; i < FSR_STAGE_EVENTS; i++) {
		struct fsr_probe_stats *x = fsr_stat(s->ev[i].probe);
		if (x) {
			x->emitted--;
			x->dropped++;
		}
	}
}

/* The stage's next free slot ev[n] (n bounded for the verifier). */
static __always_inline struct fsr_event *fsr_stage_next(struct fsr_stage *s)
{
	__u32 i = s->n;
	if (i >= FSR_STAGE_EVENTS)
		i = 0;
	return &s->ev[i];
}

/* fsr_reserve for tracepoint programs: the event is built in this CPU's stage. Pair with
 * fsr_submit_tp (the verifier rejects a ring pointer there, and a stage pointer in fsr_submit). */
static __always_inline struct fsr_event *fsr_reserve_tp(__u32 probe, __u16 kind, __u32 dev, __u64 ino)
{
	struct fsr_probe_stats *st = fsr_stat(probe);
	if (st)
		st->hits++;
	__u32 zero = 0;
	struct fsr_stage *s = bpf_map_lookup_elem(&fsr_stage, &zero);
	if (!s)
		return NULL;
	struct fsr_event *e;
	if (s->busy == 0) {
		e = fsr_stage_next(s);
	} else if (s->busy == 1) {
		e = &s->nest;
	} else {
		if (st)
			st->dropped++;
		return NULL;
	}
	s->busy++;
	fsr_fill(e, probe, kind, dev, ino);
	return e;
}

static __always_inline void fsr_submit_tp(struct fsr_event *e)
{
	__u32 zero = 0;
	struct fsr_stage *s = bpf_map_lookup_elem(&fsr_stage, &zero);
	if (!s)
		return;
	struct fsr_probe_stats *st = fsr_stat(e->probe);
	if (s->busy > 1) { /* built in nest while an interrupted program holds the stage */
		fsr_output_one(e, st, fsr_wake_flag());
		s->busy = 1;
		return;
	}
	fsr_stage_commit(s, st);
	s->busy = 0;
}

/* The invalidate_lock state an event records: (count, owner, FSR_F_LOCK_* flags); all 0 without a lock
 * or with lock_snapshot off. Registers the test inode's lock address for the lock family. `btf`: a
 * compile-time constant, true when `mapping` is a BTF pointer (tp_btf / fentry programs): plain loads
 * instead of one bpf_probe_read_kernel call per word. */
struct fsr_lock_state {
	__u64 count;
	__u64 owner;
	__u32 flags;
};
static __always_inline void fsr_lock_state(struct fsr_lock_state *ls, struct address_space *mapping, __u32 dev, __u64 ino,
					   const bool btf)
{
	ls->count = ls->owner = 0;
	ls->flags = 0;
	__u64 lock = fsr_lock_addr(mapping);
	if (!lock)
		return;
	fsr_remember_lock(lock, dev, ino);
	if (!cfg.lock_snapshot)
		return;
	struct rw_semaphore *sem = &mapping->invalidate_lock;
	if (!bpf_core_field_exists(sem->count) || !bpf_core_field_exists(sem->owner))
		return; /* PREEMPT_RT rwsem: no count/owner words */
	long count = 0, owner = 0;
	if (btf) {
		count = sem->count.counter;
		owner = sem->owner.counter;
	} else {
		bpf_core_read(&count, sizeof(count), &sem->count);
		bpf_core_read(&owner, sizeof(owner), &sem->owner);
	}
	ls->count = (__u64)count;
	ls->owner = (__u64)owner;
	ls->flags = FSR_F_LOCK_VALID;
	if (((__u64)owner & ~FSR_RWSEM_OWNER_FLAGS_MASK) == bpf_get_current_task())
		ls->flags |= FSR_F_LOCK_SELF;
}

/* The lock state (fsr_lock_state) into the event. */
static __always_inline void fsr_lock_snapshot_x(struct fsr_event *e, struct address_space *mapping, const bool btf)
{
	struct fsr_lock_state ls;
	fsr_lock_state(&ls, mapping, e->dev, e->ino, btf);
	e->lock_count = ls.count;
	e->lock_owner = ls.owner;
	e->flags |= ls.flags;
}

/* The common case: an event about `inode` from a probe that has the inode pointer. `btf`: a
 * compile-time constant, true in tp_btf programs (direct loads, see fsr_inode_id_btf). `tp`: a
 * compile-time constant, true in tracepoint programs (staged: fsr_reserve_tp, pair with fsr_submit_tp). */
static __always_inline struct fsr_event *fsr_inode_event_xt(__u32 probe, __u16 kind, struct inode *inode, const bool btf,
							    const bool tp)
{
	__u32 dev;
	__u64 ino;
	if (btf) {
		if (!fsr_inode_id_btf(inode, &dev, &ino))
			return NULL;
	} else if (!fsr_inode_id(inode, &dev, &ino)) {
		return NULL;
	}
	if (!fsr_match(dev, ino))
		return NULL;
	struct fsr_event *e = tp ? fsr_reserve_tp(probe, kind, dev, ino) : fsr_reserve(probe, kind, dev, ino);
	if (!e)
		return NULL;
	fsr_lock_snapshot_x(e, btf ? inode->i_mapping : BPF_CORE_READ(inode, i_mapping), btf);
	return e;
}

static __always_inline struct fsr_event *fsr_inode_event_x(__u32 probe, __u16 kind, struct inode *inode, const bool btf)
{
	return fsr_inode_event_xt(probe, kind, inode, btf, false);
}

/* For tp_btf (btf true) and raw_tp programs. */
static __always_inline struct fsr_event *fsr_inode_event_tp(__u32 probe, __u16 kind, struct inode *inode, const bool btf)
{
	return fsr_inode_event_xt(probe, kind, inode, btf, true);
}

static __always_inline struct fsr_event *fsr_inode_event(__u32 probe, __u16 kind, struct inode *inode)
{
	return fsr_inode_event_x(probe, kind, inode, false);
}

/* An event from a classic tracepoint: only dev/ino from the trace record, no inode pointer. `tp` as in
 * fsr_inode_event_xt. */
static __always_inline struct fsr_event *fsr_id_event_xt(__u32 probe, __u16 kind, __u32 dev, __u64 ino, const bool tp)
{
	if (!fsr_match(dev, ino))
		return NULL;
	struct fsr_event *e = tp ? fsr_reserve_tp(probe, kind, dev, ino) : fsr_reserve(probe, kind, dev, ino);
	if (e)
		e->flags |= FSR_F_NO_INODE;
	return e;
}

static __always_inline struct fsr_event *fsr_id_event(__u32 probe, __u16 kind, __u32 dev, __u64 ino)
{
	return fsr_id_event_xt(probe, kind, dev, ino, false);
}

/* The same from a classic tracepoint program (staged: pair with fsr_submit_tp). */
static __always_inline struct fsr_event *fsr_id_event_tp(__u32 probe, __u16 kind, __u32 dev, __u64 ino)
{
	return fsr_id_event_xt(probe, kind, dev, ino, true);
}

static __always_inline __u64 fsr_stash_key(__u32 probe)
{
	return (bpf_get_current_pid_tgid() << 8) ^ probe;
}

/* A held run is staged (a copy; straight to the ring if an interrupted program holds the stage). */
static __always_inline void fsr_run_send(struct fsr_event *run)
{
	struct fsr_probe_stats *st = fsr_stat(run->probe);
	run->ret = 0;
	__u32 zero = 0;
	struct fsr_stage *s = bpf_map_lookup_elem(&fsr_stage, &zero);
	if (s && s->busy == 0) {
		s->busy = 1;
		__builtin_memcpy(fsr_stage_next(s), run, sizeof(*run));
		fsr_stage_commit(s, st);
		s->busy = 0;
		return;
	}
	fsr_output_one(run, st, 0);
}

/* One member of an event run: `n` indexes from `first` of (dev, ino) by the current task, with the
 * invalidate_lock state `ls` and the kind-specific `a2` (must match to merge). It extends the run held in
 * `slot` on this CPU when it continues it (same task, inode, probe, a2 and lock state, index first ==
 * the run's end, within gap_ns of its last member) and then returns NULL: the common case touches only
 * the held run, with no event built. Otherwise the held run is sent and the slot is rebuilt in place as
 * a new run starting with this member, which is returned so the caller can fill a[3]. */
static __always_inline struct fsr_event *fsr_run_member(__u32 probe, __u16 kind, __u32 slot, __u32 dev, __u64 ino,
							 __u64 first, __u64 n, __u64 a2, const struct fsr_lock_state *ls,
							 __u64 gap_ns)
{
	struct fsr_probe_stats *st = fsr_stat(probe);
	if (st)
		st->hits++;
	struct fsr_event *run = bpf_map_lookup_elem(&fsr_runs, &slot);
	if (!run)
		return NULL;  /* not reached: every slot exists */
	__u64 now = bpf_ktime_get_ns();
	__u64 pt = bpf_get_current_pid_tgid();
	if (run->ts_ns) {
		if (run->tid == (__u32)pt && run->ino == ino && run->dev == dev && run->probe == probe &&
		    run->a[0] + run->a[1] == first && run->a[2] == a2 && run->lock_count == ls->count &&
		    run->lock_owner == ls->owner && run->flags == ls->flags && now - (__u64)run->ret < gap_ns) {
			run->a[1] += n;
			run->ret = (__s64)now;
			return NULL;
		}
		fsr_run_send(run);
	}
	fsr_fill_at(run, probe, kind, dev, ino, now, pt);
	run->flags = ls->flags;
	run->a[0] = first;
	run->a[1] = n;
	run->a[2] = a2;
	run->ret = (__s64)now;
	run->lock_count = ls->count;
	run->lock_owner = ls->owner;
	return run;
}

#endif
