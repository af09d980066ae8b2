/* entry family: filesystem entry points, where the kernel allows function probes (fentry/fexit, else
 * kprobe/kretprobe): the fallocate handlers, filemap_fault, the page_mkwrite handlers, iomap_dio_rw /
 * ceph_direct_read_write and writeback of the test inodes. Each probe emits FN_ENTER (offset, length,
 * mode) and FN_EXIT (return value); the probe id names the function. */
#include "common.bpf.h"

static __always_inline int fn_enter(__u32 probe, struct inode *inode, __u64 off, __u64 len, __u64 mode)
{
	struct fsr_event *e = fsr_inode_event(probe, FSR_EV_FN_ENTER, inode);
	if (!e)
		return 0;
	e->a[0] = off;
	e->a[1] = len;
	e->a[2] = mode;
	/* the stash takes the ids from the record before it is submitted: a submitted record is no longer
	 * ours (the verifier rejects any access to it after bpf_ringbuf_submit) */
	struct fsr_stash s = {.ino = e->ino, .dev = e->dev, .a = {off, len, mode}, .ptr = (__u64)inode};
	fsr_submit(e);
	__u64 k = fsr_stash_key(probe);
	bpf_map_update_elem(&fsr_stash_map, &k, &s, BPF_ANY);
	return 0;
}

static __always_inline int fn_exit(__u32 probe, long ret)
{
	__u64 k = fsr_stash_key(probe);
	struct fsr_stash *s = bpf_map_lookup_elem(&fsr_stash_map, &k);
	if (!s)
		return 0;
	struct fsr_event *e = fsr_inode_event(probe, FSR_EV_FN_EXIT, (struct inode *)s->ptr);
	if (e) {
		e->a[0] = s->a[0];
		e->a[1] = s->a[1];
		e->a[2] = s->a[2];
		e->ret = ret;
		e->flags |= FSR_F_HAS_RET;
		fsr_submit(e);
	}
	bpf_map_delete_elem(&fsr_stash_map, &k);
	return 0;
}

static __always_inline struct inode *file_inode_of(struct file *f)
{
	return BPF_CORE_READ(f, f_mapping, host);
}
static __always_inline struct inode *vmf_inode(struct vm_fault *vmf)
{
	return BPF_CORE_READ(vmf, vma, vm_file, f_mapping, host);
}

/* long (*fallocate)(struct file *, int mode, loff_t offset, loff_t len) */
#define FALLOC_FN(func, fn, probe)                                                                      \
	SEC("fentry/" #func)                                                                            \
	int BPF_PROG(fentry__##fn, struct file *f, int mode, long long off, long long len)             \
	{                                                                                               \
		return fn_enter(probe, file_inode_of(f), off, len, mode);                              \
	}                                                                                               \
	SEC("fexit/" #func)                                                                             \
	int BPF_PROG(fexit__##fn, struct file *f, int mode, long long off, long long len, long ret)    \
	{                                                                                               \
		return fn_exit(probe, ret);                                                             \
	}                                                                                               \
	SEC("kprobe/" #func)                                                                            \
	int BPF_KPROBE(kprobe__##fn, struct file *f, int mode, long long off, long long len)           \
	{                                                                                               \
		return fn_enter(probe, file_inode_of(f), off, len, mode);                              \
	}                                                                                               \
	SEC("kretprobe/" #func)                                                                         \
	int BPF_KRETPROBE(kretprobe__##fn, long ret) { return fn_exit(probe, ret); }
FALLOC_FN(ext4_fallocate, ext4_falloc, FSR_P_FN_EXT4_FALLOCATE)
FALLOC_FN(xfs_file_fallocate, xfs_falloc, FSR_P_FN_XFS_FALLOCATE)

/* vm_fault_t (*fault / page_mkwrite)(struct vm_fault *) */
#define VMF_FN(func, fn, probe)                                                                         \
	SEC("fentry/" #func)                                                                            \
	int BPF_PROG(fentry__##fn, struct vm_fault *vmf)                                               \
	{                                                                                               \
		return fn_enter(probe, vmf_inode(vmf), BPF_CORE_READ(vmf, pgoff), 1, BPF_CORE_READ(vmf, flags)); \
	}                                                                                               \
	SEC("fexit/" #func)                                                                             \
	int BPF_PROG(fexit__##fn, struct vm_fault *vmf, unsigned int ret) { return fn_exit(probe, ret); } \
	SEC("kprobe/" #func)                                                                            \
	int BPF_KPROBE(kprobe__##fn, struct vm_fault *vmf)                                             \
	{                                                                                               \
		return fn_enter(probe, vmf_inode(vmf), BPF_CORE_READ(vmf, pgoff), 1, BPF_CORE_READ(vmf, flags)); \
	}                                                                                               \
	SEC("kretprobe/" #func)                                                                         \
	int BPF_KRETPROBE(kretprobe__##fn, unsigned int ret) { return fn_exit(probe, ret); }
VMF_FN(filemap_fault, filemap_fault, FSR_P_FN_FILEMAP_FAULT)
VMF_FN(ext4_page_mkwrite, ext4_mkwrite, FSR_P_FN_EXT4_PAGE_MKWRITE)
VMF_FN(xfs_filemap_page_mkwrite, xfs_mkwrite, FSR_P_FN_XFS_PAGE_MKWRITE)

/* ssize_t iomap_dio_rw(struct kiocb *, struct iov_iter *, ...) and
 * ssize_t ceph_direct_read_write(struct kiocb *, struct iov_iter *, ...) */
static __always_inline int dio_enter(__u32 probe, struct kiocb *iocb, struct iov_iter *iter)
{
	return fn_enter(probe, file_inode_of(BPF_CORE_READ(iocb, ki_filp)), BPF_CORE_READ(iocb, ki_pos),
			BPF_CORE_READ(iter, count), BPF_CORE_READ(iocb, ki_flags));
}
/* fexit reads the return value with bpf_get_func_ret (5.17+): the argument count differs per function */
#define DIO_FN(func, fn, probe)                                                                         \
	SEC("fentry/" #func)                                                                            \
	int BPF_PROG(fentry__##fn, struct kiocb *iocb, struct iov_iter *iter) { return dio_enter(probe, iocb, iter); } \
	SEC("fexit/" #func)                                                                             \
	int BPF_PROG(fexit__##fn)                                                                       \
	{                                                                                               \
		__u64 ret = 0;                                                                          \
		bpf_get_func_ret(ctx, &ret);                                                            \
		return fn_exit(probe, (long)ret);                                                       \
	}                                                                                               \
	SEC("kprobe/" #func)                                                                            \
	int BPF_KPROBE(kprobe__##fn, struct kiocb *iocb, struct iov_iter *iter) { return dio_enter(probe, iocb, iter); } \
	SEC("kretprobe/" #func)                                                                         \
	int BPF_KRETPROBE(kretprobe__##fn, long ret) { return fn_exit(probe, ret); }
DIO_FN(iomap_dio_rw, iomap_dio_rw, FSR_P_FN_IOMAP_DIO_RW)
DIO_FN(ceph_direct_read_write, ceph_dio, FSR_P_FN_CEPH_DIRECT_RW)

/* int (*writepages)(struct address_space *, struct writeback_control *) */
static __always_inline int wb_enter(__u32 probe, struct address_space *mapping, struct writeback_control *wbc)
{
	return fn_enter(probe, BPF_CORE_READ(mapping, host), BPF_CORE_READ(wbc, range_start), BPF_CORE_READ(wbc, range_end),
			BPF_CORE_READ(wbc, sync_mode));
}
#define WB_FN(func, fn, probe)                                                                          \
	SEC("fentry/" #func)                                                                            \
	int BPF_PROG(fentry__##fn, struct address_space *m, struct writeback_control *wbc) { return wb_enter(probe, m, wbc); } \
	SEC("fexit/" #func)                                                                             \
	int BPF_PROG(fexit__##fn, struct address_space *m, struct writeback_control *wbc, int ret) { return fn_exit(probe, ret); } \
	SEC("kprobe/" #func)                                                                            \
	int BPF_KPROBE(kprobe__##fn, struct address_space *m, struct writeback_control *wbc) { return wb_enter(probe, m, wbc); } \
	SEC("kretprobe/" #func)                                                                         \
	int BPF_KRETPROBE(kretprobe__##fn, int ret) { return fn_exit(probe, ret); }
WB_FN(ext4_writepages, ext4_wb, FSR_P_FN_EXT4_WRITEPAGES)
WB_FN(xfs_vm_writepages, xfs_wb, FSR_P_FN_XFS_WRITEPAGES)

/* struct page *dax_layout_busy_page_range(struct address_space *, loff_t start, loff_t end): FN_ENTER
 * (start, bytes), FN_EXIT ret 1 when it found a page still referenced beyond the idle count (pinned by
 * get_user_pages): the layout break then sleeps until that page goes idle. */
static __always_inline int busy_enter(struct address_space *m, long long start, long long end)
{
	/* dax_layout_busy_page() asks for [0, LLONG_MAX]: its length stays LLONG_MAX (to EOF), not 2^63 */
	__u64 len = end == 0x7fffffffffffffffLL ? (__u64)end - start : (__u64)(end - start) + 1;
	return fn_enter(FSR_P_FN_DAX_LAYOUT_BUSY, BPF_CORE_READ(m, host), start, len, 0);
}
SEC("fentry/dax_layout_busy_page_range")
int BPF_PROG(fentry__dax_busy, struct address_space *m, long long start, long long end) { return busy_enter(m, start, end); }
SEC("fexit/dax_layout_busy_page_range")
int BPF_PROG(fexit__dax_busy, struct address_space *m, long long start, long long end, void *page)
{
	return fn_exit(FSR_P_FN_DAX_LAYOUT_BUSY, page ? 1 : 0);
}
SEC("kprobe/dax_layout_busy_page_range")
int BPF_KPROBE(kprobe__dax_busy, struct address_space *m, long long start, long long end) { return busy_enter(m, start, end); }
SEC("kretprobe/dax_layout_busy_page_range")
int BPF_KRETPROBE(kretprobe__dax_busy, void *page) { return fn_exit(FSR_P_FN_DAX_LAYOUT_BUSY, page ? 1 : 0); }
