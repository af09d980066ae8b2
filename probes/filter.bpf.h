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
	__uint(max_entries, FSR_MAX_FILES);
	__type(key, struct fsr_inode_key);
	__type(value, __u32);
} fsr_filter SEC(".maps");

/* Per CPU: the test inode fsr_match matched last, so the common case (event after event on one test
 * file) costs an array load instead of a hash lookup. Only matches are cached: the loader only ever
 * adds inodes to fsr_filter during a session, so a match stays one (a miss could turn into a match).
 * `check` is written last and covers both fields, so an entry torn by a preempted writer (fentry
 * programs run preemptible) fails the check instead of matching a mix of two inodes. Private to each
 * object (a cache). */
struct fsr_match_seen {
	__u64 ino;
	__u32 dev;
	__u32 idx;
	__u32 check;
	__u32 pad;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fsr_match_seen);
} fsr_match_seen SEC(".maps");

static __always_inline __u32 fsr_match_check(__u32 dev, __u64 ino, __u32 idx)
{
	return ((__u32)ino ^ (__u32)(ino >> 32) ^ dev ^ (idx * 0x85ebca6bu) ^ 0x9e3779b9u) | 1;  /* never 0: 0 is the empty slot */
}

/* 1 + the test file's index (the filter map's value, dense from 0: the loader numbers the files as
 * it adds them) if (dev, ino) is a test inode, else 0. */
static __always_inline __u32 fsr_match_idx(__u32 dev, __u64 ino)
{
	__u32 zero = 0;
	struct fsr_match_seen *c = bpf_map_lookup_elem(&fsr_match_seen, &zero);
	if (c && c->ino == ino && c->dev == dev) {
		__u32 idx = c->idx;
		if (c->check == fsr_match_check(dev, ino, idx))
			return idx + 1;
	}
	struct fsr_inode_key k = {.dev = dev, .pad = 0, .ino = ino};
	__u32 *v = bpf_map_lookup_elem(&fsr_filter, &k);
	if (!v)
		return 0;
	__u32 idx = *v;
	if (c) {
		c->check = 0;
		c->ino = ino;
		c->dev = dev;
		c->idx = idx;
		c->check = fsr_match_check(dev, ino, idx);
	}
	return idx + 1;
}

static __always_inline bool fsr_match(__u32 dev, __u64 ino)
{
	return fsr_match_idx(dev, ino) != 0;
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
