/* dax family: what DAX did for the test files — each entry flushed to persistence by fsync / msync /
 * writeback (fs_dax:dax_writeback_one: pgoff, pglen) and each page fault's outcome (PTE or PMD, read or
 * write, VM_FAULT_* result). The analyzer checks that every store through a DAX mapping that ended
 * before a sync began was flushed by the time the sync returned (a missed flush is invisible to a power
 * cut under emulation: QEMU's NVDIMM has no volatile cache), and counts faults for the report. */
#include "common.bpf.h"

#define FSR_FAULT_FLAG_WRITE 0x1

static __always_inline int wb_one(struct inode *inode, __u64 pgoff, __u64 pglen, const bool btf)
{
	struct fsr_event *e = fsr_inode_event_tp(FSR_P_DAX_WRITEBACK_ONE, FSR_EV_DAX_WRITEBACK, inode, btf);
	if (!e)
		return 0;
	e->a[0] = pgoff;
	e->a[1] = pglen;
	fsr_submit_tp(e);
	return 0;
}
SEC("tp_btf/dax_writeback_one")
int BPF_PROG(btf__dax_wb_one, struct inode *inode, unsigned long pgoff, unsigned long pglen) { return wb_one(inode, pgoff, pglen, true); }
SEC("raw_tp/dax_writeback_one")
int BPF_PROG(raw__dax_wb_one, struct inode *inode, unsigned long pgoff, unsigned long pglen) { return wb_one(inode, pgoff, pglen, false); }

static __always_inline int fault_ev(__u32 probe, __u16 kind, struct inode *inode, struct vm_fault *vmf, int result,
				    bool pmd, const bool btf)
{
	struct fsr_event *e = fsr_inode_event_tp(probe, kind, inode, btf);
	if (!e)
		return 0;
	unsigned int flags = btf ? vmf->flags : BPF_CORE_READ(vmf, flags);
	e->a[0] = btf ? vmf->pgoff : BPF_CORE_READ(vmf, pgoff);
	e->a[1] = pmd;
	e->a[2] = (flags & FSR_FAULT_FLAG_WRITE) ? 1 : 0;
	e->ret = result;
	fsr_submit_tp(e);
	return 0;
}
SEC("tp_btf/dax_pte_fault_done")
int BPF_PROG(btf__dax_pte_fault, struct inode *inode, struct vm_fault *vmf, int result)
{
	return fault_ev(FSR_P_DAX_PTE_FAULT_DONE, FSR_EV_DAX_FAULT, inode, vmf, result, false, true);
}
SEC("raw_tp/dax_pte_fault_done")
int BPF_PROG(raw__dax_pte_fault, struct inode *inode, struct vm_fault *vmf, int result)
{
	return fault_ev(FSR_P_DAX_PTE_FAULT_DONE, FSR_EV_DAX_FAULT, inode, vmf, result, false, false);
}
SEC("tp_btf/dax_pmd_fault_done")
int BPF_PROG(btf__dax_pmd_fault, struct inode *inode, struct vm_fault *vmf, unsigned long max_pgoff, int result)
{
	return fault_ev(FSR_P_DAX_PMD_FAULT_DONE, FSR_EV_DAX_FAULT, inode, vmf, result, true, true);
}
SEC("raw_tp/dax_pmd_fault_done")
int BPF_PROG(raw__dax_pmd_fault, struct inode *inode, struct vm_fault *vmf, unsigned long max_pgoff, int result)
{
	return fault_ev(FSR_P_DAX_PMD_FAULT_DONE, FSR_EV_DAX_FAULT, inode, vmf, result, true, false);
}

/* The fault's start: from here to its _done event the fault holds the index's DAX entry locked
 * (grab_mapping_entry .. dax_unlock_entry), which a concurrent sync's walk must wait for. */
SEC("tp_btf/dax_pte_fault")
int BPF_PROG(btf__dax_pte_fault_begin, struct inode *inode, struct vm_fault *vmf, int result)
{
	return fault_ev(FSR_P_DAX_PTE_FAULT, FSR_EV_DAX_FAULT_BEGIN, inode, vmf, 0, false, true);
}
SEC("raw_tp/dax_pte_fault")
int BPF_PROG(raw__dax_pte_fault_begin, struct inode *inode, struct vm_fault *vmf, int result)
{
	return fault_ev(FSR_P_DAX_PTE_FAULT, FSR_EV_DAX_FAULT_BEGIN, inode, vmf, 0, false, false);
}
SEC("tp_btf/dax_pmd_fault")
int BPF_PROG(btf__dax_pmd_fault_begin, struct inode *inode, struct vm_fault *vmf, unsigned long max_pgoff, int result)
{
	return fault_ev(FSR_P_DAX_PMD_FAULT, FSR_EV_DAX_FAULT_BEGIN, inode, vmf, 0, true, true);
}
SEC("raw_tp/dax_pmd_fault")
int BPF_PROG(raw__dax_pmd_fault_begin, struct inode *inode, struct vm_fault *vmf, unsigned long max_pgoff, int result)
{
	return fault_ev(FSR_P_DAX_PMD_FAULT, FSR_EV_DAX_FAULT_BEGIN, inode, vmf, 0, true, false);
}
