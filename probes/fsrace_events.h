/* fsrace probe events: the record every BPF probe family writes to the shared ring buffer, the probe
 * ids, and the maps' key/value layouts. Shared verbatim by the BPF side (probes/<family>.bpf.c, built
 * against vmlinux.h) and the C++ side (probes/loader.cpp, probes/events.cpp). Plain C, fixed-size
 * little-endian fields only: events.bin stores these records as they come out of the ring buffer. */
#ifndef FSRACE_EVENTS_H
#define FSRACE_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define FSR_COMM_LEN 16
#define FSR_MAX_PROBES 64
/* Event runs held in BPF (common.bpf.h fsr_run_member): one per CPU and slot (page-cache add, delete,
 * ext4 extent-status delayed insert). */
#define FSR_RUN_SLOTS 3
/* Events from tracepoint programs are staged per CPU and reach the ring buffer FSR_STAGE_EVENTS at a
 * time, as one record (common.bpf.h fsr_stage_commit): a ring record is then a whole number of
 * fsr_event records. */
#define FSR_STAGE_EVENTS 16
#define FSR_EVENT_VERSION 1

/* Event kinds (fsr_event.kind). Argument meaning per kind is documented in probes/events.cpp
 * (event_kind_info) and rendered by `fsrace events`. */
enum fsr_event_kind {
	FSR_EV_PC_ADD = 1,          /* folio entered the page cache: a0 index, a1 nr pages */
	FSR_EV_PC_DELETE = 2,       /* folio left the page cache: a0 index, a1 nr pages */
	FSR_EV_FAULT = 3,           /* filemap fault on the mapping (tracepoint mm_filemap_fault): a0 index */
	FSR_EV_TRUNC_PC_ENTER = 4,  /* truncate_pagecache_range: a0 lstart, a1 lend (bytes, inclusive) */
	FSR_EV_TRUNC_PC_EXIT = 5,
	FSR_EV_INVAL2_ENTER = 6,    /* invalidate_inode_pages2_range: a0 start, a1 end (page indexes) */
	FSR_EV_INVAL2_EXIT = 7,     /* ret: 0 or -EBUSY ... */
	FSR_EV_RWSEM_ACQUIRE = 8,   /* down_* on an invalidate_lock entered: a0 1 = write, 0 = read */
	FSR_EV_RWSEM_ACQUIRED = 9,  /* down_* returned: a0 mode, ret (killable: -EINTR) */
	FSR_EV_RWSEM_RELEASE = 10,  /* up_*: a0 mode */
	FSR_EV_CONTENTION_BEGIN = 11, /* lock:contention_begin on an invalidate_lock: a0 LCB_F_* flags */
	FSR_EV_CONTENTION_END = 12,   /* lock:contention_end: ret */
	FSR_EV_IOMAP_STALE = 13,    /* iomap_iter saw IOMAP_F_STALE: a0 pos, a1 len, a2 iomap offset, a3 iomap length */
	FSR_EV_XFS_IOMAP_INVALID = 14, /* xfs:xfs_iomap_invalid: a0 offset, a1 length, a2 cookie, a3 inode seq */
	FSR_EV_XFS_WB_INVALID = 15, /* xfs:xfs_wb_{data,cow}_iomap_invalid: a0 offset, a1 length, a2 cookie, a3 1 = cow */
	FSR_EV_XFS_IOMAP_VALID_RET = 16, /* xfs_iomap_valid returned false (stale): a0 iomap offset, a1 length */
	FSR_EV_DIO_INVALIDATE_FAIL = 17, /* iomap:iomap_dio_invalidate_fail: a0 offset, a1 length */
	FSR_EV_EXT4_DA_RESERVE = 18,  /* a0 reserved_data_blocks after, a1 blocks reserved (-1 unknown) */
	FSR_EV_EXT4_DA_RELEASE = 19,  /* a0 reserved_data_blocks before, a1 freed */
	FSR_EV_EXT4_DA_UPDATE = 20,   /* a0 reserved_data_blocks before, a1 used, a2 quota_claim */
	FSR_EV_EXT4_ES_DELAYED = 21,  /* extent-status delayed insert: a0 lblk, a1 len, a2 allocated flags, a3 reserved */
	FSR_EV_EXT4_PUNCH = 22,       /* a0 offset, a1 len, a2 mode */
	FSR_EV_EXT4_ZERO = 23,
	FSR_EV_EXT4_COLLAPSE = 24,
	FSR_EV_EXT4_INSERT = 25,
	FSR_EV_EXT4_FALLOC_ENTER = 26, /* a0 offset, a1 len, a2 mode */
	FSR_EV_EXT4_FALLOC_EXIT = 27,  /* a0 offset, a1 blocks, ret */
	FSR_EV_EXT4_SYNC_EXIT = 28,    /* fsync of the inode finished: ret, a0 reserved_data_blocks */
	FSR_EV_EXT4_EVICT = 29,        /* inode evicted: a0 reserved_data_blocks (-1 unknown), a1 nlink */
	FSR_EV_FN_ENTER = 30,          /* fs entry point entered: a0 offset, a1 length, a2 mode / flags */
	FSR_EV_FN_EXIT = 31,           /* fs entry point returned: ret */
	FSR_EV_EXT4_RESV_SUMMARY = 32, /* per-inode reservation totals kept in BPF (individual reserve / release /
					  * update events are not emitted unless the balance goes negative), sent
					  * just before each fsync-exit and evict event: a0 reserve events, a1 blocks
					  * released, a2 blocks converted at allocation, a3 reserved_data_blocks now */
	FSR_EV_DAX_WRITEBACK = 33,     /* fs_dax:dax_writeback_one: a DAX entry's cache lines flushed by a sync or
					  * writeback: a0 pgoff, a1 pglen (pages: 1 for a PTE entry, 512 for a PMD) */
	FSR_EV_DAX_FAULT = 34,         /* fs_dax:dax_{pte,pmd}_fault_done: a0 pgoff, a1 1 = PMD, a2 1 = write
					  * fault, ret the VM_FAULT_* result */
	FSR_EV_DAX_FAULT_BEGIN = 35,   /* fs_dax:dax_{pte,pmd}_fault: a DAX fault began (it locks the entry until its
					  * _done event): a0 pgoff, a1 1 = PMD, a2 1 = write fault */
	FSR_EV_KIND_MAX = 36,
};

/* fsr_event.flags */
#define FSR_F_LOCK_VALID 0x1   /* lock_count / lock_owner hold a snapshot of mapping->invalidate_lock */
#define FSR_F_LOCK_SELF 0x2    /* the lock's owner field names the current task */
#define FSR_F_HAS_RET 0x4      /* ret is meaningful */
#define FSR_F_NO_INODE 0x8     /* the attach mode gives no inode pointer (classic tracepoint) */

/* rw_semaphore.count bits (kernel/locking/rwsem.c, unchanged since 5.3) */
#define FSR_RWSEM_WRITER_LOCKED 0x1ULL
#define FSR_RWSEM_READER_SHIFT 8
#define FSR_RWSEM_OWNER_FLAGS_MASK 0x7ULL

struct fsr_event {
	__u64 ts_ns;      /* bpf_ktime_get_ns(): CLOCK_MONOTONIC, same clock as ops.bin */
	__u64 ino;
	__u32 dev;        /* kernel dev_t (MKDEV: major << 20 | minor) */
	__u16 kind;       /* enum fsr_event_kind */
	__u16 probe;      /* enum fsr_probe_id */
	__u32 pid;        /* tgid */
	__u32 tid;
	__u32 flags;      /* FSR_F_* */
	__u32 pad;
	__u64 a[4];
	__s64 ret;
	__u64 lock_count; /* invalidate_lock.count at the event */
	__u64 lock_owner; /* invalidate_lock.owner (task pointer | flags), 0 if none; in events.bin the
	                     loader has made the pointer the owner's number in the run (n << 3 | flags) */
	char comm[FSR_COMM_LEN];
};

/* The per-CPU staging area of tracepoint programs (one entry of the fsr_stage per-CPU array). */
struct fsr_stage {
	__u32 n;     /* events committed, in ev[0..n) */
	__u32 busy;  /* 0: free; 1: a program builds ev[n] or commits; 2: one interrupted it and builds nest */
	struct fsr_event ev[FSR_STAGE_EVENTS];
	struct fsr_event nest;
};

/* Probe ids: one per attachable probe. The C++ table (probes/catalog.cpp) names them and lists the
 * programs of each attach mode; keep both in sync (a static_assert there checks the count). */
enum fsr_probe_id {
	/* pagecache family */
	FSR_P_PC_ADD = 0,
	FSR_P_PC_DELETE,
	FSR_P_FAULT_TP,
	FSR_P_TRUNC_PC,
	FSR_P_INVAL2,
	/* lock family */
	FSR_P_DOWN_WRITE,
	FSR_P_DOWN_WRITE_KILLABLE,
	FSR_P_DOWN_READ,
	FSR_P_DOWN_READ_KILLABLE,
	FSR_P_UP_WRITE,
	FSR_P_UP_READ,
	FSR_P_CONTENTION_BEGIN,
	FSR_P_CONTENTION_END,
	/* iomap family */
	FSR_P_IOMAP_ITER,
	FSR_P_XFS_IOMAP_INVALID,
	FSR_P_XFS_WB_DATA_INVALID,
	FSR_P_XFS_WB_COW_INVALID,
	FSR_P_XFS_IOMAP_VALID,
	FSR_P_DIO_INVALIDATE_FAIL,
	/* ext4 family */
	FSR_P_EXT4_DA_RESERVE,
	FSR_P_EXT4_DA_RELEASE,
	FSR_P_EXT4_DA_UPDATE,
	FSR_P_EXT4_ES_DELAYED_EXTENT,
	FSR_P_EXT4_ES_DELAYED_BLOCK,
	FSR_P_EXT4_PUNCH,
	FSR_P_EXT4_ZERO,
	FSR_P_EXT4_COLLAPSE,
	FSR_P_EXT4_INSERT,
	FSR_P_EXT4_FALLOC_ENTER,
	FSR_P_EXT4_FALLOC_EXIT,
	FSR_P_EXT4_SYNC_EXIT,
	FSR_P_EXT4_EVICT,
	/* entry family: filesystem entry points (function probes only) */
	FSR_P_FN_EXT4_FALLOCATE,
	FSR_P_FN_XFS_FALLOCATE,
	FSR_P_FN_FILEMAP_FAULT,
	FSR_P_FN_EXT4_PAGE_MKWRITE,
	FSR_P_FN_XFS_PAGE_MKWRITE,
	FSR_P_FN_IOMAP_DIO_RW,
	FSR_P_FN_CEPH_DIRECT_RW,
	FSR_P_FN_EXT4_WRITEPAGES,
	FSR_P_FN_XFS_WRITEPAGES,
	FSR_P_DAX_WRITEBACK_ONE,
	FSR_P_DAX_PTE_FAULT_DONE,
	FSR_P_DAX_PMD_FAULT_DONE,
	FSR_P_DAX_PTE_FAULT,
	FSR_P_DAX_PMD_FAULT,
	FSR_P_FN_DAX_LAYOUT_BUSY,
	FSR_P_COUNT,
};

/* filter map: test inodes */
struct fsr_inode_key {
	__u32 dev;
	__u32 pad;
	__u64 ino;
};

/* lock map value: which test inode an invalidate_lock address belongs to */
struct fsr_lock_owner {
	__u32 dev;
	__u32 pad;
	__u64 ino;
};

/* per-probe counters (per-CPU array indexed by probe id) */
struct fsr_probe_stats {
	__u64 hits;     /* probe fired for a test inode */
	__u64 emitted;  /* records written to the ring buffer */
	__u64 dropped;  /* ring buffer full: record lost (counted, never silent) */
};

/* entry -> return stash (kretprobes, exits without arguments): key tid << 8 ^ probe */
struct fsr_stash {
	__u64 ino;
	__u32 dev;
	__u32 mode;
	__u64 a[3];
	__u64 ptr;
};

/* read-only configuration, set by the loader before load (const volatile in .rodata) */
struct fsr_config {
	__u64 iomap_f_stale;  /* IOMAP_F_STALE on this kernel (parsed from tracefs), 0 = unknown */
	__u32 self_pid;       /* fsrace's own tgid (not filtered out; informational) */
	__u32 lock_snapshot;  /* read invalidate_lock state at each inode event */
	__u64 wake_bytes;     /* wake the reader once this much is unread in the ring (a quarter of it) */
	__u32 ncpus;          /* possible CPUs (per-CPU map values to sum) */
	__u32 pad;
};
#define FSR_MAX_FILES 1024  /* test inodes per session: the filter's and the per-file maps' size */
#define FSR_MAX_CPUS 512    /* per-CPU totals summed in BPF (ext4 reservation summaries) */

/* Kernel-side delays (probes/delay.bpf.c): busy-waits at chosen kernel points, for the test inodes only.
 * One hook = one tracepoint or function the delay object attaches to; a delay point of the catalog
 * (probes/catalog.cpp, delay_points()) is one or more hooks (e.g. the ext4 and the XFS tracepoint of
 * the same window). Keep the ids in sync with delay_hooks() there. */
#define FSR_DELAY_MAX_HOOKS 16
#define FSR_DELAY_MAX_US 2000      /* cap per hit, enforced on both sides */
enum fsr_delay_hook_id {
	FSR_DH_EXT4_REMOVE_SPACE = 0,
	FSR_DH_XFS_FREE_FILE_SPACE,
	FSR_DH_FILL_ADDED,
	FSR_DH_IOMAP_DSTMAP,
	FSR_DH_XFS_IOMAP_FOUND,
	FSR_DH_XFS_IOMAP_ALLOC,
	FSR_DH_XFS_MAP_BLOCKS_FOUND,
	FSR_DH_XFS_MAP_BLOCKS_ALLOC,
	FSR_DH_TRUNC_PC_EXIT,
	FSR_DH_COUNT,
};

/* per-hook counters (per-CPU array indexed by hook id) */
struct fsr_delay_stats {
	__u64 hits;     /* the hook fired for a test inode */
	__u64 delayed;  /* hits that busy-waited */
	__u64 ns;       /* total time spent busy-waiting */
	__u64 max_ns;   /* longest single wait */
};

/* read-only configuration of the delay object (const volatile in .rodata, set before load) */
struct fsr_delay_config {
	__u64 delay_ns[FSR_DELAY_MAX_HOOKS];   /* 0: hook not delayed */
	__u64 threshold[FSR_DELAY_MAX_HOOKS];  /* delay when bpf_get_prandom_u32() < threshold (2^32: always) */
};

/* Error injection (probes/inject.bpf.c, kwiden override-return): fail a share of the calls of an
 * error-injectable function on the test inodes with a chosen errno. */
struct fsr_inject_config {
	__u64 threshold;  /* inject when bpf_get_prandom_u32() < threshold (2^32: always) */
	__s64 retval;     /* the value the function returns instead of running: -errno */
};
struct fsr_inject_stats {
	__u64 hits;      /* calls on a test inode */
	__u64 injected;  /* of them, failed with retval */
};

#endif
