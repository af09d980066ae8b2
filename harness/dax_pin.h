// Explanations for what dax-pin-vs-truncate makes the kernel do with pinned DAX pages (seed 004): the
// pages of a DAX mapping are the filesystem's blocks, so a pin (get_user_pages by an O_DIRECT read) must
// be waited for before the blocks are freed. Each function marks a finding it can account for with
// `explained_by` and a sentence naming the evidence; the finding stays a failure. Pure functions.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/findings.h"

namespace fsrace {

// A kernel-warning at dax_disassociate_entry (WARN_ON_ONCE(trunc && page_ref_count(page) > 1)): a DAX entry
// was deleted while its page was still referenced. With evict / iput_final in its call trace it is the
// eviction path ("dax-pinned-page-evicted": the inode's pages outlive it), otherwise a truncate / punch
// that did not wait ("dax-pinned-page-truncated"). false: not such a warning.
bool explain_dax_pin_warning(Finding& f);

// A hang whose threads (the guest heartbeat's "threads": comm, state, syscall, wchan) sleep in a DAX layout
// break (ext4_break_layouts, xfs_break_dax_layouts) with no O_DIRECT read in flight on any workload thread:
// the pins they wait for are gone, so the wake-up was lost ("dax-layout-break-wake-lost"). false: another hang.
bool explain_layout_break_hang(Finding& f, const nlohmann::json& threads);

// A foreign data finding whose stamp is a victim file's (engine.h kVictimFileBit, same run nonce): a pinned
// read wrote into blocks the victim no longer owned, which the filesystem had given to this file
// ("dax-pin-write-after-free"), or, with kVictimOwnBit, the victim's own earlier content showed up in a
// block given to this file ("dax-freed-block-not-zeroed"). false: another stamp.
bool explain_victim_stamp(Finding& f, uint64_t run_nonce);

}  // namespace fsrace
