/* Kernel-side race-window widening: a short busy-wait at a chosen kernel point, for the test inodes only
 * (the shared fsr_filter map), with a configured probability per hit, capped at FSR_DELAY_MAX_US, and
 * counted per hook in fsr_delay_stats (hits, delays, total and longest wait).
 *
 * The wait spins on bpf_ktime_get_ns() inside bpf_loop (kernel >= 5.17), so the verifier sees a bounded
 * loop and the program never sleeps. Tracepoint and fentry programs run with preemption (tracepoints) or
 * migration (fentry) disabled: the waiting task holds its CPU for the whole wait, so the racing thread
 * needs another CPU. That is why every hook is at a point where no spinlock is held and interrupts are
 * enabled (checked per hook in probes/catalog.cpp, delay_hooks()): busy-waiting there costs this CPU
 * only, never a lock another CPU spins on or an IPI another CPU waits for.
 *
 * Same object on 6.1 and 6.18: the tracepoint prototypes used here are unchanged between them, and
 * inode fields are read through CO-RE. */
#include "filter.bpf.h"

const volatile struct fsr_delay_config dcfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FSR_DELAY_MAX_HOOKS);
	__type(key, __u32);
	__type(value, struct fsr_delay_stats);
} fsr_delay_stats SEC(".maps");

/* kprobe -> kretprobe hand-over for function hooks in kprobe mode: tid -> inode */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} fsr_delay_stash SEC(".maps");

struct spin_ctx {
	__u64 until;
};

static long spin_cb(__u64 index, void *ctx)
{
	struct spin_ctx *c = ctx;
	return bpf_ktime_get_ns() >= c->until ? 1 : 0;
}

/* A test inode reached `hook`: count it and, with the configured probability, busy-wait. */
static __always_inline int delay_hit(__u32 hook)
{
	__u32 key = hook;
	struct fsr_delay_stats *st = bpf_map_lookup_elem(&fsr_delay_stats, &key);
	if (!st)
		return 0;
	st->hits++;
	__u32 i = hook & (FSR_DELAY_MAX_HOOKS - 1);
	__u64 ns = dcfg.delay_ns[i];
	if (!ns || (__u64)bpf_get_prandom_u32() >= dcfg.threshold[i])
		return 0;
	if (ns > FSR_DELAY_MAX_US * 1000ULL)
		ns = FSR_DELAY_MAX_US * 1000ULL;
	__u64 t0 = bpf_ktime_get_ns();
	struct spin_ctx c = {.until = t0 + ns};
	/* ~25 ns per iteration: 1 << 23 iterations are far more than FSR_DELAY_MAX_US needs, and bound
	 * the wait even if the clock misbehaved */
	bpf_loop(1 << 23, spin_cb, &c, 0);
	__u64 took = bpf_ktime_get_ns() - t0;
	st->delayed++;
	st->ns += took;
	if (took > st->max_ns)
		st->max_ns = took;
	return 0;
}

static __always_inline int delay_inode(__u32 hook, struct inode *inode, const bool btf)
{
	__u32 dev;
	__u64 ino;
	if (btf) {
		if (!fsr_inode_id_btf(inode, &dev, &ino))
			return 0;
	} else if (!fsr_inode_id(inode, &dev, &ino)) {
		return 0;
	}
	if (!fsr_match(dev, ino))
		return 0;
	return delay_hit(hook);
}

static __always_inline int delay_id(__u32 hook, __u32 dev, __u64 ino)
{
	if (!fsr_match(dev, ino))
		return 0;
	return delay_hit(hook);
}

/* The inode behind a tracepoint's first argument. `btf`: a compile-time constant, true in tp_btf programs
 * (plain loads through BTF pointers); raw_tp arguments are scalars, read with helpers. */
static __always_inline struct inode *arg_inode(struct inode *inode, const bool btf) { return inode; }
static __always_inline struct inode *xfs_vfs_inode(struct xfs_inode *ip, const bool btf)
{
	return ip ? (struct inode *)&ip->i_vnode : NULL; /* address arithmetic only: no load */
}
static __always_inline struct inode *folio_host(struct folio *folio, const bool btf)
{
	if (btf) {
		struct address_space *mapping = folio->mapping;
		return mapping ? mapping->host : NULL;
	}
	return BPF_CORE_READ(folio, mapping, host);
}

/* One hook on a tracepoint: tp_btf, raw_tp and classic programs. T0: type of the first argument, GET: its
 * inode (above); RAW: the classic record type, DEV / INO: its dev_t and inode number fields. */
#define DELAY_TP(stem, cat, event, hook, T0, GET, RAW, DEV, INO)                                                 \
	SEC("tp_btf/" event)                                                                                     \
	int BPF_PROG(btf__##stem, T0 a0) { return delay_inode(hook, GET(a0, true), true); }                      \
	SEC("raw_tp/" event)                                                                                     \
	int BPF_PROG(raw__##stem, T0 a0) { return delay_inode(hook, GET(a0, false), false); }                    \
	SEC("tracepoint/" cat "/" event)                                                                         \
	int tp__##stem(struct RAW *ctx) { return delay_id(hook, BPF_CORE_READ(ctx, DEV), BPF_CORE_READ(ctx, INO)); }

/* ext4:ext4_ext_remove_space(struct inode *, ext4_lblk_t start, ext4_lblk_t end, int depth) */
DELAY_TP(ext4_rm_space, "ext4", "ext4_ext_remove_space", FSR_DH_EXT4_REMOVE_SPACE, struct inode *, arg_inode,
	 trace_event_raw_ext4_ext_remove_space, dev, ino)
/* xfs:xfs_free_file_space(struct xfs_inode *) */
DELAY_TP(xfs_free_space, "xfs", "xfs_free_file_space", FSR_DH_XFS_FREE_FILE_SPACE, struct xfs_inode *, xfs_vfs_inode,
	 trace_event_raw_xfs_inode_class, dev, ino)
/* filemap:mm_filemap_add_to_page_cache(struct folio *) */
DELAY_TP(fill_added, "filemap", "mm_filemap_add_to_page_cache", FSR_DH_FILL_ADDED, struct folio *, folio_host,
	 trace_event_raw_mm_filemap_op_page_cache, s_dev, i_ino)
/* iomap:iomap_iter_dstmap(struct inode *, struct iomap *) */
DELAY_TP(iomap_dstmap, "iomap", "iomap_iter_dstmap", FSR_DH_IOMAP_DSTMAP, struct inode *, arg_inode,
	 trace_event_raw_iomap_class, dev, ino)
/* xfs:xfs_iomap_found / xfs_iomap_alloc / xfs_map_blocks_found / xfs_map_blocks_alloc
 * (struct xfs_inode *, xfs_off_t offset, ssize_t count, int whichfork, struct xfs_bmbt_irec *) */
#define DELAY_XFS_IMAP(stem, event, hook) \
	DELAY_TP(stem, "xfs", event, hook, struct xfs_inode *, xfs_vfs_inode, trace_event_raw_xfs_imap_class, dev, ino)
DELAY_XFS_IMAP(xfs_iomap_found, "xfs_iomap_found", FSR_DH_XFS_IOMAP_FOUND)
DELAY_XFS_IMAP(xfs_iomap_alloc, "xfs_iomap_alloc", FSR_DH_XFS_IOMAP_ALLOC)
DELAY_XFS_IMAP(xfs_mapb_found, "xfs_map_blocks_found", FSR_DH_XFS_MAP_BLOCKS_FOUND)
DELAY_XFS_IMAP(xfs_mapb_alloc, "xfs_map_blocks_alloc", FSR_DH_XFS_MAP_BLOCKS_ALLOC)

/* truncate_pagecache_range(struct inode *, loff_t, loff_t) returned: fexit, or kprobe + kretprobe
 * handing the inode over through fsr_delay_stash. */
SEC("fexit/truncate_pagecache_range")
int BPF_PROG(fexit__trunc_pc, struct inode *inode) { return delay_inode(FSR_DH_TRUNC_PC_EXIT, inode, true); }
SEC("kprobe/truncate_pagecache_range")
int BPF_KPROBE(kprobe__trunc_pc, struct inode *inode)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 p = (__u64)inode;
	bpf_map_update_elem(&fsr_delay_stash, &tid, &p, BPF_ANY);
	return 0;
}
SEC("kretprobe/truncate_pagecache_range")
int BPF_KRETPROBE(kretprobe__trunc_pc)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *p = bpf_map_lookup_elem(&fsr_delay_stash, &tid);
	if (!p)
		return 0;
	struct inode *inode = (struct inode *)*p;
	bpf_map_delete_elem(&fsr_delay_stash, &tid);
	return delay_inode(FSR_DH_TRUNC_PC_EXIT, inode, false);
}
