#include "harness/dax_pin.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace fsrace {
namespace {

bool any_line_has(const std::vector<std::string>& lines, const char* needle) {
  return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(needle) != std::string::npos; });
}

// The syscall number of a heartbeat thread ("285 0x3 ..." -> 285; "running" / "" -> -1).
long syscall_nr(const nlohmann::json& t) {
  std::string sc = t.value("syscall", "");
  if (sc.empty() || !(std::isdigit(static_cast<unsigned char>(sc[0])))) return -1;
  return std::strtol(sc.c_str(), nullptr, 10);
}

}  // namespace

bool explain_dax_pin_warning(Finding& f) {
  if (f.cls != "kernel-warning" || !f.explained_by.empty()) return false;
  if (!any_line_has(f.kernel_log, "dax_disassociate_entry") && f.got.find("dax_disassociate_entry") == std::string::npos)
    return false;
  bool evict = any_line_has(f.kernel_log, " evict+") || any_line_has(f.kernel_log, "_evict_inode") ||
               any_line_has(f.kernel_log, "iput_final");
  if (evict) {
    f.explained_by = "dax-pinned-page-evicted";
    f.detail = (f.detail.empty() ? f.got : f.detail) + "; " + std::string(
        "explained: the inode was evicted (evict -> truncate_inode_pages -> dax_delete_mapping_entry in the call trace) "
        "while a page of its DAX mapping was still referenced, i.e. pinned by an O_DIRECT read whose buffer it was; "
        "nothing on the eviction path waits for such pins (unlike truncate and punch, which break layouts first), so "
        "the inode's blocks are freed while the device still writes into them (seed 004: 'no access to a page may "
        "outlive the hosting inode'; a known gap of fsdax kernels before the page-refcount rework)");
  } else {
    f.explained_by = "dax-pinned-page-truncated";
    f.detail = (f.detail.empty() ? f.got : f.detail) + "; " + std::string(
        "explained: a DAX entry was removed by a truncate / punch while its page was still referenced (pinned by an "
        "O_DIRECT read): the filesystem did not wait for the pin (ext4_break_layouts / xfs_break_dax_layouts) before "
        "freeing the blocks");
  }
  return true;
}

bool explain_layout_break_hang(Finding& f, const nlohmann::json& threads) {
  if (f.cls != "hang" || !f.explained_by.empty() || !threads.is_array()) return false;
  std::vector<std::string> waiters;
  for (const auto& t : threads) {
    std::string w = t.value("wchan", ""), comm = t.value("comm", "");
    if (w == "ext4_break_layouts" || w == "xfs_break_dax_layouts" || w == "xfs_break_layouts")
      waiters.push_back(fmt::format("{}[{}] in {}", comm, t.value("tid", 0), w));
    // A workload thread still inside a read or an AIO wait may hold the pin that is waited for.
    long nr = syscall_nr(t);
    if (comm.rfind("fsr-", 0) == 0 && (nr == 17 || nr == 0 || nr == 208 /* io_getevents */)) {
      std::string st = t.value("state", "");
      if (st == "R" || w.find("blk") != std::string::npos || w.find("io_schedule") != std::string::npos) return false;
    }
  }
  if (waiters.empty()) return false;
  std::string list;
  for (const auto& w : waiters) list += (list.empty() ? "" : ", ") + w;
  f.explained_by = "dax-layout-break-wake-lost";
  f.detail += fmt::format(
      "; explained: {} sleep(s) waiting for a pinned DAX page of the file to go idle (page refcount back to 1) for the "
      "whole hang, although the only pins are O_DIRECT reads that the staging device completes within its read delay "
      "(pin_delay_ms, 10 ms by default) and no workload thread is inside one: the references were dropped without the fsdax wake-up "
      "(__put_devmap_managed_page_refs), so the truncate / punch sleeps forever with i_rwsem held and every other user "
      "of the file queues behind it. On Debian's 6.1.192 __bio_release_pages() drops them with folio_put_refs(), "
      "which skips that wake-up (candidate fix: kernels/patches/bio-release-devmap-wake.patch)",
      list);
  return true;
}

bool explain_victim_stamp(Finding& f, uint64_t run_nonce) {
  if (f.cls != "foreign" || !f.got_value || !f.explained_by.empty()) return false;
  uint64_t id = f.got_value->file_id;
  if ((id >> 32) != (run_nonce & 0xffffffffu) || !(id & (1ull << 31))) return false;
  std::string victim = fmt::format("pv{}.{}", (id >> 20) & 0x3ff, id & 0xfffff), here = f.file.empty() ? "this file" : f.file;
  if (id & (1ull << 30)) {  // the victim's own pwrite content
    f.explained_by = "dax-freed-block-not-zeroed";
    f.detail += fmt::format(
        "; explained: the stamp is what victim file {} itself wrote (op {}) before it was truncated or evicted with a "
        "pinned page: its blocks went to {} without being zeroed, so {} shows another file's old data",
        victim, f.got_value->gen, here, here);
  } else {
    f.explained_by = "dax-pin-write-after-free";
    f.detail += fmt::format(
        "; explained: the stamp is victim file {}'s (op {}), which only the O_DIRECT read into that victim's pinned DAX "
        "mapping wrote: the victim was truncated or evicted while the read was in flight, its blocks were freed and "
        "given to {}, and the device then wrote into them (a write after free at the storage level, seed 004)",
        victim, f.got_value->gen, here);
  }
  return true;
}

}  // namespace fsrace
