/* lock family: mapping->invalidate_lock of the test inodes. filemap_invalidate_lock*() are static
 * inlines, so the rw_semaphore itself is traced (down_* / up_* as libbpf-tools' klockstat does),
 * filtered by the lock addresses the other families registered in fsr_locks, plus the
 * lock:contention_begin/end tracepoints for the same addresses. */
#include "common.bpf.h"

/* `tp`: a compile-time constant, true in the contention tracepoint programs (staged events). */
static __always_inline struct fsr_event *lock_event(__u32 probe, __u16 kind, void *sem, const bool tp)
{
	__u64 addr = (__u64)sem;
	struct fsr_lock_owner *o = bpf_map_lookup_elem(&fsr_locks, &addr);
	if (!o)
		return NULL;
	struct fsr_event *e = tp ? fsr_reserve_tp(probe, kind, o->dev, o->ino) : fsr_reserve(probe, kind, o->dev, o->ino);
	if (!e)
		return NULL;
	if (cfg.lock_snapshot) {
		struct rw_semaphore *s = sem;
		if (bpf_core_field_exists(s->count)) {
			long count = 0, owner = 0;
			bpf_core_read(&count, sizeof(count), &s->count);
			bpf_core_read(&owner, sizeof(owner), &s->owner);
			e->lock_count = (__u64)count;
			e->lock_owner = (__u64)owner;
			e->flags |= FSR_F_LOCK_VALID;
			if (((__u64)owner & ~FSR_RWSEM_OWNER_FLAGS_MASK) == bpf_get_current_task())
				e->flags |= FSR_F_LOCK_SELF;
		}
	}
	return e;
}

static __always_inline int acquire_enter(__u32 probe, void *sem, __u64 write)
{
	struct fsr_event *e = lock_event(probe, FSR_EV_RWSEM_ACQUIRE, sem, false);
	if (!e)
		return 0;
	e->a[0] = write;
	struct fsr_stash s = {.ino = e->ino, .dev = e->dev, .mode = (__u32)write, .ptr = (__u64)sem};
	fsr_submit(e); /* after the last access to e: a submitted record is no longer ours */
	__u64 k = fsr_stash_key(probe);
	bpf_map_update_elem(&fsr_stash_map, &k, &s, BPF_ANY);
	return 0;
}

static __always_inline int acquire_exit(__u32 probe, long ret, bool has_ret)
{
	__u64 k = fsr_stash_key(probe);
	struct fsr_stash *s = bpf_map_lookup_elem(&fsr_stash_map, &k);
	if (!s)
		return 0;
	struct fsr_event *e = lock_event(probe, FSR_EV_RWSEM_ACQUIRED, (void *)s->ptr, false);
	if (e) {
		e->a[0] = s->mode;
		if (has_ret) {
			e->ret = (int)ret;
			e->flags |= FSR_F_HAS_RET;
		}
		fsr_submit(e);
	}
	bpf_map_delete_elem(&fsr_stash_map, &k);
	return 0;
}

static __always_inline int release(__u32 probe, void *sem, __u64 write)
{
	struct fsr_event *e = lock_event(probe, FSR_EV_RWSEM_RELEASE, sem, false);
	if (!e)
		return 0;
	e->a[0] = write;
	fsr_submit(e);
	return 0;
}

/* void down_write(struct rw_semaphore *) */
SEC("fentry/down_write")
int BPF_PROG(fentry__down_write, struct rw_semaphore *sem) { return acquire_enter(FSR_P_DOWN_WRITE, sem, 1); }
SEC("fexit/down_write")
int BPF_PROG(fexit__down_write, struct rw_semaphore *sem) { return acquire_exit(FSR_P_DOWN_WRITE, 0, false); }
SEC("kprobe/down_write")
int BPF_KPROBE(kprobe__down_write, struct rw_semaphore *sem) { return acquire_enter(FSR_P_DOWN_WRITE, sem, 1); }
SEC("kretprobe/down_write")
int BPF_KRETPROBE(kretprobe__down_write) { return acquire_exit(FSR_P_DOWN_WRITE, 0, false); }

/* int down_write_killable(struct rw_semaphore *) */
SEC("fentry/down_write_killable")
int BPF_PROG(fentry__down_write_k, struct rw_semaphore *sem) { return acquire_enter(FSR_P_DOWN_WRITE_KILLABLE, sem, 1); }
SEC("fexit/down_write_killable")
int BPF_PROG(fexit__down_write_k, struct rw_semaphore *sem, int ret) { return acquire_exit(FSR_P_DOWN_WRITE_KILLABLE, ret, true); }
SEC("kprobe/down_write_killable")
int BPF_KPROBE(kprobe__down_write_k, struct rw_semaphore *sem) { return acquire_enter(FSR_P_DOWN_WRITE_KILLABLE, sem, 1); }
SEC("kretprobe/down_write_killable")
int BPF_KRETPROBE(kretprobe__down_write_k, int ret) { return acquire_exit(FSR_P_DOWN_WRITE_KILLABLE, ret, true); }

/* void down_read(struct rw_semaphore *) */
SEC("fentry/down_read")
int BPF_PROG(fentry__down_read, struct rw_semaphore *sem) { return acquire_enter(FSR_P_DOWN_READ, sem, 0); }
SEC("fexit/down_read")
int BPF_PROG(fexit__down_read, struct rw_semaphore *sem) { return acquire_exit(FSR_P_DOWN_READ, 0, false); }
SEC("kprobe/down_read")
int BPF_KPROBE(kprobe__down_read, struct rw_semaphore *sem) { return acquire_enter(FSR_P_DOWN_READ, sem, 0); }
SEC("kretprobe/down_read")
int BPF_KRETPROBE(kretprobe__down_read) { return acquire_exit(FSR_P_DOWN_READ, 0, false); }

/* int down_read_killable(struct rw_semaphore *) */
SEC("fentry/down_read_killable")
int BPF_PROG(fentry__down_read_k, struct rw_semaphore *sem) { return acquire_enter(FSR_P_DOWN_READ_KILLABLE, sem, 0); }
SEC("fexit/down_read_killable")
int BPF_PROG(fexit__down_read_k, struct rw_semaphore *sem, int ret) { return acquire_exit(FSR_P_DOWN_READ_KILLABLE, ret, true); }
SEC("kprobe/down_read_killable")
int BPF_KPROBE(kprobe__down_read_k, struct rw_semaphore *sem) { return acquire_enter(FSR_P_DOWN_READ_KILLABLE, sem, 0); }
SEC("kretprobe/down_read_killable")
int BPF_KRETPROBE(kretprobe__down_read_k, int ret) { return acquire_exit(FSR_P_DOWN_READ_KILLABLE, ret, true); }

/* void up_write / up_read(struct rw_semaphore *) */
SEC("fentry/up_write")
int BPF_PROG(fentry__up_write, struct rw_semaphore *sem) { return release(FSR_P_UP_WRITE, sem, 1); }
SEC("kprobe/up_write")
int BPF_KPROBE(kprobe__up_write, struct rw_semaphore *sem) { return release(FSR_P_UP_WRITE, sem, 1); }
SEC("fentry/up_read")
int BPF_PROG(fentry__up_read, struct rw_semaphore *sem) { return release(FSR_P_UP_READ, sem, 0); }
SEC("kprobe/up_read")
int BPF_KPROBE(kprobe__up_read, struct rw_semaphore *sem) { return release(FSR_P_UP_READ, sem, 0); }

/* lock:contention_begin(void *lock, unsigned int flags), lock:contention_end(void *lock, int ret) */
static __always_inline int cont_begin(void *lock, unsigned int flags)
{
	struct fsr_event *e = lock_event(FSR_P_CONTENTION_BEGIN, FSR_EV_CONTENTION_BEGIN, lock, true);
	if (!e)
		return 0;
	e->a[0] = flags;
	fsr_submit_tp(e);
	return 0;
}
static __always_inline int cont_end(void *lock, int ret)
{
	struct fsr_event *e = lock_event(FSR_P_CONTENTION_END, FSR_EV_CONTENTION_END, lock, true);
	if (!e)
		return 0;
	e->ret = ret;
	e->flags |= FSR_F_HAS_RET;
	fsr_submit_tp(e);
	return 0;
}
SEC("tp_btf/contention_begin")
int BPF_PROG(btf__cont_begin, void *lock, unsigned int flags) { return cont_begin(lock, flags); }
SEC("raw_tp/contention_begin")
int BPF_PROG(raw__cont_begin, void *lock, unsigned int flags) { return cont_begin(lock, flags); }
SEC("tracepoint/lock/contention_begin")
int tp__cont_begin(struct trace_event_raw_contention_begin *ctx)
{
	return cont_begin(BPF_CORE_READ(ctx, lock_addr), BPF_CORE_READ(ctx, flags));
}
SEC("tp_btf/contention_end")
int BPF_PROG(btf__cont_end, void *lock, int ret) { return cont_end(lock, ret); }
SEC("raw_tp/contention_end")
int BPF_PROG(raw__cont_end, void *lock, int ret) { return cont_end(lock, ret); }
SEC("tracepoint/lock/contention_end")
int tp__cont_end(struct trace_event_raw_contention_end *ctx)
{
	return cont_end(BPF_CORE_READ(ctx, lock_addr), BPF_CORE_READ(ctx, ret));
}
