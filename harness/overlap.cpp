#include "harness/overlap.h"

#include <algorithm>
#include <vector>

namespace fsrace {

OverlapStats overlap_stats(const OpLogData& d) {
  std::vector<const OpRecord*> reads, mods;
  for (const auto& r : d.ops) {
    OpKind k = OpKind(r.kind);
    if (r.thread == 0 || op_kind_quiescent(k)) continue;  // setup, verification and quiescent checks
    if (k == OpKind::kRead || k == OpKind::kMmapRead || k == OpKind::kDioRead) reads.push_back(&r);
    else if ((op_kind_modifies(k) && k != OpKind::kInit) || k == OpKind::kFalloc || op_kind_shifts(k)) mods.push_back(&r);
  }
  std::sort(reads.begin(), reads.end(), [](const OpRecord* a, const OpRecord* b) { return a->start_ns < b->start_ns; });
  uint64_t longest = 0;
  for (const auto* r : reads) longest = std::max(longest, r->end_ns - r->start_ns);
  OverlapStats st;
  for (const auto* m : mods) {
    ++st.attempts;
    // Reads that can overlap m start in (m.start - longest, m.end).
    uint64_t lo = m->start_ns > longest ? m->start_ns - longest : 0;
    auto it = std::lower_bound(reads.begin(), reads.end(), lo,
                               [](const OpRecord* r, uint64_t t) { return r->start_ns < t; });
    for (; it != reads.end() && (*it)->start_ns < m->end_ns; ++it) {
      const OpRecord* r = *it;
      if (r->thread == m->thread || r->file != m->file || r->end_ns <= m->start_ns) continue;
      // collapse / insert range move every block from their offset to EOF
      uint64_t m_end = op_kind_shifts(OpKind(m->kind)) ? UINT64_MAX : m->offset + m->length;
      if (r->offset < m_end && m->offset < r->offset + r->length) {
        ++st.overlapped;
        break;
      }
    }
  }
  return st;
}

}  // namespace fsrace
