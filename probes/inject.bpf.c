/* Error injection for race widening (kwiden override-return): a kprobe on an error-injectable kernel
 * function (ALLOW_ERROR_INJECTION) that, for the test inodes only (the shared fsr_filter map) and on a
 * configured share of the calls by the workload's racing threads, makes the function return an errno without running
 * (bpf_override_return, CONFIG_BPF_KPROBE_OVERRIDE).
 *
 * The one point: __filemap_add_folio(mapping, folio, index, gfp, shadowp), the insertion of a folio into
 * the page cache (6.0+; ALLOW_ERROR_INJECTION(..., ERRNO) in mm/filemap.c). -EEXIST there is exactly the
 * "lost the race to another inserter" outcome every caller must handle by retrying (filemap_create_folio,
 * __filemap_get_folio(FGP_CREAT), the fault path) or skipping (readahead), so a stock kernel shows no
 * difference in data; -ENOMEM is a failed allocation, which read(2) and write(2) may return.
 *
 * Separate from delay.bpf.c: a kernel without bpf_override_return refuses this object at load, which
 * must not take the delays down with it. */
#include "filter.bpf.h"

const volatile struct fsr_inject_config icfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fsr_inject_stats);
} fsr_inject_stats SEC(".maps");

/* The racing threads (tids the loader adds as each starts): the quiescent checks and the final
 * verification read the same files from other threads and must not be failed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} fsr_inject_tasks SEC(".maps");

SEC("kprobe/__filemap_add_folio")
int BPF_KPROBE(inject_filemap_add, struct address_space *mapping)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (!bpf_map_lookup_elem(&fsr_inject_tasks, &tid))
		return 0;
	__u32 dev;
	__u64 ino;
	if (!fsr_inode_id(BPF_CORE_READ(mapping, host), &dev, &ino) || !fsr_match(dev, ino))
		return 0;
	__u32 zero = 0;
	struct fsr_inject_stats *st = bpf_map_lookup_elem(&fsr_inject_stats, &zero);
	if (!st)
		return 0;
	st->hits++;
	if ((__u64)bpf_get_prandom_u32() >= icfg.threshold)
		return 0;
	st->injected++;
	bpf_override_return(ctx, (unsigned long)icfg.retval);
	return 0;
}
