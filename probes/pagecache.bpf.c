/* pagecache family: folios entering / leaving the page cache of the test inodes (with the state of
 * mapping->invalidate_lock at that instant), the fault tracepoint, and the two invalidation
 * functions whose return code matters (truncate_pagecache_range, invalidate_inode_pages2_range). */
#include "common.bpf.h"

/* 6.1 keeps the folio size in _folio_nr_pages; 6.18 in _nr_pages / the order byte of _flags_1. */
struct folio___v61 {
	unsigned int _folio_nr_pages;
} __attribute__((preserve_access_index));
struct folio___v618 {
	unsigned int _nr_pages;
	unsigned long _flags_1;
} __attribute__((preserve_access_index));

/* folio->flags: unsigned long on 6.1, memdesc_flags_t (a struct wrapping the unsigned long) on recent
 * kernels such as 6.18. A field access through the build kernel's struct folio would not relocate on the other kind
 * (CO-RE refuses an int <-> struct field match, and the program fails to load), so each layout gets
 * its own flavor and the existing one is read. */
struct folio___flags_ul {
	unsigned long flags;
} __attribute__((preserve_access_index));
struct fsr_memdesc_flags {
	unsigned long f;
};
struct folio___flags_md {
	struct fsr_memdesc_flags flags;
} __attribute__((preserve_access_index));

/* `btf`: a compile-time constant, true when `folio` is a BTF pointer (tp_btf): plain loads instead of
 * bpf_probe_read_kernel calls. */
static __always_inline unsigned long folio_flags(struct folio *folio, const bool btf)
{
	struct folio___flags_ul *ful = (void *)folio;
	struct folio___flags_md *fmd = (void *)folio;
	unsigned long flags = 0;
	if (bpf_core_field_exists(ful->flags)) {
		if (btf)
			flags = ful->flags;
		else
			bpf_core_read(&flags, sizeof(flags), &ful->flags);
	} else if (bpf_core_field_exists(fmd->flags)) {
		if (btf)
			flags = fmd->flags.f;
		else
			bpf_core_read(&flags, sizeof(flags), &fmd->flags);
	}
	return flags;
}

static __always_inline __u64 folio_pages(struct folio *folio, const bool btf)
{
	unsigned long flags = folio_flags(folio, btf);
	int head = bpf_core_enum_value(enum pageflags, PG_head);
	if (!(flags & (1UL << head)))
		return 1;
	struct folio___v61 *f61 = (void *)folio;
	struct folio___v618 *f618 = (void *)folio;
	if (bpf_core_field_exists(f61->_folio_nr_pages))
		return btf ? f61->_folio_nr_pages : BPF_CORE_READ(f61, _folio_nr_pages);
	if (bpf_core_field_exists(f618->_nr_pages))
		return btf ? f618->_nr_pages : BPF_CORE_READ(f618, _nr_pages);
	if (bpf_core_field_exists(f618->_flags_1))
		return 1ULL << ((btf ? f618->_flags_1 : BPF_CORE_READ(f618, _flags_1)) & 0xff);
	return 0; /* unknown */
}

/* Readahead and fault read-around add folio after folio, truncation removes them: consecutive indexes
 * from one task with the same invalidate_lock state, each within 100 us of the previous, become one
 * event (fsr_run_member: a[0] first index, a[1] pages). */
#define FSR_PC_RUN_GAP_NS 100000ull
static __always_inline int pc_body(struct folio *folio, __u32 probe, __u16 kind, __u32 slot, const bool btf)
{
	/* every page-cache insertion / deletion on the machine comes here: tp_btf reads the chain
	 * folio->mapping->host->i_sb->s_dev, ->i_ino with plain loads, raw_tp with helper calls */
	struct address_space *mapping = btf ? folio->mapping : BPF_CORE_READ(folio, mapping);
	if (!mapping)
		return 0;
	struct inode *host = btf ? mapping->host : BPF_CORE_READ(mapping, host);
	__u32 dev;
	__u64 ino;
	if (btf ? !fsr_inode_id_btf(host, &dev, &ino) : !fsr_inode_id(host, &dev, &ino))
		return 0;
	if (!fsr_match(dev, ino))
		return 0;
	struct fsr_lock_state ls;
	fsr_lock_state(&ls, mapping, dev, ino, btf);
	fsr_run_member(probe, kind, slot, dev, ino, btf ? folio->index : BPF_CORE_READ(folio, index), folio_pages(folio, btf), 0,
		       &ls, FSR_PC_RUN_GAP_NS);
	return 0;
}

SEC("tp_btf/mm_filemap_add_to_page_cache")
int BPF_PROG(btf__pc_add, struct folio *folio) { return pc_body(folio, FSR_P_PC_ADD, FSR_EV_PC_ADD, FSR_RUN_PC_ADD, true); }
SEC("raw_tp/mm_filemap_add_to_page_cache")
int BPF_PROG(raw__pc_add, struct folio *folio) { return pc_body(folio, FSR_P_PC_ADD, FSR_EV_PC_ADD, FSR_RUN_PC_ADD, false); }
SEC("tp_btf/mm_filemap_delete_from_page_cache")
int BPF_PROG(btf__pc_delete, struct folio *folio) { return pc_body(folio, FSR_P_PC_DELETE, FSR_EV_PC_DELETE, FSR_RUN_PC_DELETE, true); }
SEC("raw_tp/mm_filemap_delete_from_page_cache")
int BPF_PROG(raw__pc_delete, struct folio *folio) { return pc_body(folio, FSR_P_PC_DELETE, FSR_EV_PC_DELETE, FSR_RUN_PC_DELETE, false); }

static __always_inline int pc_tp(struct trace_event_raw_mm_filemap_op_page_cache *ctx, __u32 probe, __u16 kind)
{
	struct fsr_event *e = fsr_id_event_tp(probe, kind, BPF_CORE_READ(ctx, s_dev), BPF_CORE_READ(ctx, i_ino));
	if (!e)
		return 0;
	e->a[0] = BPF_CORE_READ(ctx, index);
	e->a[1] = bpf_core_field_exists(ctx->order) ? 1ULL << BPF_CORE_READ(ctx, order) : 0;
	fsr_submit_tp(e);
	return 0;
}
SEC("tracepoint/filemap/mm_filemap_add_to_page_cache")
int tp__pc_add(struct trace_event_raw_mm_filemap_op_page_cache *ctx) { return pc_tp(ctx, FSR_P_PC_ADD, FSR_EV_PC_ADD); }
SEC("tracepoint/filemap/mm_filemap_delete_from_page_cache")
int tp__pc_delete(struct trace_event_raw_mm_filemap_op_page_cache *ctx) { return pc_tp(ctx, FSR_P_PC_DELETE, FSR_EV_PC_DELETE); }

/* filemap:mm_filemap_fault (6.9+) */
static __always_inline int fault_body(struct address_space *mapping, unsigned long index, const bool btf)
{
	if (!mapping)
		return 0;
	struct inode *host = btf ? mapping->host : BPF_CORE_READ(mapping, host);
	struct fsr_event *e = fsr_inode_event_tp(FSR_P_FAULT_TP, FSR_EV_FAULT, host, btf);
	if (!e)
		return 0;
	e->a[0] = index;
	fsr_submit_tp(e);
	return 0;
}
SEC("tp_btf/mm_filemap_fault")
int BPF_PROG(btf__fault, struct address_space *mapping, unsigned long index) { return fault_body(mapping, index, true); }
SEC("raw_tp/mm_filemap_fault")
int BPF_PROG(raw__fault, struct address_space *mapping, unsigned long index) { return fault_body(mapping, index, false); }

struct trace_event_raw_mm_filemap_fault___fsr {
	unsigned long i_ino;
	dev_t s_dev;
	unsigned long index;
} __attribute__((preserve_access_index));
SEC("tracepoint/filemap/mm_filemap_fault")
int tp__fault(struct trace_event_raw_mm_filemap_fault___fsr *ctx)
{
	struct fsr_event *e = fsr_id_event_tp(FSR_P_FAULT_TP, FSR_EV_FAULT, BPF_CORE_READ(ctx, s_dev), BPF_CORE_READ(ctx, i_ino));
	if (!e)
		return 0;
	e->a[0] = BPF_CORE_READ(ctx, index);
	fsr_submit_tp(e);
	return 0;
}

/* truncate_pagecache_range(struct inode *, loff_t lstart, loff_t lend): void */
static __always_inline int trunc_enter(struct inode *inode, long long lstart, long long lend)
{
	struct fsr_event *e = fsr_inode_event(FSR_P_TRUNC_PC, FSR_EV_TRUNC_PC_ENTER, inode);
	if (!e)
		return 0;
	e->a[0] = lstart;
	e->a[1] = lend;
	struct fsr_stash s = {.ino = e->ino, .dev = e->dev, .a = {lstart, lend, 0}, .ptr = (__u64)inode};
	fsr_submit(e); /* after the last access to e: a submitted record is no longer ours */
	__u64 k = fsr_stash_key(FSR_P_TRUNC_PC);
	bpf_map_update_elem(&fsr_stash_map, &k, &s, BPF_ANY);
	return 0;
}
static __always_inline int trunc_exit(void)
{
	__u64 k = fsr_stash_key(FSR_P_TRUNC_PC);
	struct fsr_stash *s = bpf_map_lookup_elem(&fsr_stash_map, &k);
	if (!s)
		return 0;
	struct inode *inode = (struct inode *)s->ptr;
	struct fsr_event *e = fsr_inode_event(FSR_P_TRUNC_PC, FSR_EV_TRUNC_PC_EXIT, inode);
	if (e) {
		e->a[0] = s->a[0];
		e->a[1] = s->a[1];
		fsr_submit(e);
	}
	bpf_map_delete_elem(&fsr_stash_map, &k);
	return 0;
}
SEC("fentry/truncate_pagecache_range")
int BPF_PROG(fentry__trunc_pc, struct inode *inode, long long lstart, long long lend) { return trunc_enter(inode, lstart, lend); }
SEC("fexit/truncate_pagecache_range")
int BPF_PROG(fexit__trunc_pc, struct inode *inode, long long lstart, long long lend) { return trunc_exit(); }
SEC("kprobe/truncate_pagecache_range")
int BPF_KPROBE(kprobe__trunc_pc, struct inode *inode, long long lstart, long long lend) { return trunc_enter(inode, lstart, lend); }
SEC("kretprobe/truncate_pagecache_range")
int BPF_KRETPROBE(kretprobe__trunc_pc) { return trunc_exit(); }

/* invalidate_inode_pages2_range(struct address_space *, pgoff_t start, pgoff_t end): int (-EBUSY!) */
static __always_inline int inval2_enter(struct address_space *mapping, unsigned long start, unsigned long end)
{
	if (!mapping)
		return 0;
	struct inode *inode = BPF_CORE_READ(mapping, host);
	struct fsr_event *e = fsr_inode_event(FSR_P_INVAL2, FSR_EV_INVAL2_ENTER, inode);
	if (!e)
		return 0;
	e->a[0] = start;
	e->a[1] = end;
	struct fsr_stash s = {.ino = e->ino, .dev = e->dev, .a = {start, end, 0}, .ptr = (__u64)inode};
	fsr_submit(e); /* after the last access to e: a submitted record is no longer ours */
	__u64 k = fsr_stash_key(FSR_P_INVAL2);
	bpf_map_update_elem(&fsr_stash_map, &k, &s, BPF_ANY);
	return 0;
}
static __always_inline int inval2_exit(long ret)
{
	__u64 k = fsr_stash_key(FSR_P_INVAL2);
	struct fsr_stash *s = bpf_map_lookup_elem(&fsr_stash_map, &k);
	if (!s)
		return 0;
	struct fsr_event *e = fsr_inode_event(FSR_P_INVAL2, FSR_EV_INVAL2_EXIT, (struct inode *)s->ptr);
	if (e) {
		e->a[0] = s->a[0];
		e->a[1] = s->a[1];
		e->ret = (int)ret;
		e->flags |= FSR_F_HAS_RET;
		fsr_submit(e);
	}
	bpf_map_delete_elem(&fsr_stash_map, &k);
	return 0;
}
SEC("fentry/invalidate_inode_pages2_range")
int BPF_PROG(fentry__inval2, struct address_space *mapping, unsigned long start, unsigned long end) { return inval2_enter(mapping, start, end); }
SEC("fexit/invalidate_inode_pages2_range")
int BPF_PROG(fexit__inval2, struct address_space *mapping, unsigned long start, unsigned long end, int ret) { return inval2_exit(ret); }
SEC("kprobe/invalidate_inode_pages2_range")
int BPF_KPROBE(kprobe__inval2, struct address_space *mapping, unsigned long start, unsigned long end) { return inval2_enter(mapping, start, end); }
SEC("kretprobe/invalidate_inode_pages2_range")
int BPF_KRETPROBE(kretprobe__inval2, int ret) { return inval2_exit(ret); }
