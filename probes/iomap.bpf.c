/* iomap family: stale cached mappings the kernel detected (iomap_iter with IOMAP_F_STALE, the XFS
 * validity tracepoints of 6.2+, and on kernels without them the false return of xfs_iomap_valid), and
 * failed page-cache invalidation around direct I/O (iomap:iomap_dio_invalidate_fail). */
#include "common.bpf.h"

/* iomap:iomap_iter(struct iomap_iter *iter, const void *ops, unsigned long caller). The stale flag is
 * in iter->iomap.flags; its value differs between kernels and is not in BTF (a #define), so the
 * loader parses it from tracefs and passes it in cfg.iomap_f_stale. */
static __always_inline int iter_body(struct iomap_iter *iter)
{
	if (!cfg.iomap_f_stale)
		return 0;
	__u16 flags = BPF_CORE_READ(iter, iomap.flags);
	if (!(flags & cfg.iomap_f_stale))
		return 0;
	struct fsr_event *e = fsr_inode_event(FSR_P_IOMAP_ITER, FSR_EV_IOMAP_STALE, BPF_CORE_READ(iter, inode));
	if (!e)
		return 0;
	e->a[0] = BPF_CORE_READ(iter, pos);
	e->a[1] = BPF_CORE_READ(iter, len);
	e->a[2] = BPF_CORE_READ(iter, iomap.offset);
	e->a[3] = BPF_CORE_READ(iter, iomap.length);
	fsr_submit(e);
	return 0;
}
SEC("tp_btf/iomap_iter")
int BPF_PROG(btf__iomap_iter, struct iomap_iter *iter) { return iter_body(iter); }
SEC("raw_tp/iomap_iter")
int BPF_PROG(raw__iomap_iter, struct iomap_iter *iter) { return iter_body(iter); }

/* xfs:xfs_iomap_invalid(struct xfs_inode *, const struct iomap *) (6.2+) */
static __always_inline int xfs_invalid_body(struct xfs_inode *ip, struct iomap *iomap, __u32 probe, __u16 kind, __u64 a3)
{
	struct fsr_event *e = fsr_inode_event(probe, kind, (struct inode *)&ip->i_vnode);
	if (!e)
		return 0;
	e->a[0] = BPF_CORE_READ(iomap, offset);
	e->a[1] = BPF_CORE_READ(iomap, length);
	if (bpf_core_field_exists(iomap->validity_cookie))
		e->a[2] = BPF_CORE_READ(iomap, validity_cookie);
	e->a[3] = a3;
	fsr_submit(e);
	return 0;
}
SEC("tp_btf/xfs_iomap_invalid")
int BPF_PROG(btf__xfs_iomap_invalid, struct xfs_inode *ip, struct iomap *iomap)
{
	return xfs_invalid_body(ip, iomap, FSR_P_XFS_IOMAP_INVALID, FSR_EV_XFS_IOMAP_INVALID, 0);
}
SEC("raw_tp/xfs_iomap_invalid")
int BPF_PROG(raw__xfs_iomap_invalid, struct xfs_inode *ip, struct iomap *iomap)
{
	return xfs_invalid_body(ip, iomap, FSR_P_XFS_IOMAP_INVALID, FSR_EV_XFS_IOMAP_INVALID, 0);
}
SEC("tracepoint/xfs/xfs_iomap_invalid")
int tp__xfs_iomap_invalid(struct trace_event_raw_xfs_iomap_invalid_class *ctx)
{
	struct fsr_event *e = fsr_id_event(FSR_P_XFS_IOMAP_INVALID, FSR_EV_XFS_IOMAP_INVALID, BPF_CORE_READ(ctx, dev),
					   BPF_CORE_READ(ctx, ino));
	if (!e)
		return 0;
	e->a[0] = BPF_CORE_READ(ctx, pos);
	e->a[1] = BPF_CORE_READ(ctx, len);
	e->a[2] = BPF_CORE_READ(ctx, validity_cookie);
	e->a[3] = BPF_CORE_READ(ctx, inodeseq);
	fsr_submit(e);
	return 0;
}

/* xfs:xfs_wb_{data,cow}_iomap_invalid(struct xfs_inode *, const struct iomap *, unsigned int wpcseq, int whichfork) */
SEC("tp_btf/xfs_wb_data_iomap_invalid")
int BPF_PROG(btf__xfs_wb_data, struct xfs_inode *ip, struct iomap *iomap)
{
	return xfs_invalid_body(ip, iomap, FSR_P_XFS_WB_DATA_INVALID, FSR_EV_XFS_WB_INVALID, 0);
}
SEC("raw_tp/xfs_wb_data_iomap_invalid")
int BPF_PROG(raw__xfs_wb_data, struct xfs_inode *ip, struct iomap *iomap)
{
	return xfs_invalid_body(ip, iomap, FSR_P_XFS_WB_DATA_INVALID, FSR_EV_XFS_WB_INVALID, 0);
}
SEC("tp_btf/xfs_wb_cow_iomap_invalid")
int BPF_PROG(btf__xfs_wb_cow, struct xfs_inode *ip, struct iomap *iomap)
{
	return xfs_invalid_body(ip, iomap, FSR_P_XFS_WB_COW_INVALID, FSR_EV_XFS_WB_INVALID, 1);
}
SEC("raw_tp/xfs_wb_cow_iomap_invalid")
int BPF_PROG(raw__xfs_wb_cow, struct xfs_inode *ip, struct iomap *iomap)
{
	return xfs_invalid_body(ip, iomap, FSR_P_XFS_WB_COW_INVALID, FSR_EV_XFS_WB_INVALID, 1);
}
static __always_inline int wb_tp(struct trace_event_raw_xfs_wb_invalid_class *ctx, __u32 probe, __u64 cow)
{
	struct fsr_event *e = fsr_id_event(probe, FSR_EV_XFS_WB_INVALID, BPF_CORE_READ(ctx, dev), BPF_CORE_READ(ctx, ino));
	if (!e)
		return 0;
	e->a[0] = BPF_CORE_READ(ctx, pos);
	e->a[1] = BPF_CORE_READ(ctx, len);
	e->a[2] = BPF_CORE_READ(ctx, wpcseq);
	e->a[3] = cow;
	fsr_submit(e);
	return 0;
}
SEC("tracepoint/xfs/xfs_wb_data_iomap_invalid")
int tp__xfs_wb_data(struct trace_event_raw_xfs_wb_invalid_class *ctx) { return wb_tp(ctx, FSR_P_XFS_WB_DATA_INVALID, 0); }
SEC("tracepoint/xfs/xfs_wb_cow_iomap_invalid")
int tp__xfs_wb_cow(struct trace_event_raw_xfs_wb_invalid_class *ctx) { return wb_tp(ctx, FSR_P_XFS_WB_COW_INVALID, 1); }

/* bool xfs_iomap_valid(struct inode *, const struct iomap *): the 6.1 (backported) validity check
 * without tracepoints. Only false returns (stale mapping detected) are recorded. */
static __always_inline int valid_exit(struct inode *inode, struct iomap *iomap, long ret)
{
	if (ret & 0xff)
		return 0;
	struct fsr_event *e = fsr_inode_event(FSR_P_XFS_IOMAP_VALID, FSR_EV_XFS_IOMAP_VALID_RET, inode);
	if (!e)
		return 0;
	e->a[0] = BPF_CORE_READ(iomap, offset);
	e->a[1] = BPF_CORE_READ(iomap, length);
	e->ret = 0;
	e->flags |= FSR_F_HAS_RET;
	fsr_submit(e);
	return 0;
}
SEC("fexit/xfs_iomap_valid")
int BPF_PROG(fexit__xfs_iomap_valid, struct inode *inode, struct iomap *iomap, bool ret)
{
	return valid_exit(inode, iomap, ret);
}
SEC("kprobe/xfs_iomap_valid")
int BPF_KPROBE(kprobe__xfs_iomap_valid, struct inode *inode, struct iomap *iomap)
{
	__u32 dev;
	__u64 ino;
	if (!fsr_inode_id(inode, &dev, &ino) || !fsr_match(dev, ino))
		return 0;
	struct fsr_stash s = {.ino = ino, .dev = dev, .ptr = (__u64)inode, .a = {(__u64)iomap, 0, 0}};
	__u64 k = fsr_stash_key(FSR_P_XFS_IOMAP_VALID);
	bpf_map_update_elem(&fsr_stash_map, &k, &s, BPF_ANY);
	return 0;
}
SEC("kretprobe/xfs_iomap_valid")
int BPF_KRETPROBE(kretprobe__xfs_iomap_valid, long ret)
{
	__u64 k = fsr_stash_key(FSR_P_XFS_IOMAP_VALID);
	struct fsr_stash *s = bpf_map_lookup_elem(&fsr_stash_map, &k);
	if (!s)
		return 0;
	struct inode *inode = (struct inode *)s->ptr;
	struct iomap *iomap = (struct iomap *)s->a[0];
	bpf_map_delete_elem(&fsr_stash_map, &k);
	return valid_exit(inode, iomap, ret);
}

/* iomap:iomap_dio_invalidate_fail(struct inode *, loff_t offset, u64 length) */
static __always_inline int dio_fail_body(struct inode *inode, long long offset, __u64 length)
{
	struct fsr_event *e = fsr_inode_event(FSR_P_DIO_INVALIDATE_FAIL, FSR_EV_DIO_INVALIDATE_FAIL, inode);
	if (!e)
		return 0;
	e->a[0] = offset;
	e->a[1] = length;
	fsr_submit(e);
	return 0;
}
SEC("tp_btf/iomap_dio_invalidate_fail")
int BPF_PROG(btf__dio_inval_fail, struct inode *inode, long long offset, __u64 length) { return dio_fail_body(inode, offset, length); }
SEC("raw_tp/iomap_dio_invalidate_fail")
int BPF_PROG(raw__dio_inval_fail, struct inode *inode, long long offset, __u64 length) { return dio_fail_body(inode, offset, length); }
SEC("tracepoint/iomap/iomap_dio_invalidate_fail")
int tp__dio_inval_fail(struct trace_event_raw_iomap_range_class *ctx)
{
	struct fsr_event *e = fsr_id_event(FSR_P_DIO_INVALIDATE_FAIL, FSR_EV_DIO_INVALIDATE_FAIL, BPF_CORE_READ(ctx, dev),
					   BPF_CORE_READ(ctx, ino));
	if (!e)
		return 0;
	e->a[0] = BPF_CORE_READ(ctx, offset);
	e->a[1] = BPF_CORE_READ(ctx, length);
	fsr_submit(e);
	return 0;
}
