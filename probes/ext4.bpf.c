/* ext4 family: delayed-allocation reservations (reserve / release / update, and the extent-status
 * delayed insert that takes them), the fallocate family (punch, zero, collapse, insert, enter/exit),
 * fsync exit and eviction — each with the inode's i_reserved_data_blocks read at that instant, so
 * the analyzer keeps a per-inode reserved-blocks balance and sees a leak before eviction. */
#include "common.bpf.h"

/* 6.1 names: ext4_es_insert_delayed_block (one 'allocated' flag); 6.10+: ..._delayed_extent. */
struct trace_event_raw_ext4_es_insert_delayed_block___v61 {
	dev_t dev;
	ino_t ino;
	ext4_lblk_t lblk;
	ext4_lblk_t len;
	bool allocated;
} __attribute__((preserve_access_index));
/* 6.1: ext4_da_reserve_space's record has no reserve_blocks */
struct trace_event_raw_ext4_da_reserve_space___fsr {
	dev_t dev;
	ino_t ino;
	int reserve_blocks;
	int reserved_data_blocks;
} __attribute__((preserve_access_index));

/* EXT4_I(inode)->i_reserved_data_blocks, -1 if the layout is unknown */
static __always_inline __s64 reserved_blocks(struct inode *inode)
{
	if (!bpf_core_type_exists(struct ext4_inode_info))
		return -1;
	__u32 off = bpf_core_field_offset(struct ext4_inode_info, vfs_inode);
	struct ext4_inode_info *ei = (void *)((char *)inode - off);
	unsigned int v = 0;
	if (bpf_core_read(&v, sizeof(v), &ei->i_reserved_data_blocks))
		return -1;
	return v;
}

/* `btf`: a compile-time constant, true in tp_btf programs (plain loads, see fsr_inode_id_btf). */
static __always_inline struct fsr_event *ext4_event(__u32 probe, __u16 kind, struct inode *inode, const bool btf)
{
	return fsr_inode_event_tp(probe, kind, inode, btf);
}

static __always_inline bool ext4_inode_id(struct inode *inode, __u32 *dev, __u64 *ino, const bool btf)
{
	return btf ? fsr_inode_id_btf(inode, dev, ino) : fsr_inode_id(inode, dev, ino);
}

/* Per-inode reservation totals. Reserve / release / update fire for every delayed-allocation block
 * (about 100k/s during a punch-vs-fault race, a third of all events), so they are counted here and
 * sent as one FSR_EV_EXT4_RESV_SUMMARY before every fsync-exit and evict event; an individual event
 * is still emitted when the balance would go negative (the accounting bug itself). */
struct fsr_resv_totals {
	__u64 reserves;
	__u64 released;
	__u64 used;
};
/* Indexed by the test file's index (fsr_match_idx): per CPU, so counting is an array load and three
 * plain adds (no hash lookup, no atomic bouncing between CPUs); the summary sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FSR_MAX_FILES);
	__type(key, __u32);
	__type(value, struct fsr_resv_totals);
} fsr_resv SEC(".maps");

/* Counts one reserve (which = 0), release (1, n blocks) or update (2, n blocks) for test file `idx`
 * (fsr_match_idx - 1). Returns true when the event must still be emitted: the reserved count read
 * before the change, minus n, is negative. */
static __always_inline bool resv_count(__u32 probe, __u32 idx, int which, __s64 before, __s64 n)
{
	struct fsr_probe_stats *st = fsr_stat(probe);
	if (st)
		st->hits++;
	struct fsr_resv_totals *t = bpf_map_lookup_elem(&fsr_resv, &idx);
	if (t) {
		if (which == 0)
			t->reserves += 1;
		else if (which == 1)
			t->released += n;
		else
			t->used += n;
	}
	if (before == -1)
		return false; /* unknown layout: the summary's totals are all there is */
	return (__s32)before - (which == 0 ? 0 : n) < 0;
}

/* The totals event (summed over the CPUs), sent before the fsync-exit / evict event of the same inode. */
static __always_inline void resv_summary(__u32 probe, __u32 dev, __u64 ino, __u32 idx, __s64 reserved_now, bool no_inode)
{
	struct fsr_event *e = fsr_reserve_tp(probe, FSR_EV_EXT4_RESV_SUMMARY, dev, ino);
	if (!e)
		return;
	__u64 r = 0, rel = 0, used = 0;
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_map_lookup_percpu_elem)) {
		for (__u32 cpu = 0; cpu < FSR_MAX_CPUS && cpu < cfg.ncpus; cpu++) {
			struct fsr_resv_totals *t = bpf_map_lookup_percpu_elem(&fsr_resv, &idx, cpu);
			if (t) {
				r += t->reserves;
				rel += t->released;
				used += t->used;
			}
		}
	} else {
		/* before 5.19 the other CPUs' counts cannot be read here: this CPU's */
		struct fsr_resv_totals *t = bpf_map_lookup_elem(&fsr_resv, &idx);
		if (t) {
			r = t->reserves;
			rel = t->released;
			used = t->used;
		}
	}
	e->a[0] = r;
	e->a[1] = rel;
	e->a[2] = used;
	e->a[3] = (__u64)reserved_now;
	if (no_inode)
		e->flags |= FSR_F_NO_INODE;
	fsr_submit_tp(e);
}

/* --- reservations --- */
/* A reservation is only counted: it cannot take the balance below zero, and a balance already below
 * zero was emitted by the release / update that took it there (and shows in every summary), so reading
 * i_reserved_data_blocks here (a helper call per block, the commonest ext4 event) would add nothing.
 * The classic tracepoint's record carries the count for free, so that form still checks it. */
static __always_inline int reserve_body(struct inode *inode, const bool btf)
{
	__u32 dev;
	__u64 ino;
	__u32 m;
	if (!ext4_inode_id(inode, &dev, &ino, btf) || !(m = fsr_match_idx(dev, ino)))
		return 0;
	resv_count(FSR_P_EXT4_DA_RESERVE, m - 1, 0, -1, 0);
	return 0;
}
SEC("tp_btf/ext4_da_reserve_space")
int BPF_PROG(btf__da_reserve, struct inode *inode) { return reserve_body(inode, true); }
SEC("raw_tp/ext4_da_reserve_space")
int BPF_PROG(raw__da_reserve, struct inode *inode) { return reserve_body(inode, false); }
SEC("tracepoint/ext4/ext4_da_reserve_space")
int tp__da_reserve(struct trace_event_raw_ext4_da_reserve_space___fsr *ctx)
{
	__u32 dev = BPF_CORE_READ(ctx, dev);
	__u64 ino = BPF_CORE_READ(ctx, ino);
	__u32 m = fsr_match_idx(dev, ino);
	if (!m)
		return 0;
	__s64 now = BPF_CORE_READ(ctx, reserved_data_blocks);
	if (!resv_count(FSR_P_EXT4_DA_RESERVE, m - 1, 0, now, 0))
		return 0;
	struct fsr_event *e = fsr_id_event_tp(FSR_P_EXT4_DA_RESERVE, FSR_EV_EXT4_DA_RESERVE, dev, ino);
	if (!e)
		return 0;
	e->a[0] = now;
	e->a[1] = bpf_core_field_exists(ctx->reserve_blocks) ? (__u64)(__s64)BPF_CORE_READ(ctx, reserve_blocks) : (__u64)-1;
	fsr_submit_tp(e);
	return 0;
}

static __always_inline int release_body(struct inode *inode, int freed, const bool btf)
{
	__u32 dev;
	__u64 ino;
	__u32 m;
	if (!ext4_inode_id(inode, &dev, &ino, btf) || !(m = fsr_match_idx(dev, ino)))
		return 0;
	__s64 before = reserved_blocks(inode);
	if (!resv_count(FSR_P_EXT4_DA_RELEASE, m - 1, 1, before, freed))
		return 0;
	struct fsr_event *e = ext4_event(FSR_P_EXT4_DA_RELEASE, FSR_EV_EXT4_DA_RELEASE, inode, btf);
	if (!e)
		return 0;
	e->a[0] = before;
	e->a[1] = (__u64)(__s64)freed;
	fsr_submit_tp(e);
	return 0;
}
SEC("tp_btf/ext4_da_release_space")
int BPF_PROG(btf__da_release, struct inode *inode, int freed) { return release_body(inode, freed, true); }
SEC("raw_tp/ext4_da_release_space")
int BPF_PROG(raw__da_release, struct inode *inode, int freed) { return release_body(inode, freed, false); }
/* The classic-tracepoint form of release (which = 1) / update (2): counts the change for a test inode and
 * returns the event to emit (a[0] reserved before, a[1] blocks) when the balance would go negative. */
static __always_inline struct fsr_event *resv_tp_event(__u32 probe, __u16 kind, int which, __u32 dev, __u64 ino,
							__s64 before, __s64 n)
{
	__u32 m = fsr_match_idx(dev, ino);
	if (!m || !resv_count(probe, m - 1, which, before, n))
		return NULL;
	struct fsr_event *e = fsr_id_event_tp(probe, kind, dev, ino);
	if (!e)
		return NULL;
	e->a[0] = before;
	e->a[1] = (__u64)n;
	return e;
}

SEC("tracepoint/ext4/ext4_da_release_space")
int tp__da_release(struct trace_event_raw_ext4_da_release_space *ctx)
{
	struct fsr_event *e = resv_tp_event(FSR_P_EXT4_DA_RELEASE, FSR_EV_EXT4_DA_RELEASE, 1, BPF_CORE_READ(ctx, dev),
					    BPF_CORE_READ(ctx, ino), BPF_CORE_READ(ctx, reserved_data_blocks),
					    BPF_CORE_READ(ctx, freed_blocks));
	if (e)
		fsr_submit_tp(e);
	return 0;
}

static __always_inline int update_body(struct inode *inode, int used, int quota_claim, const bool btf)
{
	__u32 dev;
	__u64 ino;
	__u32 m;
	if (!ext4_inode_id(inode, &dev, &ino, btf) || !(m = fsr_match_idx(dev, ino)))
		return 0;
	__s64 before = reserved_blocks(inode);
	if (!resv_count(FSR_P_EXT4_DA_UPDATE, m - 1, 2, before, used))
		return 0;
	struct fsr_event *e = ext4_event(FSR_P_EXT4_DA_UPDATE, FSR_EV_EXT4_DA_UPDATE, inode, btf);
	if (!e)
		return 0;
	e->a[0] = before;
	e->a[1] = (__u64)(__s64)used;
	e->a[2] = quota_claim;
	fsr_submit_tp(e);
	return 0;
}
SEC("tp_btf/ext4_da_update_reserve_space")
int BPF_PROG(btf__da_update, struct inode *inode, int used, int quota_claim) { return update_body(inode, used, quota_claim, true); }
SEC("raw_tp/ext4_da_update_reserve_space")
int BPF_PROG(raw__da_update, struct inode *inode, int used, int quota_claim) { return update_body(inode, used, quota_claim, false); }
SEC("tracepoint/ext4/ext4_da_update_reserve_space")
int tp__da_update(struct trace_event_raw_ext4_da_update_reserve_space *ctx)
{
	struct fsr_event *e = resv_tp_event(FSR_P_EXT4_DA_UPDATE, FSR_EV_EXT4_DA_UPDATE, 2, BPF_CORE_READ(ctx, dev),
					    BPF_CORE_READ(ctx, ino), BPF_CORE_READ(ctx, reserved_data_blocks),
					    BPF_CORE_READ(ctx, used_blocks));
	if (!e)
		return 0;
	e->a[2] = BPF_CORE_READ(ctx, quota_claim);
	fsr_submit_tp(e);
	return 0;
}

/* --- extent status: delayed block / extent inserted --- */
/* One insert per block of a buffered write or write fault: about 80k/s in an ext4 punch-vs-fault race,
 * so consecutive inserts by one task become one event (fsr_run_member: a[0] first block, a[1] blocks,
 * a[2] the allocated flags, a[3] i_reserved_data_blocks when the run's first insert fired: read once
 * per run, not per block — the reservation balance itself comes from the reserve / release / update
 * counts and the fsync / evict reads). */
#define FSR_ES_RUN_GAP_NS 1000000ull
static __always_inline int es_body(__u32 probe, struct inode *inode, struct extent_status *es, __u64 alloc, const bool btf)
{
	__u32 dev;
	__u64 ino;
	if (!ext4_inode_id(inode, &dev, &ino, btf) || !fsr_match(dev, ino))
		return 0;
	struct fsr_lock_state ls;
	fsr_lock_state(&ls, btf ? inode->i_mapping : BPF_CORE_READ(inode, i_mapping), dev, ino, btf);
	__u64 lblk = btf ? es->es_lblk : BPF_CORE_READ(es, es_lblk), len = btf ? es->es_len : BPF_CORE_READ(es, es_len);
	struct fsr_event *run = fsr_run_member(probe, FSR_EV_EXT4_ES_DELAYED, FSR_RUN_ES_DELAYED, dev, ino, lblk, len, alloc, &ls,
					       FSR_ES_RUN_GAP_NS);
	if (run)
		run->a[3] = reserved_blocks(inode);
	return 0;
}

SEC("tp_btf/ext4_es_insert_delayed_extent")
int BPF_PROG(btf__es_delayed_extent, struct inode *inode, struct extent_status *es, bool lclu, bool end)
{
	return es_body(FSR_P_EXT4_ES_DELAYED_EXTENT, inode, es, (lclu ? 1 : 0) | (end ? 2 : 0), true);
}
SEC("raw_tp/ext4_es_insert_delayed_extent")
int BPF_PROG(raw__es_delayed_extent, struct inode *inode, struct extent_status *es, bool lclu, bool end)
{
	return es_body(FSR_P_EXT4_ES_DELAYED_EXTENT, inode, es, (lclu ? 1 : 0) | (end ? 2 : 0), false);
}
SEC("tracepoint/ext4/ext4_es_insert_delayed_extent")
int tp__es_delayed_extent(struct trace_event_raw_ext4_es_insert_delayed_extent *ctx)
{
	struct fsr_event *e = fsr_id_event_tp(FSR_P_EXT4_ES_DELAYED_EXTENT, FSR_EV_EXT4_ES_DELAYED, BPF_CORE_READ(ctx, dev),
					   BPF_CORE_READ(ctx, ino));
	if (!e)
		return 0;
	e->a[0] = BPF_CORE_READ(ctx, lblk);
	e->a[1] = BPF_CORE_READ(ctx, len);
	e->a[2] = (BPF_CORE_READ(ctx, lclu_allocated) ? 1 : 0) | (BPF_CORE_READ(ctx, end_allocated) ? 2 : 0);
	e->a[3] = (__u64)-1;
	fsr_submit_tp(e);
	return 0;
}
SEC("tp_btf/ext4_es_insert_delayed_block")
int BPF_PROG(btf__es_delayed_block, struct inode *inode, struct extent_status *es, bool allocated)
{
	return es_body(FSR_P_EXT4_ES_DELAYED_BLOCK, inode, es, allocated ? 1 : 0, true);
}
SEC("raw_tp/ext4_es_insert_delayed_block")
int BPF_PROG(raw__es_delayed_block, struct inode *inode, struct extent_status *es, bool allocated)
{
	return es_body(FSR_P_EXT4_ES_DELAYED_BLOCK, inode, es, allocated ? 1 : 0, false);
}
SEC("tracepoint/ext4/ext4_es_insert_delayed_block")
int tp__es_delayed_block(struct trace_event_raw_ext4_es_insert_delayed_block___v61 *ctx)
{
	struct fsr_event *e = fsr_id_event_tp(FSR_P_EXT4_ES_DELAYED_BLOCK, FSR_EV_EXT4_ES_DELAYED, BPF_CORE_READ(ctx, dev),
					   BPF_CORE_READ(ctx, ino));
	if (!e)
		return 0;
	e->a[0] = BPF_CORE_READ(ctx, lblk);
	e->a[1] = BPF_CORE_READ(ctx, len);
	e->a[2] = BPF_CORE_READ(ctx, allocated) ? 1 : 0;
	e->a[3] = (__u64)-1;
	fsr_submit_tp(e);
	return 0;
}

/* --- fallocate family: (inode, offset, len[, mode]) --- */
static __always_inline int falloc_body(__u32 probe, __u16 kind, struct inode *inode, long long off, long long len, int mode, const bool btf)
{
	struct fsr_event *e = ext4_event(probe, kind, inode, btf);
	if (!e)
		return 0;
	e->a[0] = off;
	e->a[1] = len;
	e->a[2] = mode;
	e->a[3] = reserved_blocks(inode);
	fsr_submit_tp(e);
	return 0;
}
static __always_inline int falloc_tp(__u32 probe, __u16 kind, struct trace_event_raw_ext4__fallocate_mode *ctx)
{
	struct fsr_event *e = fsr_id_event_tp(probe, kind, BPF_CORE_READ(ctx, dev), BPF_CORE_READ(ctx, ino));
	if (!e)
		return 0;
	e->a[0] = BPF_CORE_READ(ctx, offset);
	e->a[1] = BPF_CORE_READ(ctx, len);
	e->a[2] = BPF_CORE_READ(ctx, mode);
	e->a[3] = (__u64)-1;
	fsr_submit_tp(e);
	return 0;
}
#define FALLOC_MODE_TP(tp, fn, probe, kind)                                                              \
	SEC("tp_btf/" #tp)                                                                                   \
	int BPF_PROG(btf__##fn, struct inode *inode, long long off, long long len, int mode)               \
	{                                                                                                    \
		return falloc_body(probe, kind, inode, off, len, mode, true);                                    \
	}                                                                                                    \
	SEC("raw_tp/" #tp)                                                                                   \
	int BPF_PROG(raw__##fn, struct inode *inode, long long off, long long len, int mode)               \
	{                                                                                                    \
		return falloc_body(probe, kind, inode, off, len, mode, false);                                    \
	}                                                                                                    \
	SEC("tracepoint/ext4/" #tp)                                                                          \
	int tp__##fn(struct trace_event_raw_ext4__fallocate_mode *ctx) { return falloc_tp(probe, kind, ctx); }
FALLOC_MODE_TP(ext4_punch_hole, punch, FSR_P_EXT4_PUNCH, FSR_EV_EXT4_PUNCH)
FALLOC_MODE_TP(ext4_zero_range, zero, FSR_P_EXT4_ZERO, FSR_EV_EXT4_ZERO)
FALLOC_MODE_TP(ext4_fallocate_enter, falloc_enter, FSR_P_EXT4_FALLOC_ENTER, FSR_EV_EXT4_FALLOC_ENTER)

static __always_inline int range_tp(__u32 probe, __u16 kind, __u32 dev, __u64 ino, long long off, long long len)
{
	struct fsr_event *e = fsr_id_event_tp(probe, kind, dev, ino);
	if (!e)
		return 0;
	e->a[0] = off;
	e->a[1] = len;
	e->a[3] = (__u64)-1;
	fsr_submit_tp(e);
	return 0;
}
SEC("tp_btf/ext4_collapse_range")
int BPF_PROG(btf__collapse, struct inode *inode, long long off, long long len) { return falloc_body(FSR_P_EXT4_COLLAPSE, FSR_EV_EXT4_COLLAPSE, inode, off, len, 0, true); }
SEC("raw_tp/ext4_collapse_range")
int BPF_PROG(raw__collapse, struct inode *inode, long long off, long long len) { return falloc_body(FSR_P_EXT4_COLLAPSE, FSR_EV_EXT4_COLLAPSE, inode, off, len, 0, false); }
SEC("tracepoint/ext4/ext4_collapse_range")
int tp__collapse(struct trace_event_raw_ext4_collapse_range *ctx)
{
	return range_tp(FSR_P_EXT4_COLLAPSE, FSR_EV_EXT4_COLLAPSE, BPF_CORE_READ(ctx, dev), BPF_CORE_READ(ctx, ino), BPF_CORE_READ(ctx, offset), BPF_CORE_READ(ctx, len));
}
SEC("tp_btf/ext4_insert_range")
int BPF_PROG(btf__insert, struct inode *inode, long long off, long long len) { return falloc_body(FSR_P_EXT4_INSERT, FSR_EV_EXT4_INSERT, inode, off, len, 0, true); }
SEC("raw_tp/ext4_insert_range")
int BPF_PROG(raw__insert, struct inode *inode, long long off, long long len) { return falloc_body(FSR_P_EXT4_INSERT, FSR_EV_EXT4_INSERT, inode, off, len, 0, false); }
SEC("tracepoint/ext4/ext4_insert_range")
int tp__insert(struct trace_event_raw_ext4_insert_range *ctx)
{
	return range_tp(FSR_P_EXT4_INSERT, FSR_EV_EXT4_INSERT, BPF_CORE_READ(ctx, dev), BPF_CORE_READ(ctx, ino), BPF_CORE_READ(ctx, offset), BPF_CORE_READ(ctx, len));
}

/* ext4_fallocate_exit(struct inode *, loff_t offset, unsigned int max_blocks, int ret) */
static __always_inline int falloc_exit_body(struct inode *inode, long long off, unsigned int blocks, int ret, const bool btf)
{
	struct fsr_event *e = ext4_event(FSR_P_EXT4_FALLOC_EXIT, FSR_EV_EXT4_FALLOC_EXIT, inode, btf);
	if (!e)
		return 0;
	e->a[0] = off;
	e->a[1] = blocks;
	e->a[3] = reserved_blocks(inode);
	e->ret = ret;
	e->flags |= FSR_F_HAS_RET;
	fsr_submit_tp(e);
	return 0;
}
SEC("tp_btf/ext4_fallocate_exit")
int BPF_PROG(btf__falloc_exit, struct inode *inode, long long off, unsigned int blocks, int ret) { return falloc_exit_body(inode, off, blocks, ret, true); }
SEC("raw_tp/ext4_fallocate_exit")
int BPF_PROG(raw__falloc_exit, struct inode *inode, long long off, unsigned int blocks, int ret) { return falloc_exit_body(inode, off, blocks, ret, false); }
SEC("tracepoint/ext4/ext4_fallocate_exit")
int tp__falloc_exit(struct trace_event_raw_ext4_fallocate_exit *ctx)
{
	struct fsr_event *e = fsr_id_event_tp(FSR_P_EXT4_FALLOC_EXIT, FSR_EV_EXT4_FALLOC_EXIT, BPF_CORE_READ(ctx, dev), BPF_CORE_READ(ctx, ino));
	if (!e)
		return 0;
	e->a[0] = BPF_CORE_READ(ctx, pos);
	e->a[1] = BPF_CORE_READ(ctx, blocks);
	e->a[3] = (__u64)-1;
	e->ret = BPF_CORE_READ(ctx, ret);
	e->flags |= FSR_F_HAS_RET;
	fsr_submit_tp(e);
	return 0;
}

/* --- fsync exit and eviction: the reserved count must be back to zero --- */
static __always_inline int sync_body(struct inode *inode, int ret, const bool btf)
{
	__u32 dev;
	__u64 ino;
	__u32 m;
	if (!ext4_inode_id(inode, &dev, &ino, btf) || !(m = fsr_match_idx(dev, ino)))
		return 0;
	__s64 now = reserved_blocks(inode);
	resv_summary(FSR_P_EXT4_SYNC_EXIT, dev, ino, m - 1, now, false);
	struct fsr_event *e = ext4_event(FSR_P_EXT4_SYNC_EXIT, FSR_EV_EXT4_SYNC_EXIT, inode, btf);
	if (!e)
		return 0;
	e->a[0] = now;
	e->ret = ret;
	e->flags |= FSR_F_HAS_RET;
	fsr_submit_tp(e);
	return 0;
}
SEC("tp_btf/ext4_sync_file_exit")
int BPF_PROG(btf__sync_exit, struct inode *inode, int ret) { return sync_body(inode, ret, true); }
SEC("raw_tp/ext4_sync_file_exit")
int BPF_PROG(raw__sync_exit, struct inode *inode, int ret) { return sync_body(inode, ret, false); }
SEC("tracepoint/ext4/ext4_sync_file_exit")
int tp__sync_exit(struct trace_event_raw_ext4_sync_file_exit *ctx)
{
	__u32 dev = BPF_CORE_READ(ctx, dev);
	__u64 ino = BPF_CORE_READ(ctx, ino);
	__u32 m = fsr_match_idx(dev, ino);
	if (!m)
		return 0;
	resv_summary(FSR_P_EXT4_SYNC_EXIT, dev, ino, m - 1, -1, true);
	struct fsr_event *e = fsr_id_event_tp(FSR_P_EXT4_SYNC_EXIT, FSR_EV_EXT4_SYNC_EXIT, dev, ino);
	if (!e)
		return 0;
	e->a[0] = (__u64)-1;
	e->ret = BPF_CORE_READ(ctx, ret);
	e->flags |= FSR_F_HAS_RET;
	fsr_submit_tp(e);
	return 0;
}

static __always_inline int evict_body(struct inode *inode, const bool btf)
{
	__u32 dev;
	__u64 ino;
	__u32 m;
	if (!ext4_inode_id(inode, &dev, &ino, btf) || !(m = fsr_match_idx(dev, ino)))
		return 0;
	__s64 now = reserved_blocks(inode);
	resv_summary(FSR_P_EXT4_EVICT, dev, ino, m - 1, now, false);
	struct fsr_event *e = ext4_event(FSR_P_EXT4_EVICT, FSR_EV_EXT4_EVICT, inode, btf);
	if (!e)
		return 0;
	e->a[0] = now;
	e->a[1] = BPF_CORE_READ(inode, __i_nlink);
	fsr_submit_tp(e);
	return 0;
}
SEC("tp_btf/ext4_evict_inode")
int BPF_PROG(btf__evict, struct inode *inode) { return evict_body(inode, true); }
SEC("raw_tp/ext4_evict_inode")
int BPF_PROG(raw__evict, struct inode *inode) { return evict_body(inode, false); }
SEC("tracepoint/ext4/ext4_evict_inode")
int tp__evict(struct trace_event_raw_ext4_evict_inode *ctx)
{
	__u32 dev = BPF_CORE_READ(ctx, dev);
	__u64 ino = BPF_CORE_READ(ctx, ino);
	__u32 m = fsr_match_idx(dev, ino);
	if (!m)
		return 0;
	resv_summary(FSR_P_EXT4_EVICT, dev, ino, m - 1, -1, true);
	struct fsr_event *e = fsr_id_event_tp(FSR_P_EXT4_EVICT, FSR_EV_EXT4_EVICT, dev, ino);
	if (!e)
		return 0;
	e->a[0] = (__u64)-1;
	e->a[1] = BPF_CORE_READ(ctx, nlink);
	fsr_submit_tp(e);
	return 0;
}
