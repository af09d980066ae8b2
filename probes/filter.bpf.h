/* The test-inode filter shared by every BPF object fsrace loads (the probe families through
 * common.bpf.h, the kernel-delay object delay.bpf.c): the map the loader creates once and hands to each
 * object with bpf_map__reuse_fd, and the (dev, ino) lookups. Everything that touches kernel structs goes
 * through CO-RE so one object loads on 6.1 and 6.18. */
#ifndef FSRACE_FILTER_BPF_H
#define FSRACE_FILTER_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "fsrace_events.h"

char LICENSE[] SEC("license") = "GPL";

/* Test inodes: (dev, ino) -> file index. Everything else is dropped here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct fsr_inode_key);
	__type(value, __u32);
} fsr_filter SEC(".maps");

static __always_inline bool fsr_match(__u32 dev, __u64 ino)
{
	struct fsr_inode_key k = {.dev = dev, .pad = 0, .ino = ino};
	return bpf_map_lookup_elem(&fsr_filter, &k) != NULL;
}

static __always_inline bool fsr_inode_id(struct inode *inode, __u32 *dev, __u64 *ino)
{
	if (!inode)
		return false;
	*dev = BPF_CORE_READ(inode, i_sb, s_dev);
	*ino = BPF_CORE_READ(inode, i_ino);
	return true;
}

/* The same from a tp_btf program, whose arguments are BTF pointers: plain loads (CO-RE relocated through
 * vmlinux.h's preserve_access_index, NULL-safe: a faulting BTF load reads 0) instead of one
 * bpf_probe_read_kernel helper call per field. This runs for every event system-wide before the
 * filter, so it is the hot path. Only for tp_btf / fentry: raw_tp arguments are plain scalars. */
static __always_inline bool fsr_inode_id_btf(struct inode *inode, __u32 *dev, __u64 *ino)
{
	if (!inode)
		return false;
	struct super_block *sb = inode->i_sb;
	if (!sb)
		return false;
	*dev = sb->s_dev;
	*ino = inode->i_ino;
	return true;
}

#endif
